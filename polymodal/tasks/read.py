"""Read the text in an image (OCR: Chinese and English lines with boxes and confidence), and its layout.

The layout is guessed from where the lines sit, so that a report can use a chart or a page, not just its
words. Charts: the largest line near the top is the title; a column of numbers aligned on the left is the
y axis; the row of lines under the plot is the x axis (a centred line under that: its title); short lines
with a coloured swatch just left of them are the legend; numbers inside the plot are data values (each
with the x-axis label it stands over). Anything else is a document: a title and paragraphs (lines joined
across small vertical gaps). These are heuristics on box positions: they hold for ordinary bar and line
charts with horizontal text, not for every design.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.analysis import Analyzer

_NUMBER = re.compile(r"^[(\s]*[-+−]?[$€£¥]?\s*[-+−]?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s*(%|k|K|M|B|bn)?[)\s]*$")
_SCALE = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "bn": 1e9}


@dataclass(eq=False)  # lines are compared by identity
class Line:
    text: str
    confidence: float
    box: list[list[float]]  # four (x, y) corners, clockwise from top-left, in image pixels

    @property
    def x0(self) -> float:
        return min(p[0] for p in self.box)

    @property
    def x1(self) -> float:
        return max(p[0] for p in self.box)

    @property
    def y0(self) -> float:
        return min(p[1] for p in self.box)

    @property
    def y1(self) -> float:
        return max(p[1] for p in self.box)

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def cx(self) -> float:
        return (self.x0 + self.x1) / 2

    @property
    def cy(self) -> float:
        return (self.y0 + self.y1) / 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "confidence": round(self.confidence, 3),
            "box": [[round(x, 1), round(y, 1)] for x, y in self.box],
        }


@dataclass
class Reading:
    source: str
    width: int
    height: int
    lines: list[Line]
    layout: dict[str, Any] = field(default_factory=dict)
    model: str = ""

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "width": self.width,
            "height": self.height,
            "model": self.model,
            "lines": [line.to_dict() for line in self.lines],
            "layout": self.layout,
        }

    def to_text(self) -> str:
        if not self.lines:
            return "no text found"
        out = [f"{line.text}  ({line.confidence:.2f})" for line in self.lines]
        summary = _layout_summary(self.layout)
        if summary:
            out += ["", *summary]
        return "\n".join(out)


def read(analyzer: Analyzer, source: Path | bytes) -> Reading:
    """OCR lines of an image file (top to bottom, left to right) and its layout."""
    from polymodal.media.image import open_image

    image = open_image(source, analyzer.settings.max_image_pixels)
    ocr = analyzer.model("ocr")
    lines = [Line(r.text, r.confidence, r.box) for r in ocr.read(image)]
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    return Reading(name, image.width, image.height, lines, layout(lines, image), ocr.model_id)


def layout(lines: list[Line], image: Any) -> dict[str, Any]:
    """Title, axes, legend and values of a chart, or title and paragraphs of a document (see module doc)."""
    if not lines:
        return {"kind": "empty"}
    width, height = image.size
    unit = statistics.median(line.height for line in lines)
    title = _title(lines, width, height, unit)
    rest = [line for line in lines if line is not title]
    y_ticks = _y_ticks(rest, width, unit)
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    legend = _legend(rest, pixels, exclude=y_ticks)
    taken = [*y_ticks, *(line for line, _ in legend)]
    x_labels = _x_labels([line for line in rest if line not in taken], height, unit)
    if len(y_ticks) < 3 and len(x_labels) < 2:
        return _document(title, rest, unit)
    return _chart(title, rest, y_ticks, x_labels, legend, pixels, unit)


# --- charts -------------------------------------------------------------------------------------------------
def _chart(title, lines, y_ticks, x_labels, legend, pixels, unit) -> dict[str, Any]:
    height, width = pixels.shape[:2]
    taken = {id(line) for line in [*y_ticks, *x_labels, *(line for line, _ in legend)]}
    left = max((line.x1 for line in y_ticks), default=0.0)
    top = title.y1 if title else 0.0
    bottom = min((line.y0 for line in x_labels), default=float(height))
    x_title = _below(lines, x_labels, taken, width, unit)
    y_title = _left_of(lines, y_ticks, taken)
    values = []
    for line in lines:
        value = parse_number(line.text)
        if id(line) in taken or line is x_title or line is y_title or value is None:
            continue
        if left <= line.cx <= width and top <= line.cy <= bottom:
            category, series = _nearest_label(line, x_labels), _series(pixels, line, legend)
            values.append({"text": line.text, "value": value, "category": category, "series": series, "x": line.cx})
            taken.add(id(line))
    values.sort(key=lambda v: v.pop("x"))
    taken |= {id(line) for line in (x_title, y_title) if line is not None}
    return {
        "kind": "chart",
        "title": title.text if title else None,
        "x_axis": {"title": x_title.text if x_title else None, "labels": [line.text for line in x_labels]},
        "y_axis": {
            "title": y_title.text if y_title else None,
            "ticks": [parse_number(line.text) for line in y_ticks],
            "tick_labels": [line.text for line in y_ticks],
        },
        "legend": [{"label": line.text, "color": color} for line, color in legend],
        "values": values,
        "other": [line.text for line in lines if id(line) not in taken],
    }


def _title(lines: list[Line], width: int, height: int, unit: float) -> Line | None:
    """The tallest non-numeric line in the top quarter, if it stands out by size or is centred."""
    top = [line for line in lines if line.cy < 0.25 * height and parse_number(line.text) is None]
    if not top:
        return None
    best = max(top, key=lambda line: (round(line.height / max(unit, 1.0), 1), -line.y0))
    centred = abs(best.cx - width / 2) < 0.15 * width
    return best if centred or best.height >= 1.2 * unit else None


def _y_ticks(lines: list[Line], width: int, unit: float) -> list[Line]:
    """The largest column of right-aligned numbers in the left 40 %, top to bottom (at least 3)."""
    numbers = [line for line in lines if line.cx < 0.4 * width and parse_number(line.text) is not None]
    best: list[Line] = []
    for anchor in numbers:
        column = [line for line in numbers if abs(line.x1 - anchor.x1) <= max(unit, 0.02 * width)]
        if len(column) > len(best):
            best = column
    best.sort(key=lambda line: line.cy)
    values = [parse_number(line.text) for line in best]
    monotonic = all(a >= b for a, b in zip(values, values[1:], strict=False)) or all(
        a <= b for a, b in zip(values, values[1:], strict=False)
    )
    return best if len(best) >= 3 and monotonic else []


def _x_labels(lines: list[Line], height: int, unit: float) -> list[Line]:
    """The row (same centre height) of at least two lines in the lower half with the most members,
    the highest such row when tied (the one touching the plot), left to right."""
    low = [line for line in lines if line.cy > 0.5 * height]
    rows: list[list[Line]] = []
    for line in sorted(low, key=lambda item: item.cy):
        if rows and abs(line.cy - statistics.mean(item.cy for item in rows[-1])) <= 0.6 * unit:
            rows[-1].append(line)
        else:
            rows.append([line])
    rows = [row for row in rows if len(row) >= 2]
    if not rows:
        return []
    best = max(rows, key=lambda row: (len(row), -row[0].cy))
    return sorted(best, key=lambda line: line.cx)


def _legend(lines: list[Line], pixels: np.ndarray, exclude: list[Line]) -> list[tuple[Line, str]]:
    """Short text lines with a coloured swatch just left of them, and the swatch colour (#rrggbb)."""
    found = []
    for line in lines:
        if line in exclude or len(line.text) > 30 or parse_number(line.text) is not None:
            continue
        color = _swatch(pixels, line)
        if color is not None:
            found.append((line, color))
    return found


def _swatch(pixels: np.ndarray, line: Line) -> str | None:
    h = max(line.height, 4.0)
    x_start, x_end = int(max(0, line.x0 - 2.5 * h)), int(max(0, line.x0 - 1))
    y_start, y_end = int(max(0, line.y0 + 0.15 * h)), int(line.y1 - 0.15 * h)
    return _dominant_color(pixels[y_start:y_end, x_start:x_end])


def _dominant_color(region: np.ndarray, share: float = 0.15) -> str | None:
    """The median colour (#rrggbb) of the saturated pixels of ``region``, if they are ``share`` of it."""
    flat = region.reshape(-1, 3)
    if flat.size == 0:
        return None
    colored = flat[(flat.max(axis=1) - flat.min(axis=1)) > 60]
    if len(colored) < share * len(flat):
        return None
    r, g, b = (int(v) for v in np.median(colored, axis=0))
    return f"#{r:02x}{g:02x}{b:02x}"


def _series(pixels: np.ndarray, line: Line, legend: list[tuple[Line, str]]) -> str | None:
    """The legend entry whose colour fills the bar or marker just under a data label."""
    if not legend:
        return None
    h = max(line.height, 4.0)
    y_start, x_start = int(line.y1 + 0.2 * h), int(line.cx - 0.3 * h)
    color = _dominant_color(pixels[y_start : int(y_start + 0.6 * h), max(0, x_start) : int(line.cx + 0.3 * h)], 0.5)
    if color is None:
        return None
    rgb = _rgb(color)
    distance, name = min((float(np.abs(rgb - _rgb(c)).sum()), entry.text) for entry, c in legend)
    return name if distance < 90 else None


def _rgb(color: str) -> np.ndarray:
    return np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])


