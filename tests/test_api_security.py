"""The HTTP service against an attacker: DNS rebinding, cross-site requests, paths out of uploads/, integer
overflows, nested and oversized bodies, forged X-Forwarded-For, key guessing, a damaged keys file, and
internal errors disguised as bad input.

Through FastAPI's TestClient, and a real uvicorn on 127.0.0.1 where the server itself matters (proxy headers,
bodies streamed in pieces). The collection is one small text file indexed with the real text model.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from polymodal import cli
from polymodal.api.app import create_app, server
from polymodal.api.boundary import Trust
from polymodal.api.config import KB, MB, ServeConfig
from polymodal.api.security import KeyFileError, KeyStore
from polymodal.collection import Collection
from polymodal.config import Settings

LOCAL = "http://127.0.0.1:8000"
CONFIG = ServeConfig(warm=False, max_upload_bytes=1 * MB, max_request_bytes=2 * MB, max_files=5)
EVIL = "https://evil.example"


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Collection:
    docs = tmp_path_factory.mktemp("security-docs")
    (docs / "zebra.txt").write_text("Zebras are striped horses of the African savanna.", encoding="utf-8")
    settings = Settings.from_env(store=tmp_path_factory.mktemp("security-store") / "store", llm="none")
    collection = Collection(settings=settings)
    assert not collection.index(docs).errors
    return collection


@pytest.fixture(scope="module")
def client(collection: Collection) -> Iterator[TestClient]:
    with TestClient(create_app(collection, CONFIG), base_url=LOCAL, raise_server_exceptions=False) as test_client:
        yield test_client


def error(response, status: int) -> str:
    """Assert a JSON error answer with a message in words; return the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and len(body["error"].split()) >= 4 and body["code"], body
    assert "Traceback" not in response.text
    return body["error"]


def zebra_id(client: TestClient) -> int:
    return next(i["item"] for i in client.get("/api/items").json()["items"] if i["name"] == "zebra.txt")


# --- 1. DNS rebinding: the Host header --------------------------------------------------------------------
@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8000", "127.0.0.1", "127.0.0.1:8000", "127.9.8.7:1234", "[::1]", "[::1]:8000"]
)
def test_loopback_host_names_are_answered(client, host):
    assert client.get("/api/items", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil.example", "127.0.0.1:x", "[::1"],
)
def test_other_host_names_are_refused_without_keys(client, host):
    message = error(client.get("/api/items", headers={"Host": host}), 421)
    assert "localhost" in message and "POLYMODAL_ALLOWED_HOSTS" in message
    error(client.get("/", headers={"Host": host}), 421)  # the page too: nothing answers a rebound name
    error(client.post("/api/search", json={"text": "zebra"}, headers={"Host": host}), 421)


def test_configured_host_names(collection, monkeypatch):
    config = CONFIG.with_(allowed_hosts=("Box.lan:8000", ".example.org"))
    with TestClient(create_app(collection, config), base_url=LOCAL, raise_server_exceptions=False) as allowed:
        for host in ("box.lan", "box.lan:8000", "example.org", "photos.example.org:8000", "localhost"):
            assert allowed.get("/api/items", headers={"Host": host}).status_code == 200, host
        for host in ("evilexample.org", "box.lan.evil.example", "evil.example"):
            error(allowed.get("/api/items", headers={"Host": host}), 421)
    monkeypatch.setenv("POLYMODAL_ALLOWED_HOSTS", "nas.home, media.home")
    assert ServeConfig().allowed_hosts == ("nas.home", "media.home")
    with TestClient(create_app(collection, ServeConfig(warm=False)), raise_server_exceptions=False) as from_env:
        assert from_env.get("/api/items", headers={"Host": "media.home:8000"}).status_code == 200
        error(from_env.get("/api/items", headers={"Host": "evil.example"}), 421)


def test_host_check_is_for_the_keyless_service_only(collection):
    keyed = CONFIG.with_(host="0.0.0.0")  # auto: keys required off loopback; the key is the defence then
    with TestClient(create_app(collection, keyed), raise_server_exceptions=False) as open_to_all:
        error(open_to_all.get("/api/items", headers={"Host": "any.name.example"}), 401)
        assert open_to_all.get("/api/health", headers={"Host": "any.name.example"}).status_code == 200


# --- 2. cross-site requests ------------------------------------------------------------------------------
def test_cross_site_requests_are_refused(client, collection):
    uploads = Path(collection.settings.store) / "uploads"
    before = sorted(uploads.rglob("*")) if uploads.exists() else []
    note = [("files", ("note.txt", b"a note from another site", "text/plain"))]
    message = error(client.post("/api/index", files=note, headers={"Origin": EVIL}), 403)
    assert "evil.example" in message
    error(client.post("/api/index", files=note, headers={"Sec-Fetch-Site": "cross-site"}), 403)
    ask = {"ask": "describe", "text": "hello"}
    error(client.post("/api/assistant", data=ask, headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}), 403)
    error(client.post("/api/assistant", data=ask, headers={"Origin": "null"}), 403)  # sandboxed frame, file://
    item = zebra_id(client)
    error(client.delete(f"/api/items/{item}", headers={"Origin": EVIL}), 403)
    error(client.delete(f"/api/items/{item}", headers={"Origin": "http://localhost:3000"}), 403)  # another port
    error(client.get("/api/search", params={"q": "zebra"}, headers={"Sec-Fetch-Site": "cross-site"}), 403)
    error(client.get("/api/search", params={"q": "zebra"}, headers={"Sec-Fetch-Site": "same-site"}), 403)
    error(client.get("/metrics", headers={"Sec-Fetch-Site": "cross-site"}), 403)
    assert client.get(f"/api/items/{item}").status_code == 200  # still there
    assert (sorted(uploads.rglob("*")) if uploads.exists() else []) == before  # nothing was received


