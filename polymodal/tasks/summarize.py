"""Summaries of text: extractive always (keywords and key sentences), abstractive when an LLM is available.

Extractive: words are weighted by TF-IDF over the document's sentences (Chinese cut into words with jieba,
English stop words dropped); a sentence scores the mean weight of its words, with a small bonus for coming
early; the best sentences are returned in document order. Nothing is invented: they are quotes.

Abstractive: the text is cut into chunks that fit the phraser's context, each chunk is summarised (map),
and the partial summaries are summarised together (reduce), recursively until one remains. Each sentence of
the summary is checked against the text (:func:`polymodal.tasks.grounding.ground`): one that states numbers,
quotes or names not found there, or mostly words the text never uses, is dropped, and each kept one says
which sentence of the text it rests on; when none is left, the extractive summary is used. The last step
can be streamed (``on_token``).
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from polymodal.providers import Phraser, stream_text

SUMMARY_SYSTEM = (
    "You summarise text faithfully. Use only what the text says; add no facts, names or numbers of your own. "
    "Write in the language of the text. Answer with the summary only."
)
MAP_PROMPT = "Summarise this part of a longer text in at most {words} words.\n\nTEXT:\n{text}"
ONE_PROMPT = "Summarise this text in at most {words} words.\n\nTEXT:\n{text}"
REDUCE_PROMPT = (
    "These are summaries of consecutive parts of one text. Combine them into one summary of at most "
    "{words} words.\n\nSUMMARIES:\n{text}"
)
RESERVED_TOKENS = 700  # instructions and the answer
SHORT_TOKENS_PER_WORD = 2  # a text of at most this many tokens per summary word is not worth rewording
MAX_ROUNDS = 4

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours yourself yourselves
    one two may might must shall upon us many much every said says like well even also yet still however
    的 了 是 在 和 也 有 就 不 都 而 及 与 着 或 一个 我们 你们 他们 她们 它们 这 那 这个 那个 之 其 为 以 于 上 下 中
    对 把 被 让 给 从 到 并 很 还 又 但 但是 因为 所以 如果 可以 没有 一 个 人 会 能 要 说 等
    我 你 他 她 它 您""".split()
)
_TOKEN = re.compile(r"[\w'’-]+", re.UNICODE)


@dataclass
class Summary:
    text: str
    key_points: list[str]
    keywords: list[str]
    by: str  # the phraser's name, or "extractive"
    chunks: int = 1
    notes: list[str] = field(default_factory=list)  # remarks for the reader
    diagnostics: list[str] = field(default_factory=list)  # internal: why a phrased summary was changed (--debug)
    points: list[Any] = field(default_factory=list)  # grounding.Point per phrased sentence: what it rests on
    revised: bool = False  # the streamed text was changed by the check (``text`` replaces it)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "points"}
        return out | {"points": [point.to_dict() for point in self.points]}

    def to_text(self) -> str:
        points = "\n".join(f"- {p}" for p in self.key_points)
        return f"{self.text}\n\nKey points:\n{points}\n\nKeywords: {', '.join(self.keywords)}\n({self.by})"


