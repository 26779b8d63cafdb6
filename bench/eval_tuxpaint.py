"""Text -> image retrieval on the Tux Paint stamps: recall@1/5/10 of the English captions.

Images: the PNG stamps that have a caption file (``NAME.txt``, first line = English caption), leaving out
PNG renderings of SVG stamps (a ``.svg`` with the same stem: "skip SVG"), mirrored copies (no caption) and,
unless ``--include-alphabets``, the letter glyphs under ``symbols/alphabets`` (not photos). Queries are the
distinct captions; a hit is any image with the identical caption in the top K. OCR is off
(``ocr_mode="never"``): stamps carry no text worth reading, and the figure is about the image vectors.

Two figures:
- **bridge vector only**: the "labels" vector indexing makes (``perceive_image`` + ``embed``), cosine
  against the caption's text vector;
- **bridge in class space**: each caption's softmax over its cosines with the label vectors (its vector moved
  toward its nouns described as the classes are: ``polymodal.space.bridge.described``) against each image's
  class probabilities (``polymodal.space.bridge.class_match``), every image scored, as search does;
- **full search**: the PNGs indexed with ``Collection.index`` into a temporary store, queried with
  ``Collection.search(caption, modality="image", k=10)`` (vector + BM25 over the labels, fused);
- **full search, names hidden**: the same with each PNG copied under a number (``0042.png``), so nothing is
  found by its file or folder name (a folder of camera photos); its hits and then its weaker matches, since
  few captions find anything above the cut-off from the pixels alone.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/eval_tuxpaint.py [--limit N] [--with-models DIR ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from polymodal.analysis import Analyzer
from polymodal.collection import Collection
from polymodal.config import Settings
from polymodal.space import bridge as bridges

STAMPS = Path("/usr/share/tuxpaint/stamps")
RESULTS = Path(__file__).resolve().parent / "results"
KS = (1, 5, 10)
# FINDINGS.md (2026-11-22): USE-multilingual, label bridge T=10, 498 captions against 538 PNGs.
FINDINGS = {"R@1": 17.5, "R@5": 29.1, "R@10": 33.9}
Ranks = list[int | None]  # per query: 0-based rank of the first correct image, None if not in the top 10


@dataclass(frozen=True)
class Stamp:
    path: Path
    caption: str
    category: str


def collect(root: Path, include_alphabets: bool = False) -> list[Stamp]:
    stamps: list[Stamp] = []
    for png in sorted(root.rglob("*.png")):
        caption_file = png.with_suffix(".txt")
        if not caption_file.exists() or png.with_suffix(".svg").exists():
            continue
        if not include_alphabets and "alphabets" in png.relative_to(root).parts:
            continue
        lines = caption_file.read_text(encoding="utf-8", errors="replace").splitlines()
        if lines and lines[0].strip():
            stamps.append(Stamp(png, lines[0].strip(), png.relative_to(root).parts[0]))
    return stamps


def limit_queries(stamps: list[Stamp], limit: int | None) -> list[Stamp]:
    """The stamps of the first ``limit`` distinct captions (all images of each), for quick runs."""
    if not limit:
        return stamps
    keep = list(dict.fromkeys(s.caption for s in stamps))[:limit]
    return [s for s in stamps if s.caption in set(keep)]


def first_hit_ranks(ranked_captions: list[list[str]], queries: list[str]) -> Ranks:
    """0-based rank of the first image with the query's caption, or None if not in the list."""
    pairs = zip(queries, ranked_captions, strict=True)
    return [next((r for r, c in enumerate(found) if c == q), None) for q, found in pairs]


def recalls(ranks: Ranks) -> dict[str, float]:
    return {f"R@{k}": 100 * sum(r is not None and r < k for r in ranks) / len(ranks) for k in KS}


def bridge_only(analyzer: Analyzer, stamps: list[Stamp], queries: list[str]) -> tuple[Ranks, Ranks, float]:
    """Ranks from the label-bridge vectors alone, from the bridge in class space, and the seconds spent making
    the image vectors."""
    started = time.perf_counter()
    classifier = analyzer.model("image")
    vectors, features = [], []
    for i, stamp in enumerate(stamps):
        analysis = analyzer.perceive_image(stamp.path, "png")
        analyzer.embed(analysis)
        vectors.append(next(v.vector for v in analysis.vectors if v.kind == "labels"))
        features.append(analysis.features[classifier.model_id])
        _progress("perceived", i + 1, len(stamps))
    seconds = time.perf_counter() - started
    encoder = analyzer.model("text")
    texts = encoder.encode(queries)
    probabilities = classifier.probabilities(np.stack(features))
    described = [bridges.described(encoder, query, text) for query, text in zip(queries, texts, strict=True)]
    named = np.stack([analyzer.bridge("image").named_classes(text) for text in described])
    by_class = [bridges.class_match(row, probabilities) for row in named]
    return _ranks(texts @ np.stack(vectors).T, stamps, queries), _ranks(np.stack(by_class), stamps, queries), seconds


def _ranks(similarities: np.ndarray, stamps: list[Stamp], queries: list[str]) -> Ranks:
    order = np.argsort(-similarities, axis=1)[:, : max(KS)]
    return first_hit_ranks([[stamps[j].caption for j in row] for row in order], queries)


