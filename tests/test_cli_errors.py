"""What the command line prints about bad names, bad files and bad stores: escaped, naming the file, exit 2.

Real subprocesses of ``polymodal`` on real files (the indexing ones load only the text encoder).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from polymodal.cli import _dumps, printable

REPO = Path(__file__).resolve().parents[1]
ESCAPE_NAME = "\x1b[31mred\x1b]0;owned\x07.txt"  # colour, then set the terminal's title
BIDI_NAME = "\u202etxt.exe.txt"
LATIN1_NAME = os.fsdecode(b"caf\xe9.txt")


def polymodal(*args: str | Path, check_rc: int | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-m", "polymodal.cli", *map(str, args)], capture_output=True, env=env, cwd=REPO, timeout=300
    )
    if check_rc is not None:
        assert done.returncode == check_rc, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    return done


def no_terminal_controls(output: bytes) -> None:
    """Nothing a terminal would act on: no ESC, BEL, C1 control or bidi override, and valid UTF-8."""
    text = output.decode("utf-8")  # raises on the raw byte of a non-UTF-8 name
    for char in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert char not in text, (char, text[-2000:])


@pytest.fixture(scope="module")
def named(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files with hostile names: one good text each, one empty each (an error line that names it)."""
    folder = tmp_path_factory.mktemp("names")
    text = "The harbour café serves espresso every morning, and the river is quiet.\n"
    for name in (ESCAPE_NAME, BIDI_NAME):
        (folder / name).write_text(text, encoding="utf-8")
        (folder / f"empty-{name}").write_bytes(b"")
    (folder / LATIN1_NAME).write_text(text, encoding="utf-8")
    return folder


def test_printable_escapes_what_a_terminal_acts_on() -> None:
    assert printable("plain name.txt") == "plain name.txt"
    assert printable("咖啡 café.md") == "咖啡 café.md"
    assert printable(ESCAPE_NAME) == "\\x1b[31mred\\x1b]0;owned\\x07.txt"
    assert printable(BIDI_NAME) == "\\u202etxt.exe.txt"
    assert printable(LATIN1_NAME) == "caf\\xe9.txt"
    assert printable("two\nlines\x9b.txt") == "two\\nlines\\x9b.txt"
    assert printable("line one\n\tline two", keep="\n\t") == "line one\n\tline two"


def test_json_output_is_valid_utf8_without_controls_and_round_trips() -> None:
    data = {"path": f"/x/{ESCAPE_NAME}", "other": f"/x/{LATIN1_NAME}", "bidi": BIDI_NAME, "c1": "a\x9bb"}
    text = _dumps(data)
    no_terminal_controls(text.encode("utf-8"))
    assert json.loads(text) == data
    assert "咖啡" in _dumps({"name": "咖啡"})  # readable, not \u escaped


def test_index_prints_hostile_names_escaped(named: Path, tmp_path: Path) -> None:
    done = polymodal("index", named, "--store", tmp_path / "store", check_rc=3)  # the empty files are errors
    no_terminal_controls(done.stdout + done.stderr)
    out = done.stdout.decode()
    assert f"skipped {named}/empty-\\x1b[31mred\\x1b]0;owned\\x07.txt: empty file" in out, out
    assert f"skipped {named}/empty-\\u202etxt.exe.txt: empty file" in out, out
    assert "caf\\xe9.txt" in out, out  # indexed or refused, it is named with its byte escaped
    status = polymodal("status", "--store", tmp_path / "store", check_rc=0)
    no_terminal_controls(status.stdout)
    assert "empty-\\x1b[31mred" in status.stdout.decode()
    shown = polymodal("show", named / ESCAPE_NAME, "--store", tmp_path / "store", check_rc=0)
    no_terminal_controls(shown.stdout)
    assert f"{named}/\\x1b[31mred\\x1b]0;owned\\x07.txt" in shown.stdout.decode()
    found = polymodal("search", "espresso at the harbour café", "--store", tmp_path / "store", check_rc=0)
    no_terminal_controls(found.stdout)


