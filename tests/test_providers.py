"""The provider transport (httpx): retries, Retry-After, timeouts while streaming, reused connections.

A fake OpenAI-compatible server on 127.0.0.1 (plumbing only; no model involved)."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from polymodal.providers import ProviderConfig, ProviderError, ProviderPhraser, stream_text


class Fake:
    """Answers each POST with the next scripted reply: (status, headers, body chunks, pause between chunks)."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str], list[bytes], float]] = []
        self.connections: set[int] = set()
        self.requests = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so reuse of connections can be seen

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                fake.requests += 1
                fake.connections.add(self.client_address[1])
                status, headers, chunks, pause = fake.script.pop(0)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(sum(map(len, chunks))))
                self.end_headers()
                try:
                    for chunk in chunks:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        time.sleep(pause)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def phraser(self, **config: object) -> ProviderPhraser:
        values = {"kind": "openai", "url": self.url, "model": "m", "timeout": 2, "retries": 0, **config}
        return ProviderPhraser(ProviderConfig.from_settings(values))


@pytest.fixture()
def fake():
    server = Fake()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def answer(text: str) -> tuple[int, dict[str, str], list[bytes], float]:
    body = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
    return 200, {"content-type": "application/json"}, [body], 0.0


def events(*pieces: str, pause: float = 0.0) -> tuple[int, dict[str, str], list[bytes], float]:
    chunks = [f"data: {json.dumps({'choices': [{'delta': {'content': p}}]})}\n\n".encode() for p in pieces]
    return 200, {"content-type": "text/event-stream"}, [*chunks, b"data: [DONE]\n\n"], pause


def test_connections_are_reused_between_requests(fake) -> None:
    fake.script = [answer("one"), answer("two"), answer("three")]
    phraser = fake.phraser()
    assert [phraser.complete("s", "u") for _ in range(3)] == ["one", "two", "three"]
    assert len(fake.connections) == 1


def test_retry_after_is_honoured(fake) -> None:
    fake.script = [(429, {"retry-after": "0.6"}, [b"slow down"], 0.0), answer("fine")]
    started = time.perf_counter()
    assert fake.phraser(retries=1, backoff=0.01).complete("s", "u") == "fine"
    assert time.perf_counter() - started >= 0.6


def test_a_server_that_is_not_there_is_retried_then_named() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {"kind": "openai", "url": f"http://127.0.0.1:{port}", "model": "m", "retries": 2, "backoff": 0.01}
    phraser = ProviderPhraser(ProviderConfig.from_settings(config))
    with pytest.raises(ProviderError, match=rf"127.0.0.1:{port} could not be reached: .* \(after 3 attempts\)"):
        phraser.complete("s", "u")


def test_a_client_error_is_not_retried(fake) -> None:
    fake.script = [(400, {}, [b'{"error": "bad model"}'], 0.0), answer("never")]
    with pytest.raises(ProviderError, match="answered 400: .*bad model"):
        fake.phraser(retries=3, backoff=0.01).complete("s", "u")
    assert fake.requests == 1


def test_a_stream_that_stalls_is_a_clear_error(fake) -> None:
    fake.script = [events("An ", "espresso", pause=1.5)]
    with pytest.raises(ProviderError, match="stopped streaming"):
        list(stream_text(fake.phraser(timeout=0.5), "s", "u"))


def test_a_server_that_does_not_stream_answers_whole(fake) -> None:
    fake.script = [answer("whole")]
    assert list(stream_text(fake.phraser(), "s", "u")) == ["whole"]
