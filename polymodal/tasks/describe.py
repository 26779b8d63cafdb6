"""Describe an image, a recording, a video or a document in a few sentences, from its evidence only.

A video also gets a timeline: each shot with its times and what it shows, what is said in it, the sounds
heard and the text on screen.

The facts (labels with probabilities, OCR lines read with confidence, colours, size; sound tags, transcript;
a document's summary) are put into a template caption, and phrased by the LLM under a strict prompt when one
is available. The LLM's caption is checked sentence by sentence (:func:`polymodal.tasks.grounding.revise`):
a sentence naming a thing, number or quote no evidence supports is dropped, "probably" is added where an
unsure label is stated as certain; when nothing is left, the template caption is used. What was changed and
why goes to ``diagnostics`` (shown with ``--debug``), never into the caption. Captions carry no model
confidences: those are in ``facts``. A configured vision provider is also sent the image; what it says is
then its own reading of the image. ``on_token`` hears the LLM's caption as it is generated.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polymodal.analysis import LABEL, OCR, TAG, TRANSCRIPT, Analysis, Analyzer
from polymodal.providers import AUTO, Phraser, encode_image, resolve, stream_text
from polymodal.tasks import grounding
from polymodal.tasks.facts import COLOUR, PICTURE, SIZE, SURE, Fact, Facts, gather
from polymodal.tasks.subjects import main_subject

MAX_OCR_LINES = 8
MAX_TRANSCRIPT_TOKENS = 1200
TEMPLATE = "template"
SYSTEM = (  # the same for every file (see ask.SYSTEM): what the file is goes in the user message
    "You write a short, plain caption (one to three sentences) for a file (an image, a sound recording, a video "
    "or a document). Use ONLY the facts listed: do not "
    "add any object, person, place, colour, number or action that is not in them. For a fact marked "
    "'probably', say 'probably'. Quote text that was read or heard exactly, in quotation marks. "
    "Do not mention percentages, models or the word 'fact'. Answer with the caption only."
)
VISION_SYSTEM = (
    "You write a short, plain caption (one to three sentences) for the attached image. Facts found by "
    "automatic models are listed; use them where they agree with the image, and say 'probably' where unsure. "
    "Answer with the caption only."
)
WHAT = {"image": "an image", "audio": "a sound recording", "video": "a video", "text": "a document"}
MAX_VIDEO_FACTS = 40  # labels and tags of a video the LLM is shown (the most confident)


@dataclass
class Description:
    source: str
    modality: str
    caption: str
    by: str  # the phraser that worded it ("qwen2.5-1.5b", "openai:gpt-4o", ...) or "template"
    used: list[str]  # the kinds of evidence it was made from
    facts: list[Fact] = field(default_factory=list)
    template: str = ""  # the caption composed without the LLM
    notes: list[str] = field(default_factory=list)  # remarks for the reader (a vision model's own reading)
    timeline: list[str] = field(default_factory=list)  # a video's shots, speech, sounds and text, line by line
    diagnostics: list[str] = field(default_factory=list)  # internal: what was checked, dropped, why (--debug)
    streamed: str = ""  # the LLM's caption as streamed to ``on_token``, before the check
    revised: bool = False  # the check changed the streamed caption: ``caption`` replaces it

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "modality": self.modality,
            "caption": self.caption,
            "by": self.by,
            "used": self.used,
            "facts": [f.to_dict() for f in self.facts],
            "template": self.template,
            "notes": self.notes,
            "diagnostics": self.diagnostics,
            "revised": self.revised,
        } | ({"timeline": self.timeline} if self.timeline else {})

    def to_text(self, debug: bool = False) -> str:
        lines = [self.caption, *([""] + self.timeline if self.timeline else [])]
        lines += ["", f"(phrased by {self.by}; from {', '.join(self.used) or 'no evidence'})"]
        lines += [f"note: {note}" for note in self.notes]
        if debug:
            lines += [f"debug: {note}" for note in self.diagnostics]
        return "\n".join(lines)


def describe(
    analyzer: Analyzer,
    source: Path,
    phraser: Phraser | str | None = AUTO,
    analysis: Analysis | None = None,
    facts: Facts | None = None,
    on_token: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> Description:
    """Describe the file at ``source``; ``phraser=None`` gives the template caption (no LLM).

    ``on_token(text)`` hears the LLM's caption as it is generated (the template caption whole, without an
    LLM); ``stop`` set stops the LLM (:class:`polymodal.providers.Cancelled` is raised).
    """
    facts = facts or gather(analyzer, Path(source), analysis)
    phraser = resolve(phraser, analyzer)
    shown = caption_facts(facts, phraser)
    template = template_caption(facts)
    summary_by = None
    if facts.modality == "text":
        from polymodal.tasks.summarize import summarize

        summary = summarize(document_text(facts), phraser, on_token=on_token, stop=stop)
        template = f"{template} {summary.text}".strip()
        summary_by = summary.by
        described = Description(facts.source, "text", template, summary_by, facts.used, shown, template)
        described.diagnostics, described.revised = summary.diagnostics, summary.revised
        return described
    description = Description(facts.source, facts.modality, template, TEMPLATE, facts.used, shown, template)
    if facts.modality == "video":
        description.timeline = video_timeline(facts)
    if phraser is None:
        if on_token is not None:
            on_token(description.caption)
        return description
    return _phrase(description, facts, shown, phraser, on_token, stop)


def _phrase(
    description: Description,
    facts: Facts,
    shown: list[Fact],
    phraser: Phraser,
    on_token: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> Description:
    images = [encode_image(facts.image)] if phraser.sees_images and facts.image is not None else []
    system = VISION_SYSTEM if images else SYSTEM
    user = f"FACTS about {WHAT[facts.modality]}:\n{facts.prompt(shown)}\n\nCaption:"
    pieces = []
    for piece in stream_text(phraser, system, user, images, max_tokens=120, stop=stop):
        pieces.append(piece)
        if on_token is not None:
            on_token(piece)
    description.streamed = "".join(pieces).strip()
    caption = clean_caption(description.streamed)
    if images:
        description.notes.append(f"{phraser.name} saw the image; its caption is its own reading of it")
    elif caption:
        revision = grounding.revise(caption, facts)
        description.diagnostics += revision.diagnostics(f"the {phraser.name} caption")
        caption = revision.text
    if not _says_something(caption):
        description.diagnostics.append(f"the {phraser.name} caption was not used: “{description.streamed}”")
    else:
        description.caption, description.by = caption, phraser.name
    description.revised = description.caption != description.streamed
    return description


def _says_something(caption: str) -> bool:
    return bool(grounding.words(caption) - {"null", "none", "nan", "undefined"})


def caption_facts(facts: Facts, phraser: Phraser | None) -> list[Fact]:
    """The facts a caption is made from: every label, tag and colour; OCR and transcript within limits."""
    page = bool(facts.of(OCR)) and any(f.text in ("a document page", "a screenshot") for f in facts.of(PICTURE))
    shown = [f for f in facts.facts if f.kind not in (OCR, TRANSCRIPT, "passage") and not _faint(f, page)]
    if facts.modality == "video":  # one hour is hundreds of shots: the prompt gets the most confident
        strongest = sorted((f for f in shown if f.kind in (LABEL, TAG)), key=lambda f: -(f.score or 0.0))
        kept = {id(f) for f in strongest[:MAX_VIDEO_FACTS]}
        shown = [f for f in shown if f.kind not in (LABEL, TAG) or id(f) in kept]
    shown += facts.of(OCR)[:MAX_OCR_LINES]
    used = 0
    for fact in facts.of(TRANSCRIPT):
        used += phraser.count_tokens(fact.text) if phraser else len(fact.text) // 4
        if used > MAX_TRANSCRIPT_TOKENS:
            break
        shown.append(fact)
    return shown


def _faint(fact: Fact, page: bool) -> bool:
    """A label too unsure to give the LLM: a faint guess, or any unsure one on a page of text (a scan is not
    a "brass plaque" or a "crossword")."""
    return fact.kind == LABEL and ((fact.score or 0.0) < grounding.WEAK or (page and not fact.sure))


def clean_caption(text: str) -> str:
    text = re.sub(r"^\s*(caption|description)\s*:\s*", "", text.strip(), flags=re.IGNORECASE)
    if len(text) > 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
    return " ".join(sentences[:3]).strip()


def document_text(facts: Facts) -> str:
    return "\n\n".join(f.text for f in facts.of("passage"))


# --- template captions ----------------------------------------------------------------------------------------
def template_caption(facts: Facts) -> str:
    captions = {"image": _image_caption, "audio": _audio_caption, "video": _video_caption, "text": _text_caption}
    return captions[facts.modality](facts)


def _image_caption(facts: Facts) -> str:
    kind = next((f.text for f in facts.of(PICTURE) if f.text.startswith("a ")), "an image")
    ocr = [f.text for f in facts.of(OCR)[:MAX_OCR_LINES]]
    parts = [_subject(kind[0].upper() + kind[1:], facts, skip_unsure=kind == "a document page" and bool(ocr))]
    if ocr:
        parts.append(f"The text in it reads “{' / '.join(ocr)}”.")
    colours = [f.text for f in facts.of(COLOUR) if not f.text.endswith("background")]
    background = [f.text for f in facts.of(COLOUR) if f.text.endswith("background")]
    if colours:
        parts.append(f"Main colours: {_and(colours)}" + (f", on {article(background[0])}." if background else "."))
    size = facts.of(SIZE)
    if size:
        parts.append(f"{size[0].text[0].upper()}{size[0].text[1:]}.")
    return " ".join(parts)


def _subject(start: str, facts: Facts, skip_unsure: bool = False) -> str:
    """ "A photo of an espresso.", "A photo that probably shows a palace, or possibly a bell tower."; a
    document page's unsure labels (a scan is not a "brass plaque") are left out."""
    subject = main_subject(facts)
    if subject is None or (skip_unsure and not subject.sure):
        return f"{start}." if skip_unsure else f"{start} in which the models recognise nothing."
    phrase = subject.phrase()
    if phrase.startswith("probably "):
        return f"{start} that {phrase.replace('probably ', 'probably shows ', 1)}."
    return f"{start} of {phrase}."


