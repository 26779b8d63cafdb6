"""Decide a file's modality and format from its content (magic bytes), not from its name.

The extension is only used to choose between equivalent readings (``.md`` vs ``.txt``) and to
warn, in ``Detected.note``, when the name and the content disagree.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from polymodal.media.errors import MediaError

Modality = Literal["text", "image", "audio", "video"]

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    [
        "txt",
        "md",
        "markdown",
        "html",
        "htm",
        "pdf",
        "jpg",
        "jpeg",
        "png",
        "webp",
        "gif",
        "bmp",
        "tif",
        "tiff",
        "wav",
        "flac",
        "ogg",
        "oga",
        "opus",
        "mp3",
        "m4a",
        "aac",
        "mp4",
        "webm",
        "mkv",
        "mov",
        "avi",
        "ogv",
    ]
)

HEAD_BYTES = 64 * 1024

# Extensions that are fine for a format; a name outside its family earns a note.
_FAMILIES: dict[str, frozenset[str]] = {
    "jpeg": frozenset({"jpg", "jpeg", "jpe", "jfif"}),
    "png": frozenset({"png"}),
    "gif": frozenset({"gif"}),
    "bmp": frozenset({"bmp", "dib"}),
    "tiff": frozenset({"tif", "tiff"}),
    "webp": frozenset({"webp"}),
    "heif": frozenset({"heic", "heif", "avif"}),
    "wav": frozenset({"wav", "wave"}),
    "aiff": frozenset({"aif", "aiff", "aifc"}),
    "flac": frozenset({"flac"}),
    "ogg": frozenset({"ogg", "oga", "opus", "spx", "ogx"}),
    "ogv": frozenset({"ogv", "ogg", "ogx"}),
    "mp3": frozenset({"mp3"}),
    "aac": frozenset({"aac", "adts"}),
    "m4a": frozenset({"m4a", "m4b", "mp4", "m4v", "mov", "3gp"}),
    "mp4": frozenset({"mp4", "m4v", "m4a", "mov", "3gp", "3g2"}),
    "mov": frozenset({"mov", "qt", "mp4", "m4v"}),
    "webm": frozenset({"webm", "mkv", "mka"}),
    "mkv": frozenset({"mkv", "mka", "webm", "mk3d"}),
    "avi": frozenset({"avi"}),
    "pdf": frozenset({"pdf"}),
    "html": frozenset({"html", "htm", "xhtml", "shtml"}),
    "txt": frozenset({"txt", "md", "markdown", "text"}),
    "md": frozenset({"txt", "md", "markdown", "text"}),
}
_MEDIA_EXTENSIONS = frozenset().union(*_FAMILIES.values())
_LABELS = {"txt": "text", "md": "Markdown text", "html": "HTML", "ogv": "Ogg video", "ogg": "Ogg audio"}
_MARKDOWN_EXTENSIONS = frozenset({"md", "markdown"})


@dataclass(frozen=True)
class Detected:
    modality: Modality
    format: str
    note: str | None = None


def detect(path: Path) -> Detected:
    """Modality and format of ``path`` by content; raises ``MediaError`` saying why it cannot be read."""
    path = Path(path)
    size = _check_readable(path)
    ext = path.suffix.lower().lstrip(".")
    try:
        with path.open("rb") as handle:
            head = handle.read(HEAD_BYTES)
    except PermissionError as exc:
        raise MediaError("permission denied: the file cannot be read") from exc
    except OSError as exc:
        raise MediaError(f"could not read the file: {exc.strerror or exc}") from exc
    if not head:
        raise MediaError("empty file")
    found = (
        _sniff_binary(path, head, ext)
        or _sniff_text(head, size, ext)
        or _sniff_frame_sync(head)  # weak magic: only once the content is known not to be text
    )
    if found is None:
        raise MediaError("unrecognised content (not text, image, audio or video)")
    modality, fmt = found
    return Detected(modality, fmt, _note(ext, fmt))


def _check_readable(path: Path) -> int:
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        if path.is_symlink():
            raise MediaError(f"broken symbolic link (points to {os.readlink(path)})") from exc
        raise MediaError("no such file") from exc
    except PermissionError as exc:
        raise MediaError("permission denied: the file cannot be reached") from exc
    except OSError as exc:
        raise MediaError(f"could not open the file: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(info.st_mode):
        raise MediaError("is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise MediaError("not a regular file (a device, pipe or socket)")
    if info.st_size == 0:
        raise MediaError("empty file")
    return info.st_size


def _note(ext: str, fmt: str) -> str | None:
    if not ext or ext not in _MEDIA_EXTENSIONS or ext in _FAMILIES.get(fmt, ()):
        return None
    return f"named .{ext} but content is {_LABELS.get(fmt, fmt.upper())}"


# --- binary formats -----------------------------------------------------------------------------------


def _sniff_binary(path: Path, head: bytes, ext: str) -> tuple[Modality, str] | None:
    return (
        _sniff_image(head)
        or _sniff_riff(head)
        or _sniff_iso_bmff(path, head, ext)
        or _sniff_ogg(head)
        or _sniff_matroska(path, head)
        or _sniff_audio(path, head)
        or (("text", "pdf") if _is_pdf(head) else None)
    )


def _is_pdf(head: bytes) -> bool:
    # Readers accept the header anywhere in the first KiB, but a text file may just mention it.
    at = head.find(b"%PDF-", 0, 1024)
    return at == 0 or (at > 0 and (not head[:at].strip(b" \t\r\n\xef\xbb\xbf") or b"\x00" in head[:at]))


def _sniff_image(head: bytes) -> tuple[Modality, str] | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "image", "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image", "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image", "gif"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image", "tiff"
    if _is_bmp(head):
        return "image", "bmp"
    return None


def _is_bmp(head: bytes) -> bool:
    # "BM" alone is too weak (a text file may start with it): check the reserved bytes and DIB size.
    if len(head) < 18 or not head.startswith(b"BM") or head[6:10] != b"\x00\x00\x00\x00":
        return False
    return int.from_bytes(head[14:18], "little") in (12, 16, 40, 52, 56, 64, 108, 124)


def _sniff_riff(head: bytes) -> tuple[Modality, str] | None:
    kind = head[8:12]
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and kind == b"WAVE":
        return "audio", "wav"
    if head[:4] != b"RIFF":
        return _sniff_aiff(head)
    if kind == b"WEBP":
        return "image", "webp"
    if kind in (b"AVI ", b"AVIX"):
        return "video", "avi"
    return None


def _sniff_aiff(head: bytes) -> tuple[Modality, str] | None:
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio", "aiff"
    return None


_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
_IMAGE_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1", b"avif", b"avis"}


def _sniff_iso_bmff(path: Path, head: bytes, ext: str) -> tuple[Modality, str] | None:
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        has_video = _probe_has_video(path)
        if has_video is not None:  # QuickTime without ftyp
            return ("video", "mov") if has_video else ("audio", "m4a")
        return None
    if head[4:8] != b"ftyp":
        return None
    brand = head[8:12]
    if brand in _AUDIO_BRANDS:
        return "audio", "m4a"
    if brand in _IMAGE_BRANDS:
        return "image", "heif"
    fmt = "mov" if brand == b"qt  " else "mp4"
    has_video = _probe_has_video(path)
    if has_video is None:  # the container could not be opened: trust the name, the decoder will explain
        has_video = ext not in ("m4a", "m4b", "aac")
    return ("video", fmt) if has_video else ("audio", "m4a")


def _probe_has_video(path: Path) -> bool | None:
    """Whether the container holds a real video stream (cover art does not count); None if unreadable."""
    try:
        import av

        with av.open(str(path)) as container:
            return any(not _is_cover_art(stream) for stream in container.streams.video)
    except Exception:  # noqa: BLE001 - any failure here means "cannot tell"
        return None


def _is_cover_art(stream: object) -> bool:
    disposition = getattr(stream, "disposition", 0)
    try:
        import av

        return bool(disposition & av.stream.Disposition.attached_pic)
    except (AttributeError, TypeError):
        return False


def _sniff_ogg(head: bytes) -> tuple[Modality, str] | None:
    if not head.startswith(b"OggS"):
        return None
    # Every stream's first ("beginning of stream") page is at the start of the file.
    if b"\x80theora" in head or b"OVP80" in head or b"\x80daala" in head:
        return "video", "ogv"
    return "audio", "ogg"


def _sniff_matroska(path: Path, head: bytes) -> tuple[Modality, str] | None:
    if not head.startswith(b"\x1a\x45\xdf\xa3"):
        return None
    fmt = "webm" if b"webm" in head[:64] else "mkv"
    has_video = _probe_has_video(path)
    return ("audio", fmt) if has_video is False else ("video", fmt)


def _sniff_audio(path: Path, head: bytes) -> tuple[Modality, str] | None:
    if head.startswith(b"fLaC"):
        return "audio", "flac"
    if head.startswith(b"ID3"):
        return _after_id3(path, head)
    return None


def _sniff_frame_sync(head: bytes) -> tuple[Modality, str] | None:
    if _is_adts(head):
        return "audio", "aac"
    if _is_mpeg_audio(head):
        return "audio", "mp3"
    return None


def _after_id3(path: Path, head: bytes) -> tuple[Modality, str]:
    """An ID3 tag can precede MP3, AAC or FLAC data; look past it."""
    if len(head) < 10:
        return "audio", "mp3"
    size = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
    size += 10 if head[5] & 0x10 else 0
    with path.open("rb") as handle:
        handle.seek(size)
        after = handle.read(16)
    if after.startswith(b"fLaC"):
        return "audio", "flac"
    if _is_adts(after):
        return "audio", "aac"
    return "audio", "mp3"


def _is_adts(head: bytes) -> bool:
    return len(head) >= 7 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0 and (head[2] >> 2) & 0xF < 13


_MPEG_BITRATES = {  # kbit/s by (version is MPEG-1, layer), index 1..14
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_frame_length(header: bytes) -> int | None:
    """Length in bytes of the MPEG audio frame starting with ``header``; None if it is not one."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (header[1] >> 3) & 3, (header[1] >> 1) & 3
    bitrate_index, rate_index = header[2] >> 4, (header[2] >> 2) & 3
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    layer = 4 - layer_bits
    bitrate = _MPEG_BITRATES[(version == 3, layer)][bitrate_index - 1] * 1000
    rate = _MPEG_RATES[version][rate_index]
    padding = (header[2] >> 1) & 1
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4
    per_frame = 72 if (layer == 3 and version != 3) else 144
    return per_frame * bitrate // rate + padding


