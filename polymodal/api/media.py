"""Serving an indexed file: its content type, safe headers, and cached thumbnails of images."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from starlette.responses import FileResponse, JSONResponse

from polymodal.api.errors import ApiError, body

THUMB_SIZES = (128, 256, 512)
MIME = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "webp": "image/webp",
    "wav": "audio/wav",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
    "webm": "audio/webm",
    "mkv": "audio/x-matroska",
    "pdf": "application/pdf",
}
VIDEO_MIME = {
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
    "mkv": "video/x-matroska",
    "avi": "video/x-msvideo",
    "ogv": "video/ogg",
}
# Documents are shown as plain text and sandboxed: an indexed HTML file must never run in the page's origin.
SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self'; media-src 'self'",
    "Cache-Control": "private, max-age=3600",
}


def media_type(fmt: str, modality: str) -> str:
    if modality == "text" and fmt != "pdf":
        return "text/plain; charset=utf-8"
    if modality == "video":
        return VIDEO_MIME.get(fmt, "application/octet-stream")
    return MIME.get(fmt, "application/octet-stream")


def existing_file(path: str) -> Path:
    file = Path(path)
    if not file.is_file():
        raise ApiError(404, "the file of this item is no longer on disk; re-index its folder")
    return file


def thumbnail(source: Path, sha: str, size: int, cache_dir: Path, max_pixels: int) -> Path:
    """A JPEG thumbnail (longest side ``size``), made once and cached under the store."""
    if size not in THUMB_SIZES:
        raise ApiError(400, f"thumbnail size must be one of {', '.join(map(str, THUMB_SIZES))}")
    target = cache_dir / f"{sha[:32]}-{size}.jpg"
    if target.is_file():
        return target
    from polymodal.media.image import open_image
    from polymodal.media.image import thumbnail as shrink

    image = shrink(open_image(source, max_pixels, draft_to=size * 2), size)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85, optimize=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.{id(buffer)}.tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(target)
    return target


class MediaResponse(FileResponse):
    """A file with HTTP range support whose range errors (400, 416) are JSON like every other error."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        wanted = dict(scope.get("headers") or []).get(b"range")
        if wanted is not None and scope.get("method") in ("GET", "HEAD"):
            size = os.stat(self.path).st_size
            try:
                self._parse_range_header(wanted.decode("latin-1"), size)
            except Exception as exc:  # starlette's MalformedRangeHeader / RangeNotSatisfiable
                status = 416 if type(exc).__name__ == "RangeNotSatisfiable" else 400
                message = f"that byte range is not in the file ({size} bytes)" if status == 416 else "bad Range header"
                headers = {"Content-Range": f"bytes */{size}"} if status == 416 else None
                await JSONResponse(body(status, message), status, headers)(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
