"""polymodal: index, search and understand your text, images, audio and video together, offline on a CPU.

Exit codes: 0 success; 1 an internal error (a bug: one line with an incident id, the traceback in the log and with
--debug) or a failure outside polymodal (a model not installed, a full disk, a remote provider down); 2 bad usage
or input (unknown option or item, missing file, a file that is not what it claims, a bad setting); 3 indexing
finished but some files could not be read (they are listed, and recorded in the store).
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import re
import shutil
import sys
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3

log = logging.getLogger("polymodal.cli")  # not __name__: that is "__main__" under `python -m polymodal.cli`

EXAMPLES = """\
common commands:
  polymodal index ~/Pictures ~/Notes          index folders (again: only what changed)
  polymodal search "a cat on a sofa"          search everything by meaning
  polymodal search --image photo.jpg          find similar pictures
  polymodal search --audio question.wav       ask by voice
  polymodal show photos/coffee.jpg            everything known about one file
  polymodal status                            counts, models, store size, errors
  polymodal describe photo.jpg                a caption (or a video's timeline)
  polymodal ask report.pdf "what is the total?"
  polymodal transcribe meeting.mp3 --format srt
  polymodal serve                             the web page and the HTTP API

settings: options > POLYMODAL_* variables > polymodal.toml in the store > ~/.config/polymodal/polymodal.toml
more help: polymodal COMMAND --help"""


class Parser(argparse.ArgumentParser):
    """argparse that says what was probably meant: "did you mean search?", "--topk is not an option of search"."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {_with_suggestion(message)}\n")

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = _chosen_parser(self, parsed)
            command.error(_unrecognized(command, extras))
        return parsed


def _with_suggestion(message: str) -> str:
    """argparse's "invalid choice" message with the nearest choice: "'serach' is not a polymodal command; did you
    mean search?"."""
    found = re.search(r"argument (\S+): invalid choice: '?([^' ]*)'? \(choose from (.*)\)", message)
    if not found:
        return message
    argument, given, listed = found.groups()
    choices = [a or b for a, b in re.findall(r"'([^']*)'|([^,\s']+)", listed)]
    what = "a polymodal command" if argument in ("command", "COMMAND") else f"a choice of {argument}"
    near = difflib.get_close_matches(given, choices, n=1, cutoff=0.5)
    hint = f"did you mean {near[0]}?" if near else f"choose from {', '.join(choices)}"
    return f"{given!r} is not {what}; {hint}"