def _audio_caption(facts: Facts) -> str:
    duration = next((f.text for f in facts.of("meta") if f.text.startswith("duration")), "")
    seconds = duration.removeprefix("duration ").removesuffix(" s")
    start = f"A {seconds}-second recording" if seconds else "A recording"
    tags = facts.of(TAG)
    sure = [t.text.lower() for t in tags if (t.score or 0) >= SURE]
    unsure = [t.text.lower() for t in tags[:3] if 0.1 <= (t.score or 0) < SURE]
    parts = [start + (f" with {_and(sure)}" if sure else "") + (f", probably {_and(unsure)}" if unsure else "") + "."]
    segments = facts.of(TRANSCRIPT)
    language = next((f.text.removeprefix("spoken language ") for f in facts.of("meta") if "language" in f.text), "")
    if segments:
        words = " ".join(s.text for s in segments).split()
        quote = " ".join(words[:30]) + ("…" if len(words) > 30 else "")
        parts.append(f"Speech{f' ({language})' if language else ''}: “{quote}”")
    else:
        parts.append("No speech was recognised.")
    return " ".join(parts)


def _video_caption(facts: Facts) -> str:
    meta = [f.text for f in facts.of("meta")]
    seconds = next((m.removeprefix("duration ").removesuffix(" s") for m in meta if m.startswith("duration")), "")
    shots = next((m for m in meta if m.endswith(" shots")), "")
    start = (f"A {seconds}-second video" if seconds else "A video") + (f" in {shots}" if shots else "")
    best: dict[str, Fact] = {}
    for fact in sorted(facts.of(LABEL), key=lambda f: -(f.score or 0.0)):
        best.setdefault(fact.text, fact)
    seen = list(best.values())[:3]
    parts = [start + (f" that {'shows' if all(f.sure for f in seen) else 'probably shows'} " if seen else "")]
    parts[0] += _and([article(f.text) for f in seen]) + "." if seen else "."
    sounds = list(dict.fromkeys(f.text for f in sorted(facts.of(TAG), key=lambda f: -(f.score or 0.0))))[:4]
    if sounds:
        parts.append(f"Sounds: {_and(sounds)}.")
    ocr = list(dict.fromkeys(f.text for f in facts.of(OCR)))[:MAX_OCR_LINES]
    if ocr:
        parts.append(f"On screen: “{' / '.join(ocr)}”.")
    segments = facts.of(TRANSCRIPT)
    if segments:
        words = " ".join(s.text for s in segments).split()
        parts.append(f"Speech: “{' '.join(words[:30])}{'…' if len(words) > 30 else ''}”")
    else:
        parts.append("No speech was recognised.")
    return " ".join(parts)


