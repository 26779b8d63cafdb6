"""What is known about one file, as short facts: the common input of describe, ask and analyze.

Facts come from the one analysis path (:meth:`Analyzer.analyze_file`: labels, OCR lines, transcript
segments, sound tags, passages) plus cheap measurements made here: an image's size, orientation and
dominant colours (named colours over a 64×64 thumbnail). Each fact keeps its score, so that phrasing can
say "probably" for the unsure ones, and each can be traced back to the evidence it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.analysis import LABEL, OCR, PASSAGE, TAG, TRANSCRIPT, Analysis, Analyzer, Evidence
from polymodal.media.detect import detect

SURE = 0.5  # below this score a fact is phrased with "probably"
MIN_LABEL_SCORE = 0.05  # classifier labels below this are noise, not facts
MAX_LABELS = 5
MAX_TAGS = 5
MAX_SHOT_LABELS = 2  # a video's labels per shot
MIN_COLOUR_SHARE = 0.12  # a colour covering less of the image is not dominant
COLOUR, SIZE, META = "colour", "size", "meta"
FORMAT_NAMES = {"txt": "plain-text", "md": "Markdown", "html": "HTML", "pdf": "PDF"}


@dataclass
class Fact:
    kind: str  # an evidence kind (label, ocr, transcript, tag, passage) or colour / size / meta
    text: str
    score: float | None = None
    start: float | None = None
    end: float | None = None

    @property
    def sure(self) -> bool:
        return self.score is None or self.score >= SURE

    def line(self) -> str:
        """The fact as one prompt line, e.g. ``label: espresso (95%)`` or ``label: cup (12%, probably)``."""
        text = f"“{self.text}”" if self.kind in (OCR, TRANSCRIPT) else self.text
        if self.start is not None:
            text = f"[{clock(self.start)}–{clock(self.end or self.start)}] {text}"
        if self.score is not None and self.kind in (LABEL, TAG):
            text += f" ({percent(self.score)}{'' if self.sure else ', probably'})"
        elif self.score is not None and self.kind == COLOUR:
            text += f" ({percent(self.score)} of the image)"
        return f"{self.kind}: {text}"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Facts:
    source: str
    modality: str
    facts: list[Fact]
    analysis: Analysis
    image: Any = field(default=None, repr=False)  # the decoded PIL image (images only), for thumbnails

    def of(self, *kinds: str) -> list[Fact]:
        return [f for f in self.facts if f.kind in kinds]

    @property
    def used(self) -> list[str]:
        """The kinds of evidence present, in a stable order ("label", "ocr", ...)."""
        order = [LABEL, OCR, COLOUR, SIZE, TAG, TRANSCRIPT, PASSAGE, META]
        return [kind for kind in order if self.of(kind)]

    def prompt(self, facts: list[Fact] | None = None) -> str:
        return "\n".join(f"- {fact.line()}" for fact in (self.facts if facts is None else facts))

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "modality": self.modality, "facts": [f.to_dict() for f in self.facts]}


def ocr_mode_for(analyzer: Analyzer) -> str:
    """Tasks that describe or answer want any text an image has, unless the user turned OCR off."""
    return "never" if analyzer.settings.ocr_mode == "never" else "always"


def gather(analyzer: Analyzer, source: Path, analysis: Analysis | None = None) -> Facts:
    """Facts about the file at ``source``; ``analysis`` (e.g. from the store) skips perception.

    A stored image analysis made without OCR is redone with it: describe and ask want any text there is.
    """
    source = Path(source)
    mode = ocr_mode_for(analyzer)
    if analysis is None and detect(source).modality == "video":
        mode = None  # every shot of an hour of video read at 1-2 s each: the OCR gate decides, as in indexing
    if analysis is not None and analysis.modality == "image" and "ocr" not in analysis.models and mode != "never":
        analysis = None  # stored without OCR ("auto" saw no text): look again, reading any text there is
    analysis = analysis or analyzer.analyze_file(source, ocr_mode=mode)
    facts: list[Fact] = []
    image = None
    if analysis.modality == "image":
        from polymodal.media.image import open_image

        image = open_image(source, analyzer.settings.max_image_pixels, draft_to=1024)
        facts += image_facts(analysis, image)
    elif analysis.modality == "audio":
        facts += audio_facts(analysis)
    elif analysis.modality == "video":
        facts += video_facts(analysis)
    else:
        facts += text_facts(analysis)
    return Facts(str(source), analysis.modality, facts, analysis, image)


def image_facts(analysis: Analysis, image: Any) -> list[Fact]:
    labels = [e for e in evidence_of(analysis, LABEL) if (e.score or 0.0) >= MIN_LABEL_SCORE][:MAX_LABELS]
    if not labels and evidence_of(analysis, LABEL):
        labels = evidence_of(analysis, LABEL)[:1]  # the best guess, marked unsure by its score
    facts = [Fact(LABEL, e.text, e.score) for e in labels]
    facts += [Fact(OCR, e.text, e.score) for e in evidence_of(analysis, OCR) if readable(e.text)]
    facts += [Fact(COLOUR, name, share) for name, share in dominant_colours(image)]
    width, height = analysis.meta.get("width", image.width), analysis.meta.get("height", image.height)
    facts.append(Fact(SIZE, f"{width}×{height} pixels, {orientation(width, height)}"))
    return facts


def audio_facts(analysis: Analysis) -> list[Fact]:
    meta = analysis.meta
    facts = [Fact(META, f"duration {meta.get('duration', 0):.0f} s")]
    facts += [Fact(TAG, e.text, e.score) for e in evidence_of(analysis, TAG)[:MAX_TAGS]]
    segments = evidence_of(analysis, TRANSCRIPT)
    if segments and meta.get("language"):
        facts.append(Fact(META, f"spoken language {language_name(meta['language'])}"))
    elif not segments:
        facts.append(Fact(META, "no speech recognised"))
    facts += [Fact(TRANSCRIPT, e.text, e.score, e.start, e.end) for e in segments]
    return facts


def video_facts(analysis: Analysis) -> list[Fact]:
    """A video's timeline as facts: what each shot shows, on-screen text, sounds and speech, each with times."""
    meta = analysis.meta
    width, height = meta.get("width", 0), meta.get("height", 0)
    facts = [Fact(META, f"duration {meta.get('duration', 0):.0f} s"), Fact(META, f"{meta.get('shots', 0)} shots")]
    facts.append(Fact(SIZE, f"{width}×{height} pixels, {orientation(width, height)}"))
    for labels in _same_span(evidence_of(analysis, LABEL)):
        kept = [e for e in labels if (e.score or 0.0) >= MIN_LABEL_SCORE][:MAX_SHOT_LABELS] or labels[:1]
        facts += [Fact(LABEL, e.text, e.score, e.start, e.end) for e in kept]
    facts += _runs([e for e in evidence_of(analysis, OCR) if readable(e.text)], OCR)
    facts += sorted(_runs(evidence_of(analysis, TAG), TAG), key=lambda f: (f.start or 0.0, -(f.score or 0.0)))
    segments = evidence_of(analysis, TRANSCRIPT)
    if segments and meta.get("language"):
        facts.append(Fact(META, f"spoken language {language_name(meta['language'])}"))
    elif not segments:
        facts.append(Fact(META, "no speech recognised"))
    return facts + [Fact(TRANSCRIPT, e.text, e.score, e.start, e.end) for e in segments]


