"""Judged relevance of search: nDCG@10, MRR, recall@10 per query kind and language, and how trustworthy the
returned set is (cut-off precision / recall, no-match queries answered with nothing), beside a stored baseline.

The collection is real third-party media (``bench/relevance/collection.json``, assembled into
``.cache/relevance/collection/`` by ``bench/relevance/build_collection.py``); the queries and their graded
judgements (2 highly relevant, 1 partly relevant, unlisted 0) are ``bench/relevance/judgements.json``,
written from the media, before the system was run. Every query goes through the public API,
``Collection.search(text, image=, audio=, k=10)``, on a store kept in ``.cache/relevance/store`` and rebuilt
from scratch whenever the polymodal code differs from the code that built it (``--reuse`` keeps it).

Each run is written (hits, scores, timings) to ``--json`` (default ``bench/results/relevance.json``) with a
``--label``. The committed baseline ``bench/results/relevance_baseline.json`` is today's ranking; the table
compares this run with it, the baseline's stored hits re-scored against the current judgements (so a
corrected judgement moves both columns). ``--save-baseline`` replaces the baseline with this run.

Also measured (unless ``--no-floor``): the ``floor`` text queries on the sample collection indexed alone,
the figure ``tests/test_relevance_floor.py`` holds the code to.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/eval_relevance.py [--split test|dev|all] [--json PATH]
        [--label NAME] [--reuse] [--no-floor] [--save-baseline] [--show RUN.json] [--with-models DIR ...]
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "relevance"))
import build_collection  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
JUDGEMENTS = HERE / "relevance" / "judgements.json"
RESULTS = HERE / "results"
BASELINE = RESULTS / "relevance_baseline.json"
STORE = build_collection.CACHE / "store"
FLOOR_STORE = build_collection.CACHE / "floor-store"
SAMPLES_PREFIX = "samples/"
K = 10
NO_MATCH = "no-match"
KINDS = ("text", "image", "image+text", "voice", "sound")
LANGUAGES = ("en", "zh")
CUTOFF = "all queries (cut-off)"

Hits = list[dict[str, Any]]  # [{"path": relative path, "score": fused score, "similarity": cosine or None}]


# --- judgements -------------------------------------------------------------------------------------------


def load_queries(path: Path = JUDGEMENTS) -> list[dict[str, Any]]:
    queries = json.loads(path.read_text(encoding="utf-8"))["queries"]
    ids = [q["id"] for q in queries]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"{path}: duplicate query ids {duplicates}")
    return queries


def in_split(query: dict[str, Any], split: str) -> bool:
    return split == "all" or query["split"] == split


def floor_queries(queries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The floor queries with their judgements narrowed to the sample collection (paths relative to it)."""
    narrowed = []
    for query in queries:
        if query.get("floor"):
            judged = query["judgements"].items()
            inside = {p.removeprefix(SAMPLES_PREFIX): g for p, g in judged if p.startswith(SAMPLES_PREFIX)}
            narrowed.append(query | {"judgements": inside})
    return narrowed


def check_judged_paths(queries: Iterable[dict[str, Any]], root: Path) -> None:
    """Every judged path must be a file of the collection: a typo would silently count as a miss."""
    missing = sorted({p for q in queries for p in q["judgements"] if not (root / p).is_file()})
    if missing:
        raise ValueError(f"{JUDGEMENTS}: judged files not in {root}: {', '.join(missing[:10])}")


# --- metrics ----------------------------------------------------------------------------------------------


def dcg(grades: Iterable[int]) -> float:
    return sum((2**g - 1) / math.log2(rank + 2) for rank, g in enumerate(grades))