def test_same_origin_and_non_browser_requests_go_through(client):
    empty = {"text": "   "}  # reaches the route, which answers 400 without running a model
    same = [
        {},  # curl, scripts, the CLI: no Origin
        {"Origin": LOCAL},  # the web page, by Origin
        {"Origin": LOCAL, "Sec-Fetch-Site": "same-origin"},
        {"Origin": "https://search.example", "Sec-Fetch-Site": "same-origin"},  # behind a proxy that sets Host
        {"Sec-Fetch-Site": "none"},  # typed in the address bar
        {"Origin": "http://LOCALHOST:8000", "Host": "localhost:8000"},
    ]
    for headers in same:
        assert "text, an image or an audio" in error(client.post("/api/search", json=empty, headers=headers), 400)
    page = client.get("/", headers={"Sec-Fetch-Site": "cross-site"})
    assert page.status_code == 200  # a link to the page from elsewhere still opens it


def test_allowed_cors_origin_goes_through(collection):
    config = CONFIG.with_(cors_origins=("https://app.example",))
    with TestClient(create_app(collection, config), base_url=LOCAL, raise_server_exceptions=False) as cors:
        headers = {"Origin": "https://app.example", "Sec-Fetch-Site": "cross-site"}
        answer = cors.get("/api/items", headers=headers)
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "https://app.example"
        error(cors.get("/api/items", headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}), 403)


# --- 3. deleting an item never deletes a file outside uploads/ -------------------------------------------------
def test_delete_resolves_paths_before_deleting_files(collection, tmp_path):
    store = Path(collection.settings.store)
    elsewhere = store.parent / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    outside = elsewhere / "x.txt"
    outside.write_text("A note kept outside the store: giraffes are tall.", encoding="utf-8")
    (store / "uploads").mkdir(exist_ok=True)
    dotted = store / "uploads" / ".." / ".." / "elsewhere" / "x.txt"
    assert not collection.index(dotted).errors
    with sqlite3.connect(collection.store.path) as db:  # the path as the request put it, whatever the indexer stored
        db.execute("UPDATE files SET path=? WHERE path=?", (str(dotted), os.path.realpath(outside)))
    linked = store / "uploads" / "link.txt"  # a link inside uploads/ to a file outside
    linked.symlink_to(outside)
    with TestClient(create_app(collection, CONFIG), base_url=LOCAL, raise_server_exceptions=False) as local:
        items = {i["item"]: i for i in local.get("/api/items").json()["items"]}
        target = next(n for n, i in items.items() if i["name"] == "x.txt")
        assert local.get(f"/api/items/{target}").json()["uploaded"] is False
        assert local.delete(f"/api/items/{target}").json() == {"deleted": target, "file_deleted": False}
        error(local.get(f"/api/items/{target}"), 404)
        service = local.app.state.service
        assert not service.is_upload(str(dotted)) and not service.is_upload(str(linked))
        assert service.is_upload(str(store / "uploads" / "batch" / ".." / "batch" / "a.txt"))
    assert outside.read_text(encoding="utf-8").startswith("A note kept outside")
    linked.unlink()