def _chosen_parser(parser: argparse.ArgumentParser, parsed: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost subcommand's parser (``keys create``, ``train fusion``), whose options a mistake is about."""
    for action in parser._actions:  # argparse keeps subparsers there; there is no public way in
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(parsed, action.dest or "", None)
            if name in action.choices:
                return _chosen_parser(action.choices[name], parsed)
    return parser


def _unrecognized(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    options = [extra for extra in extras if extra.startswith("-") and len(extra) > 1]
    known = [string for action in parser._actions for string in action.option_strings]
    if options:
        given = options[0].split("=", 1)[0]
        near = difflib.get_close_matches(given, known, n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]}?" if near else f"; see {parser.prog} --help"
        return f"{given} is not an option of {parser.prog}{hint}"
    words = " ".join(extras)
    return f'unexpected {words!r}; a query or name of several words goes in quotes: "a cat on a sofa"'


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("polymodal")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from polymodal import __version__

        return __version__


class _VersionAction(argparse.Action):
    """``--version``, read from the installed package's metadata only when asked (``--help`` stays instant)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any):
        super().__init__(option_strings, dest=dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(f"polymodal {_version()}")
        parser.exit()


def _add_global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """--debug / --log-level / --log-json: before the command, and (``suppress``: unset there does not overwrite
    what was given before) after it."""
    hidden = suppress  # told once, in `polymodal --help`
    default: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}

    def told(text: str) -> str:
        return argparse.SUPPRESS if hidden else text

    parser.add_argument("--debug", action="store_true", help=told("tracebacks and timings per stage"), **default)
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"],
        help=told("what polymodal logs to stderr (default: warning, or $POLYMODAL_LOG_LEVEL)"), **default,
    )  # fmt: skip
    parser.add_argument(
        "--log-json", action="store_true", help=told("log as JSON lines (for services; or $POLYMODAL_LOG_JSON=1)"),
        **default,
    )  # fmt: skip


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number not below ``minimum`` ("-k 0" is refused with what is allowed)."""

    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, not {value}")
        return value

    return whole


def build_parser() -> argparse.ArgumentParser:
    description, _ = __doc__.split("\n", 1)
    parser = Parser(
        prog="polymodal", description=description, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action=_VersionAction, help="the installed version")
    _add_global_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", help="store directory (default: $POLYMODAL_STORE or a per-user data dir)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    _add_global_options(common, suppress=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    index = sub.add_parser("index", parents=[common], help="index files and folders (incremental)")
    index.add_argument("paths", nargs="+", type=Path)
    index.add_argument("--ocr", choices=["auto", "always", "never"], help="OCR policy for images")
    index.add_argument("--aligner", help="a trained aligner (folder, or 'none') the collection uses from now on")
    index.add_argument("--engine", choices=["local", "ray"], default="local", help="where analysis runs")
    index.add_argument("--ray-address", help="HOST:PORT of a Ray cluster (--engine ray; default: a local one)")
    index.add_argument("--ray-workers", type=int, help="Ray actors (--engine ray; default: one per CPU)")
    index.add_argument(
        "--follow-links", action="store_true", help="also index what links out of the folders point to (off: skipped)"
    )

    search = sub.add_parser("search", parents=[common], help="search by text, image, audio, or image + text")
    search.add_argument("text", nargs="?", help="text query (with --image: refines the image)")
    search.add_argument("--image", type=Path, help="an example image")
    search.add_argument("--audio", type=Path, help="a spoken question or a sound")
    search.add_argument("--language", help="the language of a spoken --audio question (zh, en, ...; default: detected)")
    search.add_argument("-k", "--top-k", dest="k", type=at_least(1), default=10, help="number of results (default 10)")
    search.add_argument("--offset", type=at_least(0), default=0, help="results to pass over: the next page (default 0)")
    search.add_argument("--modality", choices=["text", "image", "audio", "video"], help="only items of this kind")
    search.add_argument("--path", help="only items whose path matches this glob, e.g. '*/photos/*'")
    search.add_argument("--person", help="only items showing this person (id or name: `polymodal people`)")
    search.add_argument("--long", action="store_true", help="full paths and every reason, not cut to the terminal")

    show = sub.add_parser("show", parents=[common], help="everything known about one item")
    show.add_argument("item", help="item id or path (absolute, from here, or as search shows it: photos/cat.jpg)")

    sub.add_parser("status", parents=[common], help="counts, models, store size, errors")

    samples = sub.add_parser("samples", parents=[common], help="assemble the sample collection")
    samples.add_argument("dest", type=Path, nargs="?", default=Path("sample-collection"))

    serve = sub.add_parser("serve", parents=[common], help="run the HTTP API and the web page")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--auth", choices=["auto", "on", "off"], default="auto",
        help="API keys: required unless listening on loopback only (auto), always (on), never (off)",
    )  # fmt: skip
    serve.add_argument("--rate-limit", type=int, default=600, help="requests per minute per key (0: no limit)")
    serve.add_argument("--max-upload-mb", type=int, default=200, help="largest uploaded file, in MB")
    serve.add_argument("--max-files", type=int, default=200, help="most files in one upload")
    serve.add_argument("--workers", type=int, default=4, help="threads for text searches")
    serve.add_argument("--media-workers", type=int, default=2, help="threads for image/audio queries and tasks")
    serve.add_argument("--cors-origin", action="append", default=[], help="allow this web origin (CORS is off)")
    serve.add_argument(
        "--allowed-host", action="append", default=[],
        help="also answer requests for this host name without keys (default: loopback names only)",
    )  # fmt: skip
    serve.add_argument(
        "--trusted-proxy", action="append", default=[],
        help="believe X-Forwarded-For from this address or network (a reverse proxy in front)",
    )  # fmt: skip
    serve.add_argument("--no-warm", action="store_true", help="load models on first use, not at start")

    keys = sub.add_parser("keys", parents=[common], help="API keys for the HTTP API: create, list, revoke")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    after = _options_after_subcommand()
    keys_sub.add_parser("create", parents=[after], help="make a key (shown once)").add_argument("name")
    keys_sub.add_parser("list", parents=[after], help="keys and whether they are revoked")
    keys_sub.add_parser("revoke", parents=[after], help="revoke a key by id or name").add_argument("key")

    from polymodal import cli_understand

    cli_understand.add_parsers(sub, common)
    from polymodal import cli_generate, cli_models, cli_people

    cli_models.add_parsers(sub, common)  # models add|list|remove
    cli_people.add_parsers(sub, common)  # people list|name|merge|forget
    cli_generate.add_parsers(sub, common)  # speak, generate text|image|speech
    _add_train_parsers(sub, common)
    return parser


def _options_after_subcommand() -> argparse.ArgumentParser:
    """``--store`` and ``--json`` once more, for after ``keys create|list|revoke``. Unset there, they must not
    overwrite what was given before the subcommand (argparse copies a subparser's defaults over it)."""
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument("--store", default=argparse.SUPPRESS, help="store directory (as before the subcommand)")
    after.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    _add_global_options(after, suppress=True)
    return after


def _add_train_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    train = sub.add_parser("train", help="train a fusion classifier or an aligner on your own data")
    _add_global_options(train, suppress=True)
    kinds = train.add_subparsers(dest="train_command", required=True)
    fusion = kinds.add_parser("fusion", parents=[common], help="a classifier over text + image + audio")
    fusion.add_argument("manifest", type=Path, help="CSV/JSONL: label, text, image, audio (any may be empty)")
    fusion.add_argument("--fusion", choices=["early", "late", "hybrid"], default="early")
    fusion.add_argument("--out", type=Path, required=True, help="folder for the model and its report")
    fusion.add_argument("--folds", type=int, default=0, help="k-fold cross-validation (then a final model on all)")
    fusion.add_argument("--test-split", type=float, default=0.2, help="held-out share when not cross-validating")
    fusion.add_argument("--epochs", type=int, default=200, help="most epochs (early stopping ends sooner)")
    fusion.add_argument("--seed", type=int, default=0)
    align = kinds.add_parser("align", parents=[common], help="an aligner: image/audio features -> the text space")
    align.add_argument("manifest", type=Path, help="CSV/JSONL: image or audio path, text")
    align.add_argument("--out", type=Path, required=True, help="folder for the aligner and its report")
    align.add_argument("--steps", type=int, default=100, help="full-batch training steps (default 100)")
    align.add_argument("--holdout", type=float, default=0.3, help="share of distinct texts held out for recall")
    align.add_argument("--no-refit", action="store_true", help="save the aligner trained without the held-out part")
    align.add_argument("--seed", type=int, default=0)
    evaluate = sub.add_parser("evaluate", parents=[common], help="score a fusion model on a labelled manifest")
    evaluate.add_argument("model", type=Path)
    evaluate.add_argument("manifest", type=Path)
    evaluate.add_argument("--out", type=Path, help="report folder (default: MODEL/eval-MANIFEST)")
    predict = sub.add_parser("predict", parents=[common], help="classify one item with a fusion model")
    predict.add_argument("model", type=Path)
    predict.add_argument("--text")
    predict.add_argument("--image", type=Path)
    predict.add_argument("--audio", type=Path)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    restore_logging: Callable[[], None] | None = None
    try:
        restore_logging = _configure_logging(args)
        from polymodal import cli_understand
        from polymodal.logs import timed

        with timed(f"polymodal {args.command}", log):
            handler = getattr(args, "handler", None) or {**COMMANDS, **cli_understand.COMMANDS}[args.command]
            return handler(args)
    except KeyboardInterrupt:
        print("interrupted; what was indexed so far is kept", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:
        return _failed(args, exc)
    finally:
        if restore_logging is not None:
            restore_logging()


def _configure_logging(args: argparse.Namespace) -> Callable[[], None]:
    from polymodal.logs import LEVELS, configure, default_log_file

    env = os.environ
    default = "info" if args.command == "serve" else "warning"  # a service says what it does; a command is quiet
    level = args.log_level or env.get("POLYMODAL_LOG_LEVEL", default).strip().lower()
    if level not in LEVELS:  # only the variable can be wrong: argparse checked the option
        from polymodal.errors import ConfigError

        raise ConfigError(f"POLYMODAL_LOG_LEVEL must be one of {', '.join(LEVELS)}, not {level!r}")
    as_json = args.log_json or env.get("POLYMODAL_LOG_JSON", "").strip().lower() in ("1", "true", "yes", "on")
    return configure(level, json_lines=as_json, debug=args.debug, log_file=default_log_file())


def _failed(args: argparse.Namespace, exc: Exception) -> int:
    """One line for any error. The user's to fix: exit 2. A failure outside polymodal (a model not installed, a full
    disk): exit 1. Anything else is a bug: exit 1 with an incident id that finds its traceback in the log file."""
    from polymodal.errors import is_outside_error, is_user_error, new_incident_id

    debug = getattr(args, "debug", False)
    if is_user_error(exc) or is_outside_error(exc):
        if debug:
            log.debug("the error's traceback", exc_info=exc)
        message = str(exc.args[0]) if isinstance(exc, KeyError) and type(exc).__str__ is KeyError.__str__ else str(exc)
        return _fail(args, message, EXIT_USAGE if is_user_error(exc) else EXIT_ERROR)
    incident = new_incident_id()
    log.error("internal error %s in `polymodal %s`", incident, args.command, exc_info=exc,
              extra={"incident": incident, "told": True})  # fmt: skip
    from polymodal.logs import log_file_path

    where = "run again with --debug for the traceback" if not debug else "the traceback is above"
    logged = log_file_path()
    if logged is not None and not debug:
        where = f"the traceback is in {logged} (or run again with --debug)"
    message = f"internal error (incident {incident}), a bug in polymodal: {type(exc).__name__}: {exc}; {where}"
    return _fail(args, message, EXIT_ERROR, incident=incident)


def _fail(args: argparse.Namespace, message: str, code: int, incident: str | None = None) -> int:
    if getattr(args, "json", False):
        print(_dumps({"error": message, **({"incident": incident} if incident else {})}, indent=None))
    else:
        print(f"error: {printable(message)}", file=sys.stderr)
    return code


def usage_error(message: str) -> NoReturn:
    """Stop with a user error (exit 2, the message as is)."""
    from polymodal.errors import UsageError

    raise UsageError(message)


@contextmanager
def naming(path: object | Callable[[], object], expects: tuple[str, ...] = ()) -> Iterator[None]:
    """Media errors raised inside name ``path`` (or the file a callable says is being read): the media layer says
    what is wrong ("empty file"), the CLI says with which file. When the file is of another kind than the command
    reads (``expects``: "audio", "video"...; or an image given where a recording is read), it says so: "this is an
    image"."""
    from polymodal.media.errors import MediaError

    if path and not callable(path):
        _must_be_a_file(Path(str(path)))
    try:
        yield
    except MediaError as exc:
        name = path() if callable(path) else path
        if not name:
            raise
        other = _other_kind(Path(str(name)), str(exc), expects)
        if other:
            raise MediaError(f"{name}: this is {other}") from exc
        if str(name) in str(exc):
            raise
        raise MediaError(f"{name}: {exc}") from exc


def _must_be_a_file(path: Path) -> None:
    """Stop in words before a reader meets a path that is not there (its own error would look like a bug)."""
    from polymodal.errors import InputNotFound, UsageError

    if not path.exists():
        raise InputNotFound(f"file not found: {path}")
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give a file (`polymodal index` takes folders)")


_ARTICLES = {"image": "an image", "text": "a text document", "audio": "a recording", "video": "a video"}


def _other_kind(path: Path, message: str, expects: tuple[str, ...]) -> str | None:
    """What a file is when it is not what a command reads ("an image, not a recording or a video"); else None."""
    if not expects and "audio" not in message:
        return None
    wanted = expects or ("audio", "video")
    from polymodal.media.detect import detect
    from polymodal.media.errors import MediaError

    try:
        kind = detect(path).modality
    except (MediaError, OSError):
        return None
    if kind in wanted:
        return None
    return f"{_ARTICLES.get(kind, kind)}, not {' or '.join(_ARTICLES.get(w, w) for w in wanted)}"


def expect_kind(path: Path, *kinds: str) -> None:
    """Stop with "X: this is an image, not a recording" before a command reads ``path`` as one of ``kinds``."""
    from polymodal.media.errors import MediaError

    other = _other_kind(Path(path), "", kinds)
    if other:
        raise MediaError(f"{path}: this is {other}")


def provider_option(text: str) -> dict[str, Any]:
    """``--provider``: JSON, or a JSON file; a bad one is the user's to fix, said with what is wrong."""
    from polymodal.errors import InputNotFound, UsageError

    source = "--provider"
    if not text.lstrip().startswith("{"):
        path = Path(text).expanduser()
        try:
            text, source = path.read_text(encoding="utf-8"), str(path)
        except FileNotFoundError:
            raise InputNotFound(f"--provider: no such file {path} (give JSON or a JSON file)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--provider: cannot read {path}: {exc}") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f'{source} must be a JSON object such as {{"kind": "openai", "url": ..., "model": ...}}')
    return value


def _collection(args: argparse.Namespace, create: bool = False, **settings: Any):
    from polymodal.collection import Collection
    from polymodal.logs import timed

    with timed("open the store", log):
        return Collection(settings=_settings(args, **settings), create=create)


def _settings(args: argparse.Namespace, **overrides: Any):
    """The settings: ``overrides`` from options > ``POLYMODAL_*`` > polymodal.toml files > defaults."""
    from polymodal.config import Settings

    return Settings.from_env(store=getattr(args, "store", None), **overrides)


# --- commands ---------------------------------------------------------------------------------------
def cmd_index(args: argparse.Namespace) -> int:
    collection = _collection(args, create=True, ocr_mode=args.ocr)
    with _ProgressBar(enabled=not args.json) as bar:
        report = collection.index(
            *args.paths, progress=bar.update, aligner=args.aligner, video_progress=bar.video,
            follow_links=args.follow_links, engine=args.engine, ray_address=args.ray_address, workers=args.ray_workers,
        )  # fmt: skip
    if args.json:
        print(_dumps(report.to_dict()))
    else:
        outcomes = ", ".join(f"{n} {name}" for name, n in sorted(report.outcomes.items()))
        modalities = ", ".join(f"{n} {m}" for m, n in sorted(report.per_modality.items())) or "none"
        print(
            f"indexed {report.files} files in {report.seconds:.1f}s ({outcomes}); analyzed: {modalities}; "
            f"{len(report.errors)} errors"
        )
        for path, reason in report.errors:
            print(f"  skipped {printable(path)}: {printable(reason)}")
        for path, note in report.notes:
            print(f"  note {printable(path)}: {printable(note)}")
    return EXIT_PARTIAL if report.errors else EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    collection = _collection(args)
    with naming(args.image or args.audio, expects=("image",) if args.image else ("audio", "video")):
        result = collection.search(
            args.text, image=args.image, audio=args.audio, k=args.k, offset=args.offset, modality=args.modality,
            path=args.path, language=args.language, **({"person": args.person} if args.person else {}),
        )
    if args.json:
        print(_dumps(result.to_dict()))
        return EXIT_OK
    understood = _understood(result.understood)
    if understood:
        print(f"query understood as: {printable(understood)}")
    if not result.hits:
        print("no good matches" + (f"; the {len(result.weaker)} best weaker matches:" if result.weaker else ""))
    shown = result.hits or result.weaker
    if args.long:
        _long_listing(shown, args.offset)
    elif shown:
        base = _shared_folder([hit.path for hit in shown])
        rows = [
            (
                str(rank),
                f"{hit.score:.0%}",
                hit.modality,
                _relative(hit.path, base) + ("" if hit.start is None else f" @{_clock(hit.start)}"),
                "; ".join(_describe(e) for e in hit.why[:2]),
            )
            for rank, hit in enumerate(shown, args.offset + 1)
        ]
        _table(["#", "relevance", "kind", "path", "why"], rows, flexible=(3, 4))
        if base:
            print(f"(paths under {printable(_short_path(base))}; --long: full paths and every reason)")
    more = f"; more: --offset {args.offset + len(result.hits)}" if result.more else ""
    print(f"({result.milliseconds:.0f} ms{', approximate' if result.approximate else ''}{more})")
    return EXIT_OK


def _long_listing(hits: list[Any], offset: int) -> None:
    """Every hit with its full path and all its reasons, nothing cut."""
    for rank, hit in enumerate(hits, offset + 1):
        at = "" if hit.start is None else f" @{_clock(hit.start)}"
        print(f"{rank}. {hit.score:.0%} {hit.modality} {printable(hit.path)}{at}")
        for evidence in hit.why:
            print(f"     {_describe(evidence, full=True)}")


def _shared_folder(paths: list[str]) -> str | None:
    """The folder the paths share, one level up when that would leave bare file names (a folder name says what a
    file is: photos/cat.jpg); None when they share nothing but / (then paths are shown from ~ or /)."""
    folders = [os.path.dirname(path) for path in paths]
    try:
        shared = os.path.commonpath(folders)
    except ValueError:  # relative and absolute mixed
        return None
    if all(folder == shared for folder in folders):
        shared = os.path.dirname(shared)
    return shared if shared not in ("", "/") and shared != str(Path.home()).rstrip("/") else None


def _relative(path: str, base: str | None) -> str:
    return path[len(base) + 1 :] if base and path.startswith(base + "/") else _short_path(path)


def cmd_show(args: argparse.Namespace) -> int:
    collection = _collection(args)
    item = _find_item(collection, args.item)
    if args.json:
        print(_dumps(item.to_dict()))
        return EXIT_OK
    print(f"item {item.id}: {printable(item.path)}")
    print(f"  {item.modality} ({item.format}), {item.size} bytes, sha256 {item.sha256[:16]}…")
    for key, value in item.meta.items():
        if value is not None:
            print(f"  {key}: {printable(value)}")
    print(f"  models: {', '.join(f'{k}={v}' for k, v in item.models.items())}")
    for note in item.notes:
        print(f"  note: {printable(note)}")
    print("evidence:")
    for evidence in item.evidence:
        print(f"  {_describe(evidence)}")
    return EXIT_OK


def _find_item(collection: Any, ref: str) -> Any:
    """An item by id, by path (absolute or from the current folder), or by the end of its path as search and the
    web page show it ("photos/coffee.jpg"): one match is the item, several are listed."""
    from polymodal.collection import ItemNotFound

    try:
        return collection.item(ref)
    except ItemNotFound:
        if ref.isdigit():
            raise
    tail = "/" + os.path.normpath(ref).lstrip("./")
    matches = [row.path for row in collection.store.files_under("/") if row.path.endswith(tail)]
    if len(matches) == 1:
        return collection.item(matches[0])
    if not matches:
        raise ItemNotFound(ref)
    listed = "; ".join(printable(_short_path(path)) for path in sorted(matches)[:5])
    more = f" and {len(matches) - 5} more" if len(matches) > 5 else ""
    usage_error(f"{ref!r} matches {len(matches)} items: {listed}{more}; give more of the path, or an id")


def cmd_status(args: argparse.Namespace) -> int:
    status = _collection(args).status()
    if args.json:
        print(_dumps(status))
        return EXIT_OK
    per = ", ".join(f"{n} {m}" for m, n in sorted(status["per_modality"].items())) or "empty"
    print(f"store: {printable(status['store'])} ({status['store_bytes'] / 1e6:.1f} MB)")
    print(
        f"items: {status['files']} ({per}); {status['vectors']} vectors, {status['evidence']} pieces of evidence"
    )
    print(f"models: {', '.join(status['models']) or 'none yet'}")
    print(f"errors: {status['errors']}")
    for error in status["recent_errors"]:
        print(f"  {printable(error['path'])}: {printable(error['reason'])}")
    return EXIT_OK


def cmd_samples(args: argparse.Namespace) -> int:
    from polymodal.samples import build_sample_collection

    quiet = args.json
    files = build_sample_collection(
        args.dest, progress=None if quiet else lambda msg: print(msg, file=sys.stderr)
    )
    if args.json:
        print(json.dumps({"dest": str(args.dest), "files": [str(f) for f in files]}))
    else:
        print(f"{len(files)} files in {printable(args.dest)}")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from polymodal.api.app import serve
        from polymodal.api.config import MB, ServeConfig
    except ImportError as exc:
        hint = f"serving needs the `serve` extra: pip install 'polymodal[serve]' ({exc.name} missing)"
        from polymodal.errors import OutsideError

        raise OutsideError(hint) from exc
    config = ServeConfig(
        host=args.host, port=args.port, auth=args.auth, rate_per_minute=args.rate_limit,
        max_upload_bytes=args.max_upload_mb * MB, max_files=args.max_files, search_workers=max(1, args.workers),
        media_workers=max(1, args.media_workers),
        cors_origins=tuple(args.cors_origin), warm=not args.no_warm,
        **({"allowed_hosts": tuple(args.allowed_host)} if args.allowed_host else {}),
        **({"trusted_proxies": tuple(args.trusted_proxy)} if args.trusted_proxy else {}),
    )  # fmt: skip
    collection = _collection(args, create=True)
    if config.keys_required and not _key_store(args).active():
        print("warning: API keys are required but none exist; make one: polymodal keys create NAME", file=sys.stderr)
    print(f"polymodal: serving {printable(collection.store.location)} on http://{args.host}:{args.port}/",
          file=sys.stderr)  # fmt: skip
    serve(collection, config)
    return EXIT_OK


def cmd_keys(args: argparse.Namespace) -> int:
    keys = _key_store(args)
    if args.keys_command == "create":
        record, secret = keys.create(args.name)
        if args.json:
            print(json.dumps({**record.public(), "key": secret}))
        else:
            print(f"key {record.id} ({record.name}); shown only now, keep it safe:\n{secret}")
    elif args.keys_command == "revoke":
        record = keys.revoke(args.key)
        print(json.dumps(record.public()) if args.json else f"revoked key {record.id} ({record.name})")
    else:
        records = [k.public() for k in keys.list()]
        if args.json:
            print(json.dumps(records))
        elif not records:
            print("no keys; make one: polymodal keys create NAME")
        else:
            _table(
                ["id", "name", "created", "state"],
                [(r["id"], r["name"], _when(r["created"]), "revoked" if r["revoked"] else "active") for r in records],
            )
    return EXIT_OK


def _key_store(args: argparse.Namespace):
    from polymodal.api.security import KeyStore
    from polymodal.store.base import as_url, is_url
    from polymodal.store.postgres import local_directory

    settings = _settings(args)
    if is_url(settings.store):  # a server store's keys live in this machine's folder for it, as `serve` reads them
        return KeyStore(local_directory(as_url(settings.store), settings.cache))
    return KeyStore(settings.store)


def _when(timestamp: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))



