"""Zero-shot Fashion-MNIST (10k test images) through the label bridge.

Each 28x28 grey image becomes an RGB PIL image, goes through the product's classifier preprocessing
(``classifier_input``: short side to 256, centre crop 224) and EfficientNet-Lite0; its top-k ImageNet labels
become a label-bridge vector, compared by cosine with class-prompt vectors from the same text encoder.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/eval_fashion_mnist.py [--limit N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from polymodal.analysis import Analyzer
from polymodal.config import Settings
from polymodal.media.image import classifier_input
from polymodal.models.text import normalize
from polymodal.space.bridge import LabelBridge

DATA = Path("/usr/share/datasets/fashion-mnist")
RESULTS = Path(__file__).resolve().parent / "results"
CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
# Everyday names for the descriptive prompts (several per class where the official name is ambiguous).
NAMES = [
    ["t-shirt", "top"],
    ["pair of trousers", "pair of pants"],
    ["pullover", "sweater"],
    ["dress"],
    ["coat", "jacket"],
    ["sandal"],
    ["shirt"],
    ["sneaker", "running shoe"],
    ["bag", "handbag"],
    ["ankle boot", "boot"],
]
DESCRIPTIVE = [
    "a photo of a {}",
    "a black and white photo of a {}",
    "a product photo of a {}",
    "a low resolution photo of a {}",
    "a photo of a {}, a type of clothing",
]
TOP_KS = (10, 1000)
BATCH = 64


def load_split(split: str = "t10k", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    images = _idx(DATA / f"{split}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = _idx(DATA / f"{split}-labels-idx1-ubyte.gz", 8)
    return (images[:limit], labels[:limit]) if limit else (images, labels)


def _idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path) as handle:
        return np.frombuffer(handle.read(), np.uint8, offset=offset)


def classify(analyzer: Analyzer, images: np.ndarray, invert: bool) -> tuple[np.ndarray, float]:
    """ImageNet probabilities (n, 1000) from the product's image adapter, and images per second."""
    from PIL import Image

    model = analyzer.model("image")
    started = time.perf_counter()
    rows: list[np.ndarray] = []
    for start in range(0, len(images), BATCH):
        batch = [
            classifier_input(Image.fromarray(255 - grey if invert else grey).convert("RGB"))
            for grey in images[start : start + BATCH]
        ]
        rows += [result.probabilities for result in model.analyze(np.stack(batch))]
        done = min(start + BATCH, len(images))
        if done % (BATCH * 20) == 0 or done == len(images):
            print(f"  classified {done}/{len(images)}", file=sys.stderr)
    return np.stack(rows), len(images) / (time.perf_counter() - started)


def bridge_vectors(bridge: LabelBridge, probabilities: np.ndarray, top_k: int) -> np.ndarray:
    return np.stack([bridge.vector(bridge.top_labels(row, top_k)) for row in probabilities])


def prompt_sets(analyzer: Analyzer) -> dict[str, np.ndarray]:
    """Class matrices (10, dim), one per prompt set; a class with several prompts gets their mean."""
    encoder = analyzer.model("text")

    def averaged(prompts_per_class: list[list[str]]) -> np.ndarray:
        return normalize(np.stack([encoder.encode(prompts).mean(axis=0) for prompts in prompts_per_class]))

    return {
        "bare class names": averaged([[name] for name in CLASSES]),
        "a photo of a {class}": averaged([[f"a photo of a {name.lower()}"] for name in CLASSES]),
        f"descriptive ({len(DESCRIPTIVE)} templates x 1-2 names, averaged)": averaged(
            [[t.format(n) for t in DESCRIPTIVE for n in names] for names in NAMES]
        ),
    }


def score(vectors: np.ndarray, classes: np.ndarray, labels: np.ndarray) -> tuple[float, list[float]]:
    predicted = np.argmax(vectors @ classes.T, axis=1)
    correct = predicted == labels
    per_class = [float(correct[labels == c].mean() if (labels == c).any() else np.nan) for c in range(10)]
    return float(correct.mean()), per_class