# --- 4. no 500 from integers, nesting or folder names --------------------------------------------------------
def test_ids_and_offsets_out_of_range_are_422(client):
    huge, item = 2**63, zebra_id(client)
    for url in (f"/api/items/{huge}", f"/api/items/{huge}/media", f"/api/items/{huge}/similar",
                f"/api/items/{huge}/thumbnail", f"/api/items/{-huge - 1}", "/api/items/0"):  # fmt: skip
        error(client.get(url), 422)
    error(client.delete(f"/api/items/{huge}"), 422)
    error(client.get("/api/items", params={"offset": huge}), 422)
    error(client.get("/api/items", params={"offset": 2**31}), 422)
    error(client.get(f"/api/items/{item}/thumbnail", params={"shot": huge}), 422)
    for route in ("/api/describe", "/api/read", "/api/tag", "/api/transcribe"):
        error(client.post(route, data={"item": str(huge)}), 422)
    error(client.post("/api/classify", data={"item": str(2**64), "labels": "a, b"}), 422)
    assert "no item" in error(client.get(f"/api/items/{huge - 1}"), 404)
    assert client.get("/api/items", params={"offset": 2**31 - 1}).json()["items"] == []


def post_json(client: TestClient, raw: bytes):
    return client.post("/api/search", content=raw, headers={"content-type": "application/json"})


def test_nested_and_odd_json_is_400(client):
    assert "nested too deeply" in error(post_json(client, b"[" * 60_000), 400)
    deep = b'{"text": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    assert len(deep) < 64 * KB
    error(post_json(client, deep), 400)
    error(post_json(client, b'{"text": "zebra", "k": ' + b"7" * 5000 + b"}"), 400)  # past Python's int limit
    error(post_json(client, b"\xff\xfe{"), 400)
    error(client.post("/api/search", json=[1, 2]), 422)


def test_a_file_and_a_folder_of_the_same_name_is_400(client, collection):
    uploads = Path(collection.settings.store) / "uploads"
    batches = set(uploads.iterdir()) if uploads.exists() else set()
    for paths in (["a.txt", "a.txt/b.txt"], ["a.txt/b.txt", "a.txt"], ["x/a.txt", "./x//a.txt/c/b.txt"]):
        files = [("files", (p.rsplit("/", 1)[-1], b"some words to index", "text/plain")) for p in paths]
        message = error(client.post("/api/index", files=files, data={"paths": paths}), 400)
        assert "both a file and the folder" in message
    assert (set(uploads.iterdir()) if uploads.exists() else set()) == batches  # no batch left behind


# --- 5. body sizes by kind of body ------------------------------------------------------------------------
def test_bodies_are_capped_by_kind(client):
    message = error(client.post("/api/search", json={"text": "z" * (100 * KB)}), 413)
    assert "64 KiB" in message and "JSON" in message
    error(client.post("/api/classify", data={"labels": "a, b", "text": "t" * (2 * MB)}), 413)  # url-encoded form
    big = [("files", ("big.txt", b"w" * (3 * MB), "text/plain"))]
    assert "2 MB" in error(client.post("/api/index", files=big), 413)  # multipart keeps its own limit
    small = client.post("/api/search", json={"text": "   ", "k": 3})
    assert small.status_code == 400  # a normal JSON body is read as before


# --- 6. X-Forwarded-For and wrong keys ------------------------------------------------------------------------
@contextlib.contextmanager
def running(app, config: ServeConfig) -> Iterator[int]:
    """The app under the real uvicorn server ``polymodal serve`` uses, on 127.0.0.1; yields the port."""
    uvicorn_server = server(app, config.with_(host="127.0.0.1", port=0))
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield uvicorn_server.servers[0].sockets[0].getsockname()[1]
    finally:
        uvicorn_server.should_exit = True
        thread.join(10)


