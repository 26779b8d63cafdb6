"""A trained aligner on the Tux Paint stamps: caption -> image recall@1/5/10 on held-out captions.

Pairs: every captioned PNG stamp (``collect`` of bench/eval_tuxpaint.py) with its English caption. Split 70/30
by caption group (identical captions stay on one side), seeds 0, 1, 2; queries are the distinct held-out
captions, the gallery the held-out images, a hit any image with the query's caption in the top K (as in
shared/FINDINGS.md, whose figures are shown beside). Compared: the label-bridge vector, the aligner alone, and
their 0.5 / 0.5 average (what ``polymodal index --aligner`` stores). Then the product path for seed 0: the
held-out images indexed into a temporary store, every held-out caption searched with ``Collection.search``
(vectors + words), before and after ``Collection.index(..., aligner=...)`` re-embeds them.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/eval_aligner_tuxpaint.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_tuxpaint import STAMPS, collect, first_hit_ranks, recalls  # noqa: E402

from polymodal.collection import Collection  # noqa: E402
from polymodal.config import Settings  # noqa: E402
from polymodal.train import align  # noqa: E402
from polymodal.train.manifest import Row  # noqa: E402
from polymodal.train.run import extractor_for, features  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FINDINGS = {"label bridge": [22.8, 35.6, 43.4], "aligner alone": [17.0, 36.2, 47.2], "average": [28.9, 54.1, 63.1]}
METHODS = ("label bridge", "aligner alone", "aligner + bridge (0.5 / 0.5)")


def pairs(settings: Settings) -> tuple[align.Pairs, list, object]:
    extractor = extractor_for(settings)
    stamps = collect(STAMPS)
    rows = [Row(i, None, s.caption, s.path) for i, s in enumerate(stamps, 1)]
    table, problems = features(extractor, rows, verbose=True)
    if problems:
        print(f"{len(problems)} stamps skipped, first: {problems[0]}", file=sys.stderr)
    index = np.flatnonzero(table.present("image"))
    by_line = {r.line: r for r in rows}
    data = align.pairs_from_table(extractor, "image", table, index, rows)
    return data, [by_line[table.lines[i]] for i in index], extractor


def product_path(settings: Settings, rows: list, test: np.ndarray, head: object, folder: Path) -> dict:
    """Recall of ``Collection.search`` over the held-out images, with the label bridge, then with the aligner."""
    from polymodal.space.aligner import Aligner

    encoder = extractor_for(settings).analyzer.model("text").model_id
    Aligner("bench-seed0", encoder, 0.5, {"image": head}).save(folder / "aligner")
    caption_of = {str(rows[i].image): rows[i].text for i in test}
    queries = list(dict.fromkeys(rows[i].text for i in test))
    out = {}
    with Collection(settings=settings.with_(store=folder / "store")) as collection:
        runs = (("full search, label bridge", None), ("full search, with the aligner", folder / "aligner"))
        for name, aligner in runs:
            started = time.perf_counter()
            report = collection.index(*[rows[i].image for i in test], aligner=aligner)
            ranked = [[caption_of.get(h.path, "") for h in collection.search(q, modality="image", k=10).hits]
                      for q in queries]  # fmt: skip
            recall = {k: round(v, 1) for k, v in recalls(first_hit_ranks(ranked, queries)).items()}
            out[name] = {**recall, "outcomes": dict(report.outcomes),
                         "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    settings = Settings.from_env(ocr_mode="never")
    data, rows, extractor = pairs(settings)
    feature_model = extractor.analyzer.model("image").model_id
    per_seed, product = [], {}
    for seed in args.seeds:
        config = align.AlignConfig(seed=seed)
        train, test = align.split_groups(data.groups, config.holdout, seed)
        net, _ = align.fit(data.subset(train), config)
        head = align.head(net, "image", feature_model)
        scores = align.score(head, data.subset(test), config.blend)
        per_seed.append({"seed": seed, "queries": len(np.unique(data.groups[test])), "images": len(test),
                         "train_images": len(train), "recall": scores})  # fmt: skip
        print(f"  seed {seed}: " + "; ".join(f"{k} {v}" for k, v in scores.items()), file=sys.stderr)
        if seed == args.seeds[0]:
            with tempfile.TemporaryDirectory(prefix="pm-aligner-") as folder:
                product = product_path(settings, rows, test, head, Path(folder))
    mean = {m: {k: round(float(np.mean([s["recall"][m][k] for s in per_seed])), 1) for k in ("R@1", "R@5", "R@10")}
            for m in METHODS}  # fmt: skip
    print_table(mean, per_seed, product, len(data.groups), len(np.unique(data.groups)))
    write_json(args, mean, per_seed, product, len(data.groups), extractor)


def print_table(mean: dict, per_seed: list, product: dict, n_images: int, n_captions: int) -> None:
    queries = round(float(np.mean([s["queries"] for s in per_seed])))
    print(f"\nTux Paint caption -> image, {n_images} images / {n_captions} captions; 70/30 split by caption, "
          f"seeds {[s['seed'] for s in per_seed]}, ~{queries} held-out captions per seed (mean shown)")
    print("| method | R@1 | R@5 | R@10 | FINDINGS.md R@1 / R@5 / R@10 |\n|---|---|---|---|---|")
    for method, findings in zip(METHODS, FINDINGS.values(), strict=True):
        r = mean[method]
        print(f"| {method} | {r['R@1']:.1f} | {r['R@5']:.1f} | {r['R@10']:.1f} | {' / '.join(map(str, findings))} |")
    for name, r in product.items():
        print(f"| {name} (seed {per_seed[0]['seed']}) | {r['R@1']:.1f} | {r['R@5']:.1f} | {r['R@10']:.1f} | |")


def write_json(args: argparse.Namespace, mean: dict, per_seed: list, product: dict, n: int, extractor) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "aligner_tuxpaint.json"
    report = {
        "benchmark": "tuxpaint caption -> image recall@k with a trained aligner", "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, no GPU",
        "command": "bench/eval_aligner_tuxpaint.py " + " ".join(sys.argv[1:]), "n_images": n,
        "image_model": extractor.analyzer.model("image").model_id, "encoder": extractor.analyzer.bridge_id,
        "config": align.AlignConfig().__dict__, "mean": mean, "findings": FINDINGS, "per_seed": per_seed,
        "product_path": product,
    }  # fmt: skip
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
