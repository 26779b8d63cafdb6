"""Analyze a bundle of files together: what each says or shows, and what they say together.

Per item: a document's summary and key sentences; an image's description, its text (OCR) and, for charts,
their layout (title, axes, legend, values, from :mod:`polymodal.tasks.read`); a recording's transcript
with times, its summary and its sound tags. Across items: an overall summary, key points, entities (names,
times, amounts; Chinese names through jieba's part-of-speech tags), and statements of different items that
agree or seem to contradict (similar meaning in the shared text space; a contradiction when their numbers
or negations differ). Summaries are the LLM's when one is available (map-reduce over long inputs), else
extractive. The overall summary is grounded like every generated text (:func:`polymodal.tasks.grounding.ground`):
each sentence must be traceable to the items' evidence (the documents' text, OCR lines, transcripts, label
and tag names, durations and sizes; never a model's confidence), unsupported ones are dropped, and each kept
one names the items and the line it rests on (``summary_points``). Rendering (Markdown, HTML, JSON) is in
:mod:`polymodal.tasks.report`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.analysis import LABEL, OCR, TAG, TRANSCRIPT, Analyzer
from polymodal.errors import UsageError
from polymodal.providers import AUTO, Phraser, resolve, stream_text
from polymodal.tasks.describe import describe, document_text
from polymodal.tasks.facts import COLOUR, META, PICTURE, SIZE, Facts, gather, language_name
from polymodal.tasks.grounding import Point, Source, ground
from polymodal.tasks.summarize import sentences_of, summarize, tidy, unlabel

AGREE_SIMILARITY = 0.6  # statements of two items this close in meaning say the same thing
CONFLICT_SIMILARITY = 0.4  # ... this close, with different numbers or negation: they may contradict
MAX_RELATIONS = 6
MAX_STATEMENTS = 200  # per item, for relations
OVERALL_SYSTEM = (
    "You write the overall summary of a set of items (documents, images, recordings) that were analysed "
    "together. Use only the information given; add no facts, names or numbers. Say what each item contributes "
    "and where they agree or contradict. Answer with the summary only, at most {words} words."
)
MIN_DIGEST_TAG = 0.5  # sound tags less sure than this are not given to the LLM (it would state them)
Progress = Callable[[int, int, str], None]


@dataclass
class Segment:
    start: float
    end: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text}


@dataclass
class ItemReport:
    source: str
    modality: str
    format: str
    summary: str  # what it says or shows
    summary_by: str
    key_points: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    title: str | None = None
    labels: list[tuple[str, float]] = field(default_factory=list)
    colours: list[str] = field(default_factory=list)
    ocr: list[str] = field(default_factory=list)
    layout: dict[str, Any] | None = None  # from polymodal.tasks.read, when it found a chart or a page
    layout_lines: list[str] = field(default_factory=list)
    tags: list[tuple[str, float]] = field(default_factory=list)
    transcript: list[Segment] = field(default_factory=list)
    language: str | None = None
    duration: float | None = None
    size: tuple[int, int] | None = None
    notes: list[str] = field(default_factory=list)  # for the reader: what reading the file met (a cut file)
    diagnostics: list[str] = field(default_factory=list)  # internal: what the checks changed (--debug)
    facts: Facts | None = field(default=None, repr=False)  # for rendering (thumbnails); not serialised

    @property
    def name(self) -> str:
        return Path(self.source).name

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "facts" and v not in (None, [], {})}
        out["name"] = self.name
        out["labels"] = [{"label": label, "score": round(score, 4)} for label, score in self.labels]
        out["tags"] = [{"tag": tag, "score": round(score, 4)} for tag, score in self.tags]
        out["transcript"] = [s.to_dict() for s in self.transcript]
        return out


@dataclass
class Entity:
    text: str
    kind: str  # name, place, organisation, time, amount, year
    items: list[int]  # indices into Report.items
    count: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Relation:
    kind: str  # "agree" or "contradict"
    items: tuple[int, int]
    statements: tuple[str, str]
    similarity: float
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "items": list(self.items), "statements": list(self.statements)}


@dataclass
class Report:
    items: list[ItemReport]
    summary: str
    summary_by: str
    key_points: list[str]
    entities: list[Entity]
    relations: list[Relation]
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    title: str = "Analysis"
    summary_points: list[Point] = field(default_factory=list)  # each sentence of the summary, what it rests on
    diagnostics: list[str] = field(default_factory=list)  # internal: what the checks changed (--debug)
    revised: bool = False  # the streamed summary was changed by the check (``summary`` replaces it)

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "summary": self.summary,
            "summary_by": self.summary_by,
            "summary_points": [point.to_dict() for point in self.summary_points],
            "key_points": self.key_points,
            "entities": [e.to_dict() for e in self.entities],
            "relations": [r.to_dict() for r in self.relations],
            "items": [item.to_dict() for item in self.items],
            "seconds": round(self.seconds, 2),
            "notes": self.notes,
            "diagnostics": self.diagnostics,
            "revised": self.revised,
        }

    def to_text(self, debug: bool = False) -> str:
        from polymodal.tasks.report import to_markdown

        return to_markdown(self, debug)

    def write(self, path: str | Path, debug: bool = False) -> Path:
        from polymodal.tasks.report import write_report

        return write_report(self, Path(path), debug)


def analyze(
    analyzer: Analyzer,
    sources: Sequence[str | Path],
    phraser: Phraser | str | None = AUTO,
    progress: Progress | None = None,
    words: int = 100,
    on_token: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> Report:
    """Analyze ``sources`` (files) one by one, then together; ``phraser=None`` is fully extractive.

    ``on_token`` hears the overall summary as the LLM writes it; ``stop`` set stops the LLM
    (:class:`polymodal.providers.Cancelled` is raised)."""
    if not sources:
        raise UsageError("nothing to analyze: give at least one file")
    started = time.perf_counter()
    phraser = resolve(phraser, analyzer)
    items = []
    for done, source in enumerate(sources):
        if progress:
            progress(done, len(sources), str(source))
        items.append(analyze_item(analyzer, Path(source), phraser, stop))
    if progress:
        progress(len(sources), len(sources), "")
    statements = [item_statements(item) for item in items]
    report = Report(
        items, "", "extractive", overall_key_points(items), find_entities(statements),
        find_relations(analyzer, statements),
    )  # fmt: skip
    overall_summary(report, phraser, words, on_token, stop)
    report.seconds = time.perf_counter() - started
    return report


# --- one item ----------------------------------------------------------------------------------------------
def analyze_item(
    analyzer: Analyzer, source: Path, phraser: Phraser | None, stop: threading.Event | None = None
) -> ItemReport:
    facts = gather(analyzer, source)
    analysis = facts.analysis
    item = ItemReport(str(source), facts.modality, analysis.format, "", "extractive", facts=facts)
    item.title = analysis.meta.get("title")
    if facts.modality == "text":
        _text_item(item, facts, phraser, stop)
    elif facts.modality == "image":
        _image_item(analyzer, item, facts, phraser, stop)
    else:
        _audio_item(analyzer, item, facts, phraser, stop)
    item.notes += analysis.notes
    return item


def _text_item(item: ItemReport, facts: Facts, phraser: Phraser | None, stop: threading.Event | None) -> None:
    summary = summarize(document_text(facts), phraser, stop=stop)
    item.summary, item.summary_by = summary.text, summary.by
    item.key_points, item.keywords = summary.key_points, summary.keywords
    item.notes, item.diagnostics = summary.notes, summary.diagnostics


def _image_item(
    analyzer: Analyzer, item: ItemReport, facts: Facts, phraser: Phraser | None, stop: threading.Event | None
) -> None:
    description = describe(analyzer, Path(item.source), phraser, facts=facts, stop=stop)
    item.summary, item.summary_by, item.notes = description.caption, description.by, description.notes
    item.diagnostics = description.diagnostics
    item.labels = [(f.text, f.score or 0.0) for f in facts.of(LABEL)]
    item.colours = [f.text for f in facts.of(COLOUR)]
    item.ocr = [f.text for f in facts.of(OCR)]
    item.size = (facts.analysis.meta.get("width", 0), facts.analysis.meta.get("height", 0))
    item.layout, item.layout_lines = chart_layout(analyzer, facts)
    item.key_points = item.layout_lines or item.ocr[:5]


def _audio_item(
    analyzer: Analyzer, item: ItemReport, facts: Facts, phraser: Phraser | None, stop: threading.Event | None
) -> None:
    meta = facts.analysis.meta
    item.duration = meta.get("duration")
    item.language = language_name(meta["language"]) if meta.get("language") else None
    item.tags = [(f.text, f.score or 0.0) for f in facts.of(TAG)]
    item.transcript = [Segment(f.start or 0.0, f.end or 0.0, f.text) for f in facts.of(TRANSCRIPT)]
    if item.transcript:
        summary = summarize(" ".join(s.text for s in item.transcript), phraser, stop=stop)
        item.summary, item.summary_by = summary.text, summary.by
        item.key_points, item.keywords = summary.key_points, summary.keywords
        item.notes, item.diagnostics = summary.notes, summary.diagnostics
    else:
        description = describe(analyzer, Path(item.source), phraser, facts=facts, stop=stop)
        item.summary, item.summary_by, item.notes = description.caption, description.by, description.notes
        item.diagnostics = description.diagnostics


def chart_layout(analyzer: Analyzer, facts: Facts) -> tuple[dict[str, Any] | None, list[str]]:
    """The layout of the image's text (chart or page) by :mod:`polymodal.tasks.read`, from the OCR evidence."""
    boxes = [e for e in facts.analysis.evidence if e.kind == OCR and e.box]
    if not boxes or facts.image is None:
        return None, []
    try:
        from polymodal.tasks import read
    except ImportError:
        return None, []
    image = _full_size(analyzer, facts)
    layout = read.layout([read.Line(e.text, e.score or 0.0, e.box) for e in boxes], image)  # type: ignore[arg-type]
    if layout.get("kind") != "chart":
        return None, []  # a page's lines are already in the OCR text
    return layout, read._layout_summary(layout) if hasattr(read, "_layout_summary") else []