# --- training (polymodal.train; needs the `train` extra) -------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    settings, store = _train_settings(args)
    if args.train_command == "fusion":
        from polymodal.train.fusion import FusionConfig
        from polymodal.train.run import train_fusion

        report = train_fusion(
            args.manifest, args.out, args.fusion, folds=args.folds, test_fraction=args.test_split, seed=args.seed,
            config=FusionConfig(max_epochs=args.epochs), settings=settings, store=store, verbose=not args.json,
        )  # fmt: skip
        return _print_report(args, report, f"model saved to {args.out}")
    from polymodal.train.align import AlignConfig, train_align

    config = AlignConfig(steps=args.steps, holdout=args.holdout, seed=args.seed)
    report = train_align(args.manifest, args.out, config=config, refit=not args.no_refit, settings=settings,
                         store=store, verbose=not args.json)  # fmt: skip
    return _print_report(args, report, f"aligner {report['aligner_id']} saved to {args.out}; use it with: "
                                       f"polymodal index PATH --aligner {args.out}")  # fmt: skip


def cmd_evaluate(args: argparse.Namespace) -> int:
    from polymodal.train.run import evaluate_fusion

    settings, store = _train_settings(args)
    report = evaluate_fusion(args.model, args.manifest, args.out, settings=settings, store=store,
                             verbose=not args.json)  # fmt: skip
    return _print_report(args, report, "")


