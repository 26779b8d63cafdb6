"""The web page in a real headless Chromium, against a real `polymodal serve` process on loopback.

Chromium is Debian's (`/usr/bin/chromium`, installed by `make setup`), driven by playwright; playwright's own
browser download is never used. Each step saves a screenshot under the test's tmp dir and checks it is not
blank. The spoken query is also recorded through the page's microphone button: Chromium's fake capture
device plays the WAV into MediaRecorder.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO
from PIL import Image, ImageStat

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SENTENCE = "it was the best of times, it was the worst of times"
TIMEOUT_MS = 90_000
SERVERS: dict[str, tuple[subprocess.Popen, Path]] = {}  # base URL -> the `polymodal serve` process and its log


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve_copy(indexed, store: Path, *options: str, **env: str) -> Iterator[str]:
    """`polymodal serve OPTIONS` on a copy of the indexed sample store in ``store``, with ``env`` added to the
    environment; yields its base URL and stops it afterwards."""
    with sqlite3.connect(indexed.store.path) as src, sqlite3.connect(store / "polymodal.sqlite") as dst:
        src.backup(dst)
    port = free_port()
    log = open(store / "server.log", "w")  # noqa: SIM115 (closed below)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "POLYMODAL_CACHE": str(indexed.settings.cache), **env}
    command = [sys.executable, "-m", "polymodal.cli", "serve", "--store", str(store), "--port", str(port), *options]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process, store / "server.log")
        SERVERS[base] = (process, store / "server.log")
        yield base
    finally:
        SERVERS.pop(base, None)
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def server(indexed, tmp_path_factory: pytest.TempPathFactory):
    """`polymodal serve` on a copy of the indexed sample store; yields its base URL."""
    with serve_copy(indexed, tmp_path_factory.mktemp("browser-store")) as base:
        yield base


def server_stacks(base: str) -> str | None:
    """The tail of the log of the server at ``base`` after it printed every thread's stack (SIGUSR1): what a
    request that never answered was waiting for."""
    if base not in SERVERS:
        return None
    process, log = SERVERS[base]
    if process.poll() is None:
        process.send_signal(signal.SIGUSR1)
        time.sleep(1)
    return log.read_text(errors="replace")[-20_000:]


def wait_until_up(base: str, process: subprocess.Popen, log: Path, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/api/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"the server did not answer in {seconds:.0f}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def browser(spoken):
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run `make setup` (installs Debian's chromium)")
    if importlib.util.find_spec("playwright") is None:
        raise RuntimeError("playwright is not installed: run `make setup`")
    from playwright.sync_api import sync_playwright

    voice = spoken(SENTENCE)
    fake_mic = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={voice}",
    ]
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS + fake_mic)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(str(exc)))
    yield tab
    context.close()
    assert not problems, problems


def snap(page, folder: Path, name: str) -> Path:
    """A screenshot that must show something: several colours and real contrast."""
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    image = Image.open(path).convert("L")
    low, high = image.getextrema()
    assert high - low > 100 and ImageStat.Stat(image).stddev[0] > 12, f"{name}: the page looks blank"
    return path


def top_result(page, name: str, seconds: float = TIMEOUT_MS / 1000, within: int = 1) -> None:
    """Wait until the search finished with ``name`` among the first ``within`` cards (polled: the page's CSP
    forbids eval)."""
    results = page.locator("#results")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        cards = results.locator(".card")
        done = results.get_attribute("aria-busy") == "false" and cards.count()
        if done and name in [cards.nth(i).get_attribute("data-name") for i in range(min(within, cards.count()))]:
            return
        page.wait_for_timeout(200)
    shown = results.locator(".card").evaluate_all("cards => cards.slice(0, 3).map(c => c.dataset.name)")
    raise AssertionError(f"{name} is not among the first {within} results; the page shows {shown}")


def wait_until(page, check, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        page.wait_for_timeout(200)


def test_search_upload_voice_item_analyze(server, page, samples, spoken, tmp_path):
    page.goto(server + "/")
    page.wait_for_selector("#results .empty")
    wait_until(page, lambda: "items" in page.locator("#stats").inner_text(), "the collection counts")
    snap(page, tmp_path, "0-start")

    page.fill("#q", "a cat")  # text
    page.keyboard.press("Enter")
    top_result(page, "chelsea_cat.jpg", within=2)  # the cat notes are as relevant as the photo
    first = page.locator('#results .card[data-name="chelsea_cat.jpg"]')
    assert "Seen:" in first.inner_text() and first.locator("img").get_attribute("src").endswith("/thumbnail")
    thumb = first.locator("img")
    wait_until(page, lambda: thumb.evaluate("img => img.naturalWidth") > 0, "the thumbnail to load")
    snap(page, tmp_path, "1-text-a-cat")

    page.fill("#q", "")  # an image
    page.set_input_files("#attach", str(samples / "photos" / "coffee.jpg"))
    top_result(page, "coffee.jpg")
    assert "espresso" in page.locator("#understood").inner_text()
    snap(page, tmp_path, "2-image-coffee")

    page.get_by_role("button", name="Remove the image").click()  # a recording, uploaded
    page.set_input_files("#attach", str(spoken(SENTENCE)))
    top_result(page, "two_cities.wav")
    moment = page.locator("#results .card").first.locator("button.time")
    assert moment.inner_text().startswith("▶ 0:0")  # the matching segment is in the first ten seconds
    assert "best" in page.locator("#understood").inner_text().lower()
    snap(page, tmp_path, "3-voice-upload")

    page.get_by_role("button", name="Remove the recording").click()  # spoken into the (fake) microphone
    page.click("#mic")
    page.wait_for_selector("#mic[aria-pressed=true]")
    page.wait_for_timeout(4500)
    page.click("#mic")
    top_result(page, "two_cities.wav")
    assert "Voice: voice-" in page.locator("#chips").inner_text()
    snap(page, tmp_path, "4-voice-microphone")

    page.locator("#results .card").first.locator("a.title").click()  # the item page
    page.wait_for_selector(".item-layout")
    assert page.locator("#view-item h1").inner_text() == "two_cities.wav"
    page.wait_for_selector(".segments button")
    page.wait_for_selector("#view-item .grid .card")  # similar items
    page.locator(".segments button").nth(1).click()
    audio = page.locator("#player")
    wait_until(page, lambda: audio.evaluate("a => a.currentTime") >= 4, "the player to jump to the segment")
    snap(page, tmp_path, "5-item")

    if importlib.util.find_spec("polymodal.tasks.analyze") is not None:
        page.goto(server + "/#/analyze")
        files = [samples / "photos" / "coffee.jpg", samples / "notes" / "coffee.md"]
        page.set_input_files("#analyze-files", [str(f) for f in files])
        page.uncheck("#analyze-phrase")
        page.click("#analyze-run")
        page.wait_for_selector("#report")
        report = page.locator("#report").inner_text()
        assert "coffee.jpg" in report and "coffee.md" in report and "Summary" in report
        snap(page, tmp_path, "6-analyze")


def test_errors_and_mobile(server, browser, tmp_path):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server + "/#/item/999999")
    page.wait_for_selector("#view-item .empty")
    assert "No such item" in page.locator("#view-item").inner_text()
    page.goto(server + "/#/")
    page.wait_for_selector("#results .empty")
    fake = {"name": "notes.png", "mimeType": "image/png", "buffer": b"a note, not a picture"}
    page.set_input_files("#attach", files=[fake])
    page.wait_for_selector("#results .empty[role=alert]")
    assert "notes.png is not an image" in page.locator("#results").inner_text()
    assert not page.locator("#chips .chip").count()  # the rejected file left the search
    snap(page, tmp_path, "mobile-error")
    page.keyboard.press("/")  # keyboard: "/" focuses the search box
    assert page.locator("#q").evaluate("q => q === document.activeElement")
    page.keyboard.type("coffee")
    page.keyboard.press("Enter")
    page.wait_for_selector("#results .card")
    width = page.locator("html").evaluate("html => html.scrollWidth - window.innerWidth")
    assert width <= 0  # no sideways scrolling
    snap(page, tmp_path, "mobile-search")
    context.close()
