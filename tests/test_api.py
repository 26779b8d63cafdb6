"""The HTTP API through FastAPI's TestClient, on a copy of the indexed sample collection, with the real models.

Every error answer is collected and checked at the end: JSON with a message, no traceback, no server path.
"""

from __future__ import annotations

import io
import json
import re
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from polymodal.api.app import create_app
from polymodal.api.config import MB, ServeConfig
from polymodal.api.security import KeyStore
from polymodal.collection import Collection
from polymodal.index import IndexReport

CONFIG = ServeConfig(
    warm=False, max_query_bytes=1 * MB, max_upload_bytes=3 * MB, max_request_bytes=8 * MB, max_files=5,
    allowed_hosts=("testserver",),  # TestClient's host name; keyless, the service answers loopback names only
)  # fmt: skip
SENTENCE = "it was the best of times, it was the worst of times"  # spoken by espeak-ng
ERRORS: list[tuple[int, str]] = []  # (status, body) of every error answer seen by these tests


def copy_store(source: Collection, dest: Path) -> Collection:
    """A private copy of an indexed store, sharing the source's loaded models."""
    dest.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source.store.path) as src, sqlite3.connect(dest / "polymodal.sqlite") as dst:
        src.backup(dst)
    collection = Collection(settings=source.settings.with_(store=dest))
    collection.analyzer = source.analyzer
    return collection


@pytest.fixture(scope="module")
def collection(indexed: Collection, tmp_path_factory: pytest.TempPathFactory) -> Collection:
    return copy_store(indexed, tmp_path_factory.mktemp("api-store"))


@pytest.fixture(scope="module")
def client(collection: Collection):
    with TestClient(create_app(collection, CONFIG), raise_server_exceptions=False) as test_client:
        yield test_client