def cmd_predict(args: argparse.Namespace) -> int:
    from polymodal.train.run import predict

    settings, store = _train_settings(args)
    result = predict(args.model, args.text, args.image, args.audio, settings=settings, store=store)
    if args.json:
        print(_dumps(result))
        return EXIT_OK
    print(f"{printable(result['label'])} ({result['probability']:.1%}), driven by {result['driven_by']}")
    if result["drop_one"]:
        parts = ", ".join(f"{m} {-d:+.1%}" for m, d in sorted(result["drop_one"].items(), key=lambda kv: -kv[1]))
        print(f"  without each modality, the probability of {result['label']} changes by: {parts}")
    for modality, late in result.get("late_fusion", {}).items():
        print(f"  {modality}: late-fusion weight {late['weight']:.2f}, its own confidence {late['confidence']:.1%}")
    top = list(result["probabilities"].items())[:5]
    print("  probabilities: " + ", ".join(f"{label} {p:.1%}" for label, p in top))
    for modality, why in result.get("ignored", {}).items():
        print(f"  ignored {modality}: {why}")
    return EXIT_OK


def _train_settings(args: argparse.Namespace) -> tuple[Any, Path | None]:
    """Settings, and the store to cache features in: only when --store is given."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        from polymodal.errors import OutsideError

        raise OutsideError("training needs the `train` extra: pip install 'polymodal[train]'")

    settings = _settings(args)
    return settings, settings.store if args.store else None


def _print_report(args: argparse.Namespace, report: dict[str, Any], headline: str) -> int:
    if args.json:
        print(_dumps(report))
        return EXIT_OK
    if headline:
        print(printable(headline))
    if "recall" in report:  # an aligner
        for modality, head in report["heads"].items():
            print(f"{modality}: {head['pairs']} pairs, {head['holdout']['queries']} held-out texts; recall@1/5/10 %")
            _table(["method", "R@1", "R@5", "R@10"], [(name, *(f"{r[k]:.1f}" for k in ("R@1", "R@5", "R@10")))
                                                      for name, r in head["recall"].items()])  # fmt: skip
    else:
        rows = [(name, str(r["n"]), f"{r['accuracy']:.1%}", f"{r['macro_f1']:.3f}")
                for name, r in report["results"].items()]  # fmt: skip
        _table(["model / rows", "n", "accuracy", "macro-F1"], rows)
    problems = report.get("problems", [])
    if problems:
        print(f"{len(problems)} rows skipped:")
        for problem in problems[:20]:
            print(f"  line {problem['line']}: {printable(problem['reason'])}")
    for name, path in report.get("files", {}).items():
        print(f"{name}: {printable(path)}")
    return EXIT_OK


COMMANDS = {
    "index": cmd_index,
    "search": cmd_search,
    "show": cmd_show,
    "status": cmd_status,
    "samples": cmd_samples,
    "serve": cmd_serve,
    "keys": cmd_keys,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
}


# --- display ----------------------------------------------------------------------------------------
def _describe(evidence: Any, full: bool = False) -> str:
    text = " ".join(evidence.text.split())
    text = text if full or len(text) <= 90 else text[:87] + "…"
    if evidence.start is not None:
        text = f"{_clock(evidence.start)}–{_clock(evidence.end or evidence.start)} “{text}”"
    elif evidence.kind in ("label", "tag") and evidence.score is not None:
        text = f"{text} ({evidence.score:.2f})"
    elif evidence.page is not None:
        text = f"p.{evidence.page}: {text}"
    text = printable(text)
    return f"{evidence.kind}: {text}" if evidence.kind not in ("passage",) else text


def _understood(evidence: list[Any]) -> str:
    spoken = " ".join(e.text for e in evidence if e.kind == "transcript")
    if spoken:
        return f"speech “{spoken[:80]}”"
    return ", ".join(f"{e.text} {e.score:.2f}" for e in evidence[:3] if e.score is not None)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}:{secs:04.1f}"


def _short_path(path: str) -> str:
    home = str(Path.home())
    return "~" + path[len(home) :] if path.startswith(home + "/") else path


def _table(header: list[str], rows: list[tuple[str, ...]], flexible: tuple[int, ...] = ()) -> None:
    """Rows in columns as wide as the terminal (160 when not a terminal); the ``flexible`` columns (the last one cut
    at its end, the others at their start: a path's end is what tells it) share what the others leave."""
    width = shutil.get_terminal_size((160, 24)).columns
    rows = [tuple(printable(cell) for cell in row) for row in rows]
    widths = [max(len(r[i]) for r in [tuple(header), *rows]) for i in range(len(header))]
    if flexible and sum(widths) + 2 * (len(widths) - 1) > width:
        widths = _fit(widths, flexible, width - sum(w for i, w in enumerate(widths) if i not in flexible)
                      - 2 * (len(widths) - 1))  # fmt: skip
    for row in [tuple(header), *rows]:
        cells = [_cut(cell, widths[i], at_start=i in flexible and i != len(row) - 1) for i, cell in enumerate(row)]
        line = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells))
        print(line[:width].rstrip())


