"""The README's figure tables say what bench/results/*.json say (scripts/readme_figures.py writes them)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "readme_figures.py"


def figures(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=60)


def test_readme_figures_agree_with_the_results() -> None:
    done = figures("--check")
    assert done.returncode == 0, done.stderr
    marked = done.stdout
    tables = ("foundation", "understanding", "fusion", "aligner", "index-and-search", "performance", "indexing",
              "faces", "tts", "open-vocab", "scale-ingest", "scale-search", "llm-runtime")  # fmt: skip
    for table in tables:
        assert table in marked, marked


def copied_with(tmp_path: Path, name: str, change) -> tuple[Path, Path, dict]:
    """A copy of bench/results and of the README, with ``change(data)`` made to results file ``name``."""
    results, readme = tmp_path / "results", tmp_path / "README.md"
    shutil.copytree(REPO / "bench" / "results", results)
    shutil.copy(REPO / "README.md", readme)
    data = json.loads((results / name).read_text(encoding="utf-8"))
    change(data)
    (results / name).write_text(json.dumps(data), encoding="utf-8")
    return results, readme, data


def test_a_changed_result_is_caught_and_rewritten(tmp_path: Path) -> None:
    results, readme, _ = copied_with(tmp_path, "asterisk_wer.json", lambda wer: wer["corpus"].update(wer=5.5))

    stale = figures("--check", "--readme", readme, "--results", results)
    assert stale.returncode == 1 and "foundation" in stale.stderr, (stale.stdout, stale.stderr)
    assert figures("--readme", readme, "--results", results).returncode == 0
    assert "**5.50 %** corpus WER" in readme.read_text(encoding="utf-8")
    assert figures("--check", "--readme", readme, "--results", results).returncode == 0


def test_a_changed_scale_result_rewrites_only_its_table(tmp_path: Path) -> None:
    def slower(scale: dict) -> None:
        scale["search"]["postgres_hnsw"]["ef_search_100"]["ms"]["p50"] = 7.25  # written half up: 7.3

    results, readme, scale = copied_with(tmp_path, "scale.json", slower)

    done = figures("--readme", readme, "--results", results)
    assert done.returncode == 0 and "rewrote scale-search (" in done.stdout, (done.stdout, done.stderr)
    measured = scale["search"]["postgres_hnsw"]["ef_search_100"]
    p95, found = measured["ms"]["p95"], measured["recall_at_10"]
    assert f"(the store's search) | 7.3 | {p95:.1f} | {found:g} |" in readme.read_text(encoding="utf-8")


def test_a_missing_results_file_is_named(tmp_path: Path) -> None:
    results = tmp_path / "results"
    shutil.copytree(REPO / "bench" / "results", results)
    (results / "sounds.json").unlink()
    done = figures("--check", "--results", results)
    assert done.returncode == 2 and "sounds.json is missing" in done.stderr, done.stderr


def test_the_relevance_table_rescores_the_baseline_as_the_benchmark_does() -> None:
    """Ready for the README's relevance table (marked by whoever next runs the full evaluation with the floor)."""
    sys.path.insert(0, str(SCRIPT.parent))
    import readme_figures

    lines = readme_figures.render("relevance", REPO / "bench" / "results").splitlines()
    cells = [line.strip("| ").split(" | ") for line in lines[2:]]
    assert len(cells) == 7 and all(len(c) == 4 for c in cells), lines
    ndcg_before, ndcg_now = float(cells[0][2]), float(cells[0][3].strip("*"))
    assert 0 < ndcg_before < 1 and 0 < ndcg_now < 1  # judgements may change; the baseline is re-scored with them
    assert cells[3][0] == "precision of the returned set" and cells[3][2].endswith(" %")
