"""The label bridge (ConSE, Norouzi et al. 2014): classifier probabilities -> a vector in the text space.

A photo whose classifier says "espresso 0.96, cup 0.01" gets √0.96·emb("a photo of a espresso") + ...,
normalised. The same holds for sounds with AudioSet tags and "the sound of {}". Zero-shot
classification against the user's own labels is then a cosine in the text space.

Two choices measured on Tux Paint text->image retrieval (502 captions, bench/eval_tuxpaint.py) beat the plain
recipe of shared/FINDINGS.md (R@1/5/10 16.5 / 27.5 / 33.3 on our pipeline): weighting labels by p^0.5 instead
of p (the classifier is over-confident; the runner-up labels carry meaning) gave 18.5 / 29.1 / 34.5, and
averaging four prompt templates per label on top gave 18.5 / 29.9 / 36.3.

The same bridge read in **class space** (:func:`class_match`): a text's softmax over its cosines with the label
vectors (which classes it names) against a picture's class probabilities. A weighted mean of label vectors
lets every label near the text count; the softmax keeps only the nearest, and every class of the picture
counts, not its top ten. Alone it ranks the stamps better than the bridge vector (R@10 44.8 against 41.2 %; T
was chosen on them: 0.03-0.08 gave 41.6-44.2 % in a trial), and 48.2 % with the query's nouns described as the
classes are (:func:`described`); search uses it as one more relevance feature.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np

from polymodal.models import assets
from polymodal.models.base import ModelError
from polymodal.models.text import normalize
from polymodal.space import vocabulary

IMAGE_TEMPLATES = ("a photo of a {}", "a picture of a {}", "a drawing of a {}", "a {}")
SOUND_TEMPLATES = ("the sound of {}",)
# Labels weigh p ** sharpness in a bridge vector (0.5 measured for images; sounds keep plain p).
IMAGE_SHARPNESS = 0.5
SOUND_SHARPNESS = 1.0
CLASS_TEMPERATURE = 0.05  # of the softmax that tells which classes a text names
# Share of a query's vector given to its nouns described as the classes are (:func:`described`). Chosen on
# half of the Tux Paint captions (0.25 / 0.5 / 0.75: R@10 in class space 49.6 / 51.5 / 47.7 %, 47.3 % without),
# held-out half 42.1 -> 45.0 %.
DESCRIBED_SHARE = 0.5


class LabelBridge:
    """Text vectors for a fixed label vocabulary (cached on disk), and vectors for label distributions."""

    def __init__(
        self,
        encoder,
        labels: list[str],
        templates: str | tuple[str, ...],
        cache: Path,
        sharpness: float = 1.0,
        label_weights: dict[str, float] | None = None,
        phrasings: list[list[str]] | None = None,
    ):
        """``phrasings``: the texts to embed for each label (their mean is its vector), instead of the
        ``templates`` filled with its name (:mod:`polymodal.space.vocabulary` gives them for ImageNet)."""
        self.encoder = encoder
        self.sharpness = sharpness
        self.label_weights = label_weights or {}
        self.labels = labels
        templates = (templates,) if isinstance(templates, str) else templates
        self.phrasings = phrasings or [[t.format(label) for t in templates] for label in labels]
        self._cache = cache
        self._matrix: np.ndarray | None = None
        self._lock = threading.Lock()
        self._index = {label: i for i, label in enumerate(labels)}

    @property
    def matrix(self) -> np.ndarray:
        """(n_labels, dim) unit vectors, one per label: the mean of its phrasings.

        Computed once and kept in the cache with its SHA-256 (a damaged or truncated file is computed again);
        threads asking at once share one computation.
        """
        matrix = self._matrix
        if matrix is None:
            with self._lock:
                if self._matrix is None:
                    self._matrix = self._load_or_compute()
                matrix = self._matrix
        return matrix

    @property
    def path(self) -> Path:
        """Where the matrix is cached: named by the encoder and the phrasings it is made of."""
        texts = ["\n".join(texts) for texts in self.phrasings]
        key = hashlib.sha1("\n\n".join([self.encoder.model_id, *texts]).encode()).hexdigest()
        return self._cache / "bridge" / f"{key[:16]}.npy"

    def _load_or_compute(self) -> np.ndarray:
        path = self.path
        source = f"the text encoder {self.encoder.model_id} ({len(self.labels)} labels)"

        def compute(out: Path) -> None:
            matrix = vocabulary.phrasing_matrix(self.encoder, self.phrasings)
            with open(out, "wb") as handle:
                np.save(handle, matrix.astype(np.float32), allow_pickle=False)

        matrix = self._read(assets.derived(path, compute, source))
        if matrix is None:  # well recorded but unreadable (its record was damaged with it): computed again
            assets.remove_derived(path)
            matrix = self._read(assets.derived(path, compute, source))
        if matrix is None:
            raise ModelError(f"{path} cannot be read back after writing it; delete {path.parent} and try again")
        return matrix

    def _read(self, path: Path) -> np.ndarray | None:
        """The matrix at ``path`` when it has one finite row per label, else None."""
        try:
            matrix = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        rows_ok = matrix.ndim == 2 and len(matrix) == len(self.labels) and np.isfinite(matrix).all()
        return matrix if rows_ok else None

    def top_labels(self, probabilities: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable labels; classes sharing a name (ImageNet has two "missile") are merged."""
        merged: dict[str, float] = {}
        for i in np.argsort(-probabilities)[: 2 * k]:
            merged[self.labels[i]] = merged.get(self.labels[i], 0.0) + float(probabilities[i])
        return sorted(merged.items(), key=lambda item: -item[1])[:k]

    def vector(self, weighted_labels: list[tuple[str, float]]) -> np.ndarray:
        """The probability-weighted mean of the label vectors, unit length."""
        rows = [self._index[label] for label, _ in weighted_labels]
        weights = np.array(
            [max(p, 0.0) ** self.sharpness * self.label_weights.get(label, 1.0) for label, p in weighted_labels],
            np.float32,
        )
        return normalize(weights @ self.matrix[rows])

    def named_classes(self, text_vector: np.ndarray, temperature: float = CLASS_TEMPERATURE) -> np.ndarray:
        """Which labels a text names: the softmax of its cosines with the label vectors at ``temperature``."""
        scaled = self.matrix @ text_vector / temperature
        shares = np.exp(scaled - scaled.max())
        return shares / shares.sum()


def described(encoder, text: str, vector: np.ndarray) -> np.ndarray:
    """``vector`` (of ``text``) moved toward its English nouns described as the classes are
    (:func:`polymodal.space.vocabulary.noun_phrasings`): a caption naming a goat then meets "Alpine ibex: a kind of
    wild goat, goat, ..." where the bare "A goat." was nearest the pig. ``vector`` itself when no noun is known.
    Phrasings are encoded one at a time, as search's words are, so a query's vector never depends on others."""
    phrasings = vocabulary.noun_phrasings(text)
    if not phrasings:
        return vector
    nouns = normalize(np.mean(np.asarray(encoder.encode_each(phrasings), np.float32), axis=0))
    return normalize((1 - DESCRIBED_SHARE) * vector + DESCRIBED_SHARE * nouns)


def class_match(named: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """How well pictures' class ``probabilities`` (n, labels) match the classes a text ``named`` (labels,): the
    sum of the named shares weighed by the square root of each probability (its sharpness, as in a bridge
    vector), in 0-1."""
    return np.sqrt(np.clip(probabilities, 0.0, None)) @ named
