"""Indexing rate per modality and search latency on the sample collection (2-core CPU figures).

    .venv/bin/python bench/index_and_search.py [--repeats 20]

Indexes the sample collection into a fresh store (models warmed first, so load time is not counted as
indexing), then runs each kind of query ``--repeats`` times and prints p50/p95 latency. Writes JSON to
bench/results/index_and_search.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from polymodal.collection import Collection
from polymodal.config import Settings
from polymodal.samples import build_sample_collection

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    samples = REPO / ".cache" / "sample-collection"
    build_sample_collection(samples)
    with tempfile.TemporaryDirectory() as tmp:
        collection = Collection(settings=Settings.from_env(store=Path(tmp) / "store"))
        warm_up(collection, samples)
        rates = index_rates(collection, samples)
        latencies = search_latencies(collection, samples, Path(tmp), args.repeats)
    print_table(rates, latencies)
    out = REPO / "bench" / "results" / "index_and_search.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"indexing": rates, "search_ms": latencies}, indent=2))


def warm_up(collection: Collection, samples: Path) -> None:
    analyzer = collection.analyzer
    for path in ("photos/coffee.jpg", "scans/page.png", "recordings/beckett.wav", "notes/coffee.md"):
        analyzer.analyze_file(samples / path)


def index_rates(collection: Collection, samples: Path) -> dict[str, dict[str, float]]:
    stamps: list[tuple[str, float]] = []
    collection.index(samples, progress=lambda done, total, path: stamps.append((path, time.perf_counter())))
    seconds: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for (path, start), (_, end) in zip(stamps, stamps[1:], strict=False):
        if path:
            modality = collection.item(path).modality
            seconds[modality] += end - start
            counts[modality] += 1
    return {
        m: {"items": counts[m], "seconds": round(seconds[m], 2), "items_per_s": round(counts[m] / seconds[m], 2)}
        for m in sorted(counts)
    }


def search_latencies(collection: Collection, samples: Path, tmp: Path, repeats: int) -> dict[str, dict[str, float]]:
    spoken = tmp / "spoken.wav"
    subprocess.run(["espeak-ng", "-w", str(spoken), "it was the best of times"], check=True)
    queries = {
        "text": lambda: collection.search("a cat on a sofa"),
        "text (Chinese)": lambda: collection.search("一只猫"),
        "image": lambda: collection.search(image=samples / "photos" / "coffee.jpg"),
        "image + text": lambda: collection.search("a drink", image=samples / "photos" / "coffee.jpg"),
        "voice question": lambda: collection.search(audio=spoken),
        "sound": lambda: collection.search(audio=samples / "sounds" / "dog.mp3"),
    }
    results = {}
    for name, run in queries.items():
        run()  # warm
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            run()
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        results[name] = {
            "p50": round(statistics.median(times), 1),
            "p95": round(times[min(len(times) - 1, int(0.95 * len(times)))], 1),
        }
    return results


def print_table(rates: dict, latencies: dict) -> None:
    print("indexing (models warm)\nmodality  items  seconds  items/s")
    for modality, row in rates.items():
        print(f"{modality:<9} {row['items']:>5}  {row['seconds']:>7}  {row['items_per_s']:>7}")
    print("\nsearch latency, ms (includes analyzing the query media)\nquery            p50     p95")
    for name, row in latencies.items():
        print(f"{name:<15} {row['p50']:>6}  {row['p95']:>6}")


if __name__ == "__main__":
    main()
