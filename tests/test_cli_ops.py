"""The command line as software one operates: version, --debug, logs, settings, suggestions, exit codes, paths.

Real ``polymodal`` subprocesses where the behaviour is the process's (exit codes, stderr); in-process calls of
``cli.main`` only to inject an internal error (a command that raises) or to read the settings.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from polymodal import cli
from polymodal.config import Settings
from polymodal.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
NOTES = {
    "notes/cats.md": "# Cats\nCats sleep twelve to sixteen hours a day and purr when they are content.\n",
    "notes/harbour.txt": "The harbour café serves espresso every morning while the fishing boats come in.\n",
    "archive/notes/cats.md": "# Old cats\nAn older note about a cat that slept on the piano.\n",
    "recipes/bread.md": "# Bread\nFlour, water, salt and yeast; knead, rest, shape and bake until golden.\n",
}


def polymodal(*args: str | Path, env: dict[str, str] | None = None, cwd: Path = REPO,
              check_rc: int | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "POLYMODAL_CONFIG": "none",
                   "COLUMNS": "200", **(env or {})}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "polymodal.cli", *map(str, args)], capture_output=True, text=True,
                          env=environment, cwd=cwd, timeout=300)  # fmt: skip
    if check_rc is not None:
        assert done.returncode == check_rc, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    return done


# --- version and help ---------------------------------------------------------------------------------------
def test_version_is_the_installed_packages() -> None:
    done = polymodal("--version", check_rc=0)
    assert done.stdout.strip() == f"polymodal {version('polymodal')}"


def test_help_is_a_description_and_examples_and_imports_nothing_heavy() -> None:
    done = polymodal("--help", check_rc=0)
    text = done.stdout
    assert ":class:" not in text and "polymodal: index, search and understand" in text
    for example in ('polymodal search "a cat on a sofa"', "polymodal index ~/Pictures", "polymodal show photos/"):
        assert example in text, text
    heavy = ("onnxruntime", "torch", "fastapi", "PIL", "av", "ctranslate2")
    probe = f"import sys, polymodal.cli as c; c.build_parser(); print([m for m in {heavy} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert loaded.stdout.strip() == "[]", (loaded.stdout, loaded.stderr)


# --- usage errors: exit 2 with a suggestion -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["serach", "cats"], "'serach' is not a polymodal command; did you mean search?"),
        (["search", "--topk", "5", "cat"], "--topk is not an option of polymodal search; did you mean --top-k?"),
        (["index", "--ocr", "alway", "x"], "'alway' is not a choice of --ocr; did you mean always?"),
        (["search", "a", "cat"], "a query or name of several words goes in quotes"),
        (["keys", "create", "laptop", "--sotre", "x"], "did you mean --store?"),
        (["search", "cats", "-k", "0"], "argument -k/--top-k: must be 1 or more, not 0"),
    ],
    ids=["command", "option", "choice", "unquoted-query", "nested-command", "bad-number"],
)
def test_usage_errors_suggest_what_was_meant(args: list[str], said: str) -> None:
    done = polymodal(*args, check_rc=2)
    assert said in done.stderr, done.stderr


def test_top_k_is_an_option_of_search_too() -> None:
    args = cli.build_parser().parse_args(["search", "--top-k", "3", "cats"])
    assert args.k == 3 and args.text == "cats" and args.debug is False


def test_debug_is_set_on_every_command_before_or_after_it() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["--debug", "status"]).debug is True
    assert parser.parse_args(["status", "--debug"]).debug is True
    assert parser.parse_args(["keys", "list", "--debug"]).debug is True
    assert parser.parse_args(["train", "fusion", "m.csv", "--out", "o", "--debug"]).debug is True
    for command in ("status", "describe x.png", "transcribe x.wav", "classify --labels a,b x.png"):
        assert parser.parse_args(command.split()).debug is False, command


# --- internal errors: exit 1, one line, an incident id; the traceback in the log and with --debug --------------
def _broken(args: object) -> int:
    return {"a": 1}["b"]  # a bug: a KeyError from deep inside, not "no such item"


def test_an_internal_error_is_one_line_exit_1_with_an_incident_id(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log_file = tmp_path / "polymodal.log"
    monkeypatch.setenv("POLYMODAL_LOG_FILE", str(log_file))
    monkeypatch.setitem(cli.COMMANDS, "status", _broken)
    assert cli.main(["status", "--store", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    incident = re.search(r"internal error \(incident ([0-9a-f]{8})\)", lines[0])
    assert incident and "KeyError" in lines[0] and str(log_file) in lines[0], lines[0]
    logged = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]
    entry = next(e for e in logged if e.get("incident") == incident.group(1))
    assert "Traceback" in entry["traceback"] and "_broken" in entry["traceback"]

    assert cli.main(["status", "--store", str(tmp_path), "--json"]) == 1
    answer = json.loads(capsys.readouterr().out)
    assert answer["incident"] in answer["error"] and "internal error" in answer["error"]
    polymodal_logger = logging.getLogger("polymodal")  # cli.main in-process leaves logging as it found it
    assert polymodal_logger.propagate and not polymodal_logger.handlers


def test_debug_shows_the_traceback_and_timings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("POLYMODAL_LOG_FILE", str(tmp_path / "polymodal.log"))
    monkeypatch.setitem(cli.COMMANDS, "status", _broken)
    assert cli.main(["status", "--store", str(tmp_path), "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "_broken" in err and "KeyError: 'b'" in err, err
    assert re.search(r"polymodal status took \d+\.\d+ s", err), err
    assert err.strip().splitlines()[-1].startswith("error: internal error (incident ")


def test_debug_times_each_stage_of_a_real_index(tmp_path: Path) -> None:
    note = tmp_path / "notes" / "boats.md"
    note.parent.mkdir()
    note.write_text("# Boats\nFishing boats come into the harbour at dawn.\n", encoding="utf-8")
    done = polymodal("index", note.parent, "--store", tmp_path / "store", "--json", "--debug", check_rc=0)
    for stage in ("open the store took", "read text took", "embed took", "polymodal index took"):
        assert re.search(rf"debug polymodal\.\w+: {stage} \d+\.\d+ s", done.stderr), (stage, done.stderr[-2000:])
    assert re.search(r"info polymodal\.models\.base: loaded model text/\S+ in \d", done.stderr)


def test_a_user_error_is_still_exit_2_in_words(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    done = polymodal("status", "--store", missing, check_rc=2)
    assert done.stderr.strip() == f"error: no store at {missing}; index a folder first", done.stderr
    debug = polymodal("status", "--store", missing, "--debug", check_rc=2)
    assert "Traceback" in debug.stderr  # --debug shows where even a user error came from
    item = polymodal("show", "12345", "--store", missing, check_rc=2)
    assert "Traceback" not in item.stderr


@pytest.mark.parametrize("command", [["transcribe"], ["read"], ["tag"], ["classify", "--labels", "a,b"]])
def test_a_missing_file_or_a_folder_is_bad_input_not_a_bug(command: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.wav"
    done = polymodal(command[0], missing, *command[1:], check_rc=2)
    assert done.stderr.strip() == f"error: file not found: {missing}", done.stderr
    folder = polymodal(command[0], tmp_path, *command[1:], check_rc=2)
    assert f"{tmp_path} is a folder; give a file" in folder.stderr, folder.stderr


# --- settings: env and files, validated ----------------------------------------------------------------------
def test_a_bad_setting_is_rejected_with_its_name(tmp_path: Path) -> None:
    done = polymodal("status", "--store", tmp_path, env={"POLYMODAL_OCR_MODE": "sometimes"}, check_rc=2)
    assert "ocr_mode must be one of auto, always, never, not 'sometimes' (from POLYMODAL_OCR_MODE)" in done.stderr
    (tmp_path / "polymodal.toml").write_text('threads = "many"\n', encoding="utf-8")
    done = polymodal("status", "--store", tmp_path, check_rc=2)
    assert f"threads must be a whole number, not 'many' (from {tmp_path / 'polymodal.toml'})" in done.stderr
    (tmp_path / "polymodal.toml").write_text("ocr_mod = 'never'\n", encoding="utf-8")
    done = polymodal("status", "--store", tmp_path, check_rc=2)
    assert "'ocr_mod' is not a setting; did you mean ocr_mode?" in done.stderr


def test_settings_precedence_option_env_store_file_user_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in [k for k in os.environ if k.startswith("POLYMODAL_") and k != "POLYMODAL_CACHE"]:
        monkeypatch.delenv(key)
    store = tmp_path / "store"
    store.mkdir()
    user = tmp_path / "user.toml"
    user.write_text(f'store = "{store}"\nocr_mode = "never"\nthreads = 3\nllm = "none"\nsearch_nprobe = 4\n')
    monkeypatch.setenv("POLYMODAL_CONFIG", str(user))
    settings = Settings.from_env()
    assert (settings.store, settings.ocr_mode, settings.threads, settings.llm) == (store, "never", 3, "none")

    (store / "polymodal.toml").write_text('ocr_mode = "always"\nthreads = 2\n[model_paths]\nwhisper-base = "/m"\n')
    settings = Settings.from_env()
    assert (settings.ocr_mode, settings.threads, settings.llm) == ("always", 2, "none")  # the store's file wins
    assert settings.model_paths == {"whisper-base": "/m"} and settings.search_nprobe == 4

    monkeypatch.setenv("POLYMODAL_THREADS", "1")
    monkeypatch.setenv("POLYMODAL_OCR", "auto")  # the older name of POLYMODAL_OCR_MODE
    settings = Settings.from_env()
    assert (settings.ocr_mode, settings.threads) == ("auto", 1)  # the environment wins over files
    assert Settings.from_env(ocr_mode="never", threads=None).ocr_mode == "never"  # an option wins over all

    with pytest.raises(ConfigError, match="setting bridge_top_k must be from 1 to 1000, not 0"):
        Settings(bridge_top_k=0)


def test_threads_default_to_the_cpus_the_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POLYMODAL_THREADS", raising=False)
    monkeypatch.setenv("POLYMODAL_CONFIG", "none")
    assert Settings.from_env(store="/tmp/x").threads == len(os.sched_getaffinity(0))


# --- paths: as search shows them, from here, relative to the indexed folder -----------------------------------
@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("collection")
    for relative, text in NOTES.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text, encoding="utf-8")
    store = tmp_path_factory.mktemp("store")
    done = polymodal("index", root, "--store", store, "--json", "--log-json", "--log-level", "info", check_rc=0)
    logged = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any(e["logger"] == "polymodal.index" and e["message"].startswith("indexing 4 files") for e in logged)
    assert any(e["message"].startswith("loaded model text/") for e in logged), done.stderr
    return root, store


def test_show_accepts_paths_as_search_shows_them(collection: tuple[Path, Path], tmp_path: Path) -> None:
    root, store = collection
    shown = polymodal("show", "recipes/bread.md", "--store", store, cwd=tmp_path, check_rc=0)
    assert f"{root}/recipes/bread.md" in shown.stdout
    from_here = polymodal("show", "notes/harbour.txt", "--store", store, cwd=root, check_rc=0)
    assert f"{root}/notes/harbour.txt" in from_here.stdout
    ambiguous = polymodal("show", "cats.md", "--store", store, cwd=tmp_path, check_rc=2)
    assert "'cats.md' matches 2 items" in ambiguous.stderr and "give more of the path" in ambiguous.stderr
    exact = polymodal("show", "archive/notes/cats.md", "--store", store, cwd=tmp_path, check_rc=0)
    assert f"{root}/archive/notes/cats.md" in exact.stdout
    missing = polymodal("show", "notes/dogs.md", "--store", store, check_rc=2)
    assert "no item 'notes/dogs.md'" in missing.stderr


def test_search_shows_paths_under_the_shared_folder_and_long_shows_all(collection: tuple[Path, Path]) -> None:
    root, store = collection
    table = polymodal("search", "bread and yeast", "-k", "3", "--store", store, check_rc=0).stdout
    assert "recipes/bread.md" in table and f"{root}/recipes" not in table, table
    assert f"(paths under {root}" in table
    long = polymodal("search", "bread and yeast", "-k", "3", "--store", store, "--long", check_rc=0).stdout
    assert f"{root}/recipes/bread.md" in long and "knead, rest, shape and bake until golden" in long, long


def test_the_search_table_fits_the_terminal(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("COLUMNS", "70")
    rows = [("1", "93%", "text", "a/very/long/folder/name/that/goes/on/notes/cats.md", "why " * 40)]
    cli._table(["#", "relevance", "kind", "path", "why"], rows, flexible=(3, 4))
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 70 for line in lines), lines
    assert re.search(r" …\S*/notes/cats\.md ", lines[1]) and lines[1].endswith("…"), lines  # a path keeps its end


# --- a file of another kind, named ---------------------------------------------------------------------------
def test_transcribe_on_an_image_says_it_is_an_image(tmp_path: Path) -> None:
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(photo)
    done = polymodal("transcribe", photo, check_rc=2)
    assert done.stderr.strip().splitlines()[-1] == f"error: {photo}: this is an image, not a recording or a video"
    note = tmp_path / "note.md"
    note.write_text("# A note\nNothing to hear here.\n", encoding="utf-8")
    done = polymodal("tag", note, check_rc=2)
    assert f"{note}: this is a text document, not a recording or a video" in done.stderr


def test_search_by_example_names_a_file_of_the_wrong_kind(collection: tuple[Path, Path], tmp_path: Path) -> None:
    import wave

    _, store = collection
    tone = tmp_path / "tone.wav"
    with wave.open(str(tone), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(bytes(32000))
    done = polymodal("search", "--image", tone, "--store", store, check_rc=2)
    assert done.stderr.strip().splitlines()[-1] == f"error: {tone}: this is a recording, not an image", done.stderr


def test_expect_kind_stops_before_reading(tmp_path: Path) -> None:
    from polymodal.media.errors import MediaError

    note = tmp_path / "note.txt"
    note.write_text("plain words\n", encoding="utf-8")
    with pytest.raises(MediaError, match="note.txt: this is a text document, not an image"):
        cli.expect_kind(note, "image")
    cli.expect_kind(note, "text")  # the right kind passes


# --- the HTTP API draws the same line ------------------------------------------------------------------------
def test_the_api_answers_a_user_error_400_and_a_bug_500_with_an_incident(caplog: pytest.LogCaptureFixture) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from polymodal.api.errors import Guard, install_handlers
    from polymodal.errors import UsageError

    app = FastAPI()
    install_handlers(app)

    @app.get("/user")
    def user() -> None:
        raise UsageError("give at least two different labels, e.g. --labels 'cat,dog'")

    @app.get("/bug")
    def bug() -> None:
        raise ValueError("an internal slip: never 'bad input'")

    app.add_middleware(Guard, max_request_bytes=1024, max_form_bytes=1024, max_json_bytes=1024)  # as create_app does
    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR, "polymodal"):
        refused = client.get("/user")
        assert refused.status_code == 400 and refused.json()["error"].startswith("give at least two different labels")
        failed = client.get("/bug")
        assert failed.status_code == 500 and failed.json()["code"] == "internal"
        incident = re.search(r"incident ([0-9a-f]{8})", failed.json()["error"])
        assert incident and "internal slip" not in failed.text
    assert any(incident.group(1) in r.getMessage() and r.exc_info for r in caplog.records)
