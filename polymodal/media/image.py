"""Decode images safely: EXIF orientation, first frame of animations, a guard against decompression bombs.

Classification needs only ~256 px, so JPEGs are decoded in *draft* mode (DCT scaling): a 12 MP photo
decodes ~3.5x faster. Draft decoding changes the top-1 label on ~6 % of photos compared with a full
decode (shared/FINDINGS.md); ``precise=True`` turns it off. Other large images are shrunk right after
decoding when a draft is asked for, before any colour conversion copies them.

Work is bounded by the pixels an image *declares* (``max_pixels``) and by those a step *makes*: an image of
extreme aspect ratio (1 x 8000) is never resized whole to a short side of 256 (that is 256 x 2 million
pixels, 1.5 GB), only the part the classifier's centre crop keeps.

A **cut-out** (an object on a transparent background: clip art, stickers, stamps) is shown to the classifier
whole, centred on white, instead of centre-cropped: the object fills its picture, and a crop cuts off its
head or tail. On the 544 Tux Paint stamps this raised text->image recall@10 of the label bridge from 38.0 to
41.2 % (``bench/eval_tuxpaint.py``).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np

from polymodal.media.errors import MediaError

CLASSIFIER_SIZE = 224
RESIZE_SHORT_SIDE = 256
# Above this many pixels after resizing (an aspect ratio over ~30:1), only the centre crop is resized.
MAX_RESIZED_PIXELS = 2_000_000
# A picture is a cut-out when at least this share of its border is transparent (alpha below half).
CUTOUT_BORDER_SHARE = 0.5
# A non-JPEG image over this size is shrunk (integer box reduction) when a draft is asked for.
REDUCE_ABOVE_PIXELS = 16_000_000
_ORIENTATION = 0x0112  # the EXIF tag
# What Pillow raises on malformed data, besides OSError (a TIFF tag of the wrong type: TypeError).
_MALFORMED = (OSError, ValueError, SyntaxError, EOFError, TypeError, LookupError, ArithmeticError, struct.error)
_REDUCIBLE_MODES = frozenset({"RGB", "RGBA", "L", "LA", "I", "F", "CMYK"})
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")


def open_image(source: Path | bytes, max_pixels: int, draft_to: int | None = None):  # -> PIL.Image.Image
    """An RGB PIL image with EXIF orientation applied; ``draft_to`` asks for a reduced decode (JPEG) or a
    reduction right after decoding (other large images), keeping the short side at least ``draft_to``."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # we check the size ourselves, with a clear message
    if (len(source) if isinstance(source, bytes) else _size(source)) == 0:
        raise MediaError("empty file")
    try:
        opened = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise  # the file, not its content: callers report these as they are
    except Image.UnidentifiedImageError as exc:
        raise MediaError(_unreadable(source)) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # a header Pillow recognised, then choked on
        raise MediaError(f"could not decode image (corrupt or truncated?): {exc}") from exc
    with opened:
        try:
            return _decoded(opened, max_pixels, draft_to)
        except MediaError:
            raise
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
            raise MediaError(f"could not decode image (corrupt or truncated?): {exc}") from exc


def _size(path: Path) -> int | None:
    try:
        return Path(path).stat().st_size
    except OSError:
        return None  # opening says what is wrong with the path


def _decoded(image, max_pixels: int, draft_to: int | None):  # -> PIL.Image.Image
    width, height = image.size
    if width < 1 or height < 1:
        raise MediaError(f"image declares an empty size ({width}x{height})")
    if width * height > max_pixels:
        raise MediaError(
            f"image is {width}x{height} = {width * height / 1e6:.0f} MP, over the "
            f"{max_pixels / 1e6:.0f} MP limit (decompression bomb guard)"
        )
    if draft_to and image.format == "JPEG":
        image.draft("RGB", (draft_to, draft_to))
    try:
        image.seek(0)  # first frame of GIF / animated WebP
        image.load()
    except _MALFORMED as exc:  # Pillow's plugins fail on malformed data in more ways than OSError
        raise MediaError(f"could not decode image (corrupt or truncated?): {type(exc).__name__}: {exc}") from exc
    orientation = _orientation(image)
    if draft_to:
        image = _reduce(image, draft_to)
    image = _to_rgb(_upright(image, orientation))
    # Size before any draft reduction, after EXIF rotation.
    swapped = (image.width > image.height) != (width > height) and width != height
    image.info["original_size"] = (height, width) if swapped else (width, height)
    return image


def _unreadable(source: Path | bytes) -> str:
    """Why Pillow does not know the file: HEIC (iPhone photos) is named, the rest is "not an image"."""
    if isinstance(source, bytes):
        head = source[:32]
    else:
        with open(source, "rb") as handle:
            head = handle.read(32)
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "HEIC/HEIF images are not supported (Pillow cannot decode them): convert it to JPEG or PNG"
    return "not an image Pillow can read (corrupt, truncated, or an unsupported format)"