def _same_span(evidence: list[Evidence]) -> list[list[Evidence]]:
    groups: dict[tuple[float | None, float | None], list[Evidence]] = {}
    for e in evidence:
        groups.setdefault((e.start, e.end), []).append(e)
    return list(groups.values())


def _runs(evidence: list[Evidence], kind: str) -> list[Fact]:
    """The same text in back-to-back spans (a tag in consecutive sound windows, a line over several shots) as
    one fact from the first start to the last end, with the best score."""
    open_runs: dict[str, Fact] = {}
    done: list[Fact] = []
    for e in sorted(evidence, key=lambda e: (e.start or 0.0)):
        run = open_runs.get(e.text)
        if run is not None and e.start is not None and run.end is not None and e.start <= run.end + 0.01:
            run.end = max(run.end, e.end or run.end)
            run.score = max(run.score or 0.0, e.score or 0.0)
            continue
        if run is not None:
            done.append(run)
        open_runs[e.text] = Fact(kind, e.text, e.score, e.start, e.end)
    return sorted(done + list(open_runs.values()), key=lambda f: f.start or 0.0)


def text_facts(analysis: Analysis) -> list[Fact]:
    from polymodal.media.text import has_cjk

    passages = evidence_of(analysis, PASSAGE)
    language = "Chinese" if any(has_cjk(p.text) for p in passages[:5]) else "not Chinese"
    kind = FORMAT_NAMES.get(analysis.format, analysis.format)
    facts = [Fact(META, f"{kind} document, {analysis.meta.get('chars', 0)} characters, {language}")]
    if analysis.meta.get("title"):
        facts.append(Fact(META, f"title {analysis.meta['title']}"))
    return facts + [Fact(PASSAGE, p.text) for p in passages]


