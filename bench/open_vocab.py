"""What an open-vocabulary image tower adds to indexing and search (issue 18), in one run on this machine.

No real CLIP weights can be installed here, so the model is a **randomly initialised CLIP of the real ViT-B/32
architecture** (``CLIPConfig()``'s defaults are openai/clip-vit-base-patch32's sizes: 12-layer 768-d vision
transformer with 32 px patches at 224 px, 12-layer 512-d text transformer, 512-d projections; 151 M parameters),
saved in the transformers layout and exported to ONNX. Its speed and memory are those of the real model; its
vectors mean nothing, so quality is not measured here (a user runs ``bench/eval_relevance.py --with-models DIR``
and ``bench/eval_tuxpaint.py --with-models DIR`` on their own weights).

Measured in one process, on the same photos (``perf_data.photo_mix``: one third 12 MP, two thirds 1-2 MP JPEGs):
1. today's pipeline: ``Collection.index`` of the folder into a fresh store (bundled models warmed first);
2. the image tower, each layout: ``polymodal.spaces.embed_space`` over the stored photos (it re-reads each photo as
   a reduced JPEG decode, as the pipeline does, then runs the tower in batches of 8), as photos/s and as a
   ratio to (1); the share of it that is decoding (what reusing the pipeline's decoded draft would save);
3. query latency added: ``Collection.search`` of text queries with and without the space (the text tower's
   first call, then warm, and a repeated query, whose vector is cached);
4. memory: resident memory added by loading each layout, and the process's peak.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/open_vocab.py [--photos 60] [--json bench/results/open_vocab.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf_data  # noqa: E402
from perf_util import load_average, machine, peak_rss_mb, rss_mb  # noqa: E402

from polymodal import spaces  # noqa: E402
from polymodal.collection import Collection  # noqa: E402
from polymodal.config import Settings  # noqa: E402
from polymodal.models import open_vocab  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / ".cache" / "open-vocab-bench"
QUERIES = [
    "a woman in a space suit", "a cup of coffee", "a cat sleeping", "a rocket on the launch pad", "red flowers",
    "a motorcycle", "a palace in Beijing", "people at the beach", "a dog in the snow", "a bowl of fruit",
]  # fmt: skip
SENTENCES = QUERIES + ["a photo of a cat", "a photo of a dog", "an astronaut", "一只猫", "一杯咖啡"]


def vit_b32(folder: Path) -> Path:
    """A randomly initialised CLIP ViT-B/32 in the transformers layout (made once), with a small BPE tokenizer."""
    if (folder / "model.safetensors").is_file():
        return folder
    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    specials = ["<|endoftext|>", "<|startoftext|>"]
    trainer = trainers.BpeTrainer(vocab_size=1000, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tokenizer.train_from_iterator(SENTENCES, trainer)
    marks = [(t, tokenizer.token_to_id(t)) for t in ("<|startoftext|>", "<|endoftext|>")]
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>", special_tokens=marks
    )
    torch.manual_seed(0)
    ids = {"bos_token_id": marks[0][1], "eos_token_id": marks[1][1], "pad_token_id": marks[1][1]}
    config = transformers.CLIPConfig(text_config={**ids, "vocab_size": 49408})  # ViT-B/32's sizes otherwise
    model = transformers.CLIPModel(config).eval()
    tmp = folder.with_suffix(".part")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save(str(tmp / "tokenizer.json"))
    (tmp / "tokenizer_config.json").write_text(json.dumps({"pad_token": "<|endoftext|>", "model_max_length": 77}))
    processor = {"image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"shortest_edge": 224},
                 "resample": 3, "do_center_crop": True, "crop_size": {"height": 224, "width": 224},
                 "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, "do_convert_rgb": True,
                 "image_mean": [0.48145466, 0.4578275, 0.40821073],
                 "image_std": [0.26862954, 0.26130258, 0.27577711]}  # fmt: skip  (openai/clip-vit-base-patch32's)
    (tmp / "preprocessor_config.json").write_text(json.dumps(processor))
    (tmp / "README.md").write_text("Random CLIP ViT-B/32 for speed figures (its vectors mean nothing)\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def onnx_of(source: Path, folder: Path) -> Path:
    if not (folder / "vision_model.onnx").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        open_vocab.export_onnx(source, folder, "image-text")
    return folder


def decode_seconds(collection: Collection, count: int) -> float:
    """Seconds the space's re-reading of the photos takes alone (reduced JPEG decodes, in the indexer's threads)."""
    from concurrent.futures import ThreadPoolExecutor

    from polymodal.media.image import open_image

    paths = [row.path for row in collection.store.files_under("/")][:count]
    started = time.perf_counter()
    with ThreadPoolExecutor(collection.settings.threads) as pool:
        list(pool.map(lambda p: open_image(Path(p), collection.settings.max_image_pixels, draft_to=256).size, paths))
    return time.perf_counter() - started


def query_latency(collection: Collection) -> dict[str, Any]:
    """Milliseconds of ``Collection.search`` per text query (each query once, then the first one again)."""
    times = []
    for query in QUERIES:
        started = time.perf_counter()
        collection.search(query)
        times.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    collection.search(QUERIES[0])
    repeated = (time.perf_counter() - started) * 1000
    return {"first_ms": round(times[0], 1), "median_ms": round(statistics.median(times[1:]), 1),
            "repeated_query_ms": round(repeated, 1)}  # fmt: skip


def measure(photos: int) -> dict[str, Any]:
    folder = perf_data.photo_mix(photos)
    source = vit_b32(MODELS / "clip-vit-b32-random")
    layouts = {"transformers": source, "onnx": onnx_of(source, MODELS / "clip-vit-b32-random-onnx")}
    work = Path(tempfile.mkdtemp(prefix="open-vocab-bench-"))
    settings = Settings.from_env(store=work / "store")
    out: dict[str, Any] = {"photos": photos, "folder": str(folder.relative_to(REPO))}
    try:
        with Collection(settings=settings) as collection:
            collection.analyzer.analyze_file(perf_data.samples() / "photos" / "coffee.jpg")  # models loaded, warm
            started = time.perf_counter()
            report = collection.index(folder)
            pipeline = time.perf_counter() - started
            assert report.outcomes.get("analyzed") == photos, report.outcomes
            out["pipeline"] = {"seconds": round(pipeline, 2), "photos_per_s": round(photos / pipeline, 2)}
            out["search_without_space"] = query_latency(collection)
            out["decode_only_seconds"] = round(decode_seconds(collection, photos), 2)
            for layout, directory in layouts.items():
                out[layout] = one_layout(collection, settings, directory, photos, pipeline)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def one_layout(collection: Collection, settings: Settings, directory: Path, photos: int,
               pipeline: float) -> dict[str, Any]:  # fmt: skip
    gc.collect()
    before = rss_mb()
    started = time.perf_counter()
    space = spaces.add_space(collection.store, settings, "image-text", directory)  # loads both towers
    loaded = time.perf_counter() - started
    after_load = rss_mb()
    done = spaces.embed_space(collection.store, settings, space)
    assert done["embedded"] == photos and not done["errors"], done
    seconds = done["seconds"]
    result = {
        "model_id": space.model_id,
        "files_mb": round(open_vocab.detect_layout(directory, "image-text").size() / 1e6, 1),
        "load_and_hash_seconds": round(loaded, 2),
        "embed_seconds": round(seconds, 2),
        "photos_per_s": round(photos / seconds, 2),
        "added_cost_ratio": round(seconds / pipeline, 3),
        "rss_added_by_loading_mb": round(after_load - before, 1),
        "rss_after_embedding_mb": rss_mb(),
        "search_with_space": query_latency(collection),
    }
    spaces.remove_space(collection.store, "image-text")
    spaces.unload()  # before the next layout, so that its memory is measured alone
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=60, help="photos in the mix (default 60)")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "open_vocab.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    load = load_average()
    result = measure(args.photos)
    result.update(
        model="randomly initialised CLIP of the real ViT-B/32 architecture (openai/clip-vit-base-patch32's sizes); "
        "speed and memory are the real model's, its vectors mean nothing: quality is not measured here",
        date=str(date.today()),
        machine=machine(),
        load_average_before=load,
        load_average_after=load_average(),
        command=f"HF_HUB_OFFLINE=1 .venv/bin/python bench/open_vocab.py --photos {args.photos}",
    )
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