def video_timeline(facts: Facts) -> list[str]:
    """One line per shot (times, what it shows), then indented what is on screen, said and heard in it."""
    lines: list[str] = []
    shots = list(dict.fromkeys((f.start or 0.0, f.end or 0.0) for f in facts.of(LABEL)))
    for number, (start, end) in enumerate(shots, 1):
        labels = [f for f in facts.of(LABEL) if (f.start, f.end) == (start, end)]
        seen = " or ".join(article(f.text) for f in labels)
        lines.append(f"{_clock(start)}–{_clock(end)}  shot {number}: {'' if labels[0].sure else 'probably '}{seen}")
        inside = [f for f in facts.facts if f.start is not None and start <= f.start < end]
        text = [f.text for f in inside if f.kind == OCR]
        said = [f.text for f in inside if f.kind == TRANSCRIPT]
        heard = [f.text for f in facts.of(TAG) if (f.start or 0.0) < end and (f.end or 0.0) > start]
        if text:
            lines.append(f"    on screen: “{' / '.join(text[:MAX_OCR_LINES])}”")
        if said:
            lines.append(f"    said: “{' '.join(said)}”")
        if heard:
            lines.append(f"    heard: {', '.join(dict.fromkeys(heard))}")
    return lines


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60)
    return f"{int(minutes)}:{secs:04.1f}"


def _text_caption(facts: Facts) -> str:
    meta = [f.text for f in facts.of("meta")]
    title = next((m.removeprefix("title ") for m in meta if m.startswith("title ")), None)
    kind = meta[0].split(",")[0] if meta else "document"
    from polymodal.tasks.summarize import keywords

    about = keywords(document_text(facts), 4)
    text = ("An " if kind.startswith(("HTML", "a", "e", "i", "o", "u")) else "A ") + kind
    text += (f" titled “{title}”" if title else "") + (f" about {_and(about)}" if about else "")
    return text + "."


def article(noun: str) -> str:
    if noun.startswith(("a ", "an ", "the ")):
        return noun
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