def evidence_of(analysis: Analysis, *kinds: str) -> list[Evidence]:
    return [e for e in analysis.evidence if e.kind in kinds]


LANGUAGES = dict(
    pair.split(":")
    for pair in "en:English zh:Chinese fr:French de:German es:Spanish it:Italian ja:Japanese ko:Korean "
    "ru:Russian pt:Portuguese nl:Dutch ar:Arabic".split()
)


def language_name(code: str) -> str:
    return f"{LANGUAGES[code]} ({code})" if code in LANGUAGES else code


def readable(text: str) -> bool:
    """An OCR line worth reporting: at least two letters or digits (a lone "0" on fur is noise)."""
    return sum(ch.isalnum() for ch in text) >= 2


def orientation(width: int, height: int) -> str:
    if abs(width - height) <= 0.05 * max(width, height):
        return "square"
    return "landscape" if width > height else "portrait"


# --- colours ------------------------------------------------------------------------------------------------
# Hue sectors (degrees, upper bound) of the saturated colours.
_HUES = [(15, "red"), (40, "orange"), (68, "yellow"), (160, "green"), (195, "cyan"), (255, "blue"),
         (290, "purple"), (335, "pink"), (360, "red")]  # fmt: skip


def dominant_colours(image: Any, k: int = 3) -> list[tuple[str, float]]:
    """Named colours covering at least ``MIN_COLOUR_SHARE`` of a 64×64 thumbnail, largest share first."""
    rgb = np.asarray(image.convert("RGB").resize((64, 64)), dtype=np.float32).reshape(-1, 3) / 255.0
    names = colour_names(rgb)
    values, counts = np.unique(names, return_counts=True)
    shares = sorted(zip(values.tolist(), (counts / counts.sum()).tolist(), strict=True), key=lambda v: -v[1])
    return [(name, round(share, 2)) for name, share in shares[:k] if share >= MIN_COLOUR_SHARE]


def colour_names(rgb: np.ndarray) -> np.ndarray:
    """A colour name per (n, 3) RGB row in [0, 1], by rules on hue, saturation and value."""
    top, bottom = rgb.max(axis=1), rgb.min(axis=1)
    chroma = top - bottom
    saturation = np.where(top > 0, chroma / np.maximum(top, 1e-6), 0.0)
    hue = _hue(rgb, top, chroma)
    names = np.empty(len(rgb), dtype=object)
    bounds = [bound for bound, _ in _HUES]
    names[:] = [_HUES[i][1] for i in np.searchsorted(bounds, hue, side="right").clip(0, len(_HUES) - 1)]
    warm = (hue >= 12) & (hue < 50)
    names[warm & (top < 0.72) & (saturation > 0.3)] = "brown"
    names[(names == "cyan") & (top < 0.6)] = "teal"
    names[warm & (saturation <= 0.35) & (saturation > 0.15) & (top >= 0.6)] = "beige"
    grey = saturation <= 0.15
    names[grey] = "grey"
    names[grey & (top >= 0.85)] = "white"
    names[(top < 0.18) | (grey & (top < 0.3))] = "black"
    return names


def _hue(rgb: np.ndarray, top: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(top == r, ((g - b) / safe) % 6, np.where(top == g, (b - r) / safe + 2, (r - g) / safe + 4))
    return np.where(chroma > 0, hue * 60.0, 0.0)


# --- small formatting helpers shared by the tasks --------------------------------------------------------------
def percent(score: float) -> str:
    return f"{round(score * 100)}%"


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"