def full_search(
    settings: Settings, stamps: list[Stamp], queries: list[str], with_weaker: bool = False
) -> tuple[Ranks, dict]:
    """Ranks from the product path: index the PNGs, then ``Collection.search`` each caption (its hits, then its
    weaker matches when ``with_weaker``)."""
    caption_of = {str(s.path.absolute()): s.caption for s in stamps}
    with Collection(settings=settings) as collection:
        report = collection.index(*[s.path for s in stamps])
        if report.errors:
            print(f"  {len(report.errors)} indexing errors, first: {report.errors[0]}", file=sys.stderr)
        started = time.perf_counter()
        ranked = []
        for i, query in enumerate(queries):
            result = collection.search(query, modality="image", k=max(KS))
            hits = result.hits + (result.weaker if with_weaker else [])
            ranked.append([caption_of.get(hit.path, "") for hit in hits][: max(KS)])
            _progress("searched", i + 1, len(queries))
        per_query_ms = 1000 * (time.perf_counter() - started) / len(queries)
    timing = {"index_seconds": round(report.seconds, 1), "index_outcomes": dict(report.outcomes),
              "search_ms_per_query": round(per_query_ms, 1)}
    return first_hit_ranks(ranked, queries), timing


def names_hidden(stamps: list[Stamp], folder: Path) -> list[Stamp]:
    """The stamps copied into ``folder`` under their number: nothing to find by name."""
    copies = []
    for i, stamp in enumerate(stamps):
        copy = folder / f"{i:04d}.png"
        shutil.copyfile(stamp.path, copy)
        copies.append(Stamp(copy, stamp.caption, stamp.category))
    return copies


def by_category(stamps: list[Stamp], queries: list[str], ranks: Ranks, k: int = 5) -> dict[str, dict]:
    categories = {s.caption: s.category for s in stamps}  # a caption shared across folders: its last one
    grouped: dict[str, list[int | None]] = defaultdict(list)
    for query, rank in zip(queries, ranks, strict=True):
        grouped[categories[query]].append(rank)
    return {c: {"n": len(r), f"R@{k}": round(recalls(r)[f"R@{k}"], 1)} for c, r in sorted(grouped.items())}


def _progress(what: str, done: int, total: int) -> None:
    if done % 100 == 0 or done == total:
        print(f"  {what} {done}/{total}", file=sys.stderr)


def print_table(results: dict, n_images: int, n_queries: int) -> None:
    print(f"\nTux Paint text->image, {n_queries} distinct English captions against {n_images} PNG stamps")
    print(f"{'method':<44} {'R@1':>6} {'R@5':>6} {'R@10':>6}")
    for name, row in results.items():
        print(f"{name:<44} {row['R@1']:6.1f} {row['R@5']:6.1f} {row['R@10']:6.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="only the first N distinct captions (and their images)")
    parser.add_argument("--include-alphabets", action="store_true", help="keep the 158 letter glyphs")
    parser.add_argument("--with-models", action="append", type=Path, default=[], metavar="DIR",
                        help="an open-vocabulary model (CLIP, SigLIP, Chinese-CLIP, CLAP) beside the bundled space")
    args = parser.parse_args()
    from polymodal import spaces

    os.environ.update(spaces.environment_for(args.with_models))  # POLYMODAL_MODEL_PATH_IMAGE_TEXT / _AUDIO_TEXT
    stamps = limit_queries(collect(STAMPS, args.include_alphabets), args.limit)
    queries = list(dict.fromkeys(s.caption for s in stamps))
    with tempfile.TemporaryDirectory(prefix="pm-tuxpaint-") as store:
        settings = Settings.from_env(store=Path(store), ocr_mode="never")
        analyzer = Analyzer(settings)
        bridge_ranks, class_ranks, perceive_seconds = bridge_only(analyzer, stamps, queries)
        search_ranks, timing = full_search(settings, stamps, queries)
    with tempfile.TemporaryDirectory(prefix="pm-tuxpaint-") as store, tempfile.TemporaryDirectory() as folder:
        settings = Settings.from_env(store=Path(store), ocr_mode="never")
        unnamed_ranks, _ = full_search(settings, names_hidden(stamps, Path(folder)), queries, with_weaker=True)
    results = {
        "bridge vector only (labels, T=10)": recalls(bridge_ranks),
        "bridge in class space (class match only)": recalls(class_ranks),
        "full search (Collection.search, fused)": recalls(search_ranks),
        "full search, names hidden (+ weaker matches)": recalls(unnamed_ranks),
        "FINDINGS.md bridge (498 q / 538 img)": FINDINGS,
    }
    print_table(results, len(stamps), len(queries))
    categories = by_category(stamps, queries, search_ranks)
    parts = [f"{c} {v['R@5']:.0f} (n={v['n']})" for c, v in categories.items()]
    print("\nfull search R@5 by category: " + ", ".join(parts))
    timing["perceive_images_per_second"] = round(len(stamps) / perceive_seconds, 1)
    write_json(args, analyzer, results, categories, timing, len(stamps), len(queries))


def write_json(args: argparse.Namespace, analyzer: Analyzer, results: dict, categories: dict, timing: dict,
               n_images: int, n_queries: int) -> None:
    RESULTS.mkdir(exist_ok=True)
    suffix = ("-alphabets" if args.include_alphabets else "") + (f"-limit{args.limit}" if args.limit else "")
    suffix += "-with-models" if args.with_models else ""
    path = RESULTS / f"tuxpaint{suffix}.json"
    report = {
        "benchmark": "tuxpaint text->image recall@k", "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, no GPU",
        "command": "bench/eval_tuxpaint.py " + " ".join(sys.argv[1:]),
        "n_images": n_images, "n_queries": n_queries, "ocr_mode": "never",
        "image_model": analyzer.model("image").model_id, "encoder": analyzer.encoder_id,
        "results": results, "full_search_by_category": categories, "timing": timing,
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
