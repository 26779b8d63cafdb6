"""The page speaks answers: in a real headless Chromium against a real `polymodal serve` (the harness of
tests/test_browser.py). An Ask answer gets a play button that plays it (POST /api/speak); the "read answers
aloud" option is kept in localStorage; and "Ask aloud" records a spoken question through Chromium's fake
microphone (a WAV spoken by the English voice), sends it to the assistant and plays the spoken answer.
The server runs without the LLM (answers are extractive): what is tested is the voice path, not the wording.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import test_browser as harness
from test_browser import ARGS, CHROMIUM, serve_copy, snap, wait_until

QUESTION = "How many grams of coffee are used for a double shot?"


@pytest.fixture(scope="module")
def server(indexed, tmp_path_factory: pytest.TempPathFactory):
    """`polymodal serve` on a copy of the indexed sample store, without the LLM; yields its base URL."""
    store = tmp_path_factory.mktemp("browser-speak-store")
    with serve_copy(indexed, store, "--no-warm", POLYMODAL_LLM="none") as base:
        yield base


@pytest.fixture(scope="module")
def question(settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from polymodal.tasks.speak import speak

    path = tmp_path_factory.mktemp("question") / "question.wav"
    speak(QUESTION, path, settings=settings)
    return path


@pytest.fixture(scope="module")
def browser(question: Path):
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run `make setup` (installs Debian's chromium)")
    if importlib.util.find_spec("playwright") is None:
        raise RuntimeError("playwright is not installed: run `make setup`")
    from playwright.sync_api import sync_playwright

    fake_mic = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={question}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS + fake_mic)
        yield chromium
        chromium.close()


page = harness.page  # the page fixture, on this module's browser (its fake microphone)


def played(page, audio, what: str) -> None:
    """Wait until ``audio`` has a real length and has played some of it."""
    wait_until(page, lambda: audio.count() and audio.evaluate("a => a.duration > 1 && a.currentTime > 0.3"), what, 60)


def test_answer_played_back_option_kept_and_asked_aloud(server, page, tmp_path):
    page.goto(server + "/#/ask")
    page.wait_for_selector("#speak-auto")
    assert not page.locator("#speak-auto").is_checked()

    page.fill("#ask-text", QUESTION)  # typed: the answer gets a play button
    page.locator("#ask-form button[type=submit]").click()
    answer = page.locator("#ask-result .answer-text").first
    answer.wait_for()
    wait_until(page, lambda: "18" in answer.inner_text(), "the answer from the coffee notes", 60)
    play = page.locator("#ask-result .speak-play").first
    play.click()
    played(page, page.locator("#ask-result audio.speak-audio").first, "the answer to play")
    assert play.get_attribute("data-state") in ("playing", "idle")
    snap(page, tmp_path, "1-answer-played")

    page.check("#speak-auto")  # the option is kept across visits
    page.reload()
    page.wait_for_selector("#speak-auto")
    assert page.locator("#speak-auto").is_checked()
    assert page.evaluate("() => localStorage.getItem('polymodal.readAnswersAloud')") == "1"

    page.click("#ask-voice")  # spoken into the (fake) microphone, answered aloud
    page.wait_for_selector("#ask-voice[aria-pressed=true]")
    page.wait_for_timeout(4500)
    page.click("#ask-voice")
    page.wait_for_selector("#ask-result .spoken-answer")
    heard = page.locator("#ask-result .panel.spoken .note").first.inner_text().lower()
    assert "coffee" in heard and "double shot" in heard, heard
    assert "18" in page.locator("#ask-result .spoken-answer").inner_text()
    played(page, page.locator("#ask-result audio.speak-audio").first, "the spoken answer to play by itself")
    snap(page, tmp_path, "2-asked-aloud")
