"""Fusion classifiers on the Tux Paint stamps: the top-level category from image + English caption + sound effect.

Items: every captioned PNG stamp (``collect`` of bench/eval_tuxpaint.py), with its sound effect (``NAME.ogg`` /
``NAME.wav``) when it has one -- most have none, which is the missing-modality case -- in the categories with at
least 10 items. Features through the product (:class:`polymodal.train.features.FeatureExtractor`, cached).
5-fold cross-validation stratified by label, split by item, seed 0, predictions pooled over the folds.
Reported for early / late / hybrid fusion: all rows; rows without sound and rows with sound; the text removed
at test time; each modality alone through the fusion model; and single-modality baselines (a classifier trained
on that modality only, scored on the rows that have it, beside the fusion model on the same rows).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/eval_fusion_tuxpaint.py [--folds 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_tuxpaint import STAMPS, collect  # noqa: E402

from polymodal.config import Settings  # noqa: E402
from polymodal.train.fusion import FusionConfig, run_experiment  # noqa: E402
from polymodal.train.manifest import Row  # noqa: E402
from polymodal.train.run import extractor_for, features  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MIN_ITEMS = 10
FUSIONS = ("early", "late", "hybrid")
ROWS = {  # table row -> result entry
    "all rows": "fusion",
    "rows without sound (text + image)": "fusion, rows with exactly text+image",
    "rows with sound (text + image + audio)": "fusion, rows with exactly text+image+audio",
    "text removed at test time": "fusion without text",
    "image alone (fusion model)": "fusion, image alone",
    "text alone (fusion model)": "fusion, text alone",
    "audio alone (fusion model)": "fusion, audio alone",
}


def stamp_rows() -> list[Row]:
    stamps = collect(STAMPS)
    counts = Counter(s.category for s in stamps)
    rows = []
    for line, stamp in enumerate(stamps, 1):
        if counts[stamp.category] < MIN_ITEMS:
            continue
        sound = next((p for p in (stamp.path.with_suffix(".ogg"), stamp.path.with_suffix(".wav")) if p.exists()), None)
        rows.append(Row(line, stamp.category, stamp.caption, stamp.path, sound))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    extractor = extractor_for(Settings.from_env())
    table, problems = features(extractor, stamp_rows(), verbose=True)
    if problems:
        print(f"{len(problems)} stamps skipped, first: {problems[0]}", file=sys.stderr)
    runs, seconds = {}, {}
    for fusion in FUSIONS:
        started = time.perf_counter()
        config = FusionConfig(fusion=fusion, seed=args.seed)
        experiment = run_experiment(table, config, folds=args.folds, baselines=fusion == "early", final=False)
        runs[fusion] = {name: m.to_dict(confusion=False) for name, m in experiment.results.items()}
        seconds[fusion] = round(time.perf_counter() - started, 1)
        print(f"  {fusion}: {seconds[fusion]} s", file=sys.stderr)
    counts = dict(sorted(Counter(table.labels).items(), key=lambda kv: -kv[1]))
    modalities = {m: int(table.present(m).sum()) for m in ("text", "image", "audio")}
    print_tables(runs, counts, modalities, args.folds)
    write_json(args, runs, counts, modalities, seconds, extractor.ids())


def _cell(result: dict | None) -> str:
    return "–" if result is None else f"{100 * result['accuracy']:.1f} / {100 * result['macro_f1']:.1f}"


def print_tables(runs: dict, counts: dict, modalities: dict, folds: int) -> None:
    early = runs["early"]
    print(f"\nTux Paint stamps: {sum(counts.values())} items, {len(counts)} categories; {folds}-fold CV, pooled")
    print("items per class: " + ", ".join(f"{c} {n}" for c, n in counts.items()))
    print("items with each modality: " + ", ".join(f"{m} {n}" for m, n in modalities.items()))
    print("\naccuracy % / macro-F1 %")
    print(f"| rows | n | {' | '.join(FUSIONS)} |\n|---|---|{'---|' * len(FUSIONS)}")
    for label, entry in ROWS.items():
        n = early.get(entry, {}).get("n", 0)
        print(f"| {label} | {n} | " + " | ".join(_cell(runs[f].get(entry)) for f in FUSIONS) + " |")
    print("\nsingle-modality baselines vs fusion on the same rows")
    print(f"| modality | n | trained on it alone | {' | '.join(f'{f} fusion' for f in FUSIONS)} |")
    print(f"|---|---|---|{'---|' * len(FUSIONS)}")
    for m in ("text", "image", "audio"):
        base = early.get(f"{m} only")
        row = " | ".join(_cell(runs[f].get(f"fusion, rows with {m}")) for f in FUSIONS)
        print(f"| {m} | {base['n'] if base else 0} | {_cell(base)} | {row} |")


def write_json(args: argparse.Namespace, runs: dict, counts: dict, modalities: dict, seconds: dict,
               extractors: dict) -> None:  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "fusion_tuxpaint.json"
    report = {
        "benchmark": "tuxpaint category from image + caption + sound (fusion)", "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, no GPU",
        "command": "bench/eval_fusion_tuxpaint.py " + " ".join(sys.argv[1:]), "folds": args.folds,
        "seed": args.seed, "n_items": sum(counts.values()), "items_per_class": counts,
        "items_with_modality": modalities, "extractors": extractors, "seconds": seconds, "results": runs,
    }  # fmt: skip
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