def _is_mpeg_audio(head: bytes) -> bool:
    length = _mpeg_frame_length(head)
    if length is None:
        return False
    return _mpeg_frame_length(head[length : length + 4]) is not None  # a second frame must follow


# --- text ---------------------------------------------------------------------------------------------


def _sniff_text(head: bytes, size: int, ext: str) -> tuple[Modality, str] | None:
    from polymodal.media.text import decode_bytes

    text = decode_bytes(head, strict=True, partial=size > len(head))
    if text is None or not looks_like_text(text):
        return None
    if _is_html(text, ext):
        return "text", "html"
    return "text", "md" if ext in _MARKDOWN_EXTENSIONS else "txt"


_NOT_TEXT = frozenset({"Cc", "Cs", "Co", "Cn"})


def looks_like_text(text: str, min_printable: float = 0.97) -> bool:
    """True when almost no character is a control, unassigned or private-use code point."""
    if not text:
        return False
    bad = sum(1 for ch in text if ch not in "\t\n\r\f\v" and unicodedata.category(ch) in _NOT_TEXT)
    return bad <= len(text) * (1.0 - min_printable)


_LEADING_JUNK = re.compile(r"\A(?:\s+|<!--.*?-->|<\?xml[^>]*\?>)*", re.DOTALL)
_HTML_START = re.compile(r"<!doctype\s+html|<html[\s>]", re.IGNORECASE)
_HTML_TAG = re.compile(r"<(?:head|body|div|p|title|meta|table|h[1-6]|article|section)[\s>/]", re.IGNORECASE)


def _is_html(text: str, ext: str) -> bool:
    start = _LEADING_JUNK.match(text.lstrip("\ufeff"))
    rest = text.lstrip("\ufeff")[start.end() if start else 0 :]
    if _HTML_START.match(rest):
        return True
    # An HTML fragment (no <html>) is HTML only when its name says so.
    return ext in _FAMILIES["html"] and bool(_HTML_TAG.search(text[:HEAD_BYTES]))