def summarize(
    text: str,
    phraser: Phraser | None = None,
    words: int = 60,
    points: int = 4,
    on_token: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> Summary:
    """A summary of ``text``: phrased by ``phraser`` if given (each sentence checked against the text), else
    extractive. ``on_token`` hears the final phrasing step as it is generated, or the extractive summary."""
    from polymodal.tasks.grounding import Source, ground

    sentences = sentences_of(text)
    weights = word_weights(sentences)
    key = key_sentences(sentences, weights, points)
    keywords = [w for w, _ in sorted(weights.items(), key=lambda kv: -kv[1])[:8]]
    extractive = Summary(" ".join(key_sentences(sentences, weights, 2)), key, keywords, "extractive")
    if phraser is not None and text.strip() and phraser.count_tokens(text) <= SHORT_TOKENS_PER_WORD * words:
        extractive.diagnostics.append("short text: its key sentences are its summary")
        phraser = None
    if phraser is None or not text.strip():
        if on_token is not None and extractive.text:
            on_token(extractive.text)
        return extractive
    phrased, chunks = map_reduce(text, phraser, words, on_token, stop)
    grounded = ground(tidy(phrased), [Source("the text", sentences_of(text, headings=True))])
    diagnostics = grounded.diagnostics(f"the {phraser.name} summary")
    if not grounded.text:
        extractive.diagnostics += [*diagnostics, f"the {phraser.name} summary was not used: “{phrased}”"]
        extractive.revised = True
        return extractive
    summary = Summary(grounded.text, key, keywords, phraser.name, chunks, diagnostics=diagnostics)
    summary.points, summary.revised = grounded.points, grounded.text != phrased
    return summary


def map_reduce(
    text: str,
    phraser: Phraser,
    words: int,
    on_token: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> tuple[str, int]:
    """Summarise ``text`` in chunks that fit the context, then the partial summaries; returns (summary, chunks).
    The last step is streamed to ``on_token``."""
    budget = max(256, phraser.context_tokens - RESERVED_TOKENS)
    chunks = chunk(text, phraser, budget)
    if len(chunks) == 1:
        return _ask(phraser, ONE_PROMPT, chunks[0], words, on_token, stop), 1
    partials = [_ask(phraser, MAP_PROMPT, part, words, stop=stop) for part in chunks]
    for _ in range(MAX_ROUNDS):
        groups = chunk("\n\n".join(partials), phraser, budget)
        last = len(groups) == 1
        partials = [_ask(phraser, REDUCE_PROMPT, group, words, on_token if last else None, stop) for group in groups]
        if len(partials) == 1:
            break
    return partials[0], len(chunks)


def chunk(text: str, phraser: Phraser, budget: int) -> list[str]:
    """Consecutive passages of ``text`` grouped into pieces of at most ``budget`` tokens."""
    from polymodal.media.text import split_passages

    pieces: list[str] = []
    current: list[str] = []
    used = 0
    for passage in split_passages(text):
        tokens = phraser.count_tokens(passage.text)
        if current and used + tokens > budget:
            pieces.append("\n\n".join(current))
            current, used = [], 0
        current.append(passage.text)
        used += tokens
    if current:
        pieces.append("\n\n".join(current))
    return pieces or [text]


def _ask(
    phraser: Phraser,
    template: str,
    text: str,
    words: int,
    on_token: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> str:
    prompt = template.format(words=words, text=text)
    if on_token is None and stop is None:
        return unlabel(phraser.complete(SUMMARY_SYSTEM, prompt, max_tokens=words * 2))
    pieces = []
    for piece in stream_text(phraser, SUMMARY_SYSTEM, prompt, max_tokens=words * 2, stop=stop):
        pieces.append(piece)
        if on_token is not None:
            on_token(piece)
    return unlabel("".join(pieces))


def unlabel(text: str) -> str:
    """The answer without a leading "Summary:" that small models like to add."""
    return re.sub(r"^\s*\**(overall\s+)?summary\**\s*:\s*", "", text.strip(), flags=re.IGNORECASE).strip()


def tidy(text: str) -> str:
    """An LLM summary as prose: list markers and the digest's "ITEM 2:" labels removed, and a last sentence cut
    off by the token limit dropped."""
    lines = []
    for line in text.splitlines():
        line = re.sub(r"^\s*([-*+•]|\d{1,2}[.)])\s+", "", line)
        line = re.sub(r"^\s*\**item\s+\d+\**\s*[:.-]\s*", "", line, flags=re.IGNORECASE)
        if line.strip():
            lines.append(line.strip())
    prose = " ".join(lines)
    ends = [m.end() for m in re.finditer(r"[.!?。！？][”\"')]?(?=\s|$)", prose)]
    if ends and ends[-1] < len(prose.rstrip()):
        prose = prose[: ends[-1]]
    return prose.strip()


def unsupported(summary: str, source: str) -> list[str]:
    """Numbers and quotes in ``summary`` that ``source`` does not contain."""
    numbers = set(re.findall(r"\d+(?:[.,]\d+)?", source))
    issues = [f"number {n} is not in the text" for n in re.findall(r"\d+(?:[.,]\d+)?", summary) if n not in numbers]
    flat = _alnum(source)
    issues += [f"quote “{q}” is not in the text" for q in re.findall(r"[“\"]([^”\"]{3,200})[”\"]", summary)
               if _alnum(q) not in flat]  # fmt: skip
    return issues


def _alnum(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


# --- extractive ------------------------------------------------------------------------------------------------
def sentences_of(text: str, max_chars: int = 300, headings: bool = False) -> list[str]:
    """Sentences (by the shared splitter), Markdown list markers removed; headings only if ``headings``."""
    from polymodal.media.text import split_sentences

    out = []
    for sentence in split_sentences(text, max_chars=max_chars):
        if sentence.text.lstrip().startswith("#") and not headings:
            continue
        clean = re.sub(r"^\s*(#+|[-*+•]|\d{1,3}[.)])\s+", "", sentence.text).strip()
        clean = " ".join(clean.split())
        if clean:
            out.append(clean)
    return out


def tokens(text: str) -> list[str]:
    """Content words: Chinese segmented with jieba, lower-cased, stop words and numbers dropped."""
    from polymodal.media.text import segment_for_search

    found = _TOKEN.findall(segment_for_search(text).lower())
    return [t for t in found if t not in STOPWORDS and not t.isdigit() and (len(t) > 2 or not t.isascii())]


def word_weights(sentences: list[str]) -> dict[str, float]:
    """TF-IDF of each word over the sentences (sentence frequency as document frequency)."""
    per_sentence = [set(tokens(s)) for s in sentences]
    counts = Counter(t for s in sentences for t in tokens(s))
    n = len(sentences) or 1
    df = Counter(t for words in per_sentence for t in words)
    return {t: c * (math.log((1 + n) / (1 + df[t])) + 1.0) for t, c in counts.items()}


def key_sentences(sentences: list[str], weights: dict[str, float], k: int) -> list[str]:
    """The ``k`` best sentences by mean word weight (early ones slightly favoured), in their order."""
    scored = []
    for i, sentence in enumerate(sentences):
        words = tokens(sentence)
        if not words:
            continue
        score = sum(weights.get(w, 0.0) for w in words) / math.sqrt(len(words))
        scored.append((score * (1.0 + 0.5 / (1 + i)), i))
    best = sorted(i for _, i in sorted(scored, reverse=True)[:k])
    return [sentences[i] for i in best]


def keywords(text: str, k: int = 8) -> list[str]:
    weights = word_weights(sentences_of(text))
    return [w for w, _ in sorted(weights.items(), key=lambda kv: -kv[1])[:k]]
