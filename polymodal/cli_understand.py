"""Command-line faces of the understanding tasks: classify, transcribe, read, tag, describe, ask, analyze.

Parsing and display only; the work is in :mod:`polymodal.tasks`. No store is needed: each handler builds an
:class:`~polymodal.analysis.Analyzer` from the settings, so only the models a command uses are loaded.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import threading
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from polymodal.cli import _dumps, json_safe, naming, printable, provider_option
from polymodal.errors import InputNotFound, UsageError

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
        "--json-stream",
        action="store_true",
        help="JSON lines as it works: start (with an estimate), step / progress, token ..., then answer",
    )
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
        settings["provider"] = provider_option(args.provider)
    return settings


def _emit(args: argparse.Namespace, result: Any) -> int:
    if args.json:
        print(_dumps(result.to_dict()))
    else:
        print(printable(_text(args, result), keep="\n\t"))
    return EXIT_OK


def _text(args: argparse.Namespace, result: Any) -> str:
    """What a reader sees; with ``--debug``, also the diagnostics (why a caption was revised, ...)."""
    if getattr(args, "debug", False):
        try:
            return result.to_text(debug=True)
        except TypeError:  # a result without diagnostics
            pass
    return result.to_text()


def cmd_classify(args: argparse.Namespace) -> int:
    from polymodal.tasks.classify import classify, parse_labels

    if (args.file is None) == (args.text is None):
        raise UsageError("give either a file or --text")
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
        raise InputNotFound(f"file not found: {path}")
    return path


def cmd_describe(args: argparse.Namespace) -> int:
    from polymodal.tasks.describe import describe

    path = _exists(args.file)
    live = Live(args)

    def work(stop: threading.Event) -> Any:
        analyzer = _analyzer(args)
        facts = _perceive(analyzer, path, live, stop)
        return describe(analyzer, path, facts=facts, on_token=live.token, stop=stop)

    with naming(args.file):
        return live.run(work, _plan(args, [path]))


def cmd_ask(args: argparse.Namespace) -> int:
    from polymodal.tasks.ask import ask

    path = _exists(args.file)
    live = Live(args)

    def work(stop: threading.Event) -> Any:
        analyzer = _analyzer(args)
        facts = _perceive(analyzer, path, live, stop)
        return ask(analyzer, path, args.question, facts=facts, on_token=live.token, stop=stop)

    with naming(args.file):
        return live.run(work, _plan(args, [path]))


def cmd_analyze(args: argparse.Namespace) -> int:
    from polymodal.tasks.analyze import analyze
    from polymodal.tasks.report import format_for

    files = [_exists(path) for path in args.files]
    if args.out:
        format_for(args.out)  # an unknown extension fails before minutes of work
    live = Live(args, stream_tokens=not args.out)
    plans = []
    for path in files:
        with naming(path):  # an unreadable file is named
            plans.append(_plan(args, [path], phrased=True, loads=False))
    reading: list[str] = []  # the file being analyzed, named in its error

    def progress(done: int, total: int, current: str) -> None:
        reading[:] = [current] if current else []
        left = live.costs.estimate(_summary_plan(args)) + sum(live.costs.estimate(p) for p in plans[done:])
        live.progress(done, total, Path(current).name if current else None, left)

    def work(stop: threading.Event) -> Any:
        return analyze(_analyzer(args), files, progress=progress, on_token=live.token, stop=stop)

    plan = _plan(args, [], loads=True)
    plan.parts += [part for each in plans for part in each.parts]
    with naming(lambda: reading[0] if reading else None):
        if not args.out:
            return live.run(work, plan)
        report = live.run(work, plan, show=False)
    report.write(args.out, getattr(args, "debug", False))
    if live.json_stream:
        live.event("written", out=str(args.out), seconds=round(report.seconds, 1))
    elif args.json:
        print(_dumps({"out": str(args.out), "seconds": round(report.seconds, 1)}, indent=None))
    else:
        print(f"wrote {printable(args.out)} ({len(report.items)} items, {report.seconds:.1f} s)")
    return EXIT_OK


# --- answers as they are written ---------------------------------------------------------------------------------
EXIT_STOPPED = 130  # stopped with Ctrl-C, as shells report SIGINT
STOP_WAIT_SECONDS = 5.0  # for the task to end after Ctrl-C (the LLM stops at its next token)
LONG_SECONDS = 8.0  # jobs estimated longer than this say so on stderr


def _perceive(analyzer: Any, path: Path, live: Live, stop: threading.Event) -> Any:
    """The file's facts (the models' evidence): the part before any word is written."""
    from polymodal.providers import Cancelled
    from polymodal.tasks.facts import gather

    live.event("step", message=f"reading {path.name}")
    facts = gather(analyzer, path)
    if stop.is_set():
        raise Cancelled("stopped after reading the file")
    live.event("step", message="writing the answer")
    return facts


def _llm_name(args: argparse.Namespace) -> str | None:
    """The phraser a command will use, as named in cost keys; None for templates only."""
    from polymodal.config import Settings

    settings = Settings.from_env(store=args.store, **_phraser_settings(args))
    if settings.provider:
        return "provider"
    return None if settings.llm == "none" else settings.llm


def _plan(args: argparse.Namespace, files: list[Path], phrased: bool = False, loads: bool = True) -> Any:
    """The work of a command on ``files``: loading models, perceiving each, the LLM's texts (one per file of a
    bundle when ``phrased``, and the answer / caption / summary)."""
    from polymodal.media.detect import detect
    from polymodal.tasks.estimate import Plan, llm_key, perception

    plan, llm = Plan(), llm_key(_llm_name(args))
    if loads:
        plan.add("load")
        if llm and llm != "llm":
            plan.add("load:llm")
    for path in files:
        modality = detect(path).modality
        plan.add(*perception(path, modality))
        if llm and phrased and modality != "text":
            plan.add(llm)
    if llm and loads:
        plan.add(llm)
    return plan


def _summary_plan(args: argparse.Namespace) -> Any:
    from polymodal.tasks.estimate import Plan, llm_key

    llm = llm_key(_llm_name(args))
    return Plan().add(llm) if llm else Plan()


class Live:
    """An answer shown as it is written: the LLM's words on stdout as they come (``--json-stream``: JSON lines),
    the estimate and progress on stderr; Ctrl-C stops the model and keeps what was written."""

    def __init__(self, args: argparse.Namespace, stream_tokens: bool = True):
        from polymodal.config import Settings
        from polymodal.tasks.estimate import Costs

        self.args = args
        self.json_stream = bool(getattr(args, "json_stream", False))
        self.plain = not args.json and not self.json_stream
        self.stream_tokens = stream_tokens
        self.tty = sys.stdout.isatty()
        self.written: list[str] = []
        self.costs = Costs(Settings.from_env(store=args.store).cache)

    # --- what the task reports (from its thread) ---
    def token(self, piece: str) -> None:
        if not piece or not self.stream_tokens:
            return
        self.written.append(piece)
        if self.json_stream:
            self.event("token", text=piece)
        elif self.plain:
            sys.stdout.write(printable(piece, keep="\n\t"))
            sys.stdout.flush()

    def event(self, name: str, **data: Any) -> None:
        if self.json_stream:
            print(_dumps({"event": name, **data}, indent=None), flush=True)

    def progress(self, done: int, total: int, current: str | None, seconds_left: float) -> None:
        from polymodal.tasks.estimate import about

        message = f"reading {current}" if current else "writing the summary"
        self.event("progress", done=done, total=total, current=current, message=message,
                   seconds_left=round(seconds_left, 1))  # fmt: skip
        if self.plain:
            step = f"[{done + 1}/{total}] {printable(current)}" if current else "[summary]"
            print(f"{step} ({about(seconds_left)} left)", file=sys.stderr, flush=True)

    # --- the run ---
    def run(self, work: Callable[[threading.Event], Any], plan: Any, show: bool = True) -> Any:
        """Run ``work(stop)`` on a worker thread, showing it live; the exit status (``show``) or the result.
        Stopped with Ctrl-C, the process ends here with status 130."""
        from polymodal.tasks.estimate import about

        estimate = self.costs.estimate(plan)
        self.event("start", estimate_seconds=round(estimate, 1))
        if self.plain and estimate >= LONG_SECONDS:
            print(f"(this takes {about(estimate)})", file=sys.stderr, flush=True)
        started = time.monotonic()
        result = _in_thread(work)
        if result is _STOPPED:
            self._stopped()
            # Nothing is left to save; the LLM runtime's threads of a stopped generation may still be ending,
            # and interpreter teardown under them can abort the process.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_STOPPED)
        self.costs.learn(plan, time.monotonic() - started)
        return self.show(result) if show else result

    def show(self, result: Any) -> int:
        if self.json_stream:
            self.event("answer", result=result.to_dict())
            return EXIT_OK
        if not self.plain:
            return _emit(self.args, result)
        text = printable(_text(self.args, result), keep="\n\t")
        written = printable("".join(self.written), keep="\n\t")
        if not written.strip():
            print(text)
        elif self.tty:  # the draft is replaced in place by the checked answer and the rest
            sys.stdout.write(_erase(written))
            print(text)
        elif text.startswith(written.strip()):
            print(text[len(written.strip()) :])
        else:  # piped: the draft stays; the checked text follows
            print("\n")
            print(text)
        return EXIT_OK

    def _stopped(self) -> None:
        partial = "".join(self.written)
        if self.json_stream:
            self.event("stopped", text=partial)
        elif self.args.json:
            print(_dumps({"stopped": True, "text": partial}, indent=None))
        elif partial:
            print()
        print("stopped (Ctrl-C); what was written so far is above" if partial else "stopped (Ctrl-C)",
              file=sys.stderr)  # fmt: skip


_STOPPED = object()


def _in_thread(work: Callable[[threading.Event], Any]) -> Any:
    """``work(stop)`` on a worker thread; Ctrl-C sets ``stop`` and gives ``_STOPPED`` once the work has ended
    (or after a few seconds: the process then exits at once rather than wait for models that cannot stop)."""
    from polymodal.providers import Cancelled

    stop = threading.Event()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = work(stop)
        except Cancelled:  # kept without its traceback: that holds the LLM's stopped generation until exit
            outcome["stopped"] = True
        except BaseException as exc:  # re-raised on the main thread, where the CLI reports it
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="polymodal-task", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
    except KeyboardInterrupt:
        stop.set()
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: stop waiting
            thread.join(STOP_WAIT_SECONDS)
        if thread.is_alive():  # perception cannot be interrupted; nothing is left to save
            sys.stdout.flush()
            print("stopped (Ctrl-C)", file=sys.stderr, flush=True)
            os._exit(EXIT_STOPPED)
        return _STOPPED
    if outcome.get("stopped"):
        return _STOPPED
    error = outcome.pop("error", None)  # out of the closure's dict: no reference cycle keeps its frames
    if error is not None:
        raise error
    return outcome["result"]


def _erase(written: str) -> str:
    """Terminal codes that move the cursor back over ``written`` and clear what follows."""
    columns = max(20, shutil.get_terminal_size().columns)
    rows = sum(max(1, -(-_width(line) // columns)) for line in written.split("\n"))
    return "\r" + "\x1b[1A" * (rows - 1) + "\x1b[J"


def _width(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


COMMANDS = {
    "classify": cmd_classify,
    "transcribe": cmd_transcribe,
    "read": cmd_read,
    "tag": cmd_tag,
    "describe": cmd_describe,
    "ask": cmd_ask,
    "analyze": cmd_analyze,
}
