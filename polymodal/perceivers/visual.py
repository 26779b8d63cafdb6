"""Visual attributes of a picture, measured from its pixels: named colours, black and white, dark or bright,
and what kind of picture it is (photo, drawing, screenshot, document page).

No model: a few numpy passes over the picture subsampled to at most ``SIDE`` pixels a side (about 2 ms for
256 px). Each attribute comes with its English and Chinese words, so that a lexical index matches "red" and
"红色", and :func:`evidence_texts` phrases them as short texts ("mostly red", "a black and white photo",
"a screenshot") for a text encoder.

Colours are named in HSV with a palette of the 11 basic colour terms (Berlin & Kay): black, white, grey from
value where chroma is low, the others from hue, with brown for dark or dull oranges and yellows and pink for
light, dull reds and magentas. A small but vivid colour the main ones leave out (a red motorcycle in a grey
garage) is named as an accent ("red details"). A uniform background (the border's colour, covering the border)
is left out of the colour shares and named on its own ("white background"): a product photo on white is not
"mostly white".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

SIDE = 256  # pictures are subsampled (nearest pixel: flat colours stay exact) to this many pixels a side

COLOUR_WORDS = {
    "red": "红色",
    "orange": "橙色",
    "yellow": "黄色",
    "green": "绿色",
    "blue": "蓝色",
    "purple": "紫色",
    "pink": "粉色",
    "brown": "棕色",
    "black": "黑色",
    "white": "白色",
    "grey": "灰色",
}
COLOURS = tuple(COLOUR_WORDS)
KIND_WORDS = {  # kind -> (English text, Chinese word)
    "photo": ("a photo", "照片"),
    "drawing": ("a drawing", "图画"),
    "screenshot": ("a screenshot", "截图"),
    "document": ("a document page", "文档页面"),
}
# Chroma (max - min channel, of 255) under which a pixel is black, grey or white; value (max channel) bounds.
ACHROMATIC_CHROMA = 28
BLACK_VALUE = 45
WHITE_VALUE = 205
# A colour is reported when it covers this share of the foreground; at most MAX_COLOURS of them.
MIN_COLOUR_SHARE = 0.12
MAX_COLOURS = 3
MOSTLY_SHARE = 0.5  # "mostly red" from this share on
# An accent: the colour with the most vivid pixels (chroma at least VIVID_CHROMA) when they cover ACCENT_SHARE
# of the foreground and it is not among the colours named. The red of scikit-image's motorcycle in its garage
# covers 5 % at chroma 96 (the garage is grey, brown and black); chroma 96 keeps the cat's fur out (orange 3 %).
VIVID_CHROMA = 96
ACCENT_SHARE = 0.04
# Black and white: at most this share of pixels with any colour (chroma above ACHROMATIC_CHROMA / 2).
GREYSCALE_COLOURED_SHARE = 0.01
# Mean luma (0-255) under which a picture is dark, over which a photo is bright.
DARK_LUMA = 60
BRIGHT_LUMA = 190
# Background: border pixels within BACKGROUND_DISTANCE (max channel difference) of the border's median colour
# cover at least BACKGROUND_BORDER_SHARE of the border; it is named when it covers MIN_BACKGROUND_SHARE.
BACKGROUND_DISTANCE = 12
BACKGROUND_BORDER_SHARE = 0.75
MIN_BACKGROUND_SHARE = 0.2
# Kind of picture (see :func:`picture_kind`). Neighbouring pixels of a drawing are mostly identical (flat fills)
# or far apart (outlines); a photo's are mostly a little apart (soft gradients, texture, sensor noise). Soft
# steps are measured on the luma stretched to its 2-98 % range, so that a dark photo is not taken for a drawing.
# Measured on the scikit-image photos and 60 Tux Paint stamps (tests/test_visual_attributes.py): photos have
# at most 0.36 identical neighbours (a JPEG rocket against a dusk sky), clean drawings 0.45 to 0.92.
DRAWING_SAME_SHARE = 0.45  # a drawing: this share of horizontal neighbours identical (all three channels),
DRAWING_FLAT = (0.6, 0.2)  # or this share within FLAT_STEP of luma and under this share soft steps
FLAT_STEP = 1  # luma steps (0-255, before stretching) this small are flat
GRADIENT_STEPS = (4, 32)  # stretched luma steps in this range are soft
EDGE_STEP = 40  # luma steps this large are edges
TEXT_ROW_EDGES = 0.03  # a row with this share of edges crosses a line of text (or an object)
# ...and a band of such rows ends at a row with at most TEXT_ROW_GAP of its busiest row's edges, and at most
# TEXT_ROW_BLANK edges: measured on scikit-image's page (6 bands; 5 as a JPEG of quality 50), a rendered A4
# page (39 lines), 7 photos (1 to 4) and 700 Tux Paint stamps (two with 5, none more).
TEXT_ROW_GAP = 0.1
TEXT_ROW_BLANK = 0.02
SCREENSHOT_LINES = 2  # straight edges over half the picture's width or height (panels, bars)...
SCREENSHOT_TEXT_ROWS = 6  # ...and this many bands of rows with edges on them, blank rows between
PAPER_VALUE = 160  # colourless pixels at least this light are paper, darker ones ink (small text is grey)
DOCUMENT_PAPER_SHARE = 0.5  # a document: light, colourless paper...
DOCUMENT_INK_SHARE = 0.005  # ...some colourless ink...
DOCUMENT_COLOURED_SHARE = 0.05  # ...hardly any colour...
DOCUMENT_TEXT_ROWS = 5  # ...and lines of text


@dataclass(frozen=True)
class Attribute:
    """One visual fact. ``kind``: "colour", "accent" (a small vivid colour), "tone" (black and white), "light"
    (dark / bright), "picture" (photo / drawing / screenshot / document) or "background"; ``score``: a share of
    pixels for colours, accents and backgrounds, a confidence in [0, 1] for the others."""

    kind: str
    text: str
    text_zh: str
    score: float


@dataclass(frozen=True)
class Measurements:
    """What the attributes are decided from (shares are of the foreground unless said otherwise)."""

    colour_shares: dict[str, float]
    vivid_shares: dict[str, float]  # pixels of chroma VIVID_CHROMA and more, per colour name
    coloured_share: float  # of all pixels, chroma above ACHROMATIC_CHROMA / 2
    mean_luma: float
    background: str | None  # the uniform background's colour name
    background_share: float  # of all pixels
    same_share: float  # of horizontal neighbours in the foreground: identical colours
    flat_share: float  # of horizontal neighbours in the foreground: luma within FLAT_STEP
    gradient_share: float  # of horizontal neighbours in the foreground: stretched luma GRADIENT_STEPS apart
    lines: int  # rows and columns that are an edge over half the picture
    text_rows: int  # bands of rows with many edges, blank rows between (lines of text)
    paper_share: float  # of all pixels: colourless, PAPER_VALUE or lighter
    ink_share: float  # of all pixels: colourless, darker than PAPER_VALUE


def perceive(image: Any) -> list[Attribute]:
    """Visual attributes of ``image``: a PIL image, or a uint8 array (h, w, 3) RGB (a fourth channel is ignored)
    or (h, w) grey. Larger pictures are subsampled to ``SIDE`` pixels a side (pass a decoded draft: a JPEG
    decoded at 1/8 costs less than this reading it)."""
    return attributes_from(measure(image))


def measure(image: Any) -> Measurements:
    rgb = _small_rgb(image)
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    high, chroma = np.maximum(np.maximum(r, g), b), _chroma(r, g, b)
    luma = (r * 77 + g * 150 + b * 29) >> 8
    codes = (r >> 3 << 10) | (g >> 3 << 5) | (b >> 3)  # 5 bits a channel
    background, is_background = _background(rgb, (r, g, b))
    foreground = ~is_background if is_background.mean() < 0.95 else np.ones_like(is_background)
    size = max(int(foreground.sum()), 1)
    colourless = chroma < ACHROMATIC_CHROMA
    return Measurements(
        colour_shares=_name_shares(codes[foreground], size),
        vivid_shares=_name_shares(codes[foreground & (chroma >= VIVID_CHROMA)], size),
        coloured_share=float((chroma > ACHROMATIC_CHROMA // 2).mean()),
        mean_luma=float(luma[foreground].mean()),
        background=background,
        background_share=float(is_background.mean()),
        same_share=_same_share(rgb, foreground),
        flat_share=_flat_share(luma, foreground),
        gradient_share=_gradient_share(luma, foreground),
        lines=_lines(luma),
        text_rows=_text_rows(luma),
        paper_share=float((colourless & (high >= PAPER_VALUE)).mean()),
        ink_share=float((colourless & (high < PAPER_VALUE)).mean()),
    )


def attributes_from(m: Measurements) -> list[Attribute]:
    kind, confidence = picture_kind(m)
    out = [Attribute("picture", kind, KIND_WORDS[kind][1], confidence)]
    greyscale = m.coloured_share <= GREYSCALE_COLOURED_SHARE
    if greyscale and kind != "document":
        out.append(Attribute("tone", "black and white", "黑白", 1.0 - m.coloured_share / GREYSCALE_COLOURED_SHARE))
    if m.mean_luma < DARK_LUMA:
        out.append(Attribute("light", "dark", "昏暗", 1.0 - m.mean_luma / DARK_LUMA))
    elif m.mean_luma > BRIGHT_LUMA and kind == "photo":
        out.append(Attribute("light", "bright", "明亮", (m.mean_luma - BRIGHT_LUMA) / (255 - BRIGHT_LUMA)))
    if m.background and m.background_share >= MIN_BACKGROUND_SHARE and kind != "document":
        name = m.background
        out.append(Attribute("background", f"{name} background", f"{COLOUR_WORDS[name]}背景", m.background_share))
    if not greyscale and kind != "document":
        ranked = sorted(m.colour_shares.items(), key=lambda item: -item[1])
        named = [name for name, share in ranked[:MAX_COLOURS] if share >= MIN_COLOUR_SHARE]
        out += [Attribute("colour", name, COLOUR_WORDS[name], round(m.colour_shares[name], 3)) for name in named]
        accent, share = max(m.vivid_shares.items(), key=lambda item: item[1])
        if share >= ACCENT_SHARE and accent not in named:
            out.append(Attribute("accent", accent, COLOUR_WORDS[accent], round(share, 3)))
    return out


def picture_kind(m: Measurements) -> tuple[str, float]:
    """The kind of picture: "document" (light colourless paper, dark ink in lines), "screenshot" (flat, with
    straight panel edges and lines of text), "drawing" (flat fills and outlines) or "photo"; with a rough
    confidence in [0, 1]."""
    if (
        m.paper_share >= DOCUMENT_PAPER_SHARE
        and m.ink_share >= DOCUMENT_INK_SHARE
        and m.coloured_share <= DOCUMENT_COLOURED_SHARE
        and m.text_rows >= DOCUMENT_TEXT_ROWS
    ):
        return "document", m.paper_share
    flat_share, soft_share = DRAWING_FLAT
    flat = m.same_share >= DRAWING_SAME_SHARE or (m.flat_share >= flat_share and m.gradient_share < soft_share)
    if flat and m.lines >= SCREENSHOT_LINES and m.text_rows >= SCREENSHOT_TEXT_ROWS:
        return "screenshot", max(m.same_share, m.flat_share)
    if flat:
        return "drawing", max(m.same_share, m.flat_share)
    return "photo", 1.0 - m.same_share


def evidence_texts(attributes: list[Attribute], language: str = "en") -> list[str]:
    """Short texts for a text encoder and a lexical index, one per fact: "a photo", "a black and white photo",
    "dark", "white background", "mostly red, with white" or "red, white and blue"; Chinese with
    ``language="zh"`` ("照片", "黑白照片", "昏暗", "白色背景", "主要是红色，还有白色", "红色、白色和蓝色")."""
    zh = language == "zh"
    kind = next((a.text for a in attributes if a.kind == "picture"), "")
    texts = []
    for attribute in attributes:
        if attribute.kind == "picture":
            texts.append(attribute.text_zh if zh else KIND_WORDS[attribute.text][0])
        elif attribute.kind == "tone" and kind == "photo":
            texts.append("黑白照片" if zh else "a black and white photo")
        elif attribute.kind not in ("colour", "accent"):
            texts.append(attribute.text_zh if zh else attribute.text)
    colours = [a for a in attributes if a.kind == "colour"]
    text = _colour_text([c.text_zh if zh else c.text for c in colours], colours[0].score, zh) if colours else ""
    for accent in (a for a in attributes if a.kind == "accent"):
        details = f"{accent.text_zh}细节" if zh else f"{accent.text} details"
        text = f"{text}{'；' if zh else '; '}{details}" if text else details
    return [*texts, text] if text else texts


def _colour_text(words: list[str], first_share: float, zh: bool) -> str:
    if first_share >= MOSTLY_SHARE:
        rest = ("、" if zh else " and ").join(words[1:])
        if zh:
            return f"主要是{words[0]}" + (f"，还有{rest}" if rest else "")
        return f"mostly {words[0]}" + (f", with {rest}" if rest else "")
    if len(words) == 1:
        return words[0]
    return ("、".join(words[:-1]) + "和" + words[-1]) if zh else (", ".join(words[:-1]) + " and " + words[-1])


# --- measurements ------------------------------------------------------------------------------------------
def _small_rgb(image: Any) -> np.ndarray:
    """(h, w, 3) uint8, at most SIDE a side, subsampled by whole steps (nearest pixel); at least 4 a side."""
    if hasattr(image, "convert"):  # PIL: subsample before making an array (a 100 MP image would take 1 GB)
        step = max(1, -(-max(image.size) // SIDE))
        if step > 1:
            image = image.resize((-(-image.size[0] // step), -(-image.size[1] // step)), resample=0)  # nearest
        image = image.convert("RGB")
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] < 3 or array.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image, got an array of shape {array.shape} and type {array.dtype}")
    step = max(1, -(-max(array.shape[:2]) // SIDE))
    small = array[::step, ::step, :3]
    if min(small.shape[:2]) < 4:  # a sliver: edge rows and columns repeated, so every measurement has pixels
        small = np.pad(small, [(0, max(0, 4 - small.shape[0])), (0, max(0, 4 - small.shape[1])), (0, 0)], "edge")
    return np.ascontiguousarray(small)


def _chroma(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)


def _name_shares(codes: np.ndarray, size: int) -> dict[str, float]:
    """The share of ``size`` pixels each colour name has among the 15-bit colour ``codes``."""
    counts = np.bincount(codes, minlength=1 << 15)
    shares = np.bincount(_palette_names(), weights=counts, minlength=len(COLOURS)) / size
    return {name: float(share) for name, share in zip(COLOURS, shares, strict=True)}


@lru_cache(maxsize=1)
def _palette_names() -> np.ndarray:
    """COLOURS index of each 5-bit-a-channel colour code (its bin centre): naming is one table look-up."""
    levels = np.arange(32, dtype=np.int16) * 8 + 4
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    return _colour_names(np.stack([r.ravel(), g.ravel(), b.ravel()], axis=1))


def _colour_names(pixels: np.ndarray) -> np.ndarray:
    """Index into COLOURS of each (n, 3) pixel (0-255)."""
    p = pixels.astype(np.int16)
    high, low = p.max(axis=1), p.min(axis=1)
    chroma = high - low
    hue = _hue(p, high, chroma)
    saturation = chroma / np.maximum(high, 1)
    idx = {name: i for i, name in enumerate(COLOURS)}
    # Hue bins (degrees): red < 15 or >= 340, orange < 45, yellow < 70, green < 165, blue < 255, purple < 290,
    # pink < 340; then brown for dark or dull orange / yellow / red, pink for light dull red.
    bins = np.array([15, 45, 70, 165, 255, 290, 340])
    order = np.array([idx[n] for n in ("red", "orange", "yellow", "green", "blue", "purple", "pink", "red")])
    chromatic = order[np.searchsorted(bins, hue, side="right")]
    warm = (chromatic == idx["orange"]) | (chromatic == idx["yellow"])
    brown = (warm & ((high < 150) | ((saturation < 0.45) & (high < 215)))) | (
        (chromatic == idx["red"]) & (high < 120) & (saturation < 0.6)
    )
    chromatic = np.where(brown, idx["brown"], chromatic)
    light_red = (chromatic == idx["red"]) & (saturation < 0.45) & (high > 180)
    chromatic = np.where(light_red, idx["pink"], chromatic)
    dark_magenta = (chromatic == idx["pink"]) & (high < 140)
    chromatic = np.where(dark_magenta, idx["purple"], chromatic)
    achromatic = chroma < ACHROMATIC_CHROMA
    names = np.where(achromatic, idx["grey"], chromatic)
    names = np.where(achromatic & (high >= WHITE_VALUE), idx["white"], names)
    names = np.where(high < BLACK_VALUE, idx["black"], names)
    names = np.where(achromatic & (high < BLACK_VALUE + 25), idx["black"], names)
    return names.astype(np.intp)


def _hue(p: np.ndarray, high: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    r, g, b = p[:, 0], p[:, 1], p[:, 2]
    c = np.maximum(chroma, 1).astype(np.float32)
    hue = np.where(high == r, ((g - b) / c) % 6, np.where(high == g, (b - r) / c + 2, (r - g) / c + 4))
    return hue * 60.0


def _background(rgb: np.ndarray, planes: tuple[np.ndarray, ...]) -> tuple[str | None, np.ndarray]:
    """The colour name of a uniform background, and which pixels belong to it (close to the border's colour)."""
    h, w, _ = rgb.shape
    ring = max(1, min(h, w) // 50)
    sides = (rgb[:ring], rgb[-ring:], rgb[:, :ring], rgb[:, -ring:])
    border = np.concatenate([side.reshape(-1, 3) for side in sides]).astype(np.int16)
    colour = np.median(border, axis=0).astype(np.int16)
    if (np.abs(border - colour).max(axis=1) <= BACKGROUND_DISTANCE).mean() < BACKGROUND_BORDER_SHARE:
        return None, np.zeros((h, w), bool)
    close = np.ones((h, w), bool)
    for plane, level in zip(planes, colour, strict=True):
        close &= np.abs(plane - level) <= BACKGROUND_DISTANCE
    return COLOURS[int(_colour_names(colour[None])[0])], close


def _same_share(rgb: np.ndarray, foreground: np.ndarray) -> float:
    pairs = foreground[:, 1:] & foreground[:, :-1]
    if not pairs.any():
        return 1.0
    same = np.all(rgb[:, 1:] == rgb[:, :-1], axis=2)
    return float(same[pairs].mean())


def _flat_share(luma: np.ndarray, foreground: np.ndarray) -> float:
    steps = np.abs(np.diff(luma, axis=1)) <= FLAT_STEP
    pairs = foreground[:, 1:] & foreground[:, :-1]
    return float(steps[pairs].mean()) if pairs.any() else 1.0


def _gradient_share(luma: np.ndarray, foreground: np.ndarray) -> float:
    pairs = foreground[:, 1:] & foreground[:, :-1]
    if not pairs.any():
        return 0.0
    cumulative = np.cumsum(np.bincount(luma[foreground], minlength=256))
    low, high = np.searchsorted(cumulative, [0.02 * cumulative[-1], 0.98 * cumulative[-1]])
    stretched = np.abs(np.diff(luma, axis=1))[pairs] * (255.0 / max(int(high - low), 16))
    soft_low, soft_high = GRADIENT_STEPS
    return float(((stretched >= soft_low) & (stretched < soft_high)).mean())


def _lines(luma: np.ndarray) -> int:
    """Rows and columns along which the picture steps sharply over more than half its width or height."""
    down = np.abs(np.diff(luma, axis=0)) >= EDGE_STEP / 2
    across = np.abs(np.diff(luma, axis=1)) >= EDGE_STEP / 2
    return int((down.mean(axis=1) > 0.5).sum() + (across.mean(axis=0) > 0.5).sum())


def _text_rows(luma: np.ndarray) -> int:
    """Bands of rows with many edges (lines of text), each ended by a row with next to none (see TEXT_ROW_GAP).
    A photographed object's rows rarely empty out."""
    edges = (np.abs(np.diff(luma, axis=1)) >= EDGE_STEP).mean(axis=1)
    bands, peak, inside = 0, 0.0, False
    for share in edges.tolist():
        if not inside and share >= TEXT_ROW_EDGES:
            bands, peak, inside = bands + 1, share, True
        elif inside:
            peak = max(peak, share)
            inside = share > min(TEXT_ROW_GAP * peak, TEXT_ROW_BLANK)
    return bands


# --- what a chart's data is drawn with --------------------------------------------------------------------------
CHART_SIDE = 640  # charts are looked at this large: their lines are 1-2 px wide
MARK_CHROMA = 60  # the data of a chart is drawn in colour; axes, grid and text in black and grey
MIN_MARK_SHARE = 0.002  # of all pixels: less colour than this, and there are no coloured marks to judge
BAR_SOLID_SHARE = 0.5  # bars: at least this share of the coloured pixels is inside solid areas...
LINE_SOLID_SHARE = 0.1  # ...lines (and their point markers): at most this share is


def chart_marks(image: Any) -> str | None:
    """ "bars" or "lines": what a chart's data is drawn with, or None when its pixels do not say (no coloured
    marks, or both). A coloured pixel is *solid* when the square around it (about 1 % of the chart's width) is
    all coloured: bars are solid areas, lines and their point markers are thinner than the square."""
    rgb = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)[..., :3]
    step = max(1, -(-max(rgb.shape[:2]) // CHART_SIDE))
    rgb = rgb[::step, ::step].astype(np.int16)
    coloured = _chroma(rgb[..., 0], rgb[..., 1], rgb[..., 2]) > MARK_CHROMA
    if coloured.mean() < MIN_MARK_SHARE:
        return None
    side = max(5, round(rgb.shape[1] * 0.011) | 1)  # odd
    solid = _window_sums(coloured, side) == side * side
    solid_share = solid.sum() / coloured.sum()
    if solid_share >= BAR_SOLID_SHARE:
        return "bars"
    return "lines" if solid_share <= LINE_SOLID_SHARE else None


def _window_sums(mask: np.ndarray, side: int) -> np.ndarray:
    """For each pixel, how many pixels of ``mask`` are set in the ``side`` x ``side`` square centred on it
    (0 near the border, where the square does not fit)."""
    table = np.pad(mask.astype(np.int32).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = table[side:, side:] - table[:-side, side:] - table[side:, :-side] + table[:-side, :-side]
    out = np.zeros(mask.shape, dtype=np.int32)
    half = side // 2
    out[half : half + sums.shape[0], half : half + sums.shape[1]] = sums
    return out
