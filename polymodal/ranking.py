"""How relevant a candidate is: a calibrated probability from a few features, and the cut-off below it.

Search gathers candidates from two places (the nearest vectors and the full-text index) and describes each by
the features below; a logistic model turns them into a relevance in 0–1, the number the user sees and the
order of the list. Its weights are fitted on the development split of the judged query set
(``bench/fit_ranking.py``) and written to ``ranking_weights.json`` beside this module; the held-out split
reports how well they do (``bench/eval_relevance.py``).

Features of one (query, item) pair:
- the best cosine between the query's vector and the item's vectors, as its own weight per query kind (text,
  image, sound; a spoken query weighs as text) and per kind of item vector (content text: passages,
  transcripts, OCR; or a label / tag bridge vector), since their cosines live on different scales;
- ``words``: the share of the query's meaningful words found in the item's evidence, each word weighted by
  how rare it is in the collection (stop words in English and Chinese never count);
- ``phrase``: the query's meaningful words appear together, in order, in one piece of evidence;
- ``name``: the share of the query's meaningful words found in the file's name or folder;
- for a sound query, whose words are its tagger's labels ("Animal", "Domestic animals, pets"), ``words`` and
  ``name`` weigh on their own (``words:sound``, ``name:sound``): they say much less than words a person typed;
- ``soft_name``: how near in meaning the query's words are to the words of the file's name or folder, across
  languages (the text encoder's cosine of single words: "宇航员" ~ "astronaut" 0.68, "firefighter" ~ "fireman"),
  each query word's best cosine above ``SOFT_FLOOR`` rescaled to 0–1, averaged; its own weight for Chinese
  queries, whose words never match an English name exactly, and for image queries, whose words (without a
  text) are the classifier's top labels;
- ``classes``: for a picture, how well its image classes match those the typed text names (the label bridge
  read in class space: :func:`polymodal.space.bridge.class_match`);
- ``gap``: how far the item's cosine is below the best cosine of any candidate of the same vector kind (0 for
  the nearest): a cosine means more when it stands out among the query's neighbours than on its own, since
  all label-bridge vectors sit fairly near each other;
- ``alike``: for a query by example (an image, a sound), the cosine of the query's and the item's features from
  the same image classifier or sound tagger: how much it looks or sounds alike, beside what it is labelled;
- ``cjk``: the query is written in Chinese (or Japanese) characters: its cosines with English evidence and
  labels run lower, so it gets its own bias and cosine weight;
- ``open``: in a collection with an open-vocabulary space (CLIP, SigLIP, CLAP: :mod:`polymodal.spaces`), how
  far the item's cosine with the query in that space stands above the space's mean, in standard deviations
  (0 without one), its own weight per query kind. Until weights are fitted with such a model
  (``POLYMODAL_MODEL_PATH_IMAGE_TEXT=DIR bench/fit_ranking.py``), it weighs :func:`unfitted_weights`.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

QUERY_KINDS = ("text", "image", "sound")  # query kinds with weights of their own
# A spoken query is ranked as the text it was heard as (its own weights did no better on the dev split, with
# 8 spoken queries to fit them on: returned-set F1 0.555 -> 0.576).
WEIGHED_AS = {"speech": "text"}
VECTOR_KINDS = ("content", "bridge")
ALIKE_KINDS = ("image", "sound")  # query kinds by example, whose media have classifier / tagger features
WEIGHTS_FILE = Path(__file__).with_name("ranking_weights.json")

STOPWORDS_EN = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having he
    her here hers herself him himself his how i if in into is it its itself just me more most my myself no nor
    not now of off on once only or other our ours ourselves out over own same she should so some such than that
    the their theirs them themselves then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours yourself yourselves
    say says said saying tell tells told someone somebody something anything thing things show shows find
    please any one ones""".split()
)
# Function words and question words of Mandarin; content words (猫, 咖啡, 照片 …) are never here.
STOPWORDS_ZH = frozenset(
    """的 了 是 在 我 有 和 就 不 都 一 一个 上 也 很 到 说 要 去 你 会 着 没有 看 好 这 那 什么 吗 呢 吧 啊 哪 怎么
    谁 里 与 及 或 被 把 给 对 为 从 以 之 其 它 他 她 们 我们 你们 他们 这个 那个 哪个 关于 一只 一张 一些 哪些
    还 又 并 而 等 地 得 所 如何 为什么 怎样 哪里 那些 这些 些 个 只 张 讲 谈 提到 说了 啦 呀 嘛 哦 呗""".split()
)
STOPWORDS = STOPWORDS_EN | STOPWORDS_ZH

_TOKEN = re.compile(r"\w+", re.UNICODE)
_SUFFIXES = ("ingly", "edly", "ings", "ing", "ies", "ied", "ed", "es", "s", "ly")


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def is_cjk(text: str) -> bool:
    """Whether most of the letters of ``text`` are Chinese or Japanese characters."""
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(bool(_CJK.match(c)) for c in letters) * 2 >= len(letters)


