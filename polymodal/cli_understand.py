"""Command-line faces of the understanding tasks: classify, transcribe, read, tag, describe, ask, analyze.

Parsing and display only; the work is in :mod:`polymodal.tasks`. No store is needed: each handler builds an
:class:`~polymodal.analysis.Analyzer` from the settings, so only the models a command uses are loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from polymodal.cli import _dumps, json_safe, naming, printable

EXIT_OK = 0


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    classify = sub.add_parser(
        "classify", parents=[common], help="zero-shot: score your labels for an image, a sound or a text"
    )
    classify.add_argument("file", nargs="?", type=Path, help="an image, audio or text file")
    classify.add_argument("--text", help="classify this text instead of a file")
    classify.add_argument(
        "--labels", required=True, help="comma-separated, English or Chinese: 'cat,dog,bird' or '狗叫,警报,说话'"
    )
    classify.add_argument("-k", "--top-k", type=int, help="show only the best K labels (scores stay over all)")
    classify.add_argument("--template", help="prompt with {} for the label, e.g. 'a drawing of a {}'")

    transcribe = sub.add_parser("transcribe", parents=[common], help="speech to text with times")
    transcribe.add_argument("file", type=Path, help="audio or video file")
    transcribe.add_argument(
        "--format", choices=["txt", "srt", "vtt", "json"], help="subtitle / text output (default: a listing)"
    )
    transcribe.add_argument("--language", help="force the language: en, zh, ... (default: detect)")
    transcribe.add_argument("--words", action="store_true", help="word timestamps (in --format json)")
    transcribe.add_argument("-o", "--output", type=Path, help="write to this file instead of the terminal")

    read = sub.add_parser("read", parents=[common], help="OCR: text lines with boxes, and a chart's or page's layout")
    read.add_argument("file", type=Path, help="an image: scan, screenshot, chart, photo of a page")

    tag = sub.add_parser("tag", parents=[common], help="sound events (AudioSet classes) with start and end times")
    tag.add_argument("file", type=Path, help="audio or video file")
    tag.add_argument("--threshold", type=float, default=0.2, help="event score threshold (default 0.2)")
    tag.add_argument("--min-duration", type=float, default=0.5, help="shortest event in seconds (default 0.5)")
    tag.add_argument("-k", "--top-k", type=int, default=5, help="clip-level tags to show (default 5)")

    llm = argparse.ArgumentParser(add_help=False)
    llm.add_argument("--llm", help="local LLM: qwen2.5-1.5b (default), qwen2.5-0.5b, or none (templates only)")
    llm.add_argument(
        "--provider",
        help='a remote model instead, as JSON or a JSON file: {"kind": "openai"|"anthropic", "url": ..., '
        '"model": ..., "api_key_env": ..., "timeout": 60, "retries": 2}',
    )

    describe = sub.add_parser(
        "describe", parents=[common, llm], help="a caption for an image, recording, video (a timeline) or document"
    )
    describe.add_argument("file", type=Path)

    ask = sub.add_parser("ask", parents=[common, llm], help="answer a question about a file from its evidence")
    ask.add_argument("file", type=Path)
    ask.add_argument("question")

    analyze = sub.add_parser(
        "analyze", parents=[common, llm], help="a report on several files: each, then together (md, html, json)"
    )
    analyze.add_argument("files", nargs="+", type=Path)
    analyze.add_argument("--out", type=Path, help="write the report here; the format follows the extension")


def _analyzer(args: argparse.Namespace) -> Any:
    from polymodal.analysis import Analyzer
    from polymodal.config import Settings

    return Analyzer(Settings.from_env(store=args.store, **_phraser_settings(args)))


def _phraser_settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if getattr(args, "llm", None):
        settings["llm"] = args.llm
    if getattr(args, "provider", None):
        text = args.provider
        if not text.lstrip().startswith("{"):
            text = Path(text).expanduser().read_text(encoding="utf-8")
        settings["provider"] = json.loads(text)
    return settings


def _emit(args: argparse.Namespace, result: Any) -> int:
    if args.json:
        print(_dumps(result.to_dict()))
    else:
        print(printable(result.to_text(), keep="\n\t"))
    return EXIT_OK


def cmd_classify(args: argparse.Namespace) -> int:
    from polymodal.tasks.classify import classify, parse_labels

    if (args.file is None) == (args.text is None):
        raise ValueError("give either a file or --text")
    labels = parse_labels(args.labels)
    with naming(args.file):
        result = classify(_analyzer(args), args.file, labels, args.top_k, args.template, text=args.text)
    return _emit(args, result)


def cmd_transcribe(args: argparse.Namespace) -> int:
    from polymodal.tasks.transcribe import transcribe

    with naming(args.file):
        result = transcribe(_analyzer(args), args.file, language=args.language, words=args.words)
    fmt = "json" if args.json else args.format
    text = result.render(fmt) if fmt else result.to_text() + "\n"
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {printable(args.output)} ({len(result.segments)} segments, {result.language})")
    else:
        print(json_safe(text) if fmt == "json" else printable(text, keep="\n\t"), end="")
    return EXIT_OK


def cmd_read(args: argparse.Namespace) -> int:
    from polymodal.tasks.read import read

    with naming(args.file):
        result = read(_analyzer(args), args.file)
    return _emit(args, result)


def cmd_tag(args: argparse.Namespace) -> int:
    from polymodal.tasks.tag import tag

    with naming(args.file):
        result = tag(_analyzer(args), args.file, args.threshold, args.min_duration, args.top_k)
    return _emit(args, result)


def _exists(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    return path


def cmd_describe(args: argparse.Namespace) -> int:
    from polymodal.tasks.describe import describe

    with naming(args.file):
        result = describe(_analyzer(args), _exists(args.file))
    return _emit(args, result)


def cmd_ask(args: argparse.Namespace) -> int:
    from polymodal.tasks.ask import ask

    with naming(args.file):
        result = ask(_analyzer(args), _exists(args.file), args.question)
    return _emit(args, result)


def cmd_analyze(args: argparse.Namespace) -> int:
    from polymodal.tasks.analyze import analyze
    from polymodal.tasks.report import format_for

    files = [_exists(path) for path in args.files]
    if args.out:
        format_for(args.out)  # an unknown extension fails before minutes of work

    reading: list[str] = []  # the file being analyzed, named in its error

    def progress(done: int, total: int, current: str) -> None:
        reading[:] = [current] if current else []
        if not args.json and current:
            print(f"[{done + 1}/{total}] {printable(Path(current).name)}", file=sys.stderr)

    with naming(lambda: reading[0] if reading else None):
        report = analyze(_analyzer(args), files, progress=progress)
    if args.out:
        report.write(args.out)
        if args.json:
            print(_dumps({"out": str(args.out), "seconds": round(report.seconds, 1)}, indent=None))
        else:
            print(f"wrote {printable(args.out)} ({len(report.items)} items, {report.seconds:.1f} s)")
        return EXIT_OK
    return _emit(args, report)


COMMANDS = {
    "classify": cmd_classify,
    "transcribe": cmd_transcribe,
    "read": cmd_read,
    "tag": cmd_tag,
    "describe": cmd_describe,
    "ask": cmd_ask,
    "analyze": cmd_analyze,
}
