"""Which words have a meaning of their own: WordNet's lemmas (English) and jieba's dictionary (Chinese).

The text encoder gives any string a vector, made-up ones too, and rare strings sit near each other: "nagg" (a
character's name in ``endgame_nagg_nell.wav``) is at 0.6 with both pieces of the nonsense query "咕噜哔叭啦",
as near as a translation. Nearness in meaning is evidence only between words that have one, so search's
meaning match of query words to file names (``soft_name``) leaves out name words this module does not know;
their exact match still counts. Words run together, as file names have them ("firetruck"), are known when
their pieces are.

English words are checked against WordNet (Debian ``wordnet-base``), inflections reduced as WordNet's own
morphology does (its exception lists, then its suffix rules); Chinese words against jieba's dictionary. Words
of other scripts, and every word when WordNet is not installed, count as known: nothing is taken away where
nothing can be checked. Known blind spot: a file name in another language written in Latin letters ("hund",
"perro") is not matched in meaning, only by its letters.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from polymodal.media.text import chinese_word_frequency
from polymodal.space.vocabulary import WORDNET_DIR

PARTS_OF_SPEECH = ("noun", "verb", "adj", "adv")
# WordNet's morphy suffix rules (ending -> base ending), all parts of speech together.
SUFFIXES = (
    ("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
    ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", ""), ("er", ""),
    ("est", ""), ("er", "e"), ("est", "e"),
)  # fmt: skip
MIN_PIECE = 3  # letters: WordNet has many short abbreviations ("ne", "ll") that would split any name
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def is_word(word: str) -> bool:
    """Whether ``word`` (lower case) is a word of English or Chinese with a meaning of its own, as far as can be
    told: unknown English-letter and Chinese words are not; words of other scripts are."""
    if _HAN.search(word):
        return chinese_word_frequency(word) > 0
    if not word.isascii():
        return True
    return english_words() is None or _is_english(word)


@functools.lru_cache(maxsize=65536)
def _is_english(word: str) -> bool:
    """A WordNet word, an inflection of one, or words run together as file names have them ("firetruck",
    "lightningbolt", "newpassword"): pieces of at least MIN_PIECE letters."""
    if _is_lemma(word):
        return True
    return any(_is_lemma(word[:cut]) and _is_english(word[cut:]) for cut in range(MIN_PIECE, len(word) - MIN_PIECE + 1))


def _is_lemma(word: str) -> bool:
    english = english_words() or frozenset()
    return word in english or any(base in english for base in bases(word))


def bases(word: str) -> list[str]:
    """The forms WordNet's morphology would look up for an inflected ``word``: its exceptions ("mice" ->
    "mouse"), then each suffix rule's ("boxes" -> "box")."""
    found = list(exceptions().get(word, ()))
    stems = [(word[: -len(ending)], base) for ending, base in SUFFIXES if word.endswith(ending)]
    return found + [stem + base for stem, base in stems if stem]


@functools.cache
def english_words(wordnet: Path = WORDNET_DIR) -> frozenset[str] | None:
    """WordNet's one-word lemmas in all parts of speech, None when WordNet is not installed."""
    indexes = [wordnet / f"index.{pos}" for pos in PARTS_OF_SPEECH]
    if not all(index.is_file() for index in indexes):
        return None
    words: set[str] = set()
    for index in indexes:
        with open(index, encoding="utf-8", errors="replace") as lines:  # licence header lines start with a space
            words.update(line.split(" ", 1)[0] for line in lines if not line.startswith(" "))
    return frozenset(word for word in words if "_" not in word)


@functools.cache
def exceptions(wordnet: Path = WORDNET_DIR) -> dict[str, tuple[str, ...]]:
    """WordNet's irregular forms (``noun.exc`` ...): inflected word -> its bases; empty without WordNet."""
    found: dict[str, tuple[str, ...]] = {}
    for pos in PARTS_OF_SPEECH:
        path = wordnet / f"{pos}.exc"
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                inflected, *base = line.split()
                found[inflected] = found.get(inflected, ()) + tuple(base)
    return found