def _below(lines: list[Line], x_labels: list[Line], taken: set[int], width: int, unit: float) -> Line | None:
    """The x-axis title: a free line under the x labels, roughly centred on them."""
    if not x_labels:
        return None
    floor = max(line.y1 for line in x_labels)
    middle = (x_labels[0].x0 + x_labels[-1].x1) / 2
    under = [
        line
        for line in lines
        if id(line) not in taken and line.y0 >= floor - 0.2 * unit and abs(line.cx - middle) < 0.25 * width
    ]
    return min(under, key=lambda line: line.y0) if under else None


def _left_of(lines: list[Line], y_ticks: list[Line], taken: set[int]) -> Line | None:
    """The y-axis title: a free, non-numeric line entirely left of the tick labels."""
    if not y_ticks:
        return None
    edge = min(line.x0 for line in y_ticks)
    top, bottom = y_ticks[0].y0, y_ticks[-1].y1
    left = [
        line
        for line in lines
        if id(line) not in taken and line.x1 <= edge and top <= line.cy <= bottom and parse_number(line.text) is None
    ]
    return max(left, key=lambda line: line.height) if left else None


def _nearest_label(line: Line, x_labels: list[Line]) -> str | None:
    if not x_labels:
        return None
    nearest = min(x_labels, key=lambda label: abs(label.cx - line.cx))
    spacing = (x_labels[-1].cx - x_labels[0].cx) / max(1, len(x_labels) - 1) if len(x_labels) > 1 else nearest.x1
    return nearest.text if abs(nearest.cx - line.cx) <= 0.6 * spacing else None