def score_query(run: dict[str, Any], judgements: dict[str, int], k: int = K) -> dict[str, Any]:
    """Per-query figures of one query's run; relevant means grade >= 1. The ranking figures (nDCG, MRR,
    recall) read the order of the hits and then the weaker matches below the cut-off; the returned set (the
    cut-off figures) is the hits alone. A run without a cut-off (the baseline) has hits only."""
    returned = [h["path"] for h in run["hits"]][:k]
    top = [h["path"] for h in run["hits"] + run.get("weaker", [])][:k]
    relevant = {p for p, g in judgements.items() if g >= 1}
    found = [p for p in top if p in relevant]
    kept = [p for p in returned if p in relevant]
    row: dict[str, Any] = {"returned": len(returned), "relevant_returned": len(kept), "relevant": len(relevant)}
    if not relevant:
        return row
    ideal = dcg(sorted(judgements.values(), reverse=True)[:k])
    first = next((rank for rank, p in enumerate(top) if p in relevant), None)
    row["ndcg"] = dcg(judgements.get(p, 0) for p in top) / ideal
    row["rr"] = 0.0 if first is None else 1.0 / (first + 1)
    row["recall"] = len(found) / min(len(relevant), k)
    return row


def summarize(rows: list[dict[str, Any]], k: int = K) -> dict[str, Any]:
    """Means over the judged queries, and the returned set read as the answer (all queries)."""
    good = [r for r in rows if r["relevant"]]
    none = [r for r in rows if not r["relevant"]]
    returned = sum(r["returned"] for r in rows)
    out: dict[str, Any] = {"n": len(good), "n_no_match": len(none)}
    if good:
        out |= {
            "ndcg@10": statistics.fmean(r["ndcg"] for r in good),
            "mrr": statistics.fmean(r["rr"] for r in good),
            "recall@10": statistics.fmean(r["recall"] for r in good),
            "returned_recall@10": statistics.fmean(r["relevant_returned"] / min(r["relevant"], k) for r in good),
            "answered": statistics.fmean(r["relevant_returned"] > 0 for r in good),
            "cutoff_recall": sum(r["relevant_returned"] for r in good) / sum(min(r["relevant"], k) for r in good),
        }
    if none:
        out |= {
            "no_match_empty": statistics.fmean(r["returned"] == 0 for r in none),
            "no_match_hits": statistics.fmean(r["returned"] for r in none),
        }
    out["cutoff_precision"] = sum(r["relevant_returned"] for r in rows) / returned if returned else None
    return out