def test_index_json_names_hostile_paths_exactly(named: Path, tmp_path: Path) -> None:
    done = polymodal("index", named, "--store", tmp_path / "store", "--json", check_rc=3)
    no_terminal_controls(done.stdout)
    report = json.loads(done.stdout)
    failed = {entry["path"]: entry["reason"] for entry in report["errors"]}
    assert failed[str(named / f"empty-{ESCAPE_NAME}")] == "empty file"  # json.loads gives the name back exactly
    assert failed[str(named / f"empty-{BIDI_NAME}")] == "empty file"


@pytest.mark.parametrize(
    ("command", "name", "content", "message"),
    [
        (["classify", "--labels", "cat,dog"], "empty.jpg", b"", "empty file"),
        (["read"], "blank.png", b"", "empty file"),
        (["tag"], "silence.wav", b"", "empty file"),
        (["transcribe"], "memo.mp3", b"", "empty file"),
        (["describe", "--llm", "none"], "noise.png", bytes(range(256)) * 64, "unrecognised content"),
        (["classify", "--labels", "cat,dog"], "junk.txt", bytes(range(256)) * 64, "unrecognised content"),
    ],
    ids=["classify-empty", "read-empty", "tag-empty", "transcribe-empty", "describe-junk", "classify-junk"],
)
def test_a_bad_file_is_named_in_the_error(tmp_path: Path, command, name, content, message) -> None:
    bad = tmp_path / name
    bad.write_bytes(content)
    done = polymodal(*command[:1], bad, *command[1:], check_rc=2)
    assert_names(done.stderr.decode().strip().splitlines()[-1], f"error: {bad}: ", message)
    as_json = polymodal(*command[:1], bad, *command[1:], "--json", check_rc=2)
    assert_names(json.loads(as_json.stdout)["error"], f"{bad}: ", message)


def assert_names(line: str, start: str, message: str) -> None:
    assert line.startswith(start) and message in line[len(start) :], (line, start, message)


def test_search_names_a_bad_query_file(tmp_path: Path) -> None:
    query = tmp_path / "query.jpg"
    query.write_bytes(b"")
    store = tmp_path / "store"
    note = tmp_path / "notes" / "note.txt"
    note.parent.mkdir()
    note.write_text("A note about cats.\n", encoding="utf-8")
    polymodal("index", note.parent, "--store", store, check_rc=0)
    done = polymodal("search", "--image", query, "--store", store, check_rc=2)
    assert_names(done.stderr.decode().strip().splitlines()[-1], f"error: {query}: ", "empty file")


def test_analyze_names_the_bad_file_among_several(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("A short note about the harbour and its boats.\n", encoding="utf-8")
    bad.write_bytes(b"")
    done = polymodal("analyze", good, bad, "--llm", "none", check_rc=2)
    assert_names(done.stderr.decode().strip().splitlines()[-1], f"error: {bad}: ", "empty file")


def test_a_missing_store_is_bad_input_in_words(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    for command in (["status"], ["search", "cats"], ["show", "1"]):
        done = polymodal(*command, "--store", missing, check_rc=2)
        error = done.stderr.decode().strip()
        assert error.startswith("error: ") and str(missing) in error and "Traceback" not in error, error
        assert "StoreError" not in error, error
        assert not missing.exists()  # looking does not create it
    as_json = polymodal("status", "--store", missing, "--json", check_rc=2)
    assert str(missing) in json.loads(as_json.stdout)["error"]


def test_a_damaged_store_is_bad_input_in_words(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "polymodal.sqlite").write_bytes(b"this is not a database\n" * 100)
    done = polymodal("status", "--store", store, check_rc=2)
    error = done.stderr.decode().strip()
    assert error.startswith("error: ") and str(store) in error and "Traceback" not in error, error
    assert "StoreError" not in error and "DatabaseError" not in error, error