def stem(word: str) -> str:
    """A light English stem (failing, fails, failed -> fail); other words and scripts are left alone."""
    if not word.isascii() or len(word) < 5:
        return word[:-1] if word.isascii() and len(word) == 4 and word.endswith("s") and word[-2] != "s" else word
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)]
            if suffix in ("ies", "ied"):
                return base + "y"
            if len(base) > 3 and base[-1] == base[-2] and base[-1] not in "aeiouls":
                return base[:-1]  # running -> run, stopped -> stop
            return base
    return word


def tokens(text: str) -> list[str]:
    """Lower-case word tokens (Chinese already spaced into words by the caller, see ``fts_text``)."""
    return _TOKEN.findall(text.lower())


def terms(text: str) -> list[str]:
    """The meaningful words of a query, stemmed, in order, without repeats."""
    found: list[str] = []
    for token in tokens(text):
        if token in STOPWORDS or (token.isascii() and len(token) < 2) or token.isdigit() and len(token) < 2:
            continue
        term = stem(token)
        if term not in found:
            found.append(term)
    return found


def matches(term: str, token: str) -> bool:
    """Whether a document token is a form of a (stemmed) query term."""
    return token == term or (token.startswith(term) and stem(token) == term)


def name_words(path: str) -> str:
    """A file's name and folder as words: ``photos/kitty_on_sofa.jpg`` -> ``photos kitty on sofa``."""
    parts = Path(path).parts[-2:]
    stemmed = [Path(parts[-1]).stem, *parts[:-1]]
    spaced = " ".join(stemmed)
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", spaced)  # camelCase
    return re.sub(r"[_\-.+]+", " ", spaced)


@dataclass
class Candidate:
    """What search knows about one item for one query."""

    cosine: float | None = None  # best cosine with the item's vectors
    vector_kind: str = "content"  # "content" or "bridge": the kind of that best vector
    words: float = 0.0
    phrase: bool = False
    name: float = 0.0
    gap: float = 0.0  # best cosine of this vector kind among the query's candidates minus this one's (>= 0)
    cjk: bool = False  # the query's words are Chinese or Japanese characters
    alike: float = 0.0  # cosine of the query media's and the item's classifier / tagger features
    open: float = 0.0  # standing of the item in an open-vocabulary space for this query (polymodal.spaces)
    soft_name: float = 0.0  # nearness in meaning of the query's words to the file's name words (soft_share)
    classes: float = 0.0  # how well the picture's classes match those the typed query names (bridge.class_match)

    def features(self, query_kind: str) -> list[float]:
        """The model's inputs, in the order of :func:`feature_names`."""
        row = [0.0] * len(feature_names())
        query_kind = WEIGHED_AS.get(query_kind, query_kind)
        q = QUERY_KINDS.index(query_kind)
        row[q] = 1.0  # a bias per query kind
        if self.cosine is not None:
            v = VECTOR_KINDS.index(self.vector_kind)
            row[len(QUERY_KINDS) + q * len(VECTOR_KINDS) + v] = self.cosine
        tail = len(QUERY_KINDS) * (1 + len(VECTOR_KINDS))
        row[tail : tail + 3] = [self.words, float(self.phrase), self.name]
        if query_kind == "sound":  # a sound's words are its tagger's labels: weaker evidence than words typed
            row[tail], row[tail + 2] = 0.0, 0.0
            row[feature_names().index("words:sound")] = self.words
            row[feature_names().index("name:sound")] = self.name
        if self.cosine is not None:
            row[tail + 3 + VECTOR_KINDS.index(self.vector_kind)] = self.gap
        if self.cjk:
            row[-4:-2] = [1.0, self.cosine or 0.0]
        if query_kind in ALIKE_KINDS:
            row[-2 + ALIKE_KINDS.index(query_kind)] = self.alike
        row[feature_names().index(f"open:{query_kind}")] = self.open
        soft = "soft_name:cjk" if self.cjk else "soft_name:image" if query_kind == "image" else "soft_name"
        row[feature_names().index(soft)] = self.soft_name
        row[feature_names().index("classes")] = self.classes
        return row


@functools.cache
def feature_names() -> tuple[str, ...]:
    biases = [f"bias:{q}" for q in QUERY_KINDS]
    cosines = [f"cosine:{q}:{v}" for q in QUERY_KINDS for v in VECTOR_KINDS]
    gaps = [f"gap:{v}" for v in VECTOR_KINDS]
    alike = [f"alike:{q}" for q in ALIKE_KINDS]
    opens = [f"open:{q}" for q in QUERY_KINDS]
    soft = ("soft_name", "soft_name:image", "soft_name:cjk")
    sound = ("words:sound", "name:sound")
    return (
        *biases,
        *cosines,
        "words",
        "phrase",
        "name",
        *gaps,
        *opens,
        *soft,
        *sound,
        "classes",
        "bias:cjk",
        "cosine:cjk",
        *alike,
    )


