"""The performance suite: indexing, search at scale, memory, cold start, each beside its naive baseline.

    make bench                        # = .venv/bin/python bench/run.py (full: ~30-60 min on 2 cores)
    .venv/bin/python bench/run.py --quick    # < 5 min: smaller folders, 10k and 100k vectors only

Each measurement runs in its own process (peak RSS is its own) and writes JSON; this script prints one table
against the targets and writes everything to bench/results/perf.json (perf-quick.json with --quick), with the
machine, the command and the load average before and after each section (other jobs make timings pessimistic:
read the ratios to the baselines measured in the same run).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import perf_data  # noqa: E402
from perf_util import load_average, machine  # noqa: E402

INDEX_TASKS = ["classifier", "texts", "text-embed", "recordings", "prompts", "stamps"]


def run_task(script: str, args: list[str], out: Path, log: dict[str, Any], name: str) -> dict[str, Any] | None:
    before = load_average()
    started = time.perf_counter()
    command = [sys.executable, str(HERE / script), *args, "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = round(time.perf_counter() - started, 1)
    log[name] = {"seconds": seconds, "load_before": before, "load_after": load_average()}
    if done.returncode != 0 or not out.exists():
        log[name]["error"] = done.stderr[-3000:]
        print(f"  {name}: FAILED\n{done.stderr[-1500:]}", file=sys.stderr)
        return None
    print(f"  {name}: {log[name]['seconds']} s (load {before[0]} -> {log[name]['load_after'][0]})", file=sys.stderr)
    return json.loads(out.read_text())


def _ocr_note(result: dict[str, Any]) -> str:
    return (
        f"OCR gate opened on {result.get('ocr_ran_on')} of {result['items']}, "
        f"text found on {result.get('text_found_on')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small folders, 10k and 100k vectors (< 5 min)")
    parser.add_argument("--sections", default="index,search,service")
    parser.add_argument("--sizes", help="vector counts for search (default 10000,100000[,1000000])")
    parser.add_argument("--levers", action="store_true", help="also measure each image lever alone (full mode: on)")
    parser.add_argument("--merge", action="store_true", help="keep the sections not run from the last report")
    args = parser.parse_args()
    os.environ.setdefault("POLYMODAL_CACHE", str(HERE.parent / ".cache" / "polymodal"))
    work = perf_data.DATA / ("run-quick" if args.quick else "run")
    work.mkdir(parents=True, exist_ok=True)
    store = work / "real-store"
    sections = args.sections.split(",")
    quick = ["--quick"] if args.quick else []
    report: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "load_at_start": load_average(),
        "sections": {},
    }
    timing: dict[str, Any] = {}
    out = HERE / "results" / ("perf-quick.json" if args.quick else "perf.json")
    if args.merge and out.exists():
        last = json.loads(out.read_text())
        report.update({key: last[key] for key in ("indexing", "search", "service") if key in last})
        timing.update(last.get("sections", {}))
        report["merged_from"] = last["date"]
    if "index" in sections:
        shutil.rmtree(store, ignore_errors=True)
        print("indexing", file=sys.stderr)
        report["indexing"] = photo_rounds(store, work, quick, timing, 1 if args.quick else 3)
        tasks = INDEX_TASKS + (["levers"] if args.levers or not args.quick else [])
        for task in tasks:
            task_args = [task, "--store", str(store), *quick]
            report["indexing"][task] = run_task("perf_index.py", task_args, work / f"{task}.json", timing, task)
    sizes = args.sizes or ("10000,100000" if args.quick else "10000,100000,1000000")
    if "search" in sections:
        print("search", file=sys.stderr)
        search_args = ["--real-store", str(store), "--sizes", sizes, *quick]
        report["search"] = run_task("perf_search.py", search_args, work / "search.json", timing, "search")
    if "service" in sections:
        print("service", file=sys.stderr)
        big = _biggest_store(report.get("search"))
        extra = ["--big-store", str(big)] if big else []
        report["service"] = run_task(
            "perf_service.py", ["--store", str(store), *extra, *quick], work / "service.json", timing, "service"
        )
    report["sections"] = timing
    report["load_at_end"] = load_average()
    report["summary"] = summary(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    out.with_suffix(".md").write_text(markdown(report))
    print_table(report)
    print(f"\nwritten: {out.relative_to(HERE.parent)} and {out.with_suffix('.md').name}")


def photo_rounds(store: Path, work: Path, quick: list[str], timing: dict, rounds: int) -> dict[str, Any]:
    """Ours and the naive baseline alternately, ``rounds`` times (the load of a shared machine drifts): the
    median of each and the median of the per-round ratios. The first round of ours fills the real store."""
    runs: dict[str, list[dict]] = {"photos": [], "photos-no-ocr": [], "naive-photos": []}
    for r in range(rounds):
        for task in runs:
            target = ["--store", str(store)] if (task == "photos" and r == 0) else []
            out = work / f"{task}-{r}.json"
            result = run_task("perf_index.py", [task, *target, *quick], out, timing, f"{task}#{r}")
            if result:
                runs[task].append(result)
    out: dict[str, Any] = {}
    for task, results in runs.items():
        if results:
            middle = sorted(results, key=lambda x: x["items_per_s"])[len(results) // 2]
            out[task] = {**middle, "rounds": [x["items_per_s"] for x in results]}
    naive = runs["naive-photos"]
    for task in ("photos", "photos-no-ocr"):
        if runs[task] and len(runs[task]) == len(naive):
            pairs = list(zip(runs[task], naive, strict=True))
            ratios = sorted(a["items_per_s"] / b["items_per_s"] for a, b in pairs)
            out[task]["ratio_to_naive"] = round(ratios[len(ratios) // 2], 1)
            cpu = sorted(b["cpu_ms_per_item"] / a["cpu_ms_per_item"] for a, b in pairs)
            out[task]["cpu_ratio_to_naive"] = round(cpu[len(cpu) // 2], 1)
    return out


def _biggest_store(search: dict | None) -> Path | None:
    if not search:
        return None
    stores = sorted((perf_data.DATA / "search").glob("store-*"), key=lambda p: int(p.name.split("-")[1]))
    return stores[-1] if stores else None


# --- the summary against the targets ---------------------------------------------------------------------------
def summary(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    index = report.get("indexing") or {}

    def add(measure: str, value: Any, target: str, ok: bool | None, baseline: Any = None, note: str = "") -> None:
        rows.append({"measure": measure, "value": value, "target": target, "met": ok, "baseline": baseline,
                     "note": note})  # fmt: skip

    naive = index.get("naive-photos")
    for task, label in (("photos-no-ocr", "photos without text"), ("photos", "the mix, OCR gate on")):
        photos = index.get(task)
        if not photos:
            continue
        ratio = photos.get("ratio_to_naive")
        ocr = "" if task == "photos-no-ocr" else "; " + _ocr_note(photos)
        add(
            f"photos indexed /s end-to-end ({label})",
            photos["items_per_s"],
            ">= 80, >= 5x naive" if task == "photos-no-ocr" else "",
            (photos["items_per_s"] >= 80 and (ratio or 0) >= 5) if task == "photos-no-ocr" else None,
            naive and naive["items_per_s"],
            f"{ratio}x naive (median of rounds {photos.get('rounds')}){ocr}",
        )
        add(
            f"photos: CPU ms per photo, all threads ({label})",
            photos["cpu_ms_per_item"],
            "",
            None,
            naive and naive["cpu_ms_per_item"],
            f"{photos.get('cpu_ratio_to_naive')}x less CPU than naive",
        )
        add(f"photos: peak RSS MB ({label})", photos["peak_rss_mb"], "", None, naive and naive["peak_rss_mb"])
    if index.get("classifier"):
        rate, cpu = index["classifier"]["items_per_s"], index["classifier"]["cpu_ms_per_item"]
        add("classifier path alone /s", rate, ">= 100", rate >= 100, None, f"{cpu} CPU ms per photo")
    if index.get("texts"):
        texts = index["texts"]
        add("text files indexed /s", texts["items_per_s"], "", None, None, f"{texts['passages_per_s']} passages/s")
    if index.get("text-embed"):
        embed = index["text-embed"]
        add(
            "text passages embedded /s",
            embed["batched_per_s"],
            ">= 1000",
            embed["batched_per_s"] >= 1000,
            embed["one_call_per_passage_per_s"],
            f"{embed['speedup']}x one call per passage; the shipped graph in 2-thread calls of 32: "
            f"{embed.get('shipped_graph_2_threads_batch_32_per_s')} /s",
        )
    for name, label in (("recordings", "speech RTF, long recordings"), ("prompts", "speech RTF, 1-5 s prompts")):
        if index.get(name):
            rtf = index[name]["rtf"]
            add(
                label,
                rtf,
                "<= 0.1" if name == "recordings" else "",
                rtf <= 0.1 if name == "recordings" else None,
                None,
                f"{index[name]['items_per_s']} files/s, peak {index[name]['peak_rss_mb']} MB",
            )
    if index.get("stamps"):
        stamps = index["stamps"]
        add(
            "Tux Paint PNG stamps indexed /s",
            stamps["items_per_s"],
            "",
            None,
            None,
            _ocr_note(stamps),
        )
    search = report.get("search") or {}
    for size, result in (search.get("sizes") or {}).items():
        for modality, row in result["per_query_modality"].items():
            p50, p99, recall = row["index_ms"]["p50"], row["index_ms"]["p99"], row["recall_at_10"]
            big = int(size) >= 1_000_000
            add(
                f"search {int(size):,} vectors, {modality} query: p50 / p99 ms, recall@10",
                f"{p50} / {p99}, {recall}",
                "<= 20 / <= 100, >= 0.95" if big else "",
                (p50 <= 20 and p99 <= 100 and recall >= 0.95) if big else None,
                f"{row['numpy_ms']['p50']} / {row['numpy_ms']['p99']}",
                f"{row['speedup_p50']}x numpy at p50",
            )
        end = result["end_to_end_ms"]
        add(
            f"search {int(size):,} vectors, end to end p50 ms (text / image / audio)",
            " / ".join(str(end[m]["ms"]["p50"]) for m in ("text", "image", "audio")),
            "",
            None,
        )
    service = report.get("service") or {}
    if service:
        memory = service["service_memory_mb"]["store"]
        idle = memory["idle, store open"]["rss"]
        add("idle service RSS MB (store open)", idle, "<= 1000", idle <= 1000)
        loaded = max(v["rss"] for k, v in memory.items() if k.startswith("after first"))
        after = next(v["rss"] for k, v in memory.items() if k.startswith("idle ") and "unloaded" in k)
        add(
            "service RSS MB: after text+image+audio queries -> models unloaded",
            f"{loaded} -> {after}",
            "<= 1000",
            after <= 1000,
        )
        for key, label in (("store", "real store"), ("big_store", "1M-vector store")):
            if key in service["cold_start"]:
                cold = service["cold_start"][key]["median_s"]
                add(f"cold start to first text result, {label} (s)", cold, "<= 3", cold <= 3)
        add(
            "`polymodal --help` (s)",
            service["help"]["median_s"],
            "instant",
            None,
            service["help"]["python_alone_s"],
            "baseline: `python -c pass`",
        )
    return rows


def markdown(report: dict[str, Any]) -> str:
    """The summary as a Markdown table (for bench/PERFORMANCE.md)."""
    m = report["machine"]
    lines = [
        f"Measured {report['date']} with `{report['command']}` on {m['cores']} cores ({m['cpu']}), "
        f"{m['memory_gb']} GB RAM, Python {m['python']}; load average {report['load_at_start'][0]} at start, "
        f"{report['load_at_end'][0]} at end"
        + (f" (sections not run kept from the run of {report['merged_from']})." if "merged_from" in report else "."),
        "",
        "| measure | value | target | met | baseline | note |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["summary"]:
        met = {True: "yes", False: "**no**", None: ""}[row["met"]]
        cells = [row["measure"], row["value"], row["target"], met, row["baseline"], row["note"]]
        lines.append("| " + " | ".join("" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def print_table(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"\npolymodal performance, {report['date']}, {m['cores']} cores ({m['cpu']}), {m['memory_gb']} GB RAM")
    print(f"load average at start {report['load_at_start']}, at end {report['load_at_end']}\n")
    header = ("measure", "value", "target", "met", "baseline", "note")
    rows = [tuple("" if r[h] is None else ("yes" if r[h] is True else "NO" if r[h] is False else str(r[h]))
                  for h in header) for r in report["summary"]]  # fmt: skip
    widths = [min(70, max(len(r[i]) for r in [header, *rows])) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell[: widths[i]].ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


if __name__ == "__main__":
    main()