def groups(queries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Report rows: all judged queries, each kind, each language, the no-match queries, all together."""
    good = [q for q in queries if q["kind"] != NO_MATCH]
    out = {"judged queries": good}
    out |= {f"kind: {kind}": [q for q in good if q["kind"] == kind] for kind in KINDS}
    out |= {f"language: {lang}": [q for q in good if q["language"] == lang] for lang in LANGUAGES}
    out[f"kind: {NO_MATCH}"] = [q for q in queries if q["kind"] == NO_MATCH]
    out[CUTOFF] = queries
    return {name: members for name, members in out.items() if members}


def summary_of(queries: list[dict[str, Any]], runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Figures per group, over the queries that have a run (a run may lack some)."""
    scored = [q for q in queries if q["id"] in runs]
    rows = {q["id"]: score_query(runs[q["id"]], q["judgements"]) for q in scored}
    return {name: summarize([rows[q["id"]] for q in members]) for name, members in groups(scored).items()}


# --- running queries --------------------------------------------------------------------------------------


def relative(path: str, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return f"outside:{path}"


def _takes_language(collection: Any) -> bool:
    """Whether this polymodal's search takes the language of a spoken query (a baseline's may not)."""
    return "language" in inspect.signature(collection.search).parameters


def run_query(collection: Any, query: dict[str, Any], root: Path) -> dict[str, Any]:
    image, audio = build_collection.query_media(query)
    started = time.perf_counter()
    # a spoken query's language as chosen on the web page
    options = {"language": query["language"]} if query["kind"] == "voice" and _takes_language(collection) else {}
    result = collection.search(query.get("text"), image=image, audio=audio, k=K, **options)
    seconds = time.perf_counter() - started

    def rows(hits: list) -> Hits:
        return [{"path": relative(h.path, root), "score": round(h.score, 6),
                 "similarity": None if h.similarity is None else round(h.similarity, 4)} for h in hits]  # fmt: skip

    return {"hits": rows(result.hits), "weaker": rows(getattr(result, "weaker", [])), "ms": round(seconds * 1000, 1)}


def run_queries(collection: Any, queries: list[dict[str, Any]], root: Path, say: Callable[[str], None]) -> dict:
    runs = {}
    for done, query in enumerate(queries, 1):
        runs[query["id"]] = run_query(collection, query, root)
        if done % 20 == 0 or done == len(queries):
            say(f"  {done}/{len(queries)} queries")
    return runs


def index(store: Path, root: Path, reuse: bool, say: Callable[[str], None]) -> tuple[Any, dict[str, Any]]:
    """Index ``root`` into ``store``. A store built by other polymodal code is emptied first (unless ``reuse``):
    evidence of unchanged files is kept by the indexer, so a changed analysis would not show."""
    from polymodal import Collection

    marker = store.with_name(store.name + ".code")
    code = package_digest()
    built_by = marker.read_text(encoding="utf-8").strip() if marker.is_file() else None
    if store.exists() and built_by != code and not reuse:
        say(f"{store} was built by other polymodal code: indexing from scratch")
        shutil.rmtree(store)
    collection = Collection(store)
    started = time.perf_counter()
    report = collection.index(root)
    if report.errors:
        raise RuntimeError(f"indexing {root} failed for {report.errors}")
    if built_by != code and not reuse:
        marker.write_text(code + "\n", encoding="utf-8")
    outcomes = report.to_dict()["outcomes"]
    say(f"indexed {root} in {time.perf_counter() - started:.0f} s: {outcomes}")
    return collection, {"seconds": round(time.perf_counter() - started, 1), "outcomes": outcomes, "reused": reuse}


def evaluate(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    all_queries = load_queries()
    queries = [q for q in all_queries if in_split(q, args.split)]
    started = time.perf_counter()
    root = build_collection.CACHE / "collection"
    files = build_collection.build_collection(root, say=lambda message: None)
    check_judged_paths(all_queries, root)
    collection, indexing = index(STORE, root, args.reuse, say)
    say(f"running {len(queries)} queries ({args.split})")
    query_started = time.perf_counter()
    with collection:
        runs = run_queries(collection, queries, root, say)
    query_seconds = time.perf_counter() - query_started
    run: dict[str, Any] = {
        "label": args.label,
        "date": date.today().isoformat(),
        "git": git_state(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "command": command_line(),
        "split": args.split,
        "k": K,
        "judgements_sha256": sha256(JUDGEMENTS),
        "collection": {"files": len(files), "fingerprint": fingerprint(files, root)},
        "index": indexing,
        "summary": summary_of(queries, runs),
        "median_ms": median_ms(queries, runs),
        "queries": runs,
    }
    if not args.no_floor:
        run["floor"] = evaluate_floor(all_queries, args.reuse, say)
    run["seconds"] = round(time.perf_counter() - started, 1)
    run["query_seconds"] = round(query_seconds, 1)
    return run


def evaluate_floor(all_queries: list[dict[str, Any]], reuse: bool, say: Callable[[str], None]) -> dict[str, Any]:
    """The floor text queries on the sample collection indexed alone (as tests/conftest.py indexes it)."""
    root = build_collection.CACHE / "collection" / "samples"
    queries = floor_queries(all_queries)
    collection, _ = index(FLOOR_STORE, root, reuse, say)
    with collection:
        runs = {q["id"]: run_query(collection, q, root) for q in queries}
    return {
        "about": "floor queries (judged text queries about the sample collection) on the sample collection alone",
        "summary": summary_of(queries, runs)["judged queries"],
        "queries": {i: {"hits": r["hits"], "weaker": r["weaker"]} for i, r in runs.items()},
    }


def median_ms(queries: list[dict[str, Any]], runs: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Median search time per query kind (the first query of a kind also loads its models)."""
    kinds = sorted({q["kind"] for q in queries})
    return {kind: statistics.median(runs[q["id"]]["ms"] for q in queries if q["kind"] == kind) for kind in kinds}


def git_state() -> dict[str, Any]:
    """Which code was measured: HEAD, the polymodal package imported (a copy of another version may come first
    on PYTHONPATH), the newest of the last 100 commits whose polymodal/ it is file for file (None if edited
    since), and the files that differ from HEAD's."""
    import polymodal

    package = Path(polymodal.__file__).resolve().parent
    imported = package_files()
    head = _committed("HEAD")
    recent = _git("rev-list", "-n", "100", "HEAD").split()
    same = next((commit for commit in recent if _committed(commit) == imported), None)
    changed = sorted(name for name in {*head, *imported} if head.get(name) != imported.get(name))
    return {
        "head": _git("rev-parse", "--short", "HEAD"),
        "polymodal": str(package),
        "polymodal_as_of": same and same[:12],
        "polymodal_changed_from_head": changed,
    }


def package_files() -> dict[str, str]:
    """path -> git blob id of every file of the polymodal package this process imports."""
    import polymodal

    package = Path(polymodal.__file__).resolve().parent
    files = sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    hashes = _git("hash-object", "--stdin-paths", stdin="\n".join(str(p) for p in files)).split()
    return {p.relative_to(package.parent).as_posix(): h for p, h in zip(files, hashes, strict=True)}


def package_digest() -> str:
    return hashlib.sha256(json.dumps(package_files(), sort_keys=True).encode()).hexdigest()[:16]


def _git(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, input=stdin, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def _committed(commit: str) -> dict[str, str]:
    """path -> blob id of every file under polymodal/ at ``commit``."""
    entries = _git("ls-tree", "-r", "-z", commit, "polymodal").split("\0")
    return {path: meta.split()[2] for meta, path in (e.split("\t", 1) for e in entries if e)}


def command_line() -> str:
    prefix = [f"PYTHONPATH={os.environ['PYTHONPATH']}"] if os.environ.get("PYTHONPATH") else []
    return " ".join([*prefix, "python", "bench/eval_relevance.py", *sys.argv[1:]])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def fingerprint(files: list[Path], root: Path) -> str:
    """Names and sizes of the collection's files: two runs on different data are told apart."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(f"{path.relative_to(root).as_posix()}\t{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


# --- the report -------------------------------------------------------------------------------------------


def load_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def rescored_baseline(baseline: dict[str, Any] | None, queries: list[dict[str, Any]]) -> dict | None:
    """The baseline's stored hits scored against the current judgements, over this run's queries."""
    if baseline is None:
        return None
    return summary_of(queries, baseline["queries"])


def fmt(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.1f} %" if percent else f"{value:.3f}"


def pair(base: dict | None, now: dict, key: str, percent: bool = False) -> str:
    current = now.get(key)
    if base is None or base.get(key) is None or current is None:
        return fmt(current, percent)
    delta = current - base[key]
    sign = "+" if delta >= 0 else "-"
    shown = f"{abs(delta) * 100:.1f}" if percent else f"{abs(delta):.3f}"
    return f"{fmt(base[key], percent)} → {fmt(current, percent)} ({sign}{shown})"


def table(run: dict[str, Any], base: dict | None, baseline_label: str | None) -> str:
    title = f"Relevance, split {run['split']}, k={K}: {run['label']}"
    title += f'; cells: baseline "{baseline_label}" → this run' if base else " (no stored baseline)"
    lines = [f"### {title}", "", "| group | n | nDCG@10 | MRR | recall@10 | answered |", "|---|---|---|---|---|---|"]
    for name, now in run["summary"].items():
        if now["n"] and name != CUTOFF:
            before = (base or {}).get(name)
            cells = [pair(before, now, key) for key in ("ndcg@10", "mrr", "recall@10")]
            lines.append(f"| {name} | {now['n']} | {' | '.join(cells)} | {pair(before, now, 'answered', True)} |")
    lines += [
        "",
        "| cut-off (returned set as the answer) | n | precision | recall | no-match empty | hits per no-match |",
        "|---|---|---|---|---|---|",
    ]
    now, before = run["summary"][CUTOFF], (base or {}).get(CUTOFF)
    no_match = run["summary"].get(f"kind: {NO_MATCH}", {})
    no_match_before = (base or {}).get(f"kind: {NO_MATCH}")
    lines.append(
        f"| all queries | {now['n'] + now['n_no_match']} | {pair(before, now, 'cutoff_precision', True)} | "
        f"{pair(before, now, 'cutoff_recall', True)} | {pair(no_match_before, no_match, 'no_match_empty', True)} | "
        f"{pair(no_match_before, no_match, 'no_match_hits')} |"
    )
    return "\n".join(lines)


def changes(run: dict[str, Any], baseline: dict | None, queries: list[dict[str, Any]], top: int = 8) -> str:
    """The queries whose nDCG@10 moved most against the baseline."""
    if baseline is None:
        return ""
    moved = []
    for query in queries:
        if query["kind"] == NO_MATCH or query["id"] not in baseline["queries"]:
            continue
        now = score_query(run["queries"][query["id"]], query["judgements"])["ndcg"]
        before = score_query(baseline["queries"][query["id"]], query["judgements"])["ndcg"]
        if abs(now - before) > 1e-9:
            moved.append((now - before, query, before, now))
    if not moved:
        return "No query's nDCG@10 changed against the baseline."
    moved.sort(key=lambda m: m[0])
    picked = moved[:top] + [m for m in moved[-top:] if m not in moved[:top]]
    lines = [f"{len(moved)} queries changed; largest losses and gains:", ""]
    lines += ["| query | kind | nDCG@10 |", "|---|---|---|"]
    for _, query, before, now in picked:
        lines.append(f"| {query['id']}: {describe(query)} | {query['kind']} | {before:.3f} → {now:.3f} |")
    return "\n".join(lines)


def describe(query: dict[str, Any]) -> str:
    parts = [f'"{query["text"]}"'] if query.get("text") else []
    if query.get("speak"):
        parts.append(f'spoken "{query["speak"]}"')
    if query.get("image") or query.get("audio"):
        parts.append(str(query.get("image") or query.get("audio")).split("/")[-1])
    return " + ".join(parts)


def floor_line(run: dict[str, Any], baseline: dict | None) -> str:
    if "floor" not in run:
        return ""
    now = run["floor"]["summary"]
    before = (baseline or {}).get("floor", {}).get("summary")
    return f"Floor (sample collection alone, {now['n']} text queries): nDCG@10 {pair(before, now, 'ndcg@10')}"


def report(run: dict[str, Any], baseline: dict | None) -> str:
    queries = [q for q in load_queries() if q["id"] in run["queries"]]
    base = rescored_baseline(baseline, queries)
    label = baseline["label"] if baseline else None
    timing = ", ".join(f"{kind} {ms:.0f} ms" for kind, ms in run["median_ms"].items())
    parts = [
        table(run, base, label),
        floor_line(run, baseline),
        changes(run, baseline, queries),
        f"Median search time: {timing}. Indexing {run['index']['seconds']} s, queries {run['query_seconds']} s, "
        f"whole run {run['seconds']} s.",
    ]
    return "\n\n".join(p for p in parts if p)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("test", "dev", "fresh", "all"), default="all")
    parser.add_argument("--json", type=Path, default=RESULTS / "relevance.json", help="where to write this run")
    parser.add_argument("--label", default="current", help="a name for this run (e.g. the change under test)")
    parser.add_argument("--baseline", type=Path, default=BASELINE, help="the stored run to compare with")
    parser.add_argument("--save-baseline", action="store_true", help="also store this run as the baseline")
    parser.add_argument("--reuse", action="store_true", help="keep stores built by other polymodal code")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor queries on the sample collection")
    parser.add_argument("--show", type=Path, help="print a stored run's table against the baseline; run nothing")
    parser.add_argument("--with-models", action="append", type=Path, default=[], metavar="DIR",
                        help="an open-vocabulary model (CLIP, SigLIP, Chinese-CLIP, CLAP) beside the bundled space")
    args = parser.parse_args()
    if args.show:
        print(report(json.loads(args.show.read_text(encoding="utf-8")), load_json(args.baseline)))
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("POLYMODAL_CACHE", str(REPO / ".cache" / "polymodal"))
    from polymodal import spaces

    os.environ.update(spaces.environment_for(args.with_models))  # POLYMODAL_MODEL_PATH_IMAGE_TEXT / _AUDIO_TEXT
    say = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    try:
        run = evaluate(args, say)
    except build_collection.MissingData as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    baseline = None if args.save_baseline else load_json(args.baseline)
    targets = [args.json, args.baseline] if args.save_baseline else [args.json]
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(run, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(report(run, baseline))
    print(f"\nwritten: {', '.join(str(t) for t in targets)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