def _full_size(analyzer: Analyzer, facts: Facts) -> Any:
    meta = facts.analysis.meta
    if facts.image.size == (meta.get("width"), meta.get("height")):
        return facts.image
    from polymodal.media.image import open_image

    return open_image(Path(facts.source), analyzer.settings.max_image_pixels)


# --- across items ------------------------------------------------------------------------------------------
def item_statements(item: ItemReport) -> list[str]:
    """What an item states, sentence by sentence: for relations and entities."""
    if item.modality == "text" and item.facts is not None:
        found = sentences_of(document_text(item.facts))
    elif item.modality == "image":
        found = [*item.ocr, *item.layout_lines]
    else:
        found = sentences_of(" ".join(s.text for s in item.transcript)) if item.transcript else []
    return found[:MAX_STATEMENTS]


def overall_summary(
    report: Report,
    phraser: Phraser | None,
    words: int,
    on_token: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Fill in the report's overall summary: the LLM's, each sentence checked against the items' evidence
    (unsupported ones dropped), else each item's first sentence; with what each sentence rests on."""
    items = report.items
    report.summary, report.summary_by, report.summary_points = _extractive_summary(items)
    if phraser is None:
        if on_token is not None:
            on_token(report.summary)
        return
    digest = "\n\n".join(_digest(i, item) for i, item in enumerate(items))
    budget = max(256, phraser.context_tokens - 700)
    if phraser.count_tokens(digest) > budget:
        from polymodal.tasks.summarize import map_reduce

        text, _ = map_reduce(digest, phraser, words, on_token, stop)
    else:
        system = OVERALL_SYSTEM.format(words=words)
        pieces = []
        for piece in stream_text(phraser, system, digest, max_tokens=words * 2, stop=stop):
            pieces.append(piece)
            if on_token is not None:
                on_token(piece)
        text = unlabel("".join(pieces))
    grounded = ground(tidy(text), [evidence_source(item) for item in items])
    report.diagnostics += grounded.diagnostics(f"the {phraser.name} summary")
    report.revised = grounded.text != text
    if not grounded.text:
        report.diagnostics.append(f"the {phraser.name} summary was not used: “{text}”")
        return
    report.summary, report.summary_by, report.summary_points = grounded.text, phraser.name, grounded.points


def _extractive_summary(items: list[ItemReport]) -> tuple[str, str, list[Point]]:
    points = []
    for i, item in enumerate(items):
        sentence = _first_sentence(item.summary)
        points.append(Point(f"{_label(i, item)}: {sentence}", [item.name], [sentence]))
    return " ".join(point.text for point in points), "extractive", points


def evidence_source(item: ItemReport) -> Source:
    """What an item's evidence says, line by line, for grounding a summary: its text, the text read in it, what
    is said in it, the names of what the models saw and heard (with their synonyms and hypernyms), its size and
    duration. No confidences: a model's score is not something the item says."""
    from polymodal.tasks.grounding import label_terms

    facts = item.facts
    lines = [item.name] + ([item.title] if item.title else [])
    if facts is None:
        return Source(item.name, lines + [item.summary])
    if item.modality == "text":
        lines += sentences_of(document_text(facts), headings=True)
    lines += [f.text for f in facts.of(OCR, TRANSCRIPT, LABEL, TAG, COLOUR, PICTURE, META)]
    lines += [f"size {f.text}" for f in facts.of(SIZE)]
    lines += label_terms(facts)
    return Source(item.name, lines)


def _digest(i: int, item: ItemReport) -> str:
    lines = [f"ITEM {i + 1}: {_label(i, item)}", f"Summary: {item.summary}"]
    lines += [f"- {point}" for point in item.key_points[:4]]
    if item.ocr:
        lines.append(f"Text in the image: {' / '.join(item.ocr[:8])}")
    sounds = [tag for tag, score in item.tags[:4] if score >= MIN_DIGEST_TAG and tag != "Silence"]
    if sounds:
        lines.append("Sounds: " + ", ".join(sounds))
    return "\n".join(lines)


def _label(i: int, item: ItemReport) -> str:
    kind = {"text": "document", "image": "image", "audio": "recording", "video": "video"}[item.modality]
    return f"{kind} {item.name}"


def _first_sentence(text: str) -> str:
    sentences = sentences_of(text) if text else []
    return sentences[0] if sentences else text


def overall_key_points(items: list[ItemReport], per_item: int = 2) -> list[str]:
    points = []
    for item in items:
        points += [f"{point} ({item.name})" for point in item.key_points[:per_item]]
        if not item.key_points and item.summary:
            points.append(f"{_first_sentence(item.summary)} ({item.name})")
    return points


# --- entities ------------------------------------------------------------------------------------------------
_TIME = re.compile(r"\b\d{1,2}(?::\d{2})?\s?(?:[AaPp]\.?[Mm]\.?)(?![A-Za-z])|\b\d{1,2}:\d{2}\b")
_AMOUNT = re.compile(r"[$€£¥]\s?\d[\d,.]*(?:\s?(?:k|m|bn|million|billion))?|\b\d[\d,.]*\s?(?:%|percent\b|per cent\b)")
_YEAR = re.compile(r"\b(?:1[5-9]|20)\d{2}\b")
_NAME = re.compile(r"\b[A-Z][a-z’'é]+(?:\s+(?:of|de|la|van|von|der)?\s*[A-Z][a-z’'é]+)*")
_CJK_KINDS = {"nr": "name", "ns": "place", "nt": "organisation", "nz": "name"}
NOT_NAMES = frozenset(
    "The A An It In On At We I He She They This That These Those There Here When Where What Which Who Why How "
    "If But And Or So Yes No Not Our Your My His Her Its Their For From To With By As Of Be Is Are Was Were "
    "Mr Mrs Ms Dr Notes Note Summary Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
)


def find_entities(statements: list[list[str]], limit: int = 30) -> list[Entity]:
    """Names, places, times, amounts and years in the items' statements, most frequent first."""
    found: dict[tuple[str, str], tuple[set[int], int]] = {}
    for index, texts in enumerate(statements):
        for text in texts:
            for value, kind in _entities_in(text):
                items, count = found.get((value, kind), (set(), 0))
                found[(value, kind)] = (items | {index}, count + 1)
    ranked = sorted(found.items(), key=lambda kv: (-len(kv[1][0]), -kv[1][1], kv[0][0]))
    return [Entity(value, kind, sorted(items), count) for (value, kind), (items, count) in ranked[:limit]]


def _entities_in(text: str) -> list[tuple[str, str]]:
    out = [(m.group().strip(), "time") for m in _TIME.finditer(text)]
    out += [(m.group().strip(), "amount") for m in _AMOUNT.finditer(text)]
    out += [(m.group(), "year") for m in _YEAR.finditer(text) if not _TIME.search(m.group())]
    out += [(name, "name") for name in _names(text)]
    from polymodal.media.text import has_cjk

    if has_cjk(text):
        out += _chinese_entities(text)
    return out


def _names(text: str) -> list[str]:
    """Runs of capitalised words; a single one opening a sentence is skipped (it is capitalised anyway)."""
    names = []
    for match in _NAME.finditer(text):
        words = [w for w in match.group().split() if w not in NOT_NAMES]
        opens = match.start() == 0 or text[: match.start()].rstrip().endswith((".", "!", "?", ":", "#", "-", "“", '"'))
        if words and not (opens and len(match.group().split()) == 1):
            names.append(" ".join(words))
    return names


def _chinese_entities(text: str) -> list[tuple[str, str]]:
    import jieba.posseg

    return [(w.word, _CJK_KINDS[w.flag]) for w in jieba.posseg.cut(text) if w.flag in _CJK_KINDS and len(w.word) > 1]


# --- agreement and contradiction -----------------------------------------------------------------------------
_NEGATIONS = re.compile(r"\b(no|not|never|none|closed|without|cannot)\b|n't|不|没|无|未")
_NUMBERS = re.compile(r"\d+(?:[.:,]\d+)?")


def find_relations(analyzer: Analyzer, statements: list[list[str]]) -> list[Relation]:
    """Statements of different items close in meaning: agreeing, or contradicting (numbers / negation differ)."""
    flat = [(i, s) for i, texts in enumerate(statements) for s in texts if len(s) >= 6]
    if len({i for i, _ in flat}) < 2:
        return []
    vectors = analyzer.model("text").encode([s for _, s in flat])
    owners = np.array([i for i, _ in flat])
    similarity = vectors @ vectors.T
    similarity[owners[:, None] >= owners[None, :]] = -1.0  # each pair of different items once
    relations = []
    for a, b in zip(*np.nonzero(similarity >= CONFLICT_SIMILARITY), strict=True):
        first, second = flat[a][1], flat[b][1]
        why = _conflict(first, second)
        score = float(similarity[a, b])
        if why:
            relations.append(Relation("contradict", (flat[a][0], flat[b][0]), (first, second), score, why))
        elif score >= AGREE_SIMILARITY:
            relations.append(Relation("agree", (flat[a][0], flat[b][0]), (first, second), score, "same meaning"))
    relations.sort(key=lambda r: (r.kind != "contradict", -r.similarity))
    return relations[:MAX_RELATIONS]


def _conflict(first: str, second: str) -> str | None:
    numbers = set(_NUMBERS.findall(first)), set(_NUMBERS.findall(second))
    if numbers[0] and numbers[1] and not numbers[0] & numbers[1]:
        return f"different numbers ({', '.join(sorted(numbers[0]))} vs {', '.join(sorted(numbers[1]))})"
    if bool(_NEGATIONS.search(first.lower())) != bool(_NEGATIONS.search(second.lower())):
        return "one denies what the other states"
    return None
