"""Search with a query of any modality, or several at once, ranked by vectors and words together.

The query goes through the same analysis path as indexed files, so a photo is compared with what photos
became (label-bridge vectors, OCR text) and a voice question with what recordings said. Two rankings,
vector similarity (best vector per item) and BM25 over the evidence text, are fused by reciprocal rank
fusion; each hit carries the evidence that made it match. A video matches at a moment: its hit has the
start and end of the best evidence (a shot's labels, a transcript segment, a sound window) and that shot's
thumbnail; for an image query, the shot whose keyframe looks most like the image (classifier features).
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.analysis import (
    LABEL,
    SOUND_TAG_WEIGHTS,
    TAG,
    TRANSCRIPT,
    Analyzer,
    Evidence,
    media_vector,
    shot_features_key,
)
from polymodal.models.text import normalize
from polymodal.store.sqlite import SqliteStore
from polymodal.store.vectors import VectorIndex

RRF_K = 60
# Word matches count half as much as vector matches: a single shared word is weaker evidence than meaning.
LEXICAL_WEIGHT = 0.5
CANDIDATES = 200
FILTERED_WIDER = 8  # a filtered search starts from 8x the candidates, and widens 8x at a time
STOPWORDS = frozenset(
    "a about all an and any are as at be but by can did do does for from has have he her his how i if in into "
    "is it its me my no not of on or our she so some than that the their them then there these they this "
    "those to was we were what when where which who why will with you your".split()
)


@dataclass
class Query:
    text: str | None = None
    image: Path | bytes | None = None
    audio: Path | bytes | None = None
    k: int = 10
    modality: str | None = None  # only items of this modality
    path: str | None = None  # only items whose path matches this glob


@dataclass
class Hit:
    item: int
    path: str
    modality: str
    score: float  # fused (reciprocal rank fusion) score: higher is better
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "hits": [h.to_dict() for h in self.hits],
            "query_evidence": [e.to_dict() for e in self.understood],
            "approximate": self.approximate,
            "milliseconds": round(self.milliseconds, 1),
        }


class Searcher:
    def __init__(
        self, store: SqliteStore, index: VectorIndex, analyzer: Analyzer, fts_text: Callable[[str], str]
    ):
        self.store = store
        self.index = index
        self.analyzer = analyzer
        self.fts_text = fts_text

    def search(self, query: Query) -> SearchResult:
        started = time.perf_counter()
        if not (query.text and query.text.strip()) and query.image is None and query.audio is None:
            raise ValueError("give a text, an image or an audio query")
        vector, words, understood, looks = self._represent(query)
        filtered = bool(query.modality or query.path)
        candidates = max(CANDIDATES, query.k * 20) * (FILTERED_WIDER if filtered else 1)
        by_words = self._lexical_ranking(words)
        while True:  # a filter may drop most neighbours: widen until k hits pass it or every vector was seen
            by_vector = self._vector_ranking(vector, candidates)
            hits = self._fuse(by_vector, by_words, query, looks)
            if not filtered or len(hits) >= query.k or candidates >= self.index.size:
                break
            candidates *= FILTERED_WIDER
        return SearchResult(hits, understood, self.index.approximate, (time.perf_counter() - started) * 1000)

    def search_vector(self, vector: np.ndarray, k: int = 10, exclude: str | None = None) -> SearchResult:
        """Items nearest to a vector already in the shared space (e.g. an item's own), by vectors only."""
        started = time.perf_counter()
        by_vector = self._vector_ranking(vector, max(CANDIDATES, k * 20))
        by_vector.pop(exclude, None)
        hits = self._fuse(by_vector, {}, Query(k=k))
        return SearchResult(hits, [], self.index.approximate, (time.perf_counter() - started) * 1000)

    # --- the query in the shared space ------------------------------------------------------------
    def _represent(self, query: Query) -> tuple[np.ndarray, str, list[Evidence], dict[str, np.ndarray]]:
        """The query's vector, its words for the lexical ranking, what its media were read as, and how a query
        image looks (its classifier features)."""
        parts: list[np.ndarray] = []
        words: list[str] = []
        understood: list[Evidence] = []
        looks: dict[str, np.ndarray] = {}
        if query.image is not None:
            analysis = self.analyzer.perceive_image(query.image)
            looks = analysis.features
            self.analyzer.embed(analysis)
            parts.append(media_vector(analysis))
            words += [e.text for e in analysis.evidence if e.kind == "ocr"]
            words += [e.text for e in analysis.evidence if e.kind == LABEL][:3]
            understood += analysis.evidence
        if query.audio is not None:
            analysis = self.analyzer.perceive_audio(query.audio)
            self.analyzer.embed(analysis)
            spoken = " ".join(e.text for e in analysis.evidence if e.kind == TRANSCRIPT).strip()
            if spoken:
                parts.append(self.analyzer.model("text").encode([spoken])[0])
                words.append(spoken)
            else:
                parts.append(media_vector(analysis))
                tags = [e.text for e in analysis.evidence if e.kind == TAG]
                words += [t for t in tags if SOUND_TAG_WEIGHTS.get(t, 1.0) >= 1.0][:3]
            understood += analysis.evidence
        if query.text and query.text.strip():
            parts.append(self.analyzer.model("text").encode([query.text])[0])
            words.append(query.text)
        return normalize(np.sum(parts, axis=0)), " ".join(words), understood, looks

    # --- two rankings ------------------------------------------------------------------------------
    def _vector_ranking(self, vector: np.ndarray, candidates: int) -> dict[str, tuple[int, float, int]]:
        """sha -> (rank, best cosine, best vector id)."""
        best: dict[str, tuple[float, int]] = {}
        neighbours = self.index.search(vector, candidates)
        rows = self.store.vector_rows([vid for vid, _ in neighbours])
        for vid, score in neighbours:
            if vid not in rows:  # deleted since the index was read (a file re-indexed meanwhile)
                continue
            sha = rows[vid][0]
            if sha not in best:
                best[sha] = (score, vid)
        ordered = sorted(best.items(), key=lambda item: -item[1][0])
        return {sha: (rank, score, vid) for rank, (sha, (score, vid)) in enumerate(ordered)}

    def _lexical_ranking(self, words: str) -> dict[str, tuple[int, int]]:
        """sha -> (rank, best evidence id)."""
        match = fts_query(self.fts_text(words))
        if not match:
            return {}
        best: dict[str, tuple[int, int]] = {}
        for sha, evidence_id, _ in self.store.lexical(match, CANDIDATES):
            if sha not in best:
                best[sha] = (len(best), evidence_id)
        return best

    def _fuse(self, by_vector: dict, by_words: dict, query: Query, looks: dict | None = None) -> list[Hit]:
        scores: dict[str, float] = {}
        for sha, (rank, _, _) in by_vector.items():
            scores[sha] = 1.0 / (RRF_K + rank)
        for sha, (rank, _) in by_words.items():
            scores[sha] = scores.get(sha, 0.0) + LEXICAL_WEIGHT / (RRF_K + rank)
        ordered = sorted(scores, key=lambda sha: -scores[sha])
        files = self.store.files_for(
            ordered[: max(query.k * 5, 50)] if not (query.modality or query.path) else ordered
        )
        info = self.store.content_info(list(files))
        hits: list[Hit] = []
        for sha in ordered:
            modality = info.get(sha, {}).get("modality", "")
            if query.modality and modality != query.modality:
                continue
            for row in files.get(sha, []):
                if query.path and not fnmatch.fnmatch(row.path, query.path):
                    continue
                similarity = by_vector[sha][1] if sha in by_vector else None
                why = self._why(sha, by_vector.get(sha), by_words.get(sha))
                alike = self._shot_that_looks_alike(sha, looks) if modality == "video" and looks else []
                if alike:
                    why = alike + [e for e in why if e.kind != LABEL]
                hit = Hit(row.id, row.path, modality, scores[sha], similarity, why)
                hits.append(self._at_moment(hit, sha, query.text))
                if len(hits) >= query.k:
                    return hits
        return hits

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

    def _why(self, sha: str, vector_match: tuple | None, word_match: tuple | None) -> list[Evidence]:
        why: list[Evidence] = []
        group: list[Evidence] = []  # a video shot's labels or a sound window's tags: the moment, so first
        evidence_ids: list[int] = []
        if vector_match is not None:
            kind, evidence_id = self.store.vector_rows([vector_match[2]])[vector_match[2]][1:]
            if evidence_id is not None and kind in ("labels", "tags"):
                group = self.store.evidence_group(evidence_id, 3)
            elif evidence_id is not None:
                evidence_ids.append(evidence_id)
            else:  # a label-bridge vector: its top labels or tags are the reason
                why += self.store.top_evidence(sha, LABEL if kind == "labels" else TAG, 3)
        if word_match is not None and word_match[1] not in evidence_ids:
            evidence_ids.append(word_match[1])
        found = self.store.evidence_by_id(evidence_ids)
        matched = group + [found[i] for i in evidence_ids if i in found]
        seen = {(m.kind, m.text, m.start) for m in group}
        matched = group + [m for m in matched[len(group) :] if (m.kind, m.text, m.start) not in seen]
        return matched + [e for e in why if (e.kind, e.text) not in {(m.kind, m.text) for m in matched}]


_TOKEN = re.compile(r"\w+", re.UNICODE)


def spoken_at(sentence: Evidence, query: str) -> float | None:
    """When the part of ``sentence`` (with word times in ``box``) that shares most words with ``query`` starts:
    the first such word of the best window as long as the query; the sentence's start if none is shared."""
    tokens = [_TOKEN.findall(word.lower()) for word in sentence.text.split()]
    wanted = {t for t in _TOKEN.findall(query.lower()) if t not in STOPWORDS}
    if not sentence.box or len(tokens) != len(sentence.box) or not wanted:
        return sentence.start
    hits = [bool(wanted.intersection(word)) for word in tokens]
    span = max(1, len(_TOKEN.findall(query)))
    best = max(range(len(hits)), key=lambda i: (sum(hits[i : i + span]), -i))
    first = next((i for i in range(best, len(hits)) if hits[i]), None)
    return sentence.start if first is None else float(sentence.box[first][0])


def fts_query(text: str, max_terms: int = 32) -> str:
    """An FTS5 OR-query of the meaningful words in ``text`` (quoted, so no operator injection)."""
    terms: list[str] = []
    for token in _TOKEN.findall(text.lower()):
        if token in STOPWORDS or (token.isascii() and len(token) < 2) or token in terms:
            continue
        terms.append(token)
    return " OR ".join(f'"{t}"' for t in terms[:max_terms])