def error(response, status: int) -> dict:
    """Assert an error answer: its status, JSON ``{error, code}``; remember it for the leak scan."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and body["error"] and body["code"]
    ERRORS.append((status, response.text))
    return body


def heard(text: str) -> bool:
    """The synthetic voice's sentence, allowing Whisper's usual slip on it ("best on times")."""
    return all(word in text.lower() for word in ("best", "worst", "times"))


def item_id(client: TestClient, name: str) -> int:
    items = client.get("/api/items", params={"limit": 500}).json()["items"]
    return next(i["item"] for i in items if i["name"] == name)


def jpeg(size: int = 64, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, "JPEG")
    return buffer.getvalue()


# --- system ------------------------------------------------------------------------------------------------
def test_health_page_and_schema(client):
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["auth_required"] is False
    page = client.get("/")
    assert page.status_code == 200 and "polymodal" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    paths = client.get("/api/openapi.json").json()["paths"]
    for route in (
        "/api/search", "/api/items", "/api/items/{item_id}", "/api/items/{item_id}/media",
        "/api/items/{item_id}/thumbnail", "/api/items/{item_id}/similar", "/api/index", "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/events", "/api/classify", "/api/describe", "/api/ask", "/api/transcribe", "/api/read",
        "/api/tag", "/api/analyze", "/api/assistant", "/api/health", "/metrics",
    ):  # fmt: skip
        assert route in paths, route
    assert set(paths["/api/search"]["post"]["requestBody"]["content"]) == {"application/json", "multipart/form-data"}


def test_status_and_metrics(client):
    status = client.get("/api/status").json()
    assert status["per_modality"]["image"] >= 8 and "store" not in status
    client.get("/api/search", params={"q": "cat"})
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert re.search(r'polymodal_http_requests_total\{method="GET",route="/api/search",status="200"\} \d+', text)
    assert "polymodal_http_request_duration_seconds_bucket" in text
    assert re.search(r"^polymodal_process_resident_memory_bytes \d", text, re.M)


# --- search ------------------------------------------------------------------------------------------------
def first_of(hits: list[dict], modality: str) -> dict:
    return next(h for h in hits if h["modality"] == modality)


def test_search_json_text(client, collection):
    result = client.post("/api/search", json={"text": "a cat", "k": 10}).json()
    top = first_of(result["hits"], "image")
    assert top["name"] == "chelsea_cat.jpg" and top["path"] == "photos/chelsea_cat.jpg"
    assert top["thumbnail"] == f"/api/items/{top['item']}/thumbnail"
    assert any(e["kind"] == "label" for e in top["why"])
    assert str(collection.settings.store) not in json.dumps(result)
    only = client.get("/api/search", params={"q": "cat", "modality": "text", "k": 3}).json()["hits"]
    assert only and all(h["modality"] == "text" for h in only)


def test_search_pages_and_cut_off(client):
    first = client.post("/api/search", json={"text": "farm animals", "k": 2}).json()
    assert len(first["hits"]) == 2 and first["more"] and first["offset"] == 0
    second = client.get("/api/search", params={"q": "farm animals", "k": 2, "offset": 2}).json()
    assert second["offset"] == 2 and second["weaker"] == []
    assert not {h["item"] for h in first["hits"]} & {h["item"] for h in second["hits"]}
    nothing = client.post("/api/search", json={"text": "xqzvbnm plorf"}).json()
    assert nothing["hits"] == [] and not nothing["more"]
    assert all("thumbnail" in h or h["modality"] != "image" for h in nothing["weaker"])
    scores = [h["score"] for h in first["hits"] + first["weaker"]]
    assert scores == sorted(scores, reverse=True)


def test_search_multipart_image_and_audio(client, samples, spoken):
    coffee = (samples / "photos" / "coffee.jpg").read_bytes()
    result = client.post("/api/search", files={"image": ("q.jpg", coffee, "image/jpeg")}, data={"k": "5"}).json()
    assert result["hits"][0]["name"] == "coffee.jpg"
    assert any(e["text"] == "espresso" for e in result["query_evidence"])
    wav = spoken(SENTENCE).read_bytes()
    result = client.post("/api/search", files={"audio": ("q.wav", wav, "audio/wav")}, data={"k": "3"}).json()
    top = result["hits"][0]
    assert top["name"] == "two_cities.wav" and top["start"] is not None and top["start"] < 10
    told = client.post("/api/search", files={"audio": ("q.wav", wav, "audio/wav")}, data={"language": "en"}).json()
    assert told["hits"][0]["name"] == "two_cities.wav"  # the language of the spoken query, chosen
    unknown = client.post("/api/search", files={"audio": ("q.wav", wav, "audio/wav")}, data={"language": "klingon"})
    assert "unknown language 'klingon'" in error(unknown, 400)["error"]
    refined = client.post(
        "/api/search", files={"image": ("q.jpg", coffee, "image/jpeg")}, data={"text": "咖啡", "k": "5"}
    ).json()
    assert refined["hits"][0]["name"] in {"coffee.jpg", "咖啡.md"}


def test_search_errors(client, samples):
    assert "text, an image or an audio" in error(client.post("/api/search", json={"text": "  "}), 400)["error"]
    error(client.post("/api/search", content=b"{not json", headers={"content-type": "application/json"}), 400)
    error(client.post("/api/search", json={"text": "cat", "k": 0}), 422)
    error(client.post("/api/search", content=b"cat", headers={"content-type": "text/plain"}), 415)
    note = (samples / "notes" / "cats.md").read_bytes()
    body = error(client.post("/api/search", files={"image": ("cat.jpg", note, "image/jpeg")}), 415)
    assert body["error"].startswith("the image cat.jpg is not an image: its content is text (")
    big = jpeg(2400, (10, 200, 90)) + b"\0" * (1 * MB)
    assert "over the 1 MB limit" in error(client.post("/api/search", files={"image": ("big.jpg", big)}), 413)["error"]
    error(client.post("/api/search", files={"audio": ("x.wav", b"RIFF\0\0\0\0WAVEjunk", "audio/wav")}), 415)


def test_request_over_the_body_limit(client):
    huge = b"\0" * (9 * MB)
    body = error(client.post("/api/index", files={"files": ("huge.bin", huge)}), 413)
    assert "8 MB" in body["error"]


# --- items ---------------------------------------------------------------------------------------------------
def test_items_item_similar(client):
    listing = client.get("/api/items", params={"modality": "audio", "limit": 100}).json()
    assert listing["total"] >= 13 and all(i["modality"] == "audio" for i in listing["items"])
    cat = item_id(client, "chelsea_cat.jpg")
    item = client.get(f"/api/items/{cat}").json()
    assert item["modality"] == "image" and item["path"] == "photos/chelsea_cat.jpg" and not item["uploaded"]
    assert any(e["kind"] == "label" for e in item["evidence"])
    recording = client.get(f"/api/items/{item_id(client, 'two_cities.wav')}").json()
    assert [e for e in recording["evidence"] if e["kind"] == "transcript"][0]["start"] is not None
    similar = client.get(f"/api/items/{cat}/similar", params={"k": 4}).json()["hits"]
    assert len(similar) == 4 and all(h["item"] != cat for h in similar)


def test_unknown_items_are_404_json(client):
    assert "no item" in error(client.get("/api/items/999999"), 404)["error"]
    error(client.get("/api/items/999999/media"), 404)
    error(client.get("/api/items/999999/similar"), 404)
    error(client.delete("/api/items/999999"), 404)
    error(client.get("/api/items/not-a-number"), 422)
    error(client.get("/api/items/..%2F..%2Fetc%2Fpasswd/media"), 404)
    error(client.get("/api/jobs/nope"), 404)
    error(client.get("/api/nothing-here"), 404)


def test_media_with_range_requests(client, samples):
    recording = samples / "recordings" / "two_cities.wav"
    data = recording.read_bytes()
    media = f"/api/items/{item_id(client, 'two_cities.wav')}/media"
    whole = client.get(media)
    assert whole.status_code == 200 and whole.content == data and whole.headers["content-type"] == "audio/wav"
    assert whole.headers["accept-ranges"] == "bytes"
    part = client.get(media, headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == data[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"
    tail = client.get(media, headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == data[-500:]
    error(client.get(media, headers={"Range": f"bytes={len(data) + 10}-"}), 416)
    note = client.get(f"/api/items/{item_id(client, 'rockets.html')}/media")
    assert note.headers["content-type"].startswith("text/plain")  # an indexed HTML page never runs in our origin
    assert "sandbox" in note.headers["content-security-policy"]


def test_thumbnails(client):
    cat = item_id(client, "chelsea_cat.jpg")
    thumb = client.get(f"/api/items/{cat}/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(thumb.content))
    assert max(image.size) == 256
    assert client.get(f"/api/items/{cat}/thumbnail", params={"size": 128}).status_code == 200
    error(client.get(f"/api/items/{cat}/thumbnail", params={"size": 999}), 400)
    error(client.get(f"/api/items/{item_id(client, 'dog.mp3')}/thumbnail"), 404)


# --- upload and index jobs ---------------------------------------------------------------------------------
def wait_for(client: TestClient, job_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s")


def test_upload_index_search_delete(client, collection):
    note = b"Zebra crossings: a zebra is a striped horse of the African savanna."
    files = [
        ("files", ("zebra notes.md", note, "text/markdown")),
        ("files", ("swatch", jpeg(), "application/octet-stream")),  # no extension: named by its content
        ("files", ("evil.txt", b"../../ path trick", "text/plain")),
        ("files", ("junk.bin", bytes(range(256)) * 8, "application/octet-stream")),
    ]
    paths = ["trip/zebra notes.md", "trip/swatch", "../../../../tmp/evil.txt", "junk.bin"]
    started = client.post("/api/index", files=files, data={"paths": paths})
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["files"] == 3 and [r["name"] for r in job["rejected"]] == ["junk.bin"]
    assert "unrecognised content" in job["rejected"][0]["reason"]
    events = client.get(f"/api/jobs/{job['id']}/events").text
    assert "event: done" in events
    job = wait_for(client, job["id"])
    assert job["state"] == "done" and job["report"]["outcomes"]["analyzed"] == 3, job
    listed = {f["name"]: f for f in client.get(f"/api/jobs/{job['id']}/files").json()["files"]}
    assert listed["junk.bin"]["status"] == "skipped" and "unrecognised" in listed["junk.bin"]["reason"]
    assert listed["trip/zebra notes.md"]["status"] == "indexed" and listed["trip/zebra notes.md"]["item"]
    uploads = Path(collection.settings.store) / "uploads"
    stored = sorted(str(p.relative_to(uploads)).split("/", 1)[1] for p in uploads.rglob("*") if p.is_file())
    assert stored == ["tmp/evil.txt", "trip/swatch.jpg", "trip/zebra notes.md"]  # ".." dropped: inside uploads
    hit = client.post("/api/search", json={"text": "zebra", "k": 3}).json()["hits"][0]
    assert hit["name"] == "zebra notes.md" and hit["path"] == "uploads/trip/zebra notes.md"
    assert client.get(f"/api/items/{hit['item']}").json()["uploaded"] is True
    assert client.delete(f"/api/items/{hit['item']}").json() == {"deleted": hit["item"], "file_deleted": True}
    error(client.get(f"/api/items/{hit['item']}"), 404)
    assert not list(uploads.rglob("zebra notes.md"))
    assert [p.name for p in uploads.rglob("trip")]  # a folder with files left stays
    evil = next(i for i in client.get("/api/items?limit=200").json()["items"] if i["name"] == "evil.txt")
    assert client.delete(f"/api/items/{evil['item']}").json()["file_deleted"] is True
    assert not list(uploads.rglob("tmp"))  # the folder it emptied went with it
    again = client.post("/api/index", files=[("files", ("copy.jpg", jpeg(), "image/jpeg"))]).json()
    wait_for(client, again["id"])
    (copy,) = client.get(f"/api/jobs/{again['id']}/files").json()["files"]
    assert copy["status"] == "duplicate" and copy["item"] and copy["reason"].endswith("swatch.jpg"), copy
    error(client.get("/api/jobs/nope/files"), 404)
    assert any(j["id"] == job["id"] for j in client.get("/api/jobs").json()["jobs"])


def test_upload_errors(client):
    error(client.post("/api/index", files=[("files", ("a.bin", b"\x00\x01\x02" * 50))]), 415)
    six = [("files", (f"n{i}.txt", b"hello there", "text/plain")) for i in range(6)]
    assert "limit of 5" in error(client.post("/api/index", files=six), 413)["error"]
    big = b"x" * (3 * MB + 10)
    assert "over the 3 MB limit" in error(client.post("/api/index", files=[("files", ("big.txt", big))]), 413)["error"]
    error(client.post("/api/index", files=[("files", ("empty.txt", b""))]), 415)
    error(client.post("/api/index", data={"paths": ["x"]}), 422)


def test_cancel_a_job(client):
    swatches = [("files", (f"swatch{i}.jpg", jpeg(96, (40 * i, 90, 200 - 30 * i)), "image/jpeg")) for i in range(5)]
    job = client.post("/api/index", files=swatches).json()
    cancelled = client.delete(f"/api/jobs/{job['id']}").json()
    assert cancelled["id"] == job["id"]
    assert wait_for(client, job["id"])["state"] in ("cancelled", "done")  # done if it won the race


def test_searches_answer_while_indexing(client, monkeypatch):
    """Indexing runs on its own worker: a search is answered while a job is busy."""
    jobs = client.app.state.service.jobs
    started, release = threading.Event(), threading.Event()

    def slow_index(root, progress):
        progress(0, 1, str(root / "note.txt"))
        started.set()
        release.wait(60)
        return IndexReport()

    monkeypatch.setattr(jobs, "_index", slow_index)
    job = client.post("/api/index", files=[("files", ("note.txt", b"a small note", "text/plain"))]).json()
    try:
        assert started.wait(30)
        assert client.post("/api/search", json={"text": "coffee", "k": 3}).status_code == 200
        assert client.post("/api/search", files={"image": ("q.jpg", jpeg())}).status_code == 200
        running = client.get(f"/api/jobs/{job['id']}").json()
        assert running["state"] == "running" and running["current"] == "uploads/note.txt"
    finally:
        release.set()
    assert wait_for(client, job["id"])["state"] == "done"


# --- tasks ---------------------------------------------------------------------------------------------------
def test_classify(client, samples):
    cat = item_id(client, "chelsea_cat.jpg")
    result = client.post("/api/classify", data={"item": cat, "labels": "a cat, a dog, a car"}).json()
    assert result["labels"][0]["label"] == "a cat" and result["source"] == "photos/chelsea_cat.jpg"
    assert result["text"]
    upload = client.post(
        "/api/classify",
        files={"file": ("photo.jpg", (samples / "photos" / "coffee.jpg").read_bytes(), "image/jpeg")},
        data={"labels": "coffee, rocket, flower"},
    ).json()
    assert upload["labels"][0]["label"] == "coffee" and upload["source"] == "photo.jpg"
    text = client.post("/api/classify", data={"text": "espresso with milk foam", "labels": "drink, vehicle"}).json()
    assert text["labels"][0]["label"] == "drink"
    error(client.post("/api/classify", data={"labels": "a, b"}), 400)
    error(client.post("/api/classify", data={"item": cat, "labels": "only one"}), 400)


def test_read_tag_transcribe(client, spoken):
    page = client.post("/api/read", data={"item": item_id(client, "page.png")}).json()
    assert any("segmentation" in line["text"].lower() for line in page["lines"])
    tags = client.post("/api/tag", data={"item": item_id(client, "dog.mp3"), "top_k": 3}).json()
    assert len(tags["tags"]) == 3 and tags["source"] == "sounds/dog.mp3"
    wav = spoken(SENTENCE).read_bytes()
    said = client.post("/api/transcribe", files={"file": ("memo.wav", wav, "audio/wav")}).json()
    assert heard(" ".join(s["text"] for s in said["segments"]))
    assert said["source"] == "memo.wav"
    error(client.post("/api/read", data={"item": item_id(client, "dog.mp3")}), 415)
    error(client.post("/api/transcribe", files={"file": ("x.wav", b"just words, not audio")}), 415)
    error(client.post("/api/tag"), 400)


def test_describe_and_ask(client):
    cat = item_id(client, "chelsea_cat.jpg")
    described = client.post("/api/describe", data={"item": cat, "phrase": "false"}).json()
    assert "cat" in described["caption"].lower() and described["by"] == "template"
    answer = client.post("/api/ask", data={"item": cat, "question": "what animal is this?", "phrase": "false"}).json()
    assert answer["question"] == "what animal is this?" and answer["answer"]
    error(client.post("/api/ask", data={"item": cat}), 422)


def test_analyze_a_bundle(client, samples):
    files = [
        ("files", ("coffee.jpg", (samples / "photos" / "coffee.jpg").read_bytes(), "image/jpeg")),
        ("files", ("coffee.md", (samples / "notes" / "coffee.md").read_bytes(), "text/markdown")),
    ]
    report = client.post("/api/analyze", files=files, data={"phrase": "false"}).json()
    assert [item["source"] for item in report["items"]] == ["coffee.jpg", "coffee.md"]
    assert report["summary"] and report["markdown"].startswith("# ")
    assert "## 1. coffee.jpg" in report["markdown"]
    error(client.post("/api/analyze", files=[("files", ("x.bin", bytes(range(256)) * 4))]), 415)
    many = [("files", (f"n{i}.txt", b"a note", "text/plain")) for i in range(13)]
    error(client.post("/api/analyze", files=many), 413)


def test_assistant_json_and_stream(client, spoken):
    wav = spoken(SENTENCE).read_bytes()
    result = client.post(
        "/api/assistant", data={"ask": "transcribe", "phrase": "false"}, files={"files": ("m.wav", wav, "audio/wav")}
    ).json()
    assert result["route"] == "transcribe" and heard(result["answer"])
    assert result["evidence"][0]["source"] == "m.wav" and result["evidence"][0]["start"] is not None
    with client.stream(
        "POST",
        "/api/assistant",
        data={"ask": "what did the speaker say?", "phrase": "false", "stream": "true"},
        files={"files": ("m.wav", wav, "audio/wav")},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("event: ") for line in response.iter_lines() if line.startswith("event: ")]
    assert "route" in events[:2] and "step" in events and events[-1] == "answer"  # after "start" (the estimate)
    error(client.post("/api/assistant", data={"ask": ""}), 400)
    error(client.post("/api/assistant", data={"ask": "transcribe", "text": "no recording here"}), 400)


# --- security ------------------------------------------------------------------------------------------------
def test_cors_is_off_by_default(client):
    preflight = client.options(
        "/api/search", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_keys_required(collection):
    store = KeyStore(Path(collection.settings.store))
    record, secret = store.create("tests")
    config = CONFIG.with_(auth="auto", host="0.0.0.0")
    assert config.keys_required and not CONFIG.keys_required
    with TestClient(create_app(collection, config), raise_server_exceptions=False) as keyed:
        assert keyed.get("/api/health").json()["auth_required"] is True
        missing = keyed.get("/api/search", params={"q": "cat"})
        assert "API key is required" in error(missing, 401)["error"] and missing.headers["www-authenticate"] == "Bearer"
        error(keyed.get("/api/search", params={"q": "cat"}, headers={"Authorization": "Bearer pm_wrong"}), 401)
        error(keyed.get("/metrics"), 401)
        error(keyed.post("/api/index", files={"files": ("a.txt", b"hello")}), 401)
        good = {"Authorization": f"Bearer {secret}"}
        assert keyed.get("/api/search", params={"q": "cat"}, headers=good).status_code == 200
        assert keyed.post("/api/session", headers=good).json()["key"] == "tests"  # sets the HttpOnly cookie
        assert keyed.get("/api/whoami").json()["key"] == "tests"
        keyed.cookies.clear()
        store.revoke(record.id)
        error(keyed.get("/api/search", params={"q": "cat"}, headers=good), 401)
    assert json.loads(store.path.read_text())[0]["sha256"] != secret and secret not in store.path.read_text()
    assert store.path.stat().st_mode & 0o777 == 0o600


def test_rate_limit(collection):
    config = CONFIG.with_(rate_per_minute=60, rate_burst=3)
    with TestClient(create_app(collection, config), raise_server_exceptions=False) as limited:
        codes = [limited.get("/api/items", params={"limit": 1}).status_code for _ in range(4)]
        assert codes[:3] == [200, 200, 200]
        last = limited.get("/api/items", params={"limit": 1})
        assert "too many requests" in error(last, 429)["error"] and int(last.headers["retry-after"]) >= 1
        assert limited.get("/api/health").status_code == 200  # health is never limited


def test_unexpected_errors_are_500_json_without_trace(client, collection, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError(f"boom in {collection.settings.store}/secret/module.py line 3")

    monkeypatch.setattr(collection, "search", broken)
    body = error(client.post("/api/search", json={"text": "cat"}), 500)
    assert "incident" in body["error"] and "boom" not in body["error"]


def test_no_error_leaks_a_path_or_a_traceback(collection):
    """Runs last in this file: every error answer above, scanned."""
    assert len(ERRORS) >= 30
    store = str(collection.settings.store)
    for status, text in ERRORS:
        for leak in ("Traceback", 'File "', ".py\"", store, "/tmp/", "/work/", "/home/", "/root/", "/usr/", "/etc/"):
            assert leak not in text, (status, text)
