"""Generation: images from a provider (fake servers on loopback, real PNGs of the sample collection) checked back
with the bundled models; text from the local LLM and from a provider; ``/api/generate``, ``/api/speak``; and a
spoken question answered aloud through the assistant endpoint.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import sqlite3
import threading
import time
import wave
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from textnorm import says, word_error_rate

from polymodal import generate
from polymodal.analysis import Analyzer
from polymodal.api.app import create_app
from polymodal.api.config import ServeConfig
from polymodal.collection import Collection
from polymodal.errors import ConfigError, UsageError

CONFIG = ServeConfig(warm=False, allowed_hosts=("testserver",))
CAT_PROMPTS = ("a cat sitting on a windowsill", "一只猫坐在窗台上")


class FakeProvider:
    """An image server on loopback: OpenAI images (b64_json or url), SD web UI txt2img, and failures."""

    def __init__(self, image: bytes):
        self.image = image
        self.mode = "b64_json"
        self.requests: list[tuple[str, dict, dict]] = []  # (path, json body, headers)
        self.delay = 0.0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # the image behind a "url" answer
                provider.requests.append((self.path, {}, {k.lower(): v for k, v in self.headers.items()}))
                self._send(200, provider.image, "image/png")

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                provider.requests.append((self.path, body, {k.lower(): v for k, v in self.headers.items()}))
                if provider.delay:
                    time.sleep(provider.delay)
                self._send(*provider.answer(self.path, body, self.server.server_address[1]))

            def _send(self, status: int, data: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client gave up (a time-out test)
                    self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, body: dict, port: int) -> tuple[int, bytes]:
        encoded = base64.b64encode(self.image).decode()
        if self.mode == "error500":
            return 500, b'{"error": {"message": "the GPU is on fire"}}'
        if self.mode == "error400":
            return 400, b'{"error": {"message": "your prompt was refused by the safety system"}}'
        if self.mode == "not-an-image":
            return 200, json.dumps({"data": [{"b64_json": base64.b64encode(b"hello").decode()}]}).encode()
        if path == "/v1/chat/completions":  # a text provider
            return 200, json.dumps({"choices": [{"message": {"content": "Roses are red."}}]}).encode()
        if path == "/sdapi/v1/txt2img":
            return 200, json.dumps({"images": [encoded], "parameters": body, "info": "{}"}).encode()
        if self.mode == "url":  # another host name for the same server: the key must not follow
            return 200, json.dumps({"data": [{"url": f"http://localhost:{port}/files/image.png"}]}).encode()
        return 200, json.dumps(
            {"created": 1, "data": [{"b64_json": encoded, "revised_prompt": body["prompt"]}]}
        ).encode()

    def provider(self, kind: str = "openai", **changes: object) -> generate.ImageProvider:
        values = {"url": self.url, "kind": kind, "key": "sk-test", "timeout": 5.0, "retries": 2, "backoff": 0.05}
        return generate.ImageProvider(**{**values, **changes})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def photos(samples: Path) -> Path:
    return samples / "photos"


@pytest.fixture(scope="module")
def fake(photos: Path) -> Iterator[FakeProvider]:
    server = FakeProvider(png(photos / "chelsea_cat.jpg"))
    yield server
    server.server.shutdown()


@pytest.fixture
def cat(fake: FakeProvider) -> FakeProvider:
    fake.mode, fake.delay = "b64_json", 0.0
    fake.requests.clear()
    return fake


@pytest.fixture(scope="module")
def analyzer(settings) -> Analyzer:
    return Analyzer(settings)


def png(path: Path) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("wire", ["b64_json", "url", "sdwebui"])
def test_image_from_each_wire_format_is_saved_and_checked(cat, wire, settings, analyzer, tmp_path):
    cat.mode = wire
    provider = cat.provider("sdwebui" if wire == "sdwebui" else "openai")
    image = generate.generate_image(CAT_PROMPTS[0], provider, size="512x512", settings=settings)
    assert image.format == "png" and (image.width, image.height) == Image.open(io.BytesIO(cat.image)).size
    path, body, headers = cat.requests[0]
    assert path == ("/sdapi/v1/txt2img" if wire == "sdwebui" else "/v1/images/generations")
    assert body["prompt"] == CAT_PROMPTS[0] and headers["authorization"] == "Bearer sk-test"
    assert (body["width"], body["height"]) == (512, 512) if wire == "sdwebui" else body["size"] == "512x512"
    if wire == "url":  # the image was fetched from the other host name, without the key
        assert cat.requests[1][0] == "/files/image.png" and "authorization" not in cat.requests[1][2]
    saved = tmp_path / "cat.png"
    saved.write_bytes(image.data)
    report = generate.check_image(analyzer, saved, CAT_PROMPTS[0])
    assert report.verdict == "matches" and "cat" in report.shared_words, report.to_text()
    assert "cat" in report.caption.lower() and report.labels
    assert set(report.to_dict()) >= {"caption", "verdict", "similarity", "labels", "shared_words"}


def test_check_tells_a_match_from_a_mismatch_in_both_languages(photos, analyzer):
    for prompt in CAT_PROMPTS:
        right = generate.check_image(analyzer, photos / "chelsea_cat.jpg", prompt)
        wrong = generate.check_image(analyzer, photos / "coffee.jpg", prompt)
        assert right.verdict == "matches" and wrong.verdict == "does not match", (right.to_text(), wrong.to_text())
        assert right.similarity > wrong.similarity + 0.15


def test_provider_errors_are_clear(cat, settings):
    with pytest.raises(generate.NotConfigured, match="POLYMODAL_IMAGE_PROVIDER_URL"):
        generate.ImageProvider.from_env({})
    with pytest.raises(generate.NotConfigured, match="use one of openai, sdwebui"):
        generate.ImageProvider.from_env({"POLYMODAL_IMAGE_PROVIDER_URL": cat.url, "POLYMODAL_IMAGE_PROVIDER_KIND": "x"})
    cat.mode = "error500"  # retried, then given up
    with pytest.raises(generate.GenerateError, match=r"answered 500: .*on fire.* \(after 3 attempts\)") as failed:
        generate.generate_image("a cat", cat.provider(), settings=settings)
    assert failed.value.status == 502 and len(cat.requests) == 3
    cat.requests.clear()
    cat.mode = "error400"  # refused: not retried
    with pytest.raises(generate.GenerateError, match="answered 400: .*safety system"):
        generate.generate_image("a cat", cat.provider(), settings=settings)
    assert len(cat.requests) == 1
    cat.mode = "not-an-image"
    with pytest.raises(generate.GenerateError, match="not an image"):
        generate.generate_image("a cat", cat.provider(), settings=settings)
    cat.mode, cat.delay = "b64_json", 2.0  # slower than the time-out
    started = time.monotonic()
    with pytest.raises(generate.GenerateError, match=r"timed out after 0.5 s \(after 2 attempts\)") as slow:
        generate.generate_image("a cat", cat.provider(timeout=0.5, retries=1), settings=settings)
    assert slow.value.status == 504 and time.monotonic() - started < 5
    for bad in ("", "x" * 5000):
        with pytest.raises(UsageError, match="prompt"):
            generate.generate_image(bad, cat.provider(), settings=settings)
    with pytest.raises(UsageError, match="between 64 and 2048"):
        generate.generate_image("a cat", cat.provider(), size="4096x4096", settings=settings)


def test_cli_generate_image(cat, settings, tmp_path, monkeypatch, capsys):
    from polymodal.cli import main

    monkeypatch.setenv("POLYMODAL_IMAGE_PROVIDER_URL", cat.url)
    monkeypatch.setenv("POLYMODAL_IMAGE_PROVIDER_KIND", "sdwebui")
    out = tmp_path / "cat.jpg"
    store = tmp_path / "store"
    assert main(["generate", "image", CAT_PROMPTS[1], "-o", str(out), "--index", "--store", str(store)]) == 0
    printed = capsys.readouterr().out
    assert Image.open(out).format == "JPEG" and "indexed as item" in printed and "check: matches" in printed
    monkeypatch.delenv("POLYMODAL_IMAGE_PROVIDER_URL")
    assert main(["generate", "image", "a cat", "-o", str(out), "--json"]) == 2
    assert "POLYMODAL_IMAGE_PROVIDER_URL" in json.loads(capsys.readouterr().out)["error"]


def test_text_from_the_local_llm_and_from_a_provider(cat, settings):
    local = "".join(generate.generate_text("Say hello in one short sentence.", settings.with_(llm="qwen2.5-0.5b"), 24))
    assert local.strip() and len(local) < 400
    remote = settings.with_(provider={"kind": "openai", "url": cat.url, "model": "fake", "retries": 0})
    assert "".join(generate.generate_text("A poem, please.", remote)) == "Roses are red."
    assert generate.text_model(remote) == "openai:fake"
    with pytest.raises(ConfigError, match="no language model"):
        "".join(generate.generate_text("Hello?", settings.with_(llm="none", provider=None)))


# --- the HTTP API ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(indexed: Collection, fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory):
    """The API on a copy of the indexed samples; text from the fake provider (the LLM is tested above)."""
    dest = tmp_path_factory.mktemp("generate-store")
    with sqlite3.connect(indexed.store.path) as src, sqlite3.connect(dest / "polymodal.sqlite") as dst:
        src.backup(dst)
    provider = {"kind": "openai", "url": fake.url, "model": "fake", "retries": 0}
    collection = Collection(settings=indexed.settings.with_(store=dest, provider=provider, llm="none"))
    collection.analyzer = indexed.analyzer
    with TestClient(create_app(collection, CONFIG), raise_server_exceptions=False) as test_client:
        yield test_client


def error(response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert words in body["error"] and body["code"], body


def test_api_generate_each_type(client, cat, monkeypatch):
    text = client.post("/api/generate", json={"type": "text", "prompt": "A poem, please."})
    assert text.status_code == 200 and text.json()["text"] == "Roses are red." and text.json()["by"] == "openai:fake"

    error(client.post("/api/generate", json={"type": "image", "prompt": "a cat"}), 400, "POLYMODAL_IMAGE_PROVIDER_URL")
    monkeypatch.setenv("POLYMODAL_IMAGE_PROVIDER_URL", cat.url)
    image = client.post("/api/generate", json={"type": "image", "prompt": CAT_PROMPTS[0], "size": "512x512"}).json()
    assert image["image"]["url"].startswith("data:image/png;base64,") and image["check"]["verdict"] == "matches"
    indexed = client.post("/api/generate", json={"type": "image", "prompt": CAT_PROMPTS[1], "index": True}).json()
    media = client.get(indexed["image"]["url"])
    assert indexed["image"]["url"] == f"/api/items/{indexed['item']}/media" and media.content == cat.image
    assert client.get(f"/api/items/{indexed['item']}").json()["modality"] == "image"
    cat.mode = "error400"
    error(client.post("/api/generate", json={"type": "image", "prompt": "a cat"}), 502, "safety system")

    speech = client.post("/api/generate", json={"type": "speech", "prompt": "Generated speech, in a data URL."})
    audio = speech.json()["audio"]
    assert audio["url"].startswith("data:audio/wav;base64,") and audio["voices"] == ["hibari"]
    with wave.open(io.BytesIO(base64.b64decode(audio["url"].split(",", 1)[1]))) as wav:
        assert wav.getnframes() / wav.getframerate() == pytest.approx(audio["seconds"], abs=0.01)

    error(client.post("/api/generate", json={"type": "video", "prompt": "a cat"}), 422, "type")
    error(client.post("/api/generate", json={"type": "text", "prompt": "   "}), 400, "prompt is empty")
    error(client.post("/api/generate", json={"type": "speech", "prompt": "hi", "voice": "nobody"}), 400, "nobody")
    error(client.post("/api/generate", json={"type": "speech", "prompt": "word " * 300}), 400, "speak endpoint")


def test_api_speak_whole_opus_and_streamed(client):
    whole = client.post("/api/speak", json={"text": "Hello. This is the whole answer."})
    assert whole.headers["content-type"] == "audio/wav" and float(whole.headers["x-speech-seconds"]) > 1
    opus = client.post("/api/speak", json={"text": "Hello.", "format": "opus"})
    assert opus.headers["content-type"] == "audio/ogg" and opus.content[:4] == b"OggS"
    with client.stream(
        "POST", "/api/speak", json={"text": "First sentence. Second one. 第三句。", "stream": True}
    ) as s:
        chunks = list(s.iter_bytes())
    data = b"".join(chunks)
    assert data[:4] == b"RIFF" and (len(data) - 44) % 2 == 0 and len(data) > 44 + 24_000
    error(
        client.post("/api/speak", json={"text": "Hi", "stream": True, "format": "opus"}), 400, "streamed speech is WAV"
    )
    error(client.post("/api/speak", json={"text": ""}), 422, "text")
    error(client.post("/api/speak", json={"text": "Hi", "language": "xx"}), 400, "no installed voice speaks")
    assert {"hibari", "espeak-ng"} <= {v["name"] for v in client.get("/api/voices").json()["voices"]}


def test_spoken_question_answered_aloud_by_the_assistant(client, settings, analyzer, tmp_path):
    from polymodal.tasks.speak import speak
    from polymodal.tasks.transcribe import transcribe

    question = tmp_path / "question.wav"
    speak("How many grams of coffee are used for a double shot?", question, settings=settings)
    with question.open("rb") as recording:
        answer = client.post(
            "/api/assistant", files={"voice": ("question.wav", recording, "audio/wav")},
            data={"speak": "true", "phrase": "false"},
        )  # fmt: skip
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["route"] == "answer" and says(data["question"], "how many grams of coffee")
    assert "18" in data["answer"] and data["evidence"][0]["source"] == "coffee.md", data
    spoken = tmp_path / "answer.wav"
    spoken.write_bytes(base64.b64decode(data["speech"]["url"].split(",", 1)[1]))
    heard = transcribe(analyzer, spoken, language="en").text
    assert word_error_rate(heard, data["answer"]) <= 0.25, (heard, data["answer"])
    silent = tmp_path / "silence.wav"
    with wave.open(str(silent), "wb") as wav:
        wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(16000), wav.writeframes(b"\0\0" * 16000)
    with silent.open("rb") as recording:
        error(client.post("/api/assistant", files={"voice": ("q.wav", recording, "audio/wav")}), 400, "no words")