@dataclass(frozen=True)
class RankingModel:
    """Logistic weights per feature, and the relevance below which a hit is only a weaker match."""

    weights: dict[str, float] = field(default_factory=dict)
    threshold: float = 0.5
    fitted_on: str = "hand-set"  # what the weights were fitted on (the fitting command writes it)

    @functools.cached_property
    def effective_weights(self) -> dict[str, float]:
        """The weights with :func:`unfitted_weights` for features the file lacks, or fitted to exactly 0 (absent
        from the fitting data: all zero there, as ``open`` is without an open-vocabulary model)."""
        unfitted = unfitted_weights(self.weights, self.threshold)
        fitted = {name: w for name, w in self.weights.items() if w or name not in unfitted}
        return {**unfitted, **fitted}

    def relevance(self, candidate: Candidate, query_kind: str) -> float:
        row = candidate.features(query_kind)
        weights = self.effective_weights
        z = sum(weights.get(name, 0.0) * x for name, x in zip(feature_names(), row, strict=True))
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))

    def save(self, path: Path = WEIGHTS_FILE) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path = WEIGHTS_FILE) -> RankingModel:
        if not path.exists():
            return HAND_SET
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(dict(data["weights"]), float(data["threshold"]), str(data.get("fitted_on", "")))


# Features a weights file may not have yet get a weight from the fitted ones. Of 10,000 photos unrelated to a
# query, the nearest in an open-vocabulary space stands ~3.9 standard deviations above their mean; a clear match
# 5 and more. An item that only that space finds is an even call at the cut-off at OPEN_EVEN deviations: below
# it for the nearest unrelated photo, above it for a clear match, whatever the fitted biases and cut-off are.
OPEN_EVEN = 4.5


def unfitted_weights(weights: dict[str, float], threshold: float) -> dict[str, float]:
    """``open:<kind>`` weights that put an item with nothing but an open-vocabulary standing of OPEN_EVEN at the
    cut-off (a positive weight however the bias was fitted)."""
    cut = math.log(threshold / (1 - threshold)) if 0 < threshold < 1 else 0.0
    return {f"open:{q}": max(0.1, (cut - weights.get(f"bias:{q}", -4.0)) / OPEN_EVEN) for q in QUERY_KINDS}


# Used only until weights are fitted: a cosine of ~0.45 with content text, or a word match, is an even bet.
HAND_SET = RankingModel(
    weights={
        **{f"bias:{q}": -4.0 for q in QUERY_KINDS},
        **{f"cosine:{q}:{v}": 9.0 for q in QUERY_KINDS for v in VECTOR_KINDS},
        "words": 3.0,
        "phrase": 1.5,
        "name": 3.0,
    },
    threshold=0.5,
)


@functools.cache
def default_model() -> RankingModel:
    return RankingModel.load()


def word_share(query_terms: list[str], weights: dict[str, float], text_tokens: set[str]) -> float:
    """The weighted share of ``query_terms`` that some token of ``text_tokens`` is a form of."""
    total = sum(weights.get(t, 1.0) for t in query_terms)
    if not total:
        return 0.0
    found = sum(weights.get(t, 1.0) for t in query_terms if any(matches(t, tok) for tok in text_tokens))
    return found / total


SOFT_FLOOR = 0.5  # single words unrelated in meaning sit below this cosine in the text encoder's space


def soft_share(best_cosines: list[float]) -> float:
    """The mean over the query's words of each one's best cosine with a name word, from SOFT_FLOOR (0) to 1 (1)."""
    if not best_cosines:
        return 0.0
    return sum(max(0.0, min(1.0, (c - SOFT_FLOOR) / (1 - SOFT_FLOOR))) for c in best_cosines) / len(best_cosines)


_LETTERS = re.compile(r"[^\W\d_]+", re.UNICODE)


def meaning_words(text: str) -> list[str]:
    """The words of ``text`` (Chinese already spaced into words) that carry meaning on their own, unstemmed, in
    order, without repeats: letters only (digits and "200b" of "fireman200b" say nothing), no stop words, no
    one- or two-letter English words."""
    found = (w for w in _LETTERS.findall(text.lower()) if w not in STOPWORDS and (len(w) >= 3 or not w.isascii()))
    return list(dict.fromkeys(found))


def has_phrase(query_terms: list[str], text: str) -> bool:
    """Whether two or more query terms stand next to each other, in order, in ``text`` (stop words between
    them are allowed: "oat milk and sourdough" matches "oat milk and sourdough")."""
    if len(query_terms) < 2:
        return False
    words = [stem(t) for t in tokens(text) if t not in STOPWORDS]
    n = len(query_terms)
    return any(words[i : i + n] == query_terms for i in range(len(words) - n + 1))


def rarity(document_frequency: int, documents: int) -> float:
    """An inverse document frequency in 0.1–1: a word in every item counts a tenth of a word in one."""
    if documents <= 1:
        return 1.0
    idf = math.log((documents + 1) / (document_frequency + 1)) / math.log(documents + 1)
    return max(0.1, min(1.0, idf))
