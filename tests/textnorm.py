"""Compare model output text robustly: machines differ in CPU kernels (int8 on Intel vs AMD), so a transcript
may read "1, 2, 3" on one and "12345678910." on another, "whiskey" for "whisky", an OCR line "7 AM" for "7AM".

Text is normalised (Unicode NFKC, lower case, number words to digits, punctuation dropped) into tokens: words,
single digits and single CJK characters; then compared by word error rate over the best-matching window.
"""

from __future__ import annotations

import re
import unicodedata

_NUMBER_WORDS = {
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13",
    "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19",
    "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80",
    "ninety": "90", "hundred": "100",
}  # fmt: skip
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]|\d|[^\W\d_{_CJK}]+(?:'[^\W\d_]+)?")


def normalise(text: str) -> str:
    """NFKC, lower case, number words as digits, punctuation and symbols as spaces, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    text = re.sub(r"\b[a-z]+\b", lambda m: _NUMBER_WORDS.get(m.group(), m.group()), text)
    text = "".join(" " if unicodedata.category(ch)[0] in "PSZC" and ch != "'" else ch for ch in text)
    return " ".join(text.split())


def tokens(text: str) -> list[str]:
    """Words, single digits and single CJK characters of the normalised text."""
    return _TOKEN.findall(normalise(text))


def squashed(text: str) -> str:
    """The normalised text without any space: "OPEN 7 AM-3 PM" -> "open7am3pm"."""
    return normalise(text).replace(" ", "")


def _same(a: str, b: str) -> bool:
    """Tokens match when equal, or when both are longer words one letter apart ("whiskey" / "whisky")."""
    if a == b:
        return True
    return min(len(a), len(b)) >= 5 and a.isalpha() and b.isalpha() and _distance(list(a), list(b)) <= 1


def _distance(a: list[str], b: list[str], same=lambda x, y: x == y) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (not same(x, y)))
    return row[-1]


def word_error_rate(hypothesis: str, reference: str) -> float:
    """Edits (substitutions, insertions, deletions of tokens) per reference token."""
    ref = tokens(reference)
    return _distance(tokens(hypothesis), ref, _same) / max(1, len(ref))


def best_window_error(hypothesis: str, reference: str) -> float:
    """The word error rate of ``reference`` against the window of ``hypothesis`` that matches it best."""
    hyp, ref = tokens(hypothesis), tokens(reference)
    if not ref:
        return 0.0
    best = len(ref)
    for length in range(max(1, len(ref) - 2), len(ref) + 3):
        for start in range(max(1, len(hyp) - length + 1)):
            best = min(best, _distance(hyp[start : start + length], ref, _same))
            if best == 0:
                return 0.0
    return best / len(ref)


def says(hypothesis: str, reference: str, max_error: float = 0.25) -> bool:
    """Whether ``hypothesis`` contains ``reference`` up to ``max_error`` (token edits per reference token)."""
    return best_window_error(hypothesis, reference) <= max_error


def says_any(hypothesis: str, references: tuple[str, ...] | list[str], max_error: float = 0.25) -> bool:
    return any(says(hypothesis, reference, max_error) for reference in references)


def character_error_rate(hypothesis: str, reference: str) -> float:
    """Character edits per reference character, on the squashed texts (OCR lines)."""
    ref = squashed(reference)
    return _distance(list(squashed(hypothesis)), list(ref)) / max(1, len(ref))
