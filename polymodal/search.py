"""Search with a query of any modality, or several at once, ranked by how relevant each item is.

The query goes through the same analysis path as indexed files, so a photo is compared with what photos
became (label-bridge vectors, OCR text) and a voice question with what recordings said. Candidates come from
the nearest vectors and from the full-text index (evidence text and file names); each is scored by
:mod:`polymodal.ranking` (a calibrated relevance in 0–1 from its cosine, the share of the query's words it
contains, a phrase match, a name match, and how near in meaning, in any language, the query's words are to
the words of its name and of its top labels: "宇航员" finds ``astronaut.jpg``). Items below the fitted
cut-off are not hits: they come back as ``weaker`` matches, shown apart. Each hit carries the evidence that
made it match. A video matches at a moment: its hit has the start and end of the best evidence (a shot's
labels, a transcript segment, a sound window) and that shot's thumbnail; for an image query, the shot whose
keyframe looks most like the image.
"""

from __future__ import annotations

import fnmatch
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal import lexicon, people, ranking, spaces
from polymodal.analysis import (
    EVENT,
    LABEL,
    MAX_EVENTS,
    SOUND_TAG_WEIGHTS,
    TAG,
    TRANSCRIPT,
    Analysis,
    Analyzer,
    Evidence,
    media_vector,
    shot_features_key,
)
from polymodal.errors import UsageError
from polymodal.models import speech
from polymodal.models.text import normalize
from polymodal.space import bridge as bridges
from polymodal.store.base import Store
from polymodal.store.vectors import VectorIndex

CANDIDATES = 200
FILTERED_WIDER = 8  # a filtered search starts from 8x the candidates, and widens 8x at a time
WORD_ROWS = 400  # evidence rows read from the full-text index for one query
RARITY_CAP = 5_000  # rows counted to tell how common a query word is
BRIDGE_KINDS = ("labels", "tags")  # vector kinds of the label bridge
NAME = "name"  # evidence kind of a file name that shares words with the query
CLASS_MATCH_CANDIDATES = 100  # the best candidates whose classes are matched with those the query names
EXAMPLE_WORDS = 60  # words of a text or transcript that stand for it as a query (a long one's: its start)
WORD_VECTORS_KEPT = 100_000  # single-word vectors kept per process (name words, query words), ~200 MB at most


@dataclass
class Query:
    text: str | None = None
    image: Path | bytes | None = None
    audio: Path | bytes | None = None
    k: int = 10
    offset: int = 0  # hits to pass over (paging)
    modality: str | None = None  # only items of this modality
    path: str | None = None  # only items whose path matches this glob
    person: str | None = None  # only items showing this person (id or name; polymodal.people)
    language: str | None = None  # the language a spoken query is in ("zh"); detected when None
    example: Analysis | None = None  # an indexed item's analysis as a query by example (its similar items)
    exclude: str | None = None  # the content (sha) left out: the example itself and its copies


@dataclass
class Hit:
    item: int
    path: str
    modality: str
    score: float  # relevance in 0-1 (calibrated on the judged query set); the list is ordered by it
    similarity: float | None  # best cosine between the query and the item's vectors
    why: list[Evidence]
    start: float | None = None  # the matching moment of a recording or video (from ``why``)
    end: float | None = None
    shot: int | None = None  # the video shot showing that moment
    thumbnail: str | None = None  # that shot's JPEG (a file in the store)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "item": self.item,
            "path": self.path,
            "modality": self.modality,
            "score": round(self.score, 5),
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "why": [e.to_dict() for e in self.why],
        }
        moment = {"start": self.start, "end": self.end, "shot": self.shot, "thumbnail": self.thumbnail}
        return out | {key: value for key, value in moment.items() if value is not None}