def _fit(widths: list[int], flexible: tuple[int, ...], room: int) -> list[int]:
    """Widths for the flexible columns within ``room``: each at least a fair share, a narrow one keeps its own."""
    room = max(room, 12 * len(flexible))
    fitted = list(widths)
    pending = sorted(flexible, key=lambda i: widths[i])
    while pending:
        share = room // len(pending)
        column = pending.pop(0)
        fitted[column] = min(widths[column], share if pending else room)
        room -= fitted[column]
    return fitted


def _cut(cell: str, width: int, at_start: bool) -> str:
    if len(cell) <= width:
        return cell
    return "…" + cell[len(cell) - width + 1 :] if at_start else cell[: width - 1] + "…"


class _ProgressBar:
    """A tqdm bar on stderr with rate and ETA; silent when disabled (``--json``)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._bar = None

    def __enter__(self) -> _ProgressBar:
        return self

    def update(self, done: int, total: int, current: str) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="file", dynamic_ncols=True, file=sys.stderr)
        self._bar.n = done
        self._bar.set_postfix_str(printable(Path(current).name[:30]) if current else "", refresh=True)

    def video(self, path: str, seconds: float, duration: float) -> None:
        """How far into the current video its analysis is."""
        if self._bar is not None:
            name = printable(Path(path).name[:30])
            self._bar.set_postfix_str(f"{name} {_clock(seconds)}/{_clock(duration)}", refresh=True)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()


# --- safe output: nothing a file name or a file's content holds acts on the terminal ------------------------
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# What ``json.dumps(ensure_ascii=False)`` leaves raw but a terminal may act on (C1 controls such as CSI, bidi
# controls, line separators), and lone surrogates (undecodable bytes of a file name), which are not UTF-8 at all.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text: object, keep: str = "") -> str:
    """``text`` safe to print on a terminal: control characters (escape sequences), bidirectional controls (which
    reorder what is shown) and bytes that were not UTF-8 (``os.fsdecode``'s surrogates) as backslash escapes:
    ``\\x1b[31m``, ``\\u202e``, ``\\xe9``, ``\\n``. Characters in ``keep`` (e.g. newlines of a listing) stay."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(_escaped(ch) if ch not in keep and _unsafe(ch) else ch for ch in text)


def _unsafe(ch: str) -> bool:
    return ch in _BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp")


def _escaped(ch: str) -> str:
    code = ord(ch)
    if ch in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[ch]
    if 0xDC80 <= code <= 0xDCFF:  # a byte os.fsdecode could not decode
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _dumps(data: Any, indent: int | None = 2) -> str:
    """JSON for the terminal or a pipe: readable non-ASCII text, valid UTF-8, nothing a terminal acts on (JSON itself
    escapes C0 controls); a lone surrogate becomes ``\\udcXX``, which ``json.loads`` turns back into the same string."""
    return json_safe(json.dumps(data, ensure_ascii=False, indent=indent))


def json_safe(text: str) -> str:
    """JSON text with what a terminal acts on, and lone surrogates, as ``\\uXXXX`` escapes (the same JSON data)."""
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


if __name__ == "__main__":
    sys.exit(main())