# --- documents ----------------------------------------------------------------------------------------------
def _document(title: Line | None, lines: list[Line], unit: float) -> dict[str, Any]:
    paragraphs: list[list[Line]] = []
    for line in sorted(lines, key=lambda item: (item.y0, item.x0)):
        if paragraphs and line.y0 - paragraphs[-1][-1].y1 < 0.8 * unit:
            paragraphs[-1].append(line)
        else:
            paragraphs.append([line])
    return {
        "kind": "document",
        "title": title.text if title else None,
        "paragraphs": [_join([line.text for line in group]) for group in paragraphs],
    }


def _join(texts: list[str]) -> str:
    """Lines of one paragraph as one string: Chinese lines join without a space, others with one."""
    from polymodal.media.text import has_cjk

    out = ""
    for text in texts:
        glue = "" if not out or (has_cjk(out[-1]) and has_cjk(text[0])) else " "
        out += glue + text
    return out


def parse_number(text: str) -> float | None:
    """The number a tick label or data label shows ("1,200", "45%", "$3.5", "2k", "−4"), or None."""
    match = _NUMBER.match(text.strip())
    if not match:
        return None
    digits = match.group(1).replace(",", "") + (match.group(2) or "")
    value = float(digits) * _SCALE.get(match.group(3) or "", 1.0)
    return -value if re.search(r"[-−]", text.split(match.group(1))[0]) else value


def _layout_summary(layout: dict[str, Any]) -> list[str]:
    kind = layout.get("kind")
    if kind == "chart":
        out = [f"chart: {layout['title'] or '(no title)'}"]
        y_axis, x_axis = layout["y_axis"], layout["x_axis"]
        if y_axis["ticks"]:
            name = f" ({y_axis['title']})" if y_axis["title"] else ""
            out.append(f"  y axis{name}: {', '.join(y_axis['tick_labels'])}")
        if x_axis["labels"]:
            name = f" ({x_axis['title']})" if x_axis["title"] else ""
            out.append(f"  x axis{name}: {', '.join(x_axis['labels'])}")
        if layout["legend"]:
            out.append("  legend: " + ", ".join(f"{e['label']} {e['color']}" for e in layout["legend"]))
        if layout["values"]:
            out.append("  values: " + ", ".join(_value_text(v) for v in layout["values"]))
        return out
    if kind == "document" and layout.get("title"):
        return [f"document: {layout['title']} ({len(layout['paragraphs'])} paragraphs)"]
    return []


def _value_text(value: dict[str, Any]) -> str:
    where = "/".join(part for part in (value.get("category"), value.get("series")) if part)
    return f"{where}={value['text']}" if where else value["text"]
