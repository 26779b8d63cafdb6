"""The vector index: float16 snapshot + IVF agrees with exact float32 search, and follows writes incrementally.

The vectors are the real ones of the indexed sample collection (real models on real files), multiplied into a
few thousand by small gaussian noise around them, so the index has clusters and near-ties as a real store does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from polymodal.analysis import Analysis, Evidence, Vector
from polymodal.store.sqlite import SqliteStore
from polymodal.store.vectors import Float16Rows, VectorIndex

COPIES = 30


@pytest.fixture(scope="module")
def real_vectors(indexed) -> np.ndarray:
    matrix = np.concatenate([batch for _, batch in indexed.store.iter_vectors()])
    assert len(matrix) >= 50
    return matrix


def noisy_copies(vectors: np.ndarray, copies: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.repeat(vectors, copies, axis=0)
    out += rng.normal(0, 0.4 / np.sqrt(vectors.shape[1]), out.shape).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def save(store: SqliteStore, name: str, vectors: np.ndarray) -> None:
    analysis = Analysis("text", "txt", evidence=[Evidence("passage", f"{name} {i}") for i in range(len(vectors))])
    analysis.vectors = [Vector("passage", v, i) for i, v in enumerate(vectors)]
    store.save(f"/virtual/{name}", name, 1, 1, analysis, lambda text: text)


def filled_store(directory: Path, matrix: np.ndarray, per_item: int = 50) -> SqliteStore:
    store = SqliteStore(directory)
    for start in range(0, len(matrix), per_item):
        save(store, f"item{start}", matrix[start : start + per_item])
    return store


def exact_top(store: SqliteStore, query: np.ndarray, k: int) -> list[int]:
    ids, matrix = (np.concatenate(parts) for parts in zip(*store.iter_vectors(), strict=True))
    return [int(i) for i in ids[np.argsort(-(matrix @ query), kind="stable")[:k]]]


def recall(index: VectorIndex, store: SqliteStore, queries: np.ndarray, k: int = 10) -> float:
    found = [len({i for i, _ in index.search(q, k)} & set(exact_top(store, q, k))) / k for q in queries]
    return float(np.mean(found))


def test_float16_ivf_snapshot_agrees_with_exact_float32(real_vectors, tmp_path):
    matrix = noisy_copies(real_vectors, COPIES)
    store = filled_store(tmp_path / "store", matrix)
    index = VectorIndex(store, exact_limit=500)
    queries = noisy_copies(real_vectors[::7], 1, seed=1)
    assert recall(index, store, queries) >= 0.95
    assert index.approximate and index.size == len(matrix)
    assert sorted(p.name.split(".", 1)[1] for p in store.directory.glob("vectors-*")) == ["f16.npy", "ids.npy", "ivf"]
    for query in queries[:5]:  # the best hit, and its cosine to float16 precision
        (best, score), expected = index.search(query, 1)[0], exact_top(store, query, 1)[0]
        assert best == expected
        assert score == pytest.approx(float(store.vectors_by_id([best])[best] @ query), abs=2e-3)
    snapshot = next(store.directory.glob("vectors-*.f16.npy"))
    rows = np.array([0, 7, len(matrix) - 1])
    assert np.array_equal(Float16Rows(snapshot)[rows], np.load(snapshot)[rows])  # read by pread, not mapped
    exact = VectorIndex(store, exact_limit=10**9)
    assert not exact.approximate and [i for i, _ in exact.search(queries[0], 10)] == exact_top(store, queries[0], 10)


def test_writes_after_the_snapshot_are_searched_and_deletions_excluded(real_vectors, tmp_path):
    store = filled_store(tmp_path / "store", noisy_copies(real_vectors, 10))
    index = VectorIndex(store, exact_limit=200)
    assert index.approximate
    snapshot = sorted(p.name for p in store.directory.glob("vectors-*"))
    target = real_vectors[3]
    save(store, "new", target[None])  # a new item, exactly the query
    new_id = max(store.vectors_by_id(list(range(1, 10**6))))  # the last inserted row
    assert index.search(target, 1)[0][0] == new_id
    old_best = index.search(real_vectors[5], 1)[0][0]
    sha = store.vector_rows([old_best])[old_best][0]
    store.remove_file(f"/virtual/{sha}")  # delete the item holding the best hit
    assert old_best not in {i for i, _ in index.search(real_vectors[5], 50)}
    assert sorted(p.name for p in store.directory.glob("vectors-*")) == snapshot  # followed, not rebuilt
    assert index.size == store.vector_count()


def test_a_reused_row_id_is_not_mistaken_for_the_old_vector(real_vectors, tmp_path):
    store = filled_store(tmp_path / "store", noisy_copies(real_vectors[:20], 20), per_item=200)
    index = VectorIndex(store, exact_limit=100)
    assert index.approximate
    last = max(store.vectors_by_id(list(range(1, 10**5))))
    sha = store.vector_rows([last])[last][0]
    reused = last - 199  # the first row of the last item
    store.remove_file(f"/virtual/{sha}")  # the highest ids go: SQLite hands them out again
    save(store, "reuse", real_vectors[-1:])
    assert list(store.vectors_by_id(list(range(reused, last + 1)))) == [reused]  # the id was reused
    best, score = index.search(real_vectors[-1], 1)[0]
    assert best == reused and score == pytest.approx(1.0, abs=1e-3)


def test_many_writes_rebuild_the_snapshot_and_other_processes_reuse_it(real_vectors, tmp_path):
    store = filled_store(tmp_path / "store", noisy_copies(real_vectors, 10))
    index = VectorIndex(store, exact_limit=200)
    index.search(real_vectors[0], 10)
    for start in range(0, 2100, 300):  # past the rebuild threshold
        save(store, f"more{start}", noisy_copies(real_vectors[:30], 10, seed=start)[:300])
    index.search(real_vectors[0], 10)
    index.wait_for_rebuild()
    queries = noisy_copies(real_vectors[::9], 1, seed=2)
    assert recall(index, store, queries) >= 0.95
    assert len(list(store.directory.glob("vectors-*.ivf"))) == 1  # the old snapshot was removed
    other = VectorIndex(SqliteStore(store.directory), exact_limit=200)  # as a second process would
    assert [i for i, _ in other.search(queries[0], 10)] == [i for i, _ in index.search(queries[0], 10)]