def evaluate(analyzer: Analyzer, images: np.ndarray, labels: np.ndarray, variants: list[str]) -> list[dict]:
    bridge = analyzer.bridge("image")
    sets = prompt_sets(analyzer)
    rows: list[dict] = []
    for variant in variants:
        probabilities, speed = classify(analyzer, images, invert=variant == "inverted")
        top1 = np.argsort(-probabilities, axis=1)[:, 0]
        common = [bridge.labels[i] for i, _ in _most_common(top1, 5)]
        for top_k in TOP_KS:
            vectors = bridge_vectors(bridge, probabilities, top_k)
            for name, classes in sets.items():
                accuracy, per_class = score(vectors, classes, labels)
                rows.append({
                    "input": variant, "prompts": name, "bridge_top_k": top_k, "accuracy": accuracy,
                    "per_class": dict(zip(CLASSES, per_class, strict=True)),
                    "images_per_second": round(speed, 1), "most_common_imagenet_top1": common,
                })
    return rows


def _most_common(values: np.ndarray, n: int) -> list[tuple[int, int]]:
    ids, counts = np.unique(values, return_counts=True)
    order = np.argsort(-counts)[:n]
    return [(int(ids[i]), int(counts[i])) for i in order]


def print_table(rows: list[dict], best: dict, n: int) -> None:
    overall = max(rows, key=lambda r: r["accuracy"])
    print(f"\nFashion-MNIST test, zero-shot top-1 through the label bridge (n={n}, chance 10 %)")
    print(f"{'input':<9} {'top-k':>5}  {'prompts':<58} {'top-1':>6}")
    for row in rows:
        mark = "  <- best (images as they are)" if row is best else ""
        mark += "  <- best overall" if row is overall and row["input"] != "plain" else ""
        accuracy = 100 * row["accuracy"]
        print(f"{row['input']:<9} {row['bridge_top_k']:>5}  {row['prompts']:<58} {accuracy:5.1f}%{mark}")
    setting = f"{best['input']}, top-{best['bridge_top_k']}, {best['prompts']}"
    print(f"\nper-class accuracy of the best ({setting}):")
    for name, accuracy in best["per_class"].items():
        print(f"  {name:<12} {100 * accuracy:5.1f}%")
    plain = [r for r in rows if r["input"] == "plain"]
    if plain:
        common = ", ".join(plain[0]["most_common_imagenet_top1"])
        print(f"\nmost common ImageNet top-1 labels (plain): {common}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="only the first N test images (quick run)")
    parser.add_argument(
        "--variants", default="plain,inverted",
        help="comma list: plain (white garment on black, as the data set is) and/or inverted",
    )
    args = parser.parse_args()
    images, labels = load_split("t10k", args.limit)
    analyzer = Analyzer(Settings.from_env(ocr_mode="never"))
    rows = evaluate(analyzer, images, labels, args.variants.split(","))
    plain = [r for r in rows if r["input"] == "plain"] or rows
    best = max(plain, key=lambda r: r["accuracy"])
    print_table(rows, best, len(labels))
    write_json(rows, best, len(labels), analyzer, args)


def write_json(rows: list[dict], best: dict, n: int, analyzer: Analyzer, args: argparse.Namespace) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / ("fashion_mnist.json" if not args.limit else f"fashion_mnist-limit{args.limit}.json")
    report = {
        "benchmark": "fashion-mnist zero-shot (label bridge)", "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {_cpus()} cores, no GPU", "n": n,
        "command": "bench/eval_fashion_mnist.py " + " ".join(sys.argv[1:]),
        "image_model": analyzer.model("image").model_id, "text_encoder": analyzer.model("text").model_id,
        "best": {k: best[k] for k in ("input", "prompts", "bridge_top_k", "accuracy", "per_class")},
        "inverted": "255 - pixel: a dark garment on white, like product photos (a benchmark variant only)",
        "rows": rows,
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {path}")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