@dataclass
class SearchResult:
    hits: list[Hit]
    understood: list[Evidence] = field(default_factory=list)  # what the query media were read as
    approximate: bool = False
    milliseconds: float = 0.0
    weaker: list[Hit] = field(default_factory=list)  # below the cut-off: shown apart, if at all
    more: bool = False  # more hits above the cut-off after these (ask again with a larger offset)
    offset: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "hits": [h.to_dict() for h in self.hits],
            "weaker": [h.to_dict() for h in self.weaker],
            "more": self.more,
            "offset": self.offset,
            "query_evidence": [e.to_dict() for e in self.understood],
            "approximate": self.approximate,
            "milliseconds": round(self.milliseconds, 1),
        }


@dataclass
class _WordMatch:
    share: float  # rarity-weighted share of the query's words in the item's matching evidence
    phrase: bool
    evidence: int  # the evidence row that contains most of them


@dataclass
class Scored:
    """One candidate file for one query: its features, the query's kind, and the relevance they give."""

    relevance: float
    sha: str
    row: Any  # the store's FileRow
    modality: str
    candidate: ranking.Candidate
    kind: str


class Searcher:
    def __init__(
        self,
        store: Store,
        index: VectorIndex,
        analyzer: Analyzer,
        fts_text: Callable[[str], str],
        model: ranking.RankingModel | None = None,
    ):
        self.store = store
        self.index = index
        self.analyzer = analyzer
        self.fts_text = fts_text
        self.model = model or ranking.default_model()

    def search(self, query: Query) -> SearchResult:
        started = time.perf_counter()
        media = query.image is not None or query.audio is not None or query.example is not None
        if not (query.text and query.text.strip()) and not media:
            raise UsageError("give a text, an image or an audio query")
        if not media and not ranking.tokens(query.text or ""):
            return SearchResult([], offset=query.offset)  # punctuation alone means nothing to match
        scored, by_vector, by_words, understood, looks = self._gather(query)
        result = self._page(scored, by_vector, by_words, query, looks, cut_off=query.example is None)
        result.understood = understood
        result.milliseconds = (time.perf_counter() - started) * 1000
        return result

    def scored(self, query: Query) -> list[Scored]:
        """Every candidate of ``query`` with its features and relevance, most relevant first (what the
        ranking's weights are fitted on: ``bench/fit_ranking.py``)."""
        return self._gather(query)[0]

    def _gather(self, query: Query) -> tuple[list[Scored], dict, dict, list[Evidence], dict]:
        typed = self.analyzer.model("text").encode([query.text])[0] if query.text and query.text.strip() else None
        vector, words, understood, looks, kind = self._represent(query, typed)
        if query.example is not None and query.example.modality == "text":
            typed = vector  # a note or a page names classes as a typed text does
        elif typed is not None:  # its nouns described as the classes are, for the classes it names
            typed = bridges.described(self.analyzer.model("text"), query.text or "", typed)
        query_terms = ranking.terms(self.fts_text(words))
        meaning = self._meaning_vectors(words if kind != "sound" else query.text or "")  # not the tagger's labels
        by_words = self._word_matches(query_terms)
        named = self._named(query_terms)
        if query.exclude is not None:  # open-vocabulary spaces
            extra = spaces.similar_scores(self.store, self.analyzer.settings, query.exclude)
        else:
            extra = spaces.extra_space_scores(self.store, self.analyzer.settings, query)
        filtered = bool(query.modality or query.path)
        wanted = query.offset + query.k
        candidates = max(CANDIDATES, wanted * 20) * (FILTERED_WIDER if filtered else 1)
        while True:  # a filter may drop most neighbours: widen until enough hits pass it or every vector was seen
            by_vector = self._vector_ranking(vector, candidates)
            by_vector.pop(query.exclude, None)
            scored = self._score(by_vector, by_words, named, query_terms, kind, query, looks, extra, meaning)
            scored = self._rescore_by_classes(scored, typed)
            strong = sum(s.relevance >= self.model.threshold for s in scored)
            if not filtered or strong >= wanted or candidates >= self.index.size:
                break
            candidates *= FILTERED_WIDER
        if query.image is not None or query.person:  # the query image's faces, the person filter
            scored = people.refine_search(self, query, scored, by_words)
        return scored, by_vector, by_words, understood, looks

    # --- the query in the shared space ------------------------------------------------------------
    def _represent(
        self, query: Query, typed: np.ndarray | None
    ) -> tuple[np.ndarray, str, list[Evidence], dict[str, np.ndarray], str]:
        """The query's vector (``typed``: its text's, if any), its words for the word matches, what its media were
        read as, how a query image looks or a query sound sounds (its classifier's or tagger's features), and the
        query's kind (see ``ranking.QUERY_KINDS``)."""
        parts: list[np.ndarray] = []
        words: list[str] = []
        understood: list[Evidence] = []
        looks: dict[str, np.ndarray] = {}
        kind = "text"
        examples: list[Analysis] = []
        if query.image is not None:
            examples.append(self.analyzer.perceive_image(query.image))
        if query.audio is not None:
            examples.append(self.analyzer.perceive_audio(query.audio, language=speech.language_code(query.language)))
        for analysis in examples:
            self.analyzer.embed(analysis)
            understood += analysis.evidence
        if query.example is not None:
            examples.append(query.example)  # embedded when it was indexed
        for analysis in examples:
            vector, said, sounds_or_looks, kind = self._example(analysis, refined=typed is not None)
            parts.append(vector)
            words += said
            looks |= sounds_or_looks
        if typed is not None:
            parts.append(typed)
            words.append(query.text or "")
        return normalize(np.sum(parts, axis=0)), " ".join(words), understood, looks, kind

    def _example(
        self, analysis: Analysis, refined: bool
    ) -> tuple[np.ndarray, list[str], dict[str, np.ndarray], str]:
        """A picture, recording or text as a query by example: its vector, its words for the word matches (none
        of a picture's when a typed text ``refined`` it: the text says what matters), how it looks or sounds (its
        classifier's or tagger's features) and its query kind."""
        if analysis.modality == "text":
            written = " ".join(e.text for e in analysis.evidence).split()[:EXAMPLE_WORDS]
            return normalize(np.mean([v.vector for v in analysis.vectors], axis=0)), [" ".join(written)], {}, "text"
        if analysis.modality == "audio":
            spoken = " ".join(e.text for e in analysis.evidence if e.kind == TRANSCRIPT).split()[:EXAMPLE_WORDS]
            if spoken:
                return self.analyzer.model("text").encode([" ".join(spoken)])[0], [" ".join(spoken)], {}, "speech"
            tags = [e.text for e in analysis.evidence if e.kind == TAG]
            heard = [t for t in tags if SOUND_TAG_WEIGHTS.get(t, 1.0) >= 1.0][:3]
            return media_vector(analysis), heard, analysis.features, "sound"
        seen = [] if refined else [e.text for e in analysis.evidence if e.kind == "ocr"]
        seen += [] if refined else [e.text for e in analysis.evidence if e.kind == LABEL][:3]
        return media_vector(analysis), seen, analysis.features, "image"

    # --- candidates ----------------------------------------------------------------------------------
    def _vector_ranking(self, vector: np.ndarray, candidates: int) -> dict[str, tuple[float, int, str]]:
        """sha -> (best cosine, best vector id, that vector's kind), best first."""
        best: dict[str, tuple[float, int, str]] = {}
        neighbours = self.index.search(vector, candidates)
        rows = self.store.vector_rows([vid for vid, _ in neighbours])
        for vid, score in neighbours:
            if vid not in rows:  # deleted since the index was read (a file re-indexed meanwhile)
                continue
            sha, kind = rows[vid][0], rows[vid][1]
            if sha not in best:
                best[sha] = (score, vid, kind)
        return dict(sorted(best.items(), key=lambda item: -item[1][0]))

    def _word_matches(self, query_terms: list[str]) -> dict[str, _WordMatch]:
        """Items whose evidence contains forms of the query's meaningful words."""
        if not query_terms:
            return {}
        rows = self.store.lexical(" OR ".join(fts_term(t) for t in query_terms), WORD_ROWS)
        evidence = self.store.evidence_by_id([evidence_id for _, evidence_id, _ in rows])
        weights = self._rarities(query_terms)
        # sha -> (words of its matching evidence, best share of one piece, that piece, a phrase match)
        per_item: dict[str, tuple[set[str], float, int, bool]] = {}
        for sha, evidence_id, _ in rows:  # best bm25 first
            text = self.fts_text(evidence[evidence_id].text) if evidence_id in evidence else ""
            words = set(ranking.tokens(text))
            share = ranking.word_share(query_terms, weights, words)
            if share == 0.0:
                continue  # a prefix of another word ("cat" in "category")
            seen, best_share, best, phrase = per_item.get(sha, (set(), 0.0, evidence_id, False))
            if share > best_share:
                best_share, best = share, evidence_id
            per_item[sha] = (seen | words, best_share, best, phrase or ranking.has_phrase(query_terms, text))
        return {
            sha: _WordMatch(ranking.word_share(query_terms, weights, seen), phrase, best)
            for sha, (seen, _, best, phrase) in per_item.items()
        }

    def _rarities(self, query_terms: list[str]) -> dict[str, float]:
        documents = self.store.evidence_count()
        return {t: ranking.rarity(self.store.count_matches(fts_term(t), RARITY_CAP), documents) for t in query_terms}

    def _named(self, query_terms: list[str]) -> list[str]:
        """Contents of files whose name or folder holds forms of the query's meaningful words."""
        if not query_terms:
            return []
        rows = self.store.named(" OR ".join(fts_term(t) for t in query_terms), WORD_ROWS)
        return list(dict.fromkeys(row.sha for row in rows))

    def _score(
        self,
        by_vector: dict,
        by_words: dict[str, _WordMatch],
        named: list[str],
        query_terms: list[str],
        kind: str,
        query: Query,
        looks: dict[str, np.ndarray] | None = None,
        extra: dict[str, float] | None = None,
        meaning: np.ndarray | None = None,
    ) -> list[Scored]:
        """Every candidate file that passes the filters, with its relevance, most relevant first; ``meaning``:
        the vectors of the query's words, for the nearness of their meaning to file names (``soft_name``)."""
        cjk = ranking.is_cjk(query.text or "")
        extra = extra or {}  # item -> its standing in the open-vocabulary spaces (polymodal.spaces)
        shas = list(dict.fromkeys([*by_vector, *by_words, *named, *extra]))
        nearest: dict[str, float] = {}  # vector kind -> best cosine among the candidates
        for cosine, _, vector_kind in by_vector.values():
            nearest.setdefault(_vector_kind(vector_kind), cosine)
        files = self.store.files_for(shas)
        info = self.store.content_info(list(files))
        soft_names = self._soft_names(meaning, [row.path for rows in files.values() for row in rows])
        scored: list[Scored] = []
        for sha in shas:
            if sha == query.exclude:
                continue
            modality = info.get(sha, {}).get("modality", "")
            if query.modality and modality != query.modality:
                continue
            vector_match, word_match = by_vector.get(sha), by_words.get(sha)
            for row in files.get(sha, []):
                if query.path and not fnmatch.fnmatch(row.path, query.path):
                    continue
                vector_kind = "content" if vector_match is None else _vector_kind(vector_match[2])
                candidate = ranking.Candidate(
                    cosine=None if vector_match is None else vector_match[0],
                    vector_kind=vector_kind,
                    words=0.0 if word_match is None else word_match.share,
                    phrase=word_match is not None and word_match.phrase,
                    name=self._name_share(query_terms, row.path),
                    gap=0.0 if vector_match is None else nearest[vector_kind] - vector_match[0],
                    cjk=cjk,
                    alike=self._alike(sha, looks) if looks else 0.0,
                    open=extra.get(sha, 0.0),
                    soft_name=soft_names.get(row.path, 0.0),
                )
                scored.append(Scored(self.model.relevance(candidate, kind), sha, row, modality, candidate, kind))
        scored.sort(key=lambda s: -s.relevance)
        return scored

    def _meaning_vectors(self, text: str) -> np.ndarray | None:
        """Unit vectors of the query's meaning words (:func:`polymodal.ranking.meaning_words`), None without any; a
        word with no meaning (:func:`polymodal.lexicon.is_word`: "哔叭" of "咕噜哔叭啦") gets a zero vector: it
        counts among the query's words and is near no name."""
        words = ranking.meaning_words(self.fts_text(text)) if text.strip() else []
        if not words:
            return None
        known = np.array([[float(lexicon.is_word(word))] for word in words], np.float32)
        return self._word_vectors(words) * known

    def _rescore_by_classes(self, scored: list[Scored], typed: np.ndarray | None) -> list[Scored]:
        """``scored`` with the pictures among the best CLASS_MATCH_CANDIDATES given ``classes``: how well their
        class probabilities (from the classifier features the store keeps) match the classes the typed text (its
        vector ``typed``) names; most relevant first again."""
        if typed is None:
            return scored
        classifier = self.analyzer.model("image")
        best = scored[:CLASS_MATCH_CANDIDATES]
        stored = self.store.features_of(classifier.model_id, [s.sha for s in best])
        features = {sha: f for sha, f in stored.items() if f.size == classifier.feature_dim}
        if not features:
            return scored
        named = self.analyzer.bridge("image").named_classes(typed)
        matches = bridges.class_match(named, classifier.probabilities(np.stack(list(features.values()))))
        match_of = dict(zip(features, matches.tolist(), strict=True))
        for s in best:
            if s.sha in match_of:
                s.candidate.classes = match_of[s.sha]
                s.relevance = self.model.relevance(s.candidate, s.kind)
        return sorted(scored, key=lambda s: -s.relevance)

    def _soft_names(self, meaning: np.ndarray | None, paths: list[str]) -> dict[str, float]:
        """path -> how near the query's words are in meaning to the words of its name and folder (``soft_name``)."""
        if meaning is None:
            return {}
        named = {
            path: [w for w in ranking.meaning_words(self.fts_text(ranking.name_words(path))) if lexicon.is_word(w)]
            for path in set(paths)
        }
        vocabulary = list(dict.fromkeys(word for words in named.values() for word in words))
        if not vocabulary:
            return {}
        row = {word: i for i, word in enumerate(vocabulary)}
        cosines = meaning @ self._word_vectors(vocabulary).T  # (query words, name words)
        return {
            path: ranking.soft_share(cosines[:, [row[w] for w in words]].max(axis=1).tolist())
            for path, words in named.items()
            if words
        }

    def _word_vectors(self, words: list[str]) -> np.ndarray:
        """Unit text-encoder vectors of single words, from a per-process cache (names repeat across queries)."""
        encoder = self.analyzer.model("text")
        cache = _word_cache(encoder.model_id)
        found = {w: v for w in words if (v := cache.get(w)) is not None}  # get: another thread may clear it
        missing = [w for w in dict.fromkeys(words) if w not in found]
        if missing:
            found |= zip(missing, normalize(np.asarray(encoder.encode_each(missing), np.float32)), strict=True)
            with _WORD_LOCK:
                if len(cache) + len(missing) > WORD_VECTORS_KEPT:
                    cache.clear()
                cache.update((w, found[w]) for w in missing)
        return np.stack([found[w] for w in words])

    def _alike(self, sha: str, looks: dict[str, np.ndarray]) -> float:
        """How much the item looks (or sounds) like the query's media: the cosine of their features from the same
        image classifier or sound tagger, 0 when the item has none."""
        for model, query in looks.items():
            if model not in self._example_models:
                continue  # shots, faces, open-vocabulary spaces: not the classifier's or tagger's features
            item = self.store.feature(sha, model)
            if item is not None and item.shape == query.shape:
                norms = float(np.linalg.norm(item)) * float(np.linalg.norm(query))
                return float(item @ query) / norms if norms > 0 else 0.0
        return 0.0

    @functools.cached_property
    def _example_models(self) -> frozenset[str]:
        return frozenset(self.analyzer.model(family).model_id for family in ("image", "sound"))

    def _event(self, sha: str, tags: list[str], text: str | None) -> Evidence | None:
        """The sound event of a recording that the query names, else the strongest of its matching tags, else
        its strongest: the moment the hit plays from."""
        events = self.store.top_evidence(sha, EVENT, MAX_EVENTS)
        if not events:
            return None
        query_terms = ranking.terms(text or "")
        named = [e for e in events if ranking.word_share(query_terms, {}, set(ranking.tokens(e.text))) > 0]
        tagged = [e for e in events if e.text in tags]
        return max(named or tagged or events, key=lambda e: e.score or 0.0)

    def _name_share(self, query_terms: list[str], path: str) -> float:
        return ranking.word_share(query_terms, {}, set(ranking.tokens(self.fts_text(ranking.name_words(path)))))

    def _page(
        self,
        scored: list[Scored],
        by_vector: dict,
        by_words: dict,
        query: Query,
        looks: dict | None = None,
        cut_off: bool = True,
    ) -> SearchResult:
        """The page of hits above the cut-off that ``query.offset`` and ``query.k`` ask for, and (on the first
        page) the best few below it. Without ``cut_off`` (similar items: the nearest, however near) all count."""
        threshold = self.model.threshold if cut_off else 0.0
        strong = [s for s in scored if s.relevance >= threshold]
        page = strong[query.offset : query.offset + query.k]
        weaker = [s for s in scored if s.relevance < threshold][: query.k] if query.offset == 0 else []

        def hit(s: Scored) -> Hit:
            vector_match = by_vector.get(s.sha)
            similarity = None if vector_match is None else vector_match[0]
            why = self._why(s.sha, vector_match, by_words.get(s.sha), s.row.path, query.text)
            why += spaces.evidence(s.candidate.open)  # its standing in an open-vocabulary space, if any
            alike = self._shot_that_looks_alike(s.sha, looks) if s.modality == "video" and looks else []
            if alike:
                why = alike + [e for e in why if e.kind != LABEL]
            return self._at_moment(
                Hit(s.row.id, s.row.path, s.modality, s.relevance, similarity, why), s.sha, query.text
            )

        return SearchResult(
            [hit(s) for s in page],
            approximate=self.index.approximate,
            weaker=[hit(s) for s in weaker],
            more=len(strong) > query.offset + query.k,
            offset=query.offset,
        )

    def _shot_that_looks_alike(self, sha: str, looks: dict[str, np.ndarray]) -> list[Evidence]:
        """The labels of the video shot whose keyframe's features are nearest the query image's."""
        for model, query in looks.items():
            shots = self.store.feature(sha, shot_features_key(model))
            if shots is not None and query.ndim == 1 and shots.size % query.size == 0:
                matrix = shots.reshape(-1, query.size)
                norms = np.linalg.norm(matrix, axis=1) * max(float(np.linalg.norm(query)), 1e-9)
                shot = int(np.argmax(matrix @ query / np.maximum(norms, 1e-9)))
                return self.store.shot_evidence(sha, shot, LABEL, 3)
        return []

    def _at_moment(self, hit: Hit, sha: str, text: str | None = None) -> Hit:
        """Set the hit's moment (and, for a video, its shot and thumbnail) from its first timed evidence; in a
        sentence with word times, from the first word of its part that the query's words match best."""
        moment = next((e for e in hit.why if e.start is not None), None)
        if moment is not None:
            hit.start, hit.end = moment.start, moment.end
            if moment.kind == TRANSCRIPT and moment.box and text:
                hit.start = spoken_at(moment, text)
            for e in hit.why:
                e.box = None if e.kind == TRANSCRIPT else e.box  # word times: not part of the answer
            if hit.modality == "video" and moment.page is not None:
                thumbnail = self.store.thumbnail(sha, moment.page)
                hit.shot, hit.thumbnail = moment.page, None if thumbnail is None else str(thumbnail)
        return hit

    def _why(
        self, sha: str, vector_match: tuple | None, word_match: _WordMatch | None, path: str, text: str | None
    ) -> list[Evidence]:
        """The evidence behind a hit: the piece holding the query's words, the nearest vector's evidence (a
        video shot's labels or a sound window's tags as one group: the moment), its top labels or tags for a
        whole-item bridge vector, and the file's name when it shares words with the query."""
        group: list[Evidence] = []
        evidence_ids: list[int] = [] if word_match is None else [word_match.evidence]
        bridge: list[Evidence] = []
        if vector_match is not None:
            _, vid, kind = vector_match
            row = self.store.vector_rows([vid]).get(vid)
            evidence_id = None if row is None else row[2]
            if evidence_id is not None and kind in BRIDGE_KINDS:
                group = self.store.evidence_group(evidence_id, 3)
            elif evidence_id is not None:
                evidence_ids.append(evidence_id)
            elif row is not None:
                bridge = self.store.top_evidence(sha, LABEL if kind == "labels" else TAG, 3)
        found = self.store.evidence_by_id(evidence_ids)
        why: list[Evidence] = []
        for e in [*group, *(found[i] for i in evidence_ids if i in found), *bridge]:
            if not any((e.kind, e.text, e.start) == (w.kind, w.text, w.start) for w in why):
                why.append(e)
        if not any(e.start is not None for e in why):  # a recording that matched as a whole: its moment
            event = self._event(sha, [e.text for e in why if e.kind == TAG], text)
            why += [event] if event is not None else []
        if text and self._name_share(ranking.terms(self.fts_text(text)), path) > 0:
            why.append(Evidence(NAME, ranking.name_words(path)))
        return why