def raw(port: int, request: bytes, timeout: float = 10.0) -> bytes:
    """Send bytes as they are; the whole answer (the server closes, or sends its body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(request)
        return _answer(conn)


def _answer(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 1 << 30


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    headers = {"Host": "127.0.0.1", "Connection": "close", **(headers or {})}
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    answer = raw(port, ("\r\n".join(lines) + "\r\n\r\n").encode())
    return int(answer.split(b" ", 2)[1]), answer.split(b"\r\n\r\n", 1)[1]


def test_forwarded_for_is_believed_only_from_trusted_proxies(collection):
    config = CONFIG.with_(rate_per_minute=6, rate_burst=3)
    with running(create_app(collection, config), config) as port:
        codes = [get(port, "/api/items?limit=1", {"X-Forwarded-For": f"10.0.0.{n}"})[0] for n in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429], codes  # rotating it changes nothing
        status, body = get(port, "/api/items?limit=1", {"Host": "evil.example"})
        assert status == 421 and b"localhost" in body
    proxied = config.with_(trusted_proxies=("127.0.0.0/8",))
    with running(create_app(collection, proxied), proxied) as port:
        codes = [get(port, "/api/items?limit=1", {"X-Forwarded-For": f"203.0.113.{n}"})[0] for n in range(5)]
        assert codes == [200] * 5  # five callers behind the trusted proxy
        same = [get(port, "/api/items?limit=1", {"X-Forwarded-For": "9.9.9.9, 203.0.113.4"})[0] for _ in range(3)]
        assert same == [200, 200, 429]  # 203.0.113.4 spent one call above; the forged 9.9.9.9 is not believed


def test_trusted_proxy_settings(collection, monkeypatch):
    trust = Trust.from_config(ServeConfig(trusted_proxies=("10.0.0.0/8", "::1")))
    scope = {"client": ("10.1.2.3", 5000), "headers": [(b"x-forwarded-for", b"6.6.6.6, 198.51.100.9, 10.9.9.9")]}
    assert trust.client_address(scope) == "198.51.100.9"  # the last hop not of a trusted proxy
    assert trust.client_address({**scope, "client": ("192.0.2.1", 5000)}) == "192.0.2.1"  # not from a proxy
    assert trust.client_address({**scope, "headers": [(b"x-forwarded-for", b"junk")]}) == "10.1.2.3"
    monkeypatch.setenv("POLYMODAL_TRUSTED_PROXIES", "127.0.0.1 nonsense")
    with pytest.raises(ValueError, match="'nonsense' in the trusted proxies"):
        create_app(collection, ServeConfig(warm=False))


def test_wrong_keys_are_rate_limited_per_address(collection):
    _, secret = KeyStore(Path(collection.settings.store)).create("security-tests")
    config = CONFIG.with_(host="0.0.0.0", rate_per_minute=60, rate_burst=3)
    with TestClient(create_app(collection, config), raise_server_exceptions=False) as keyed:
        wrong = [keyed.get("/api/items", headers={"Authorization": f"Bearer pm_guess_{n}"}) for n in range(3)]
        assert [r.status_code for r in wrong] == [401, 401, 401]
        limited = keyed.get("/api/items", headers={"Authorization": "Bearer pm_guess_4", "X-Forwarded-For": "1.2.3.4"})
        assert "without a valid API key" in error(limited, 429) and int(limited.headers["retry-after"]) >= 1
        error(keyed.get("/api/items"), 429)  # no key at all: the same address, the same bucket
        error(keyed.get("/api/items", headers={"Authorization": f"Bearer {secret}"}), 429)  # until it refills
        time.sleep(1.1)  # 60 a minute: one more request each second
        assert keyed.get("/api/items", headers={"Authorization": f"Bearer {secret}"}).status_code == 200


def test_reading_files_does_not_use_up_the_request_budget(collection):
    """A page of results loads a thumbnail or a recording per card: those reads have a bucket of their own
    (ten times larger), so a caller who browsed can still search, and a flood of them is still slowed down."""
    config = CONFIG.with_(rate_per_minute=6, rate_burst=3)
    with TestClient(create_app(collection, config), base_url=LOCAL, raise_server_exceptions=False) as limited:
        zebra = limited.get("/api/items").json()["items"][0]["item"]
        reads = [limited.get(f"/api/items/{zebra}/media").status_code for _ in range(29)]
        assert reads == [200] * 29
        assert [limited.get("/api/items").status_code for _ in range(2)] == [200, 200]
        assert "too many requests" in error(limited.get("/api/items"), 429)
        error(limited.get(f"/api/items/{zebra}/mediabytes"), 429)  # only the file routes themselves
        reads = 29
        while limited.get(f"/api/items/{zebra}/media").status_code == 200:
            reads += 1
            assert reads < 100, "file reads are not limited at all"
        assert reads >= 30


# --- bodies streamed in: refused without being read whole (real server) -------------------------------------
def test_large_json_bodies_are_refused_while_streaming(collection):
    with running(create_app(collection, CONFIG), CONFIG) as port:
        declared = b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        answer = raw(port, declared + b"Content-Length: 1073741824\r\n\r\n{")  # 1 GB announced, 1 byte sent
        assert answer.startswith(b"HTTP/1.1 413") and b"64 KiB" in answer
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(declared + b"Transfer-Encoding: chunked\r\n\r\n")
            chunk = b'{"text": "' + b"z" * (16 * KB)
            sent = 0
            conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
            piece = b"z" * (16 * KB)
            for _ in range(7):  # 128 KiB in all, and the body never ends: a server that reads it all would hang
                conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
            answer = _answer(conn)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["code"] == "too_large"


# --- 7. the keys file and the keys command ---------------------------------------------------------------------
def test_a_damaged_keys_file_is_named(tmp_path, capsys, collection):
    store = tmp_path / "store"
    assert cli.main(["keys", "create", "laptop", "--store", str(store), "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["name"] == "laptop" and created["key"].startswith("pm_")
    assert cli.main(["keys", "--store", str(store), "list", "--json"]) == 0
    assert [k["name"] for k in json.loads(capsys.readouterr().out)] == ["laptop"]
    assert cli.main(["keys", "revoke", "laptop", "--store", str(store)]) == 0
    assert "revoked key" in capsys.readouterr().out
    (store / "api-keys.json").write_text('[{"id": "ab", "name": "x",', encoding="utf-8")
    with pytest.raises(KeyFileError) as raised:
        KeyStore(store).list()
    assert str(store / "api-keys.json") in str(raised.value) and "polymodal keys create" in str(raised.value)
    assert cli.main(["keys", "list", "--store", str(store)]) == 2
    said = capsys.readouterr().err
    assert "api-keys.json" in said and "damaged" in said and "JSONDecodeError" not in said
    keys_file = Path(collection.settings.store) / "api-keys.json"
    saved = keys_file.read_bytes() if keys_file.exists() else None
    keys_file.write_text("{}", encoding="utf-8")
    try:
        with TestClient(create_app(collection, CONFIG.with_(host="0.0.0.0")), raise_server_exceptions=False) as keyed:
            message = error(keyed.get("/api/items", headers={"Authorization": "Bearer pm_x"}), 503)
            assert "keys file" in message and str(keys_file) not in message
    finally:
        keys_file.write_bytes(saved) if saved is not None else keys_file.unlink()


# --- 8. internal errors are 500 with an incident id, never "bad input" ----------------------------------------
@pytest.mark.parametrize("kind", [ValueError, KeyError, FileNotFoundError, OverflowError])
def test_internal_errors_are_500_not_400(client, collection, monkeypatch, kind):
    def broken(*args, **kwargs):
        raise kind("Python int too large to convert to SQLite INTEGER")

    monkeypatch.setattr(collection, "search", broken)
    message = error(client.post("/api/search", json={"text": "zebra"}), 500)
    assert "incident" in message and "SQLite" not in message
    monkeypatch.setattr(collection, "items", broken)
    assert "incident" in error(client.get("/api/items"), 500)
