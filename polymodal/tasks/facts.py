"""What is known about one file, as short facts: the common input of describe, ask and analyze.

Facts come from the one analysis path (:meth:`Analyzer.analyze_file`: labels, OCR lines, transcript
segments, sound tags, passages) plus cheap measurements made here: an image's size, orientation, and its
visual attributes (:mod:`polymodal.perceivers.visual`: named colours with their shares, the kind of picture,
black and white, dark). Each fact keeps its score, so that phrasing can say "probably" for the unsure ones,
and each can be traced back to the evidence it came from. OCR lines the reader was unsure of, or that do
not look like words ("AAA" read off a roof), are kept out (:func:`trusted_text`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polymodal.analysis import LABEL, OCR, PASSAGE, TAG, TRANSCRIPT, Analysis, Analyzer, Evidence
from polymodal.media.detect import detect

SURE = 0.5  # below this score a fact is phrased with "probably"
MIN_LABEL_SCORE = 0.05  # classifier labels below this are noise, not facts
MAX_LABELS = 5
MAX_TAGS = 5
MAX_SHOT_LABELS = 2  # a video's labels per shot
OCR_FLOOR = 0.8  # OCR lines read with less confidence are not quoted as the image's text
OCR_NUMBERS_FLOOR = 0.9  # ... and lines of mostly digits and signs ("24/7", "$3.50") need this much
MAX_SINGLE_LETTERS = 0.25  # share of a line's words that may be single letters
MIN_REAL_WORDS = 0.5  # share of a line's words that must be dictionary words (or short words / numbers)
COLOUR, SIZE, META, PICTURE = "colour", "size", "meta", "picture"
PEOPLE = "people"  # how many faces a picture shows (score: the count)
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

    def line(self, scores: bool = True) -> str:
        """The fact as one line, e.g. ``label: espresso (95%)`` or ``label: cup (12%, probably)``; with
        ``scores=False`` (what an LLM is shown) confidences are words, so that none can be copied into a text
        as if it were a property of the thing ("a 95 % espresso"): ``label: cup (probably)``."""
        text = f"“{self.text}”" if self.kind in (OCR, TRANSCRIPT) else self.text
        if self.start is not None:
            text = f"[{clock(self.start)}–{clock(self.end or self.start)}] {text}"
        if self.score is not None and self.kind in (LABEL, TAG):
            text += f" ({percent(self.score)}{'' if self.sure else ', probably'})" if scores else _hedge(self.score)
        elif self.score is not None and self.kind in (COLOUR, CENTRE_COLOUR, EDGE_COLOUR):
            where = {CENTRE_COLOUR: "the middle of the image", EDGE_COLOUR: "the edges of the image"}.get(
                self.kind, "the image"
            )
            text += f" ({percent(self.score) if scores else _share(self.score)} of {where})"
        return f"{self.kind}: {text}"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) in pixels


@dataclass
class Facts:
    source: str
    modality: str
    facts: list[Fact]
    analysis: Analysis
    image: Any = field(default=None, repr=False)  # the decoded PIL image (images only), for thumbnails
    cache: Path | None = field(default=None, repr=False)  # the model cache (the label vocabulary is there)
    faces: list[Box] | None = field(default=None, repr=False)  # face boxes in ``image``'s pixels, when looked for

    def of(self, *kinds: str) -> list[Fact]:
        return [f for f in self.facts if f.kind in kinds]

    @property
    def used(self) -> list[str]:
        """The kinds of evidence present, in a stable order ("label", "ocr", ...)."""
        order = [LABEL, OCR, COLOUR, PICTURE, SIZE, TAG, TRANSCRIPT, PASSAGE, META]
        return [kind for kind in order if self.of(kind)]

    def prompt(self, facts: list[Fact] | None = None) -> str:
        """Facts as prompt lines for an LLM: confidences in words (see :meth:`Fact.line`)."""
        return "\n".join(f"- {fact.line(scores=False)}" for fact in (self.facts if facts is None else facts))

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
    return Facts(str(source), analysis.modality, facts, analysis, image, analyzer.settings.cache)


def image_facts(analysis: Analysis, image: Any) -> list[Fact]:
    labels = [e for e in evidence_of(analysis, LABEL) if (e.score or 0.0) >= MIN_LABEL_SCORE][:MAX_LABELS]
    if not labels and evidence_of(analysis, LABEL):
        labels = evidence_of(analysis, LABEL)[:1]  # the best guess, marked unsure by its score
    facts = [Fact(LABEL, e.text, e.score) for e in labels]
    facts += [Fact(OCR, e.text, e.score) for e in evidence_of(analysis, OCR) if trusted_text(e.text, e.score)]
    facts += visual_facts(image)
    width, height = analysis.meta.get("width", image.width), analysis.meta.get("height", image.height)
    facts.append(Fact(SIZE, f"{width}×{height} pixels, {orientation(width, height)}"))
    return facts


def people_facts(facts: Facts, settings: Any) -> list[Fact]:
    """How many faces a picture shows: from indexing (``meta["faces"]``), else from the face model when it is
    installed; none when neither knows. Asked for only by questions about people (detection costs a second)."""
    if facts.image is None:
        return []
    count = facts.analysis.meta.get("faces")
    if count is None:
        from polymodal.models import faces

        if not faces.installed():
            return []
        count = len(faces.face_model(settings).faces(facts.image))
    return [Fact(PEOPLE, f"{count} face{'' if count == 1 else 's'} found by the face detector", float(count))]


def face_boxes(facts: Facts, settings: Any) -> list[Box]:
    """The boxes of a picture's faces in ``facts.image``'s pixels: from indexing (the ``faces`` evidence), else
    from the face model when it is installed; none when neither knows."""
    if facts.image is None:
        return []
    rows = [e for e in facts.analysis.evidence if e.kind == "faces" and e.box]
    if rows:
        scale = facts.image.width / facts.analysis.meta.get("width", facts.image.width)
        return [tuple(round(v * scale) for v in box) for box in rows[0].box]  # type: ignore[misc]
    from polymodal.models import faces

    if not faces.installed():
        return []
    return [face.box for face in faces.face_model(settings).faces(facts.image)]


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
    facts += _runs([e for e in evidence_of(analysis, OCR) if trusted_text(e.text, e.score)], OCR)
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
    for e in sorted(evidence, key=lambda e: e.start or 0.0):
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


# --- what the pixels say --------------------------------------------------------------------------------------
def visual_facts(image: Any) -> list[Fact]:
    """Colours (share of the picture), a uniform background, and the kind of picture (photo, drawing, document
    page, screenshot; black and white; dark), from :func:`polymodal.perceivers.visual.perceive`."""
    from polymodal.perceivers.visual import KIND_WORDS, perceive

    facts = []
    for attribute in perceive(image):
        if attribute.kind in ("colour", "background"):
            facts.append(Fact(COLOUR, attribute.text, round(attribute.score, 2)))
        elif attribute.kind == "picture":
            facts.append(Fact(PICTURE, KIND_WORDS[attribute.text][0]))
        else:  # tone ("black and white"), light ("dark", "bright")
            facts.append(Fact(PICTURE, attribute.text))
    return facts


def centre_colours(image: Any, share: float = 0.5) -> list[Fact]:
    """The colours of the middle of the picture (``share`` of each side), where a photo's subject usually is
    and where the image classifier looked; background excluded."""
    width, height = image.size
    box = (int(width * (1 - share) / 2), int(height * (1 - share) / 2),
           int(width * (1 + share) / 2), int(height * (1 + share) / 2))  # fmt: skip
    return region_colours(image, box, CENTRE_COLOUR)


def region_colours(image: Any, box: Box, kind: str = "region colour") -> list[Fact]:
    """The colours of the part ``box`` of the picture, as facts of ``kind``."""
    from polymodal.perceivers.visual import perceive

    return [Fact(kind, a.text, round(a.score, 2)) for a in perceive(image.crop(box)) if a.kind == "colour"]


def edge_colours(image: Any, share: float = 0.15) -> list[Fact]:
    """The colours along the picture's edges (a band of ``share`` of each side), where a background usually
    is: the top and bottom bands, and the left and right ones turned, put side by side."""
    import numpy as np

    from polymodal.perceivers.visual import perceive

    rgb = np.asarray(image.convert("RGB"))
    band = max(1, int(min(rgb.shape[:2]) * share))
    sides = [rgb[:band], rgb[-band:], rgb[:, :band].transpose(1, 0, 2), rgb[:, -band:].transpose(1, 0, 2)]
    width = min(side.shape[1] for side in sides)
    strip = np.ascontiguousarray(np.concatenate([side[:, :width] for side in sides], axis=0))
    return [Fact(EDGE_COLOUR, a.text, round(a.score, 2)) for a in perceive(strip) if a.kind == "colour"]


CENTRE_COLOUR, EDGE_COLOUR = "centre colour", "edge colour"


# --- OCR lines worth quoting ---------------------------------------------------------------------------------
_LATIN_WORD = re.compile(r"[^\W\d_]+")
SURE_READING = 0.9  # read this surely, a pronounceable word outside the lexicon (a name: "Okafor") counts


def trusted_text(text: str, score: float | None) -> bool:
    """An OCR line worth stating as the image's text: read with confidence (``OCR_FLOOR``) and looking like
    writing: Chinese or Japanese characters, or mostly letters with at least half of its words real words;
    a line of mostly digits ("24/7") needs ``OCR_NUMBERS_FLOOR``. "AAA" read at 0.62 off a roof is not."""
    from polymodal.media.text import has_cjk

    confidence = 1.0 if score is None else score
    if not readable(text) or confidence < OCR_FLOOR:
        return False
    if has_cjk(text):
        return True
    alnum = [ch for ch in text if ch.isalnum()]
    letters = sum(ch.isalpha() for ch in alnum)
    if letters < len(alnum) / 2:
        return confidence >= OCR_NUMBERS_FLOOR
    found = _LATIN_WORD.findall(text)
    if found and sum(len(w) == 1 for w in found) > MAX_SINGLE_LETTERS * len(found):
        return False  # "the o sr e  t te  re s the": letters scattered, not words
    return real_word_share(text, confidence >= SURE_READING) >= MIN_REAL_WORDS


def real_word_share(text: str, names_too: bool = False) -> float:
    """The share of a line's words found in the lexicon (WordNet's lemmas and common short words), and with
    ``names_too`` pronounceable ones (a name, a brand); without a lexicon, the pronounceable share."""
    found = _LATIN_WORD.findall(text)
    if not found:
        return 1.0
    lexicon = _lexicon()
    known = [w for w in found if (lexicon and (w.lower() in lexicon or _base(w.lower()) in lexicon))
             or ((names_too or not lexicon) and _pronounceable(w))]  # fmt: skip
    return len(known) / len(found)


def _pronounceable(word: str) -> bool:
    """A vowel, three letters or more, not one letter repeated, no four consonants in a row."""
    lowered = word.lower()
    return (
        len(lowered) >= 3
        and len(set(lowered)) > 1
        and bool(re.search(r"[aeiouyàáâäèéêëìíîïòóôöùúûü]", lowered))
        and not re.search(r"[^aeiouyàáâäèéêëìíîïòóôöùúûü\W]{4}", lowered)
    )


def _base(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


@functools.lru_cache(maxsize=1)
def _lexicon() -> frozenset[str]:
    """English words: WordNet's lemmas (``/usr/share/wordnet``, Debian ``wordnet-base``) and function words."""
    from polymodal.space.vocabulary import WORDNET_DIR
    from polymodal.tasks.summarize import STOPWORDS

    words: set[str] = set()
    for part in ("noun", "verb", "adj", "adv"):
        path = WORDNET_DIR / f"index.{part}"
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                words |= {line.split(" ", 1)[0] for line in handle if not line.startswith(" ")}
        except OSError:
            continue
    if not words:
        return frozenset()
    short = "a i am an as at be by do go he if in is it me my no of oh ok on or so to up us we pm tv id".split()
    return frozenset(words | set(STOPWORDS) | set(short))


def _hedge(score: float) -> str:
    return "" if score >= SURE else " (probably)" if score >= 0.2 else " (possibly)"


def _share(share: float) -> str:
    return "most" if share >= 0.5 else "a large part" if share >= 0.25 else "some"


# --- small formatting helpers shared by the tasks --------------------------------------------------------------
def percent(score: float) -> str:
    return f"{round(score * 100)}%"


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"
