"""Uploaded files: written only under ``<store>/uploads/``, size-limited, and checked by content.

A name from a request never becomes a path as it is: each component is cleaned (no ``..``, no hidden
files, no separators or control characters), and the result is resolved and checked to stay inside the
uploads folder. The modality is read from the bytes (:func:`polymodal.media.detect.detect`), not the name.
"""

from __future__ import annotations

import re
import secrets
import shutil
import time
import unicodedata
from pathlib import Path, PurePosixPath
from typing import Protocol

from polymodal.media.detect import SUPPORTED_EXTENSIONS, Detected, detect
from polymodal.media.errors import MediaError

CHUNK = 1 << 20
MAX_NAME = 120
MAX_DEPTH = 8
_EXTENSION = {"jpeg": "jpg", "tiff": "tif"}
_NOUN = {"image": "an image", "audio": "a recording", "video": "a video", "text": "a document"}
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


class UploadError(Exception):
    """An upload that cannot be accepted; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class Readable(Protocol):  # what Starlette's UploadFile offers
    filename: str | None

    async def read(self, size: int = -1) -> bytes: ...


class Uploads:
    def __init__(self, store_dir: Path):
        self.root = (Path(store_dir) / "uploads").absolute()
        self.incoming = self.root / ".incoming"  # dot folder: never scanned by the indexer

    def new_batch(self) -> Path:
        batch = self.root / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        batch.mkdir(parents=True)
        return batch

    def temp_path(self, name: str | None) -> Path:
        self.incoming.mkdir(parents=True, exist_ok=True)
        suffix = PurePosixPath(clean_name(name or "upload")).suffix.lower()[:8]
        return self.incoming / f"{secrets.token_hex(8)}{suffix}"

    def temp_dir(self) -> Path:
        folder = self.incoming / secrets.token_hex(8)
        folder.mkdir(parents=True)
        return folder

    async def receive(self, upload: Readable, max_bytes: int, into: Path | None = None) -> Path:
        """Write an upload to a fresh file under ``uploads/.incoming`` (in ``into`` under its cleaned name,
        when given); 413 past ``max_bytes``."""
        target = _unique(into / clean_name(upload.filename or "file")) if into else self.temp_path(upload.filename)
        written = 0
        try:
            with open(target, "xb") as sink:
                while chunk := await upload.read(CHUNK):
                    written += len(chunk)
                    if written > max_bytes:
                        raise UploadError(
                            f"{clean_name(upload.filename or 'upload')} is over the {_mb(max_bytes)} limit", 413
                        )
                    sink.write(chunk)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        if written == 0:
            target.unlink(missing_ok=True)
            raise UploadError(f"{clean_name(upload.filename or 'upload')} is empty", 400)
        return target

    def place(self, temp: Path, batch: Path, relative: str, detected: Detected) -> Path:
        """Move a checked upload into its batch under a cleaned relative name with a fitting extension."""
        target = self.inside(batch / clean_relative(relative))
        extension = _EXTENSION.get(detected.format, detected.format)
        if target.suffix.lower().lstrip(".") not in SUPPORTED_EXTENSIONS:
            if extension not in SUPPORTED_EXTENSIONS:
                raise UploadError(f"{target.name}: {detected.format} files cannot be indexed", 415)
            target = target.with_name(f"{target.name}.{extension}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise UploadError(f"{target.name}: a file of this upload has the name of its folder", 400) from None
        target = _unique(target)
        shutil.move(str(temp), target)
        return target

    def inside(self, path: Path) -> Path:
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root.resolve()):
            raise UploadError("that name leads outside the upload folder", 400)
        return resolved

    def clear_incoming(self) -> None:
        shutil.rmtree(self.incoming, ignore_errors=True)

    def prune(self, folder: Path) -> None:
        """Remove ``folder`` and its parents up to the uploads root while they are empty (after a removal)."""
        root = self.root.resolve()
        folder = folder.resolve()
        while folder != root and folder.is_relative_to(root):
            try:
                folder.rmdir()  # only an empty folder goes
            except OSError:
                return
            folder = folder.parent


def check_kind(path: Path, allowed: tuple[str, ...], what: str) -> Detected:
    """The detected modality of an uploaded file; 415 when it is not one of ``allowed``."""
    try:
        detected = detect(path)
    except MediaError as exc:
        raise UploadError(f"{what}: {exc}", 415) from exc
    if detected.modality not in allowed:
        wanted = " or ".join(_NOUN.get(kind, kind) for kind in allowed)
        raise UploadError(f"{what} is not {wanted}: its content is {detected.modality} ({detected.format})", 415)
    return detected


def clean_name(name: str) -> str:
    """One safe file-name component (may come back as ``file``)."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip().lstrip(".")
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: MAX_NAME - len(ext) - 1] + dot + ext) if dot and len(ext) <= 8 else name[:MAX_NAME]
    return name or "file"


def clean_relative(path: str) -> Path:
    """A relative path (a dropped folder's structure) made of clean components, ``..`` and ``.`` dropped."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    parts = [clean_name(p) for p in parts][-MAX_DEPTH:]
    return Path(*parts) if parts else Path("file")


def _unique(path: Path) -> Path:
    if not path.exists():
        return path
    for n in range(2, 10_000):
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise UploadError("too many files with the same name", 409)


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB"