_WORD_LOCK = threading.Lock()


@functools.cache
def _word_cache(model_id: str) -> dict[str, np.ndarray]:
    """word -> its unit vector from the text encoder ``model_id`` (filled by ``Searcher._word_vectors``)."""
    return {}


def _vector_kind(kind: str) -> str:
    """The ranking's kind of a stored vector: a label / tag bridge vector, or content text."""
    return "bridge" if kind in BRIDGE_KINDS else "content"


def fts_term(term: str) -> str:
    """An FTS5 expression for one query term: quoted (no operator injection); a prefix for English stems, so
    that "fail" also finds "failing" (the candidates are checked word by word afterwards)."""
    quoted = '"' + term.replace('"', "") + '"'
    return quoted + "*" if term.isascii() and term.isalpha() and len(term) >= 3 else quoted


def spoken_at(sentence: Evidence, query: str) -> float | None:
    """When the part of ``sentence`` (with word times in ``box``) that shares most words with ``query`` starts:
    the first such word of the best window as long as the query; the sentence's start if none is shared."""
    query_terms = ranking.terms(query)
    words = [ranking.tokens(word) for word in sentence.text.split()]
    if not sentence.box or len(words) != len(sentence.box) or not query_terms:
        return sentence.start
    hits = [any(ranking.matches(t, token) for t in query_terms for token in word) for word in words]
    span = max(1, len(ranking.tokens(query)))
    best = max(range(len(hits)), key=lambda i: (sum(hits[i : i + span]), -i))
    first = next((i for i in range(best, len(hits)) if hits[i]), None)
    return sentence.start if first is None else float(sentence.box[first][0])
