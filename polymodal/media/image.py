"""Decode images safely: EXIF orientation, first frame of animations, a guard against decompression bombs.

Classification needs only ~256 px, so JPEGs are decoded in *draft* mode (DCT scaling): a 12 MP photo
decodes ~3.5x faster. Draft decoding changes the top-1 label on ~6 % of photos compared with a full
decode (shared/FINDINGS.md); ``precise=True`` turns it off.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from polymodal.media.errors import MediaError

CLASSIFIER_SIZE = 224
RESIZE_SHORT_SIDE = 256


def open_image(source: Path | bytes, max_pixels: int, draft_to: int | None = None):  # -> PIL.Image.Image
    """An RGB PIL image with EXIF orientation applied; ``draft_to`` asks JPEGs for a reduced decode."""
    from PIL import Image, ImageOps

    Image.MAX_IMAGE_PIXELS = None  # we check the size ourselves, with a clear message
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        width, height = image.size
        if width * height > max_pixels:
            raise MediaError(
                f"image is {width}x{height} = {width * height / 1e6:.0f} MP, over the "
                f"{max_pixels / 1e6:.0f} MP limit (decompression bomb guard)"
            )
        if draft_to and image.format == "JPEG":
            image.draft("RGB", (draft_to, draft_to))
        image.seek(0)  # first frame of GIF / animated WebP
        image.load()
        image = _to_rgb(ImageOps.exif_transpose(image) or image)
        # Size before any draft reduction, after EXIF rotation.
        swapped = (image.width > image.height) != (width > height) and width != height
        image.info["original_size"] = (height, width) if swapped else (width, height)
        return image
    except MediaError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise MediaError(f"could not decode image (corrupt or truncated?): {exc}") from exc


def _to_rgb(image):  # -> PIL.Image.Image
    from PIL import Image

    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    if image.mode == "I;16" or image.mode == "I":
        array = np.asarray(image, dtype=np.float32)
        span = max(float(array.max() - array.min()), 1.0)
        image = Image.fromarray(((array - array.min()) * (255.0 / span)).astype(np.uint8))
    return image.convert("RGB")


def classifier_input(image) -> np.ndarray:
    """Resize the short side to 256, centre-crop 224, scale to [-1, 1]; returns (3, 224, 224) float32."""
    from PIL import Image

    width, height = image.size
    scale = RESIZE_SHORT_SIDE / min(width, height)
    resized = image.resize(
        (max(CLASSIFIER_SIZE, round(width * scale)), max(CLASSIFIER_SIZE, round(height * scale))),
        Image.BILINEAR,
        reducing_gap=2.0,
    )
    left = (resized.width - CLASSIFIER_SIZE) // 2
    top = (resized.height - CLASSIFIER_SIZE) // 2
    crop = resized.crop((left, top, left + CLASSIFIER_SIZE, top + CLASSIFIER_SIZE))
    array = np.asarray(crop, dtype=np.float32) * (2.0 / 255.0) - 1.0
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def thumbnail(image, size: int = 256):  # -> PIL.Image.Image
    copy = image.copy()
    copy.thumbnail((size, size))
    return copy


def looks_like_document(image) -> bool:
    """A cheap text prior: scans, screenshots and charts are mostly flat, low-saturation background.

    Decides whether OCR is worth its ~1-2 s on an image; photos with text are caught by their labels.
    """
    small = np.asarray(image.convert("RGB").resize((128, 128)), dtype=np.int16)
    saturation = small.max(axis=2) - small.min(axis=2)
    grey = small.mean(axis=2)
    flat = (np.abs(np.diff(grey, axis=1)) < 4).mean()
    low_saturation = (saturation < 24).mean()
    return bool(flat > 0.5 and low_saturation > 0.85)
