"""Bad and tricky inputs (``scripts/make_bad_inputs.py``) indexed by ``polymodal index --json`` in subprocesses.

Each case gives what its manifest entry says (indexed / partial with a note / skipped with a reason / ...), every
run finishes (exit 0 or 3: never an abort, a hang or a crash) within its time and peak-memory bounds. Cases that
could hang or eat memory run alone, so that a failure names them. ``POLYMODAL_HEAVY_TESTS=1`` adds the big cases
(a 17 MB Chinese text, a 55 MB line).

Peak memory is the indexing process's ``ru_maxrss`` (``RUSAGE_CHILDREN`` of a small launcher); a watchdog kills a run
that passes 1.25x its memory bound or its time limit, so that a runaway case cannot take the machine with it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = os.environ.get("POLYMODAL_HEAVY_TESTS") == "1"


def _corpus_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_bad_inputs", REPO / "scripts" / "make_bad_inputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


CORPUS = _corpus_module()
CASES = [case for case in CORPUS.cases(CORPUS.DEFAULT_SAMPLES) if HEAVY or not case.heavy]
RUNS = sorted({case.name if case.alone else "main" for case in CASES})


def shown(path: str | Path) -> str:
    """A path as text that compares equal however it was reported: undecodable bytes as backslash escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclass
class Run:
    name: str
    returncode: int | None = None
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    killed: str | None = None  # why the watchdog stopped it
    report: dict | None = None
    stderr: str = ""
    errors: dict[str, list[str]] = field(default_factory=dict)  # shown path -> reasons
    notes: dict[str, list[str]] = field(default_factory=dict)
    indexed: set[str] = field(default_factory=set)  # shown paths in the store
    collection: Any = None  # the store, opened after the run

    def holds(self, path: Path) -> bool:
        """Whether ``polymodal show PATH`` would find the item (a link is found through its target)."""
        from polymodal.collection import ItemNotFound

        try:
            self.collection.item(str(path))
        except (ItemNotFound, UnicodeEncodeError):
            return False
        return True

    def problem(self) -> str | None:
        """Why this run does not count as finished, if it does not."""
        if self.killed:
            return f"run {self.name} was killed: {self.killed}"
        if self.returncode not in (0, 3):
            return f"run {self.name} exited {self.returncode}: {self.stderr[-2000:]}"
        if self.report is None:
            return f"run {self.name} printed no JSON report: {self.stderr[-2000:]}"
        if self.report.get("stopped"):
            return f"run {self.name} stopped early: {self.report['stopped']}"
        return None


# Runs the command in a grandchild and reports its peak RSS. A child forked from pytest would count pytest's own
# memory in its ``ru_maxrss`` (the high-water mark of the address space it had until exec); this launcher is small.
LAUNCHER = """
import json, os, resource, subprocess, sys, threading, time
spec = json.loads(sys.argv[1])
started = time.perf_counter()
killed = []
with open(spec["out"], "wb") as out, open(spec["err"], "wb") as err:
    child = subprocess.Popen(spec["command"], stdout=out, stderr=err, stdin=subprocess.DEVNULL)

    def rss_mb():
        try:
            for line in open(f"/proc/{child.pid}/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def watch():
        while child.poll() is None:
            if time.perf_counter() - started > spec["seconds"]:
                killed.append(f"still running after {spec['seconds']:.0f} s")
            elif rss_mb() > spec["kill_rss_mb"]:
                killed.append(f"RSS over {spec['kill_rss_mb']:.0f} MB")
            else:
                time.sleep(0.1)
                continue
            child.kill()
            return

    threading.Thread(target=watch, daemon=True).start()
    child.wait()
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"returncode": child.returncode, "seconds": time.perf_counter() - started, "peak_rss_mb": peak,
                  "killed": killed[0] if killed else None}))
"""


def index_in_subprocess(root: Path, store: Path, seconds: float, rss_mb: float) -> Run:
    """``polymodal index ROOT --json`` in a grandchild process: timed, its peak RSS measured, watched."""
    out, err = store.with_suffix(".out"), store.with_suffix(".err")
    command = [sys.executable, "-m", "polymodal.cli", "index", str(root), "--store", str(store), "--json"]
    spec = {"command": command, "out": str(out), "err": str(err), "seconds": seconds, "kill_rss_mb": rss_mb * 1.25}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "POLYMODAL_OCR": "never", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", LAUNCHER, json.dumps(spec)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=seconds + 60, check=True)  # fmt: skip
    measured = json.loads(done.stdout)
    run = Run(root.name, measured["returncode"], measured["seconds"], measured["peak_rss_mb"], measured["killed"])
    run.stderr = err.read_text(encoding="utf-8", errors="replace")
    try:
        run.report = json.loads(out.read_text(encoding="utf-8", errors="surrogateescape"))
    except ValueError:
        run.report = None
    if run.report is not None:
        for entry in run.report.get("errors", []):
            run.errors.setdefault(shown(entry["path"]), []).append(entry["reason"])
        for entry in run.report.get("notes", []):
            run.notes.setdefault(shown(entry["path"]), []).append(entry["note"])
    return run


