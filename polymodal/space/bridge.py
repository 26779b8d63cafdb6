"""The label bridge (ConSE, Norouzi et al. 2014): classifier probabilities -> a vector in the text space.

A photo whose classifier says "espresso 0.96, cup 0.01" gets 0.96·emb("a photo of a espresso") + ...,
normalised. The same holds for sounds with AudioSet tags and "the sound of {}". Zero-shot
classification against the user's own labels is then a cosine in the text space.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from polymodal.models.text import normalize

IMAGE_TEMPLATE = "a photo of a {}"
SOUND_TEMPLATE = "the sound of {}"


class LabelBridge:
    """Text vectors for a fixed label vocabulary (cached on disk), and vectors for label distributions."""

    def __init__(self, encoder, labels: list[str], template: str, cache: Path):
        self.encoder = encoder
        self.labels = labels
        self.template = template
        self._cache = cache
        self._matrix: np.ndarray | None = None
        self._index = {label: i for i, label in enumerate(labels)}

    @property
    def matrix(self) -> np.ndarray:
        """(n_labels, dim) unit vectors, one per label, through the template."""
        if self._matrix is None:
            key = hashlib.sha1(
                "\n".join([self.encoder.model_id, self.template, *self.labels]).encode()
            ).hexdigest()[:16]
            path = self._cache / "bridge" / f"{key}.npy"
            if path.exists():
                self._matrix = np.load(path)
            else:
                self._matrix = self.encoder.encode([self.template.format(label) for label in self.labels])
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp.npy")
                np.save(tmp, self._matrix)
                tmp.replace(path)
        return self._matrix

    def top_labels(self, probabilities: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable labels; classes sharing a name (ImageNet has two "missile") are merged."""
        merged: dict[str, float] = {}
        for i in np.argsort(-probabilities)[: 2 * k]:
            merged[self.labels[i]] = merged.get(self.labels[i], 0.0) + float(probabilities[i])
        return sorted(merged.items(), key=lambda item: -item[1])[:k]

    def vector(self, weighted_labels: list[tuple[str, float]]) -> np.ndarray:
        """The probability-weighted mean of the label vectors, unit length."""
        rows = [self._index[label] for label, _ in weighted_labels]
        weights = np.array([weight for _, weight in weighted_labels], np.float32)
        return normalize(weights @ self.matrix[rows])
