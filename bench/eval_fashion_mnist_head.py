"""Fashion-MNIST with a trained image head (60k train / 10k test) against the zero-shot label bridge (21.7 %).

Features come from the product's image adapter exactly as in bench/eval_fashion_mnist.py (grey 28x28 -> RGB ->
``classifier_input`` -> EfficientNet-Lite0 in batches): the 1280-d pooled features and the label-bridge vector
(top-10 labels), i.e. the "image" vector of :mod:`polymodal.train.features`. They are extracted once (~10 min
on two cores) and cached as .npy under ``$POLYMODAL_CACHE/bench/fashion-mnist/``. The head is the product's
early-fusion network with the image modality only (:func:`polymodal.train.fusion.fit`), early stopping on a
stratified 10 % of the training set; the test set is scored once.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/eval_fashion_mnist_head.py [--limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_fashion_mnist import BATCH, CLASSES, load_split  # noqa: E402

from polymodal.analysis import Analyzer  # noqa: E402
from polymodal.config import Settings  # noqa: E402
from polymodal.media.image import classifier_input  # noqa: E402
from polymodal.train.features import FeatureTable  # noqa: E402
from polymodal.train.fusion import FusionConfig, fit  # noqa: E402
from polymodal.train.metrics import compute  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ZERO_SHOT = json.loads((RESULTS / "fashion_mnist.json").read_text())["best"]["accuracy"]
CHUNK = 5000


def features(analyzer: Analyzer, split: str, images: np.ndarray) -> np.ndarray:
    """(n, 1280 + 512) image vectors, extracted in chunks of 5000 and cached (float16) under the cache dir."""
    folder = analyzer.settings.cache / "bench" / "fashion-mnist" / analyzer.model("image").model_id.replace("@", "-")
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for first in range(0, len(images), CHUNK):
        size = min(CHUNK, len(images) - first)
        path = folder / f"{split}-{first // CHUNK:03d}-n{size}-{analyzer.bridge_id.replace('/', '_')}.npy"
        if not path.exists():
            started = time.perf_counter()
            chunk = _extract(analyzer, images[first : first + CHUNK]).astype(np.float16)
            np.save(path.with_suffix(".tmp.npy"), chunk)
            path.with_suffix(".tmp.npy").replace(path)
            rate = len(chunk) / (time.perf_counter() - started)
            print(f"  {split}: {first + len(chunk)}/{len(images)} images ({rate:.0f}/s)", file=sys.stderr)
        parts.append(np.load(path))
    return np.concatenate(parts).astype(np.float32)[: len(images)]


def _extract(analyzer: Analyzer, images: np.ndarray) -> np.ndarray:
    from PIL import Image

    model, bridge, top_k = analyzer.model("image"), analyzer.bridge("image"), analyzer.settings.bridge_top_k
    rows = []
    for start in range(0, len(images), BATCH):
        batch = np.stack([classifier_input(Image.fromarray(g).convert("RGB")) for g in images[start : start + BATCH]])
        for result in model.analyze(batch):
            vector = bridge.vector(bridge.top_labels(result.probabilities, top_k))
            rows.append(np.concatenate([result.features, vector]))
    return np.stack(rows)


def table(vectors: np.ndarray, labels: np.ndarray) -> FeatureTable:
    mask = np.zeros((len(labels), 3), bool)
    mask[:, 1] = True  # image only
    return FeatureTable({"image": vectors}, mask, [CLASSES[i] for i in labels], list(range(len(labels))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="only the first N training and N test images (quick runs)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    analyzer = Analyzer(Settings.from_env())
    (train_x, train_y), (test_x, test_y) = load_split("train", args.limit), load_split("t10k", args.limit)
    train_v, test_v = features(analyzer, "train", train_x), features(analyzer, "t10k", test_x)
    config = FusionConfig(fusion="early", hidden=256, batch_size=256, max_epochs=60, patience=8, val_fraction=0.1,
                          modality_dropout=0.0, seed=args.seed)  # fmt: skip
    started = time.perf_counter()
    model = fit(table(train_v, train_y), CLASSES, config, verbose=True, desc="fashion-mnist head")
    seconds = time.perf_counter() - started
    metrics = compute(test_y, model.predict(table(test_v, test_y)), CLASSES)
    print(f"\nFashion-MNIST, {len(train_y)} train / {len(test_y)} test images, EfficientNet-Lite0 features")
    print(f"{'method':<48} {'top-1 %':>8}")
    print(f"{'zero-shot label bridge (bench/eval_fashion_mnist)':<48} {100 * ZERO_SHOT:8.1f}")
    print(f"{'trained image head (features + bridge vector)':<48} {100 * metrics.accuracy:8.1f}")
    print(f"macro-F1 {metrics.macro_f1:.3f}; trained {len(model.history.train_loss)} epochs "
          f"(best {model.history.best_epoch}) in {seconds:.0f} s")  # fmt: skip
    print("per class recall: " + ", ".join(f"{c} {v['recall']:.2f}" for c, v in metrics.per_class.items()))
    write_json(args, analyzer, metrics, model, seconds, len(train_y))


def write_json(args: argparse.Namespace, analyzer: Analyzer, metrics, model, seconds: float, n_train: int) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"fashion_mnist_head{f'-limit{args.limit}' if args.limit else ''}.json"
    report = {
        "benchmark": "fashion-mnist trained image head vs zero-shot", "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, no GPU",
        "command": "bench/eval_fashion_mnist_head.py " + " ".join(sys.argv[1:]),
        "n_train": n_train, "n_test": metrics.n, "image_model": analyzer.model("image").model_id,
        "encoder": analyzer.bridge_id, "zero_shot_accuracy": ZERO_SHOT,
        "head": {"accuracy": round(metrics.accuracy, 4), "macro_f1": round(metrics.macro_f1, 4),
                 "per_class": metrics.per_class, "confusion": metrics.confusion,
                 "epochs": len(model.history.train_loss),
                 "best_epoch": model.history.best_epoch, "train_seconds": round(seconds, 1),
                 "config": model.config.__dict__},
    }  # fmt: skip
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
