"""Answers as they are written: the CLI (tokens on stdout, --json-stream, Ctrl-C) and the API (server-sent
events, a caller who goes away stops the model), with the bundled 0.5B LLM and with no LLM.
"""

from __future__ import annotations

import http.client
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import REPO
from fastapi.testclient import TestClient

from polymodal.api.app import create_app
from polymodal.api.config import ServeConfig
from polymodal.collection import Collection

SMALL_LLM = "qwen2.5-0.5b"
CONFIG = ServeConfig(warm=False, allowed_hosts=("testserver",))
QUESTION = "what makes a good espresso?"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "polymodal.cli", *args]


def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def timed_lines(process: subprocess.Popen, seconds: float = 600.0) -> list[tuple[float, str]]:
    """Each line of the process's stdout with the time it arrived (since the start of reading)."""
    started, lines = time.monotonic(), []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append((time.monotonic() - started, line.rstrip("\n")))
        assert time.monotonic() - started < seconds, "the command ran too long"
    return lines


# --- CLI -----------------------------------------------------------------------------------------------------------
def test_cli_json_stream_tokens_come_before_the_answer(samples: Path, tmp_path: Path):
    command = cli("ask", str(samples / "notes" / "coffee.md"), QUESTION, "--llm", SMALL_LLM, "--json-stream")
    process = subprocess.Popen(command, cwd=REPO, env=env(), stdout=subprocess.PIPE, text=True)
    lines = timed_lines(process)
    assert process.wait(timeout=60) == 0
    events = [(at, json.loads(line)) for at, line in lines]
    names = [event["event"] for _, event in events]
    assert names[0] == "start" and events[0][1]["estimate_seconds"] > 0
    assert "step" in names and names[-1] == "answer"
    tokens = [(at, event["text"]) for at, event in events if event["event"] == "token"]
    assert len(tokens) >= 3, names  # the LLM's words one by one, not the whole answer at once
    answer_at, answer = events[-1][0], events[-1][1]["result"]
    assert tokens[0][0] < answer_at and tokens[len(tokens) // 2][0] < answer_at
    assert answer["by"] == SMALL_LLM and answer["answer"]
    streamed = "".join(text for _, text in tokens).strip()
    assert streamed and (answer["answer"] == streamed or answer["revised"])


def test_cli_plain_streams_to_a_terminal_and_ctrl_c_stops_the_model(samples: Path):
    """In a terminal the words appear as they come; Ctrl-C after the first ones stops the LLM (the task ends
    with what was written, exit 130) well before the whole summary would have been written."""
    document = samples / "notes" / "dickens.txt"
    parent, child = pty.openpty()
    command = cli("describe", str(document), "--llm", SMALL_LLM)
    # Started in the background (`make test &`, nohup), this process ignores Ctrl-C and its children would too:
    # a handler here is reset to the default in the child, which then turns Ctrl-C into KeyboardInterrupt.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(command, cwd=REPO, env=env(), stdout=child, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    os.close(child)
    seen, started, interrupted = b"", time.monotonic(), None
    try:
        while process.poll() is None and time.monotonic() - started < 600:
            ready, _, _ = select.select([parent], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(parent, 4096)
                except OSError:
                    break
            if interrupted is None and len(seen.split()) >= 3:  # the first words are on the terminal
                process.send_signal(signal.SIGINT)
                interrupted = time.monotonic()
        code = process.wait(timeout=30)
        stopped_after = time.monotonic() - (interrupted or started)
    finally:
        os.close(parent)
    _, err = process.communicate()
    assert interrupted is not None, f"no words were streamed: {seen!r} {err}"
    assert code == 130, err
    assert "what was written so far" in err  # the task ended through the stop event, not a forced exit
    assert stopped_after < 5.0, stopped_after
    assert len(seen.decode(errors="replace").split()) >= 3


def test_cli_without_llm_prints_the_answer_and_json(samples: Path):
    photo = str(samples / "photos" / "chelsea_cat.jpg")
    plain = subprocess.run(cli("ask", photo, "what is in this picture?", "--llm", "none"), cwd=REPO, env=env(),
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    assert "cat" in plain.stdout.lower() and "null" not in plain.stdout
    assert plain.stdout.count("cat having a striped coat") <= 3  # the answer once (with its evidence), not twice
    as_json = subprocess.run(cli("describe", photo, "--llm", "none", "--json"), cwd=REPO, env=env(),
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)  # one JSON document: no streamed words before it
    assert data["by"] == "template" and "diagnostics" in data


def test_diagnostics_only_with_debug():
    from argparse import Namespace

    from polymodal.cli_understand import _text
    from polymodal.tasks.describe import Description

    result = Description("x.jpg", "image", "A photo of a cat.", "template", ["label"])
    result.diagnostics = ["the qwen2.5-1.5b caption was not used (states “Scissors” without “probably”)"]
    assert "Scissors" not in _text(Namespace(), result)
    assert "Scissors" in _text(Namespace(debug=True), result)


def test_estimates_learn_from_measured_times(tmp_path: Path):
    from polymodal.tasks.estimate import Costs, Plan, about, perception

    plan = Plan().add(*perception(tmp_path / "x.jpg", "image")).add("llm:qwen2.5-0.5b")
    costs = Costs(tmp_path)
    first = costs.estimate(plan)
    costs.learn(plan, first * 3)
    again = Costs(tmp_path).estimate(plan)  # saved, read back
    assert first < again < first * 3
    assert about(4.2) == "about 4 s" and about(42) == "about 40 s" and about(600) == "about 10 min"


# --- API -------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_llm_client(indexed: Collection, tmp_path_factory: pytest.TempPathFactory):
    """The API on an empty store, with the 0.5B LLM (the models are shared per process with the indexed one)."""
    store = tmp_path_factory.mktemp("stream-store")
    collection = Collection(settings=indexed.settings.with_(store=store, llm=SMALL_LLM))
    with TestClient(create_app(collection, CONFIG), raise_server_exceptions=False) as client:
        yield client


def events_of(response) -> list[tuple[float, str, dict]]:
    """(time since the first line, event name, data) of each server-sent event of a streamed answer."""
    out, name, started = [], None, None
    for line in response.iter_lines():
        started = started if started is not None else time.monotonic()
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            out.append((time.monotonic() - started, name, json.loads(line[5:])))
    return out


def test_api_ask_streams_tokens_before_the_answer(small_llm_client, samples: Path):
    note = samples / "notes" / "coffee.md"
    files = {"file": ("coffee.md", note.read_bytes(), "text/markdown")}
    with small_llm_client.stream("POST", "/api/ask", data={"question": QUESTION, "stream": "true"}, files=files) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = events_of(r)
    names = [name for _, name, _ in events]
    assert names[0] == "start" and names[-1] == "answer" and "step" in names, names
    tokens = [(at, data["text"]) for at, name, data in events if name == "token"]
    assert len(tokens) >= 3
    assert tokens[0][0] < events[-1][0]
    answer = events[-1][2]
    assert answer["by"] == SMALL_LLM and answer["source"] == "coffee.md" and "diagnostics" in answer
    for note_text in answer["diagnostics"]:
        assert note_text not in answer["answer"]
    same = small_llm_client.post("/api/ask", data={"question": QUESTION}, files=files)  # JSON as before
    assert same.headers["content-type"].startswith("application/json")
    assert set(same.json()) == set(answer)


def test_api_describe_item_by_accept_header_without_llm(indexed: Collection, tmp_path: Path):
    collection = Collection(settings=indexed.settings.with_(llm="none"))
    collection.analyzer = indexed.analyzer
    cat = next(item for item in collection.items(limit=100)[1] if item.path.endswith("chelsea_cat.jpg"))
    with TestClient(create_app(collection, CONFIG)) as client:
        with client.stream("POST", "/api/describe", data={"item": str(cat.id), "phrase": "false"},
                           headers={"Accept": "text/event-stream"}) as response:  # fmt: skip
            events = events_of(response)
        plain = client.post("/api/describe", data={"item": str(cat.id), "phrase": "false"}).json()
    assert [name for _, name, _ in events][-1] == "answer"
    answer = events[-1][2]
    assert answer["caption"] == plain["caption"] and answer["by"] == "template"
    assert "cat" in answer["caption"].lower() and "null" not in json.dumps(answer)


def test_api_analyze_streams_progress(indexed: Collection, samples: Path):
    collection = Collection(settings=indexed.settings.with_(llm="none"))
    collection.analyzer = indexed.analyzer
    files = [
        ("files", (p.name, p.read_bytes()))
        for p in (samples / "photos" / "coffee.jpg", samples / "notes" / "coffee.md")
    ]
    form = {"phrase": "false", "stream": "true"}
    with (
        TestClient(create_app(collection, CONFIG)) as client,
        client.stream("POST", "/api/analyze", data=form, files=files) as response,
    ):
        events = events_of(response)
    progress = [data for _, name, data in events if name == "progress"]
    assert [p["current"] for p in progress[:2]] == ["coffee.jpg", "coffee.md"]
    assert all(p["seconds_left"] >= 0 for p in progress)
    assert events[-1][1] == "answer" and "coffee.jpg" in events[-1][2]["markdown"]


# --- a real server: the caller going away stops the model ------------------------------------------------------
@pytest.fixture(scope="module")
def small_llm_server(samples: Path, indexed: Collection):
    from test_browser import free_port, wait_until_up

    store = Path(tempfile.mkdtemp(prefix="stream-server-"))
    port = free_port()
    log = open(store / "server.log", "w")  # noqa: SIM115 (closed below)
    environment = {**env(), "POLYMODAL_CACHE": str(indexed.settings.cache), "POLYMODAL_LLM": SMALL_LLM}
    command = cli("serve", "--store", str(store), "--port", str(port))
    process = subprocess.Popen(command, cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}", process, store / "server.log")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _counter(port: int, name: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    found = re.search(rf"^\S*{name}\S*\s+(\d+)", text, re.MULTILINE)
    return int(found.group(1)) if found else 0


def _post_stream(port: int, path: str, fields: dict[str, str], file: Path) -> http.client.HTTPConnection:
    boundary = "polymodal-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file.name}"\r\n'
                 f"Content-Type: text/plain\r\n\r\n".encode() + file.read_bytes() + b"\r\n")  # fmt: skip
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Accept": "text/event-stream"}
    connection.request("POST", path, body=body, headers=headers)
    return connection


def _first_token(connection: http.client.HTTPConnection) -> tuple[float, http.client.HTTPResponse]:
    started = time.monotonic()
    response = connection.getresponse()
    assert response.status == 200
    while True:
        line = response.readline()
        assert line, "the stream ended before any token"
        if line.startswith(b"event: token"):
            return time.monotonic() - started, response


def test_api_caller_going_away_stops_the_model(small_llm_server: int, samples: Path):
    port = small_llm_server
    document = samples / "notes" / "dickens.txt"
    warm = _post_stream(port, "/api/describe", {"phrase": "true"}, document)  # loads the models; runs whole
    _first_token(warm)[1].read()
    warm.close()
    before = _counter(port, "task_describe_cancelled")
    connection = _post_stream(port, "/api/describe", {"phrase": "true"}, document)
    _first_token(connection)
    connection.close()  # the caller goes away after the first words
    gone = time.monotonic()
    while _counter(port, "task_describe_cancelled") == before:
        assert time.monotonic() - gone < 10, "the model went on writing after the caller left"
        time.sleep(0.2)
    # The one task worker is free again: a new answer starts at once instead of queueing behind the old one.
    again = _post_stream(port, "/api/ask", {"question": QUESTION}, samples / "notes" / "coffee.md")
    seconds, response = _first_token(again)
    response.read()
    again.close()
    assert seconds < 30