def _reduce(image, short_side: int):  # -> PIL.Image.Image
    """A big image shrunk by an integer factor (box filter) to a short side of at least ``2 * short_side``."""
    factor = min(image.size) // (2 * short_side)
    if factor < 2 or image.width * image.height <= REDUCE_ABOVE_PIXELS:
        return image
    if image.mode not in _REDUCIBLE_MODES:  # bilevel, palette: nearest pixels, before any full-size conversion
        return image.resize((-(-image.width // factor), -(-image.height // factor)), resample=0)
    if image.mode not in ("RGBA", "LA"):
        return image.reduce(factor)
    # With alpha, Pillow premultiplies into a full-size copy first (+400 MB at 100 MP): a band at a time instead.
    from PIL import Image

    width, height = image.size
    reduced = Image.new(image.mode, (-(-width // factor), -(-height // factor)))
    band = factor * max(1, 4_000_000 // (width * factor))  # rows, a multiple of the factor: ~4 MP a band
    for top in range(0, height, band):
        reduced.paste(image.crop((0, top, width, min(height, top + band))).reduce(factor), (0, top // factor))
    return reduced


def _orientation(image) -> int:
    """The EXIF orientation (1: as stored); a broken EXIF block counts as none."""
    try:
        return int(image.getexif().get(_ORIENTATION, 1))
    except _MALFORMED:
        return 1


def _upright(image, orientation: int):  # -> PIL.Image.Image
    """``image`` turned as its EXIF orientation says (what ImageOps.exif_transpose does, from a value read before
    any reduction: a reduced copy has no EXIF)."""
    from PIL import Image

    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation)
    return image if method is None else image.transpose(method)


def _to_rgb(image):  # -> PIL.Image.Image
    from PIL import Image

    if image.mode == "P" and "transparency" not in image.info:
        return image.convert("RGB")
    if image.mode in ("RGBA", "LA", "P", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
        background = Image.new("RGB", image.size, (255, 255, 255))
        alpha = image.getchannel("A")
        background.paste(image, mask=alpha)  # on white: 4 + 3 + 1 bytes a pixel, no more
        background.info["cutout"] = _transparent_border(np.asarray(alpha)) >= CUTOUT_BORDER_SHARE
        return background
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        array = np.asarray(image, dtype=np.float32)
        span = max(float(array.max() - array.min()), 1.0)
        image = Image.fromarray(((array - array.min()) * (255.0 / span)).astype(np.uint8))
    return image.convert("RGB")


def _transparent_border(alpha: np.ndarray) -> float:
    """The share of the outermost pixels whose alpha is below half."""
    border = np.concatenate([alpha[0], alpha[-1], alpha[1:-1, 0], alpha[1:-1, -1]])
    return float((border < 128).mean())


def classifier_input(image) -> np.ndarray:
    """Resize the short side to 256, centre-crop 224 (a cut-out: the whole picture, centred on white), scale to
    [-1, 1]; returns (3, 224, 224) float32."""
    from PIL import Image

    if image.info.get("cutout"):
        return _scaled(_padded_square(image, CLASSIFIER_SIZE))
    width, height = image.size
    scale = RESIZE_SHORT_SIDE / min(width, height)
    size = (max(CLASSIFIER_SIZE, round(width * scale)), max(CLASSIFIER_SIZE, round(height * scale)))
    if size[0] * size[1] <= MAX_RESIZED_PIXELS:
        resized = image.resize(size, Image.BILINEAR, reducing_gap=2.0)
        left = (resized.width - CLASSIFIER_SIZE) // 2
        top = (resized.height - CLASSIFIER_SIZE) // 2
        crop = resized.crop((left, top, left + CLASSIFIER_SIZE, top + CLASSIFIER_SIZE))
    else:  # an extreme aspect ratio: resize only the centre square the crop keeps
        half = CLASSIFIER_SIZE / scale / 2
        box = (width / 2 - half, height / 2 - half, width / 2 + half, height / 2 + half)
        crop = image.resize((CLASSIFIER_SIZE, CLASSIFIER_SIZE), Image.BILINEAR, box=box, reducing_gap=2.0)
    return _scaled(crop)


def _padded_square(image, side: int):  # -> PIL.Image.Image
    """The whole image shrunk to fit a ``side`` square, centred on white."""
    from PIL import Image

    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(image.resize(size, Image.BILINEAR, reducing_gap=2.0), ((side - size[0]) // 2, (side - size[1]) // 2))
    return square


def _scaled(picture) -> np.ndarray:
    array = np.asarray(picture, dtype=np.float32) * (2.0 / 255.0) - 1.0
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def thumbnail(image, size: int = 256):  # -> PIL.Image.Image
    copy = image.copy()
    copy.thumbnail((size, size))
    return copy


def looks_like_document(image) -> bool:
    """A cheap text prior: scans, screenshots and charts are mostly flat, low-saturation background.

    Decides whether OCR is worth its ~1-2 s on an image; photos with text are caught by their labels.
    """
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    small = np.asarray(rgb.resize((128, 128)), dtype=np.int16)
    saturation = small.max(axis=2) - small.min(axis=2)
    grey = small.mean(axis=2)
    flat = (np.abs(np.diff(grey, axis=1)) < 4).mean()
    low_saturation = (saturation < 24).mean()
    return bool(flat > 0.5 and low_saturation > 0.85)