def open_store(store: Path) -> Any:
    from polymodal.collection import Collection
    from polymodal.config import Settings

    return Collection(settings=Settings.from_env(store=store), create=False)


def stored_paths(collection: Any) -> set[str]:
    """Paths the store holds, through the public API (every item's path)."""
    total, _ = collection.items(limit=0)
    _, items = collection.items(limit=total + 1)
    return {shown(item.path) for item in items}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("bad-inputs") / "corpus"
    command = [sys.executable, str(REPO / "scripts" / "make_bad_inputs.py"), str(root), "--samples", str(samples)]
    subprocess.run(command + (["--heavy"] if HEAVY else []), check=True, timeout=300)
    return root, json.loads((root / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def runs(corpus: tuple[Path, dict]):
    """Each run of the manifest, run once, when a test first asks for it."""
    root, manifest = corpus
    by_name = {run["name"]: run for run in manifest["runs"]}
    done: dict[str, Run] = {}

    def get(name: str) -> Run:
        if name not in done:
            spec = by_name[name]
            store = root.parent / f"store-{name}"
            run = index_in_subprocess(root / spec["root"], store, spec["seconds"], spec["rss_mb"])
            run.name = name
            if run.report is not None:
                run.collection = open_store(store)
                run.indexed = stored_paths(run.collection)
            done[name] = run
            print(f"run {name}: exit {run.returncode}, {run.seconds:.1f} s, peak RSS {run.peak_rss_mb:.0f} MB")
        return done[name]

    return get


@pytest.mark.parametrize("name", RUNS)
def test_every_run_finishes_within_its_bounds(corpus, runs, name: str) -> None:
    root, manifest = corpus
    spec = next(run for run in manifest["runs"] if run["name"] == name)
    run = runs(name)
    assert run.problem() is None, run.problem()
    assert run.seconds <= spec["seconds"], f"{run.seconds:.0f} s, over {spec['seconds']} s"
    assert run.peak_rss_mb <= spec["rss_mb"], f"peak RSS {run.peak_rss_mb:.0f} MB, over {spec['rss_mb']} MB"
    known = {shown(root / case["path"]) for case in manifest["cases"] if case["run"] == name}
    said = set(run.errors) | set(run.notes)
    assert said <= known, f"errors or notes about files that are no case: {sorted(said - known)}"


@pytest.mark.parametrize("name", [case.name for case in CASES])
def test_case_gives_what_a_user_should_see(corpus, runs, name: str) -> None:
    root, manifest = corpus
    case = next(case for case in manifest["cases"] if case["name"] == name)
    run = runs(case["run"])
    assert run.problem() is None, run.problem()
    path = shown(root / case["path"])
    errors, notes = run.errors.get(path, []), run.notes.get(path, [])
    indexed = run.holds(root / case["path"])
    said = f"indexed: {indexed}, errors: {errors}, notes: {notes}"
    text = case["text"].lower()
    expect = case["expect"]
    if expect == "indexed":
        assert indexed and not errors, f"{case['why']}: expected indexed; {said}"
    elif expect == "partial":
        assert indexed and not errors, f"{case['why']}: expected indexed with a note; {said}"
        assert any(text in note.lower() for note in notes), f"{case['why']}: expected a note with {text!r}; {said}"
    elif expect == "skipped":
        assert not indexed, f"{case['why']}: expected skipped ({text!r}); {said}"
        reasons = errors + notes
        assert any(text in reason.lower() for reason in reasons), f"{case['why']}: expected {text!r}; {said}"
    elif expect == "handled":
        assert indexed != bool(errors), f"{case['why']}: expected indexed or skipped with a reason; {said}"
    elif expect == "ignored":
        under = [p for p in [*run.indexed, *run.errors, *run.notes] if p == path or p.startswith(path + "/")]
        assert not under, f"{case['why']}: expected to be left alone; found {under}"
    else:
        raise AssertionError(f"unknown expectation {expect!r}")
