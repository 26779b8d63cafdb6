"""Nearest-neighbour search over the store's vectors: exact below a size threshold, HNSW above it.

The index is derived data: rebuilt from SQLite when the store's generation moves, never the source of truth.
The HNSW graph is saved beside the database with the generation it was built for.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from polymodal.store.sqlite import SqliteStore

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128


class VectorIndex:
    def __init__(self, store: SqliteStore, exact_limit: int):
        self.store = store
        self.exact_limit = exact_limit
        self._generation = -1
        # (ids, matrix, hnsw) swapped as one tuple, so a search running beside a refresh sees one state.
        self._state: tuple[np.ndarray, np.ndarray, object] = (np.zeros(0, np.int64), np.zeros((0, 0), np.float32), None)
        self._lock = threading.Lock()

    def refresh(self) -> None:
        generation = self.store.generation
        if generation == self._generation:
            return
        with self._lock:
            if generation == self._generation:
                return
            ids, matrix, _ = self.store.all_vectors()
            hnsw = self._load_or_build_hnsw(generation, matrix) if len(ids) > self.exact_limit else None
            self._state = (ids, matrix, hnsw)
            self._generation = generation

    @property
    def size(self) -> int:
        self.refresh()
        return len(self._state[0])

    @property
    def approximate(self) -> bool:
        return self._state[2] is not None

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(vector id, cosine) of the ``k`` nearest stored vectors."""
        self.refresh()
        ids, matrix, hnsw = self._state
        if len(ids) == 0:
            return []
        k = min(k, len(ids))
        query = np.asarray(query, np.float32).reshape(1, -1)
        if hnsw is not None:
            scores, rows = hnsw.search(query, k)  # type: ignore[attr-defined]
            return [(int(ids[r]), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]
        scores = matrix @ query[0]
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(int(ids[r]), float(scores[r])) for r in top]

    def _load_or_build_hnsw(self, generation: int, matrix: np.ndarray):  # -> faiss.Index
        import faiss

        path: Path = self.store.directory / f"hnsw-{generation}.faiss"
        if path.exists():
            return faiss.read_index(str(path))
        index = faiss.IndexHNSWFlat(matrix.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
        index.add(matrix)
        for stale in self.store.directory.glob("hnsw-*.faiss"):
            stale.unlink(missing_ok=True)
        tmp = path.with_suffix(".tmp")
        faiss.write_index(index, str(tmp))
        tmp.replace(path)
        return index
