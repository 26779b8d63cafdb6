"""describe / ask / analyze with the real models (the light 0.5B LLM) on real inputs, and remote providers
against a fake OpenAI / Anthropic server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from textnorm import says, squashed, tokens

from polymodal.analysis import Analyzer
from polymodal.config import Settings
from polymodal.providers import ProviderConfig, ProviderError, ProviderPhraser, phraser_for
from polymodal.tasks import grounding
from polymodal.tasks.analyze import analyze
from polymodal.tasks.ask import ask
from polymodal.tasks.describe import describe
from polymodal.tasks.facts import clock, gather

LLM = "qwen2.5-0.5b"


@pytest.fixture(scope="module")
def analyzer(settings: Settings) -> Analyzer:
    return Analyzer(settings.with_(llm=LLM))


@pytest.fixture(scope="module")
def coffee(samples: Path) -> Path:
    return samples / "photos" / "coffee.jpg"


@pytest.fixture(scope="module")
def coffee_facts(analyzer: Analyzer, coffee: Path):
    return gather(analyzer, coffee)


# --- the local LLM -------------------------------------------------------------------------------------------
def test_ask_about_a_drink_answers_yes_with_evidence(analyzer: Analyzer, coffee: Path) -> None:
    answer = ask(analyzer, coffee, "Is there a drink?")
    assert answer.answerable and answer.by == LLM, answer.to_text()
    assert affirmative(answer.answer, ("espresso", "coffee", "drink", "cup")), answer.answer
    assert any(f.kind == "label" and f.text == "espresso" for f in answer.evidence), answer.evidence
    assert json.loads(json.dumps(answer.to_dict()))["answerable"] is True


def affirmative(answer: str, subjects: tuple[str, ...]) -> bool:
    """A yes, in whichever words the LLM chose on this CPU: "Yes, ...", or "There is an espresso ..." (no "no")."""
    words = tokens(answer)
    if not words or words[0] in ("no", "not", "i"):
        return False
    return words[0] == "yes" or (bool(set(words) & set(subjects)) and not {"no", "not", "isn't"} & set(words[:4]))


def test_ask_about_writing_on_a_photo_without_text_cannot_tell(analyzer: Analyzer, samples: Path) -> None:
    answer = ask(analyzer, samples / "photos" / "chelsea_cat.jpg", "What is written on the sign?")
    assert answer.answer.startswith("I can't tell what is written on the sign;") and not answer.answerable
    assert "cat" in answer.answer  # what is known is said
    assert answer.by == "coverage" and "no text" in (answer.reason or "")


def test_describe_coffee_mentions_it_and_nothing_unsupported(analyzer: Analyzer, coffee: Path, coffee_facts) -> None:
    description = describe(analyzer, coffee, facts=coffee_facts)
    caption = description.caption.lower()
    assert "espresso" in caption or "coffee" in caption, description.to_text()
    assert grounding.problems(description.caption, coffee_facts) == [], description.to_text()
    assert {"label", "colour", "size"} <= set(description.used)
    template = describe(analyzer, coffee, phraser=None, facts=coffee_facts)
    assert template.by == "template" and "espresso" in template.caption
    assert grounding.problems(template.caption, coffee_facts) == []


def test_grounding_rejects_what_no_evidence_supports(coffee_facts) -> None:
    assert grounding.problems("A dog sits next to a laptop.", coffee_facts)
    assert grounding.problems("The sign says “OPEN 24 HOURS”.", coffee_facts)
    assert grounding.problems("An espresso served at Starbucks.", coffee_facts)
    assert not grounding.problems("There is no dog; it shows an espresso.", coffee_facts)


def _bundle(folder: Path, samples: Path) -> list[Path]:
    from PIL import Image, ImageDraw, ImageFont

    document = folder / "report.md"
    document.write_text(
        "# Café Aurora: quarterly notes\n\n"
        "Café Aurora on Harbour Street served 12,400 espressos this quarter, more than ever before.\n"
        "The head barista, Marguerite Okafor, trained three new staff members in milk texturing.\n\n"
        "The café opens at 8AM every day. Customers asked for more seats outside.\n",
        encoding="utf-8",
    )
    photo = Image.open(samples / "photos" / "coffee.jpg").convert("RGB")
    draw, font, text = ImageDraw.Draw(photo), ImageFont.load_default(size=44), "OPEN 7AM-3PM"
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x, y = (photo.width - (right - left)) // 2, 20
    draw.rectangle((x - 14, y - 10, x + right - left + 14, y + bottom - top + 22), fill="white")
    draw.text((x, y), text, fill="black", font=font)
    photo.save(folder / "sign.jpg", quality=92)
    return [document, folder / "sign.jpg", samples / "recordings" / "two_cities.wav"]


def test_analyze_a_bundle_reports_every_items_facts(analyzer: Analyzer, samples: Path, tmp_path: Path) -> None:
    sources = _bundle(tmp_path, samples)
    started = time.perf_counter()
    report = analyze(analyzer, sources)
    seconds = time.perf_counter() - started
    print(f"analyze: {seconds:.1f} s for 3 items (summary by {report.summary_by})")
    assert [item.modality for item in report.items] == ["text", "image", "audio"]
    assert any("7am" in squashed(line) for line in report.items[1].ocr), report.items[1].ocr  # "7AM" or "7 AM"
    transcript = report.items[2].transcript
    assert transcript and transcript[0].start < 2
    outputs = {ext: report.write(tmp_path / f"out.{ext}").read_text(encoding="utf-8") for ext in ("md", "html", "json")}
    for ext, text in outputs.items():  # each fact is only in one item: the document, the photo's sign, the speech
        assert "Marguerite Okafor" in text and "7am" in squashed(text), ext
        assert says(text, "it was the best of times"), ext
    data = json.loads(outputs["json"])
    assert data["summary"] and data["key_points"] and len(data["items"]) == 3
    assert "Marguerite Okafor" in [e["text"] for e in data["entities"]]
    html = outputs["html"]
    assert html.startswith("<!DOCTYPE html>") and "data:image/jpeg;base64," in html
    assert f"{clock(transcript[0].start)}–{clock(transcript[0].end)}" in html  # the speech's times
    assert "<script" not in html and 'src="http' not in html  # self-contained


def test_no_llm_means_fallbacks_and_nothing_is_contacted(settings: Settings) -> None:
    assert phraser_for(settings.with_(llm="none")) is None


# --- providers over HTTP -------------------------------------------------------------------------------------
class FakeServer:
    """OpenAI / Anthropic wire formats on 127.0.0.1; answers come from a script of (status, body, delay)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: list[tuple[int, dict | str, float]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append({"path": self.path, "headers": headers, "body": body})
                status, answer, delay = server.script.pop(0) if server.script else (500, "no script", 0.0)
                time.sleep(delay)
                payload = (answer if isinstance(answer, str) else json.dumps(answer)).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def phraser(self, kind: str, **config: object) -> ProviderPhraser:
        values = {"kind": kind, "url": self.url, "model": "fake-vision", "timeout": 5, "retries": 0, **config}
        return ProviderPhraser(ProviderConfig.from_settings(values))


@pytest.fixture()
def server():
    fake = FakeServer()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


def openai_answer(text: str) -> dict:
    return {"choices": [{"message": {"role": "assistant", "content": text}}]}


def test_openai_provider_gets_the_image_and_evidence(analyzer, coffee, coffee_facts, server, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_KEY", "sk-test")
    server.script = [(200, openai_answer("An espresso in a red cup on a wooden table."), 0.0)]
    phraser = server.phraser("openai", api_key_env="FAKE_KEY")
    description = describe(analyzer, coffee, phraser=phraser, facts=coffee_facts)
    assert description.caption == "An espresso in a red cup on a wooden table."
    assert description.by == "openai:fake-vision"
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == "Bearer sk-test"
    system, user = request["body"]["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    text, image = user["content"]
    assert text["type"] == "text" and "espresso" in text["text"]  # the evidence goes too
    assert image["type"] == "image_url"
    url = image["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(url.split(",", 1)[1])[:2] == b"\xff\xd8"  # a JPEG


def test_anthropic_provider_answers_a_question(analyzer, coffee, coffee_facts, server, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "ant-test")
    server.script = [(200, {"content": [{"type": "text", "text": "The cup is red."}]}, 0.0)]
    phraser = server.phraser("anthropic", api_key_env="FAKE_ANTHROPIC_KEY")
    answer = ask(analyzer, coffee, "What colour is the cup?", phraser=phraser, facts=coffee_facts)
    assert answer.answer == "The cup is red." and answer.answerable
    request = server.requests[0]
    assert request["path"] == "/v1/messages"
    assert request["headers"]["x-api-key"] == "ant-test" and request["headers"]["anthropic-version"]
    body = request["body"]
    assert body["model"] == "fake-vision" and body["max_tokens"] > 0 and isinstance(body["system"], str)
    image, text = body["messages"][-1]["content"]
    assert image["type"] == "image" and image["source"]["type"] == "base64"
    assert image["source"]["media_type"] == "image/jpeg"
    assert base64.b64decode(image["source"]["data"])[:2] == b"\xff\xd8"
    assert "What colour is the cup?" in text["text"]


def test_provider_500_is_a_clear_error(server) -> None:
    server.script = [(500, {"error": "model exploded"}, 0.0)]
    with pytest.raises(ProviderError) as error:
        server.phraser("openai").complete("system", "user")
    assert str(error.value).startswith(f"provider {server.url} answered 500: ")
    assert "model exploded" in str(error.value)


def test_provider_timeout_is_a_clear_error(server) -> None:
    server.script = [(200, openai_answer("too late"), 3.0)]
    started = time.perf_counter()
    with pytest.raises(ProviderError, match=r"timed out after 0.5 s"):
        server.phraser("openai", timeout=0.5).complete("system", "user")
    assert time.perf_counter() - started < 2.5


def test_provider_retries_on_503(server) -> None:
    server.script = [(503, "busy", 0.0), (503, "busy", 0.0), (200, openai_answer("fine now"), 0.0)]
    assert server.phraser("openai", retries=2, backoff=0.01).complete("system", "user") == "fine now"
    assert len(server.requests) == 3
    server.script = [(503, "still busy", 0.0)] * 2
    with pytest.raises(ProviderError, match=r"answered 503: still busy \(after 2 attempts\)"):
        server.phraser("openai", retries=1, backoff=0.01).complete("system", "user")


class WordPhraser:
    """A stand-in LLM for the map-reduce logic: a tiny context, tokens are words, answers are first sentences."""

    name, sees_images, context_tokens = "words", False, 760

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def complete(self, system, user, images=None, max_tokens=300, examples=()) -> str:
        self.prompts.append(user)
        body = user.split("\n\n", 1)[1].split(":", 1)[1].strip()
        return body.split(". ")[0].rstrip(".") + "."


def test_long_text_is_summarized_map_reduce_within_the_context() -> None:
    from polymodal.tasks.summarize import summarize

    text = "\n\n".join(f"Paragraph {i} says that item {i} matters. " + "More words here. " * 25 for i in range(12))
    phraser = WordPhraser()
    summary = summarize(text, phraser)
    assert summary.by == "words" and summary.chunks > 1, summary
    assert all(phraser.count_tokens(p) <= phraser.context_tokens for p in phraser.prompts)
    assert any(p.startswith("These are summaries") for p in phraser.prompts)  # the reduce step ran
    assert summary.key_points and summary.keywords
