"""Describe an image, a recording or a document in a few sentences, from its evidence only.

The facts (labels with probabilities, OCR lines, colours, size; sound tags, transcript; a document's
summary) are put into a template caption, and phrased by the LLM under a strict prompt when one is
available. The LLM's caption is checked (:mod:`polymodal.tasks.grounding`): if it mentions a thing, number
or quote no evidence supports, the template caption is used instead and the reason is kept in ``notes``.
A configured vision provider is also sent the image; what it says is then its own reading of the image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polymodal.analysis import LABEL, OCR, TAG, TRANSCRIPT, Analysis, Analyzer
from polymodal.providers import AUTO, Phraser, encode_image, resolve
from polymodal.tasks import grounding
from polymodal.tasks.facts import COLOUR, SIZE, SURE, Fact, Facts, gather, percent

MAX_OCR_LINES = 8
MAX_TRANSCRIPT_TOKENS = 1200
TEMPLATE = "template"
SYSTEM = (
    "You write a short, plain caption (one to three sentences) for {what}. Use ONLY the facts listed: do not "
    "add any object, person, place, colour, number or action that is not in them. For a fact marked "
    "'probably', say 'probably'. Quote text that was read or heard exactly, in quotation marks. "
    "Do not mention percentages, models or the word 'fact'. Answer with the caption only."
)
VISION_SYSTEM = (
    "You write a short, plain caption (one to three sentences) for the attached image. Facts found by "
    "automatic models are listed; use them where they agree with the image, and say 'probably' where unsure. "
    "Answer with the caption only."
)
WHAT = {"image": "an image", "audio": "a sound recording", "text": "a document"}


@dataclass
class Description:
    source: str
    modality: str
    caption: str
    by: str  # the phraser that worded it ("qwen2.5-1.5b", "openai:gpt-4o", ...) or "template"
    used: list[str]  # the kinds of evidence it was made from
    facts: list[Fact] = field(default_factory=list)
    template: str = ""  # the caption composed without the LLM
    notes: list[str] = field(default_factory=list)

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
        }

    def to_text(self) -> str:
        lines = [self.caption, "", f"(phrased by {self.by}; from {', '.join(self.used) or 'no evidence'})"]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def describe(
    analyzer: Analyzer,
    source: Path,
    phraser: Phraser | str | None = AUTO,
    analysis: Analysis | None = None,
    facts: Facts | None = None,
) -> Description:
    """Describe the file at ``source``; ``phraser=None`` gives the template caption (no LLM)."""
    facts = facts or gather(analyzer, Path(source), analysis)
    phraser = resolve(phraser, analyzer)
    shown = caption_facts(facts, phraser)
    template = template_caption(facts)
    summary_by = None
    if facts.modality == "text":
        from polymodal.tasks.summarize import summarize

        summary = summarize(document_text(facts), phraser)
        template = f"{template} {summary.text}".strip()
        summary_by = summary.by
        return Description(facts.source, "text", template, summary_by, facts.used, shown, template, summary.notes)
    description = Description(facts.source, facts.modality, template, TEMPLATE, facts.used, shown, template)
    if phraser is None:
        return description
    return _phrase(description, facts, shown, phraser)


def _phrase(description: Description, facts: Facts, shown: list[Fact], phraser: Phraser) -> Description:
    images = [encode_image(facts.image)] if phraser.sees_images and facts.image is not None else []
    system = VISION_SYSTEM if images else SYSTEM.format(what=WHAT[facts.modality])
    user = f"FACTS about {WHAT[facts.modality]}:\n{facts.prompt(shown)}\n\nCaption:"
    caption = clean_caption(phraser.complete(system, user, images, max_tokens=120))
    if images:
        description.notes.append(f"{phraser.name} saw the image; its caption is its own reading of it")
        issues = [] if caption else ["empty answer"]
    else:
        issues = grounding.problems(caption, facts) if caption else ["empty answer"]
    if issues:
        description.notes.append(f"the {phraser.name} caption was not used ({'; '.join(issues)}): “{caption}”")
        return description
    description.caption, description.by = caption, phraser.name
    return description


def caption_facts(facts: Facts, phraser: Phraser | None) -> list[Fact]:
    """The facts a caption is made from: every label, tag and colour; OCR and transcript within limits."""
    shown = [f for f in facts.facts if f.kind not in (OCR, TRANSCRIPT, "passage")]
    shown += facts.of(OCR)[:MAX_OCR_LINES]
    used = 0
    for fact in facts.of(TRANSCRIPT):
        used += phraser.count_tokens(fact.text) if phraser else len(fact.text) // 4
        if used > MAX_TRANSCRIPT_TOKENS:
            break
        shown.append(fact)
    return shown


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
    return {"image": _image_caption, "audio": _audio_caption, "text": _text_caption}[facts.modality](facts)


def _image_caption(facts: Facts) -> str:
    parts = [_subject("An image", facts.of(LABEL))]
    ocr = [f.text for f in facts.of(OCR)[:MAX_OCR_LINES]]
    if ocr:
        parts.append(f"The text in it reads “{' / '.join(ocr)}”.")
    colours = [f.text for f in facts.of(COLOUR)]
    if colours:
        parts.append(f"Main colours: {_and(colours)}.")
    size = facts.of(SIZE)
    if size:
        parts.append(f"{size[0].text[0].upper()}{size[0].text[1:]}.")
    return " ".join(parts)


def _subject(start: str, labels: list[Fact]) -> str:
    if not labels:
        return f"{start} in which the models recognise nothing."
    best = labels[0]
    if best.sure:
        text = f"{start} of {article(best.text)} ({percent(best.score or 0)})"
    else:
        text = f"{start} that probably shows {article(best.text)} ({percent(best.score or 0)})"
    others = [f"{article(f.text)} ({percent(f.score or 0)})" for f in labels[1:3] if (f.score or 0) >= 0.15]
    if others:
        text += f", or possibly {' or '.join(others)}"
    return text + "."


def _audio_caption(facts: Facts) -> str:
    duration = next((f.text for f in facts.of("meta") if f.text.startswith("duration")), "")
    seconds = duration.removeprefix("duration ").removesuffix(" s")
    start = f"A {seconds}-second recording" if seconds else "A recording"
    tags = facts.of(TAG)
    sure = [f"{t.text} ({percent(t.score or 0)})" for t in tags if (t.score or 0) >= SURE]
    unsure = [f"{t.text} ({percent(t.score or 0)})" for t in tags[:3] if 0.1 <= (t.score or 0) < SURE]
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
