"""``polymodal models add|list|remove``: open-vocabulary models (CLIP, SigLIP, Chinese-CLIP, CLAP) a collection uses
beside the bundled ones. Parsing and display only; the work is in :mod:`polymodal.spaces`.

    polymodal models add image-text ~/models/clip-vit-base-patch32
    polymodal models add audio-text ~/models/clap-htsat-unfused
    polymodal models list
    polymodal models remove image-text

The directory is one the user already has (polymodal never downloads a model); its files are hashed and recorded
in the collection, and the collection's images (or recordings) are embedded with it right away.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

# The kinds of polymodal.models.open_vocab.KINDS, written here so that --help does not import numpy
# (tests/test_open_vocab.py checks they agree).
KINDS = ("image-text", "audio-text")

EXIT_OK = 0


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``models`` command and its subcommands."""
    from polymodal import cli

    models = sub.add_parser(
        "models", parents=[common], help="open-vocabulary models (CLIP, SigLIP, CLAP) beside the bundled ones"
    )
    kinds = models.add_subparsers(dest="models_command", required=True)
    after = cli._options_after_subcommand()
    add = kinds.add_parser(
        "add", parents=[after], help="use a model directory you have: its images or recordings are embedded now"
    )
    add.add_argument("kind", choices=KINDS, help="image-text (CLIP, SigLIP, Chinese-CLIP) or audio-text (CLAP)")
    add.add_argument("directory", type=Path, help="a transformers directory or an ONNX export")
    kinds.add_parser("list", parents=[after], help="the models the collection uses: ids, licences, sizes")
    remove = kinds.add_parser("remove", parents=[after], help="stop using a model; its vectors are deleted")
    remove.add_argument("kind", choices=KINDS)
    models.set_defaults(handler=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    return {"add": _add, "list": _list, "remove": _remove}[args.models_command](args)


def _add(args: argparse.Namespace) -> int:
    from polymodal import spaces
    from polymodal.cli import _collection, _dumps, printable

    collection = _collection(args, create=True)
    space = spaces.add_space(collection.store, collection.settings, args.kind, args.directory)
    record = spaces.recorded(collection.store, args.kind) or {}
    done = spaces.embed_space(collection.store, collection.settings, space, _progress(args))
    out = {"kind": args.kind, **record, "embedded": done["embedded"], "seconds": done["seconds"]}
    out["errors"] = [{"path": p, "reason": r} for p, r in done["errors"]]
    if args.json:
        print(_dumps(out))
    else:
        what = "images" if args.kind == "image-text" else "recordings"
        print(f"{args.kind}: {record['architecture']} ({record['layout']}) from {printable(record['path'])}")
        print(f"  id {record['id']}, {record['bytes'] / 1e6:.1f} MB, licence: {record['licence'] or 'not stated'}")
        print(f"  {done['embedded']} {what} embedded in {done['seconds']:.1f} s")
        for path, reason in done["errors"]:
            print(f"  not embedded: {printable(path)}: {printable(reason)}")
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    from polymodal import spaces
    from polymodal.cli import _collection, _dumps, _table

    collection = _collection(args)
    rows = bundled(collection.analyzer)
    for space in spaces.spaces_of(collection.store, collection.settings):
        record = spaces.recorded(collection.store, space.kind) or {}
        rows.append({
            "kind": space.kind,
            "id": space.model_id,
            "source": f"{space.source}: {space.directory}",
            "licence": record.get("licence") or _stated_licence(space.directory),
            "bytes": record.get("bytes") or _size(space),
            "items": spaces.item_count(collection.store, space),
        })  # fmt: skip
    if args.json:
        print(_dumps({"models": rows}))
        return EXIT_OK
    table = [
        (r["kind"], r["id"], r["licence"] or "?", _megabytes(r["bytes"]), r["source"]) for r in rows
    ]
    _table(["kind", "id", "licence", "size", "from"], table, flexible=(4,))
    return EXIT_OK


def _remove(args: argparse.Namespace) -> int:
    from polymodal import spaces
    from polymodal.cli import _collection, _dumps

    collection = _collection(args)
    removed = spaces.remove_space(collection.store, args.kind)
    setting = collection.settings.model_paths.get(args.kind)
    if args.json:
        print(_dumps({"kind": args.kind, "removed": removed, "still_set_by_environment": bool(setting)}))
    elif removed:
        print(f"{args.kind}: removed; search and classify are as they were before it was added")
    else:
        print(f"{args.kind}: the collection had none")
    if setting:
        variable = "POLYMODAL_MODEL_PATH_" + args.kind.upper().replace("-", "_")
        print(f"note: {variable} still names {setting}: unset it to stop using that model", file=sys.stderr)
    return EXIT_OK


# Licences of the bundled models, by family (USE-m, EfficientNet-Lite0, PP-OCR, Whisper, YAMNet, Silero VAD).
BUNDLED = {
    "text": "MIT",
    "image": "Apache-2.0",
    "ocr": "Apache-2.0",
    "speech": "MIT",
    "sound": "Apache-2.0",
    "vad": "MIT",
}


def bundled(analyzer: Any) -> list[dict[str, Any]]:
    """The bundled models the collection's analyses come from (ids without loading any of them)."""
    rows = []
    for family, licence in BUNDLED.items():
        try:
            model = analyzer.model(family)
        except Exception:  # an adapter whose package is missing: listed as such
            rows.append({"kind": family, "id": "(not installed)", "source": "bundled", "licence": None, "bytes": None})
            continue
        rows.append({"kind": family, "id": model.model_id, "source": "bundled", "licence": licence, "bytes": None})
    return rows


def _stated_licence(directory: Path) -> str | None:
    from polymodal.models.open_vocab import licence

    return licence(directory)


def _size(space: Any) -> int | None:
    from polymodal.models.open_vocab import detect_layout

    try:
        return detect_layout(space.directory, space.kind).size()
    except Exception:  # the directory is gone: its size is unknown, the rest is still listed
        return None


def _megabytes(size: int | None) -> str:
    return "" if size is None else f"{size / 1e6:.1f} MB"


def _progress(args: argparse.Namespace) -> Any:
    if args.json or not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        print(f"\r  embedding {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    return show
