"""Per-modality feature vectors from the frozen encoders, computed once and cached.

Each modality becomes one vector, made of named parts (all through :class:`polymodal.analysis.Analyzer`):

- text: the text encoder's vector (a text file: the mean of its passage vectors);
- image: the classifier's 1280-d pooled features + the label-bridge vector;
- audio: the tagger's clip-level class scores (521 AudioSet classes, patch mean) + the tag bridge vector +
  the transcript's vector (zeros when nothing was said).

Vectors are cached by content hash and by an *extractor id* naming the models that made them: in the
store's ``features`` table when a store is given (items the store already indexed are read from it, not
perceived again), else as ``.npy`` files under ``<cache>/train-features/``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.analysis import LABEL, TAG, TRANSCRIPT, Analysis, Analyzer
from polymodal.media.errors import MediaError
from polymodal.train.manifest import MODALITIES, Problem, Row

Progress = Callable[[int, int], None]  # (done, total)


class FeatureMismatch(ValueError):
    """A saved model was trained on features of other models than the ones in use."""


@dataclass
class FeatureTable:
    """Rows of per-modality vectors: ``x[m]`` is (n, dim_m), zeros where ``mask[:, i]`` (modality i) is False."""

    x: dict[str, np.ndarray]
    mask: np.ndarray  # (n, len(MODALITIES)) bool
    labels: list[str | None]
    lines: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def present(self, modality: str) -> np.ndarray:
        return self.mask[:, MODALITIES.index(modality)]

    def subset(self, index: Sequence[int] | np.ndarray) -> FeatureTable:
        index = np.asarray(index, dtype=np.int64)
        return FeatureTable(
            {m: v[index] for m, v in self.x.items()},
            self.mask[index],
            [self.labels[i] for i in index],
            [self.lines[i] for i in index] if self.lines else [],
        )

    def keep_modalities(self, keep: Sequence[str]) -> FeatureTable:
        """The same rows with every other modality marked missing (rows left with none are dropped)."""
        mask = self.mask.copy()
        for i, modality in enumerate(MODALITIES):
            if modality not in keep:
                mask[:, i] = False
        table = replace(self, mask=mask)
        return table.subset(np.flatnonzero(mask.any(axis=1)))

    def without(self, modality: str) -> FeatureTable:
        return self.keep_modalities([m for m in MODALITIES if m != modality])


class FeatureExtractor:
    """Makes (and caches) the per-modality vectors of manifest rows."""

    def __init__(self, analyzer: Analyzer, store: Any = None, cache_dir: Path | None = None):
        self.analyzer = analyzer
        self.store = store
        self.cache_dir = Path(cache_dir or analyzer.settings.cache) / "train-features"
        self._parts: dict[str, list[tuple[str, int]]] | None = None

    # --- what made the vectors ---------------------------------------------------------------------
    def ids(self) -> dict[str, str]:
        """Per modality, the models its vector depends on (checked when a saved model is loaded)."""
        a = self.analyzer
        mid = {family: a.model(family).model_id for family in ("text", "image", "sound", "vad", "speech")}
        return {
            "text": mid["text"],
            "image": f"{mid['image']}+{a.bridge_id}",
            "audio": f"{mid['sound']}+{mid['vad']}+{mid['speech']}+{a.bridge_id}",
        }

    def parts(self) -> dict[str, list[tuple[str, int]]]:
        """Per modality, its named parts and their sizes, in vector order."""
        if self._parts is None:
            self._parts = self._make_parts()
        return self._parts

    def _make_parts(self) -> dict[str, list[tuple[str, int]]]:
        a = self.analyzer
        text_dim = int(a.model("text").dim)
        return {
            "text": [("text", text_dim)],
            "image": [("features", int(a.model("image").feature_dim)), ("bridge", text_dim)],
            "audio": [("scores", len(a.model("sound").labels)), ("bridge", text_dim), ("transcript", text_dim)],
        }

    def dims(self) -> dict[str, int]:
        return {m: sum(size for _, size in parts) for m, parts in self.parts().items()}

    def part(self, modality: str, name: str, vectors: np.ndarray) -> np.ndarray:
        """Columns of part ``name`` in ``vectors`` (rows of a modality's vectors)."""
        start = 0
        for part_name, size in self.parts()[modality]:
            if part_name == name:
                return vectors[..., start : start + size]
            start += size
        raise KeyError(name)

    def check(self, expected: dict[str, str], modalities: Sequence[str]) -> None:
        """Raise :class:`FeatureMismatch` if the models in use differ from those a model was trained on."""
        current = self.ids()
        wrong = [m for m in modalities if expected.get(m) != current[m]]
        if wrong:
            lines = "; ".join(f"{m}: trained on {expected.get(m)}, now {current[m]}" for m in wrong)
            raise FeatureMismatch(
                f"this model was trained on features of other models ({lines}); retrain it, or configure the "
                "same models (Settings / POLYMODAL_* variables) as when it was trained"
            )

    # --- one item -----------------------------------------------------------------------------------
    def text(self, text: str) -> np.ndarray:
        return self.texts([text])[0]

    def texts(self, texts: Sequence[str]) -> np.ndarray:
        """Text vectors, batched; each cached by the hash of its text."""
        key = self.ids()["text"]
        shas = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        found = {sha: self._cached(sha, key) for sha in dict.fromkeys(shas)}
        missing = [sha for sha, vector in found.items() if vector is None]
        if missing:
            by_sha = dict(zip(shas, texts, strict=True))
            encoded = self.analyzer.model("text").encode([by_sha[sha] for sha in missing])
            for sha, vector in zip(missing, encoded, strict=True):
                found[sha] = self._put(sha, key, vector)
        dim = self.dims()["text"]
        return np.stack([found[sha] for sha in shas]) if shas else np.zeros((0, dim), np.float32)

    def image(self, path: Path) -> np.ndarray:
        return self._media(Path(path), "image")

    def audio(self, path: Path) -> np.ndarray:
        return self._media(Path(path), "audio")

    def _media(self, path: Path, modality: str) -> np.ndarray:
        from polymodal.index import file_sha256

        sha = file_sha256(path)
        key = self.ids()[modality]
        cached = self._cached(sha, key)
        if cached is not None:
            return cached
        analysis = self._stored_analysis(sha, modality) or self._perceive(path, modality)
        return self._put(sha, key, self.vector(analysis))

    def vector(self, analysis: Analysis) -> np.ndarray:
        """The modality vector of an analysis (image or audio) made by this extractor's analyzer."""
        if analysis.modality == "image":
            return self._image_vector(analysis)
        if analysis.modality == "audio":
            return self._audio_vector(analysis)
        raise ValueError(f"no {analysis.modality} vector")

    def _image_vector(self, analysis: Analysis) -> np.ndarray:
        features = analysis.features[self.analyzer.model("image").model_id]
        return np.concatenate([features, self._bridge(analysis, LABEL, "image")]).astype(np.float32)

    def _audio_vector(self, analysis: Analysis) -> np.ndarray:
        scores = analysis.features[self.analyzer.model("sound").model_id]
        spoken = " ".join(e.text for e in analysis.evidence if e.kind == TRANSCRIPT).strip()
        dim = self.dims()["text"]
        transcript = self.analyzer.model("text").encode([spoken])[0] if spoken else np.zeros(dim, np.float32)
        return np.concatenate([scores, self._bridge(analysis, TAG, "sound"), transcript]).astype(np.float32)

    def _bridge(self, analysis: Analysis, kind: str, family: str) -> np.ndarray:
        """The plain label-bridge vector (never blended with an aligner: heads need a fixed input)."""
        weighted = [(e.text, e.score or 0.0) for e in analysis.evidence if e.kind == kind]
        if not weighted:
            return np.zeros(self.dims()["text"], np.float32)
        return self.analyzer.bridge(family).vector(weighted)

    def _stored_analysis(self, sha: str, modality: str) -> Analysis | None:
        """The store's analysis of this content, if it has one made by the same perception models."""
        if self.store is None:
            return None
        state = self.store.content_state(sha)
        if state is None or state[0] != modality:
            return None
        wanted = self.analyzer.perception_ids(modality)
        if any(state[1].get(stage) not in (None, model) for stage, model in wanted.items()):
            return None
        analysis = self.store.load_analysis(sha)
        family = "image" if modality == "image" else "sound"
        if analysis is None or self.analyzer.model(family).model_id not in analysis.features:
            return None  # indexed before clip-level features were kept
        return analysis

    def _perceive(self, path: Path, modality: str) -> Analysis:
        from polymodal.media.detect import detect

        detected = detect(path)
        if detected.modality != modality:
            raise MediaError(f"expected {modality}, found {detected.modality} ({detected.format})")
        if modality == "image":
            return self.analyzer.perceive_image(path, detected.format, ocr_mode="never")
        return self.analyzer.perceive_audio(path, detected.format)

    # --- the cache ------------------------------------------------------------------------------------
    def _cached(self, sha: str, key: str) -> np.ndarray | None:
        if self.store is not None:
            return self.store.feature(sha, f"train:{key}")
        path = self._cache_path(sha, key)
        return np.load(path) if path.exists() else None

    def _put(self, sha: str, key: str, vector: np.ndarray) -> np.ndarray:
        vector = np.asarray(vector, np.float32)
        if self.store is not None:
            self.store.put_feature(sha, f"train:{key}", vector)
            return vector
        path = self._cache_path(sha, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.tmp.npy")
        np.save(tmp, vector)
        tmp.replace(path)
        return vector

    def _cache_path(self, sha: str, key: str) -> Path:
        folder = hashlib.sha1(key.encode()).hexdigest()[:12]
        return self.cache_dir / folder / sha[:2] / f"{sha}.npy"

    # --- many rows ------------------------------------------------------------------------------------
    def table(
        self, rows: Sequence[Row], progress: Progress | None = None, modalities: Sequence[str] = MODALITIES
    ) -> tuple[FeatureTable, list[Problem]]:
        """Vectors of every row; a row whose media cannot be read is left out and reported."""
        dims = self.dims()
        texts = self.texts([r.text for r in rows if r.text is not None]) if "text" in modalities else None
        x = {m: np.zeros((len(rows), dims[m]), np.float32) for m in modalities}
        mask = np.zeros((len(rows), len(MODALITIES)), bool)
        problems: list[Problem] = []
        keep: list[int] = []
        text_index = 0
        for i, row in enumerate(rows):
            if row.text is not None and texts is not None:
                x["text"][i], mask[i, 0] = texts[text_index], True
                text_index += 1
            reason = self._fill_media(row, i, x, mask, modalities)
            if reason:
                problems.append(Problem(row.line, reason))
            elif mask[i].any():
                keep.append(i)
            else:
                problems.append(Problem(row.line, f"none of the modalities {', '.join(modalities)}"))
            if progress:
                progress(i + 1, len(rows))
        table = FeatureTable(x, mask, [r.label for r in rows], [r.line for r in rows])
        return table.subset(keep), problems

    def _fill_media(self, row: Row, i: int, x: dict, mask: np.ndarray, modalities: Sequence[str]) -> str:
        for modality in ("image", "audio"):
            path = getattr(row, modality)
            if path is None or modality not in modalities:
                continue
            try:
                x[modality][i] = self._media(path, modality)
                mask[i, MODALITIES.index(modality)] = True
            except (MediaError, OSError) as exc:
                return f"unreadable {modality} {path.name}: {exc}"
        return ""

