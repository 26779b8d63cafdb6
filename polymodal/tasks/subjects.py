"""What an image shows, in words a person would use: the classifier's labels grouped by what they share.

ImageNet spreads one cat over "tiger cat" 0.38, "Egyptian Mau" 0.36 and "tabby cat" 0.17: each alone is a
guess, together (0.91) they say "a domestic cat" with confidence. The labels' WordNet hypernyms
(:mod:`polymodal.space.vocabulary`) give the nearest name they share; the answer then states the shared name
and hedges the specific ones. Without WordNet (no hypernyms) the labels stand alone and are hedged by score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from polymodal.analysis import LABEL

if TYPE_CHECKING:
    from polymodal.space.vocabulary import ClassText
    from polymodal.tasks.facts import Fact, Facts

SURE = 0.5  # a label, or a group of labels together, this probable is stated; below it, "probably"
MIN_SHOWN = 0.1  # labels below this are not named in an answer
MIN_GROUP_LABELS = 2


@dataclass
class Subject:
    """The main subject: one sure label, a group of labels sharing a name, or the best guesses."""

    name: str | None  # the shared name ("domestic cat") of a group, else None
    labels: list[Fact] = field(default_factory=list)  # best first
    score: float = 0.0  # the group's total, or the best label's score

    @property
    def sure(self) -> bool:
        return self.score >= SURE

    def phrase(self) -> str:
        """ "an espresso", "a domestic cat: probably a tabby cat or an Egyptian Mau", "probably a palace"."""
        named = [article(f.text) for f in self.labels]
        if self.name and len(named) > 1:
            return f"{article(self.name)}: probably {_or(named)}"
        if self.name:
            return f"{article(self.name)} ({named[0]})" if self.labels[0].text != self.name else named[0]
        if self.sure:
            return named[0] + (f", or possibly {_or(named[1:])}" if named[1:] else "")
        return f"probably {named[0]}" + (f", or possibly {_or(named[1:])}" if named[1:] else "")

    def attribution(self) -> str:
        """The scores, said to be the image model's: "the image model: tabby cat 17%, ...; 91% together"."""
        from polymodal.tasks.facts import percent

        scores = ", ".join(f"{f.text} {percent(f.score or 0.0)}" for f in self.labels)
        together = f"; {percent(self.score)} together" if self.name and len(self.labels) > 1 else ""
        return f"the image model: {scores}{together}"


def main_subject(facts: Facts) -> Subject | None:
    """What the image (or a video's frames) mostly shows, from the label facts; None without labels."""
    labels = sorted(facts.of(LABEL), key=lambda f: -(f.score or 0.0))
    if not labels:
        return None
    table = class_table(facts.cache)
    group = _best_group(labels, table)
    if group is not None:
        return group
    shown = [f for f in labels[:3] if (f.score or 0.0) >= MIN_SHOWN] or labels[:1]
    return Subject(None, shown, labels[0].score or 0.0)


def _best_group(labels: list[Fact], table: dict[str, ClassText]) -> Subject | None:
    """The nearest name shared by labels that together reach ``SURE``, when the best label alone does not."""
    best = labels[0]
    if (best.score or 0.0) >= SURE or best.text not in table:
        return None
    for name in [best.text, *table[best.text].hypernyms]:
        members = [f for f in labels if name in terms_of(f.text, table)]
        total = sum(f.score or 0.0 for f in members)
        if total >= SURE and len(members) >= MIN_GROUP_LABELS:
            shown = [f for f in members if (f.score or 0.0) >= MIN_SHOWN][:3] or members[:1]
            return Subject(name, shown, total)
    return None


def terms_of(label: str, table: dict[str, ClassText]) -> list[str]:
    """A label's own name, its synonyms and its hypernyms (nearest first); the name alone outside ImageNet."""
    text = table.get(label)
    return [label] if text is None else [label, *text.synonyms, *text.hypernyms]


def sure_words(facts: Facts) -> dict[str, float]:
    """Each word of the label facts' names and hypernyms with the total score of the labels it belongs to.

    "cat" belongs to tiger cat, Egyptian Mau and tabby cat: 0.91, sure, though each label alone is not.
    """
    from polymodal.tasks.grounding import words

    table = class_table(facts.cache)
    totals: dict[str, float] = {}
    for fact in facts.of(LABEL):
        for word in set().union(*(words(term) for term in terms_of(fact.text, table))):
            totals[word] = totals.get(word, 0.0) + (fact.score or 0.0)
    return totals


def class_table(cache: Path | None) -> dict[str, ClassText]:
    """ImageNet label -> what is known of it in words; empty when the vocabulary cannot be read."""
    return _class_table(str(cache) if cache is not None else None)


@lru_cache(maxsize=4)
def _class_table(cache: str | None) -> dict[str, ClassText]:
    from polymodal.models.base import ModelError
    from polymodal.models.image import imagenet_labels
    from polymodal.space.vocabulary import class_texts

    try:
        texts = class_texts(imagenet_labels(), Path(cache) if cache else None)
    except (ModelError, OSError, ValueError):
        return {}  # no class vocabulary (a trimmed install): labels are used as they are
    return {text.name: text for text in texts}


def article(noun: str) -> str:
    if noun.lower().startswith(("a ", "an ", "the ")):
        return noun
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


def _or(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]
