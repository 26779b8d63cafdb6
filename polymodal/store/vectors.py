"""Nearest-neighbour search over the store's vectors: exact below a size threshold, IVF above it.

The index is derived data; the SQLite rows stay the source of truth.

- Up to ``exact_limit`` vectors: exact search over a float32 copy in RAM (~2 MB per 1,000 vectors).
- Above: a snapshot on disk beside the database, named by the position in the store's vector log it covers:
  ``vectors-<seq>.f16.npy`` (every vector in float16: half the bytes; a query reads only the rows it re-ranks) and
  ``vectors-<seq>.ivf`` (a faiss inverted-file index over 8-bit scalar-quantised codes, memory-mapped). A query
  probes the ``nprobe`` nearest of ~4 sqrt(n) lists, takes the best candidates by their 8-bit codes and re-ranks
  them by their float16 rows.
- Writes after the snapshot are followed through the vector log (:meth:`SqliteStore.vector_changes`): vectors
  added since are searched exactly beside it, deleted ones are excluded; once they are many, a new snapshot is
  built in the background while searches go on.
"""

from __future__ import annotations

import math
import os
import threading
import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.store.sqlite import SqliteStore

NPROBE = 16  # lists probed per query (of ~4 sqrt(n)): recall@10 >= 0.95 at 1M vectors (bench/PERFORMANCE.md)
RERANK = 64  # candidates re-ranked by their float16 rows (at least 2 k)
# Rebuild the snapshot when this many vectors changed since it was made (fraction of it, within bounds).
REBUILD_FRACTION, REBUILD_MIN, REBUILD_MAX = 0.05, 2_000, 50_000
TRAIN_POINTS_PER_LIST = 30
LISTS_PER_SQRT_N = 4  # ~4 sqrt(n) lists (faiss's guideline): at 1M, 4000 lists of ~250 vectors
EXPORT_BATCH = 50_000
# A store searched exactly keeps this many log entries before pruning (pruning is a write: rarely, then).
PRUNE_EXACT_BELOW = 100_000


@dataclass(frozen=True)
class _Base:
    """Vectors as of one position of the vector log: exact (float32 in RAM) or approximate (files on disk)."""

    seq: int
    ids: np.ndarray  # (n,) int64 store ids, ascending
    matrix: Any  # (n, d) float32 array in RAM, or the float16 rows on disk (Float16Rows)
    ivf: Any = None  # faiss IndexIVFScalarQuantizer whose ids are row positions; None: exact search


@dataclass(frozen=True)
class _State:
    base: _Base | None
    seq: int = 0  # log position applied (>= base.seq)
    generation: int = -1
    extra_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # added since the base
    extra: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    dead: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # base rows deleted since, sorted
    selector: Any = None  # faiss selector excluding ``dead`` (kept here so it lives as long as the state)

    @property
    def size(self) -> int:
        return (0 if self.base is None else len(self.base.ids)) - len(self.dead) + len(self.extra_ids)

    @property
    def changed(self) -> int:
        return len(self.dead) + len(self.extra_ids)


class VectorIndex:
    def __init__(self, store: SqliteStore, exact_limit: int, nprobe: int = NPROBE, rerank: int = RERANK):
        self.store = store
        self.exact_limit = exact_limit
        self.nprobe = nprobe
        self.rerank = rerank
        self._state = _State(None)  # swapped as one object: a search beside a refresh sees one state
        self._lock = threading.Lock()
        self._rebuilding: threading.Thread | None = None

    # --- keeping up with the store ------------------------------------------------------------------
    def refresh(self) -> None:
        generation = self.store.generation
        if generation == self._state.generation:
            return
        with self._lock:
            if generation != self._state.generation:
                self._state = self._advance(self._state, generation)

    def _advance(self, state: _State, generation: int) -> _State:
        changes = None if state.base is None else self.store.vector_changes(state.seq)
        if changes is None:  # first use, or the log was pruned past us (another process saved a snapshot)
            base = self._load_base()
            state, changes = _State(base, seq=base.seq), self.store.vector_changes(base.seq)
        seq, events = changes if changes is not None else (state.seq, [])
        state = _apply(state, seq, events, self.store, generation) if events else replace(state, generation=generation)
        if self._needs_rebuild(state):
            assert state.base is not None
            if state.base.ivf is None and state.size <= self.exact_limit:
                base = self._load_base()  # small: reread at once
                return replace(_State(base, seq=base.seq), generation=-1)
            self._rebuild_in_background()
        return state

    def _needs_rebuild(self, state: _State) -> bool:
        assert state.base is not None
        n = len(state.base.ids)
        allowed = min(REBUILD_MAX, max(REBUILD_MIN, int(REBUILD_FRACTION * n)))
        crossed = (state.base.ivf is not None) != (state.size > self.exact_limit)
        return state.changed > allowed or crossed

    def _rebuild_in_background(self) -> None:
        if self._rebuilding is not None and self._rebuilding.is_alive():
            return

        def rebuild() -> None:
            base = self._load_base()
            with self._lock:  # the next refresh applies what changed while it was built
                self._state = _State(base, seq=base.seq, generation=-1)

        self._rebuilding = threading.Thread(target=rebuild, name="polymodal-vector-index", daemon=True)
        self._rebuilding.start()

    def prepare(self) -> None:
        """Bring the index up to date now, rebuilding its snapshot if it is due (e.g. at the end of indexing)."""
        self.refresh()
        self.wait_for_rebuild()
        self.refresh()

    def wait_for_rebuild(self) -> None:
        """Block until a background rebuild (if any) is done: for tests and benchmarks."""
        if self._rebuilding is not None:
            self._rebuilding.join()

    # --- snapshots -----------------------------------------------------------------------------------
    def _load_base(self) -> _Base:
        directory = self.store.directory
        exported = None
        with self.store.reading():  # the vectors and the log position they correspond to, read together
            seq, count = self.store.vector_seq(), self.store.vector_count()
            if count <= self.exact_limit:
                ids, matrix = _read_all(self.store)
            else:
                found = _open_snapshot(directory, seq)
                if found is not None:
                    return found
                exported = _export(self.store, count, directory, seq) if self.store.writable else None
                ids, matrix = exported if exported is not None else _read_all(self.store)
        if count <= self.exact_limit:
            self.store.prune_vector_log(seq, keep=PRUNE_EXACT_BELOW)
            return _Base(seq, ids, matrix)
        if exported is None:  # the snapshot cannot be written (read-only store, full disk): kept in memory
            return _Base(seq, ids, matrix, _build_ivf(matrix))
        try:
            ivf = _build_ivf(matrix, directory, seq)
        except (OSError, RuntimeError):  # faiss says RuntimeError when its file cannot be written
            rows = np.asarray(matrix, np.float32)
            _remove_snapshot(directory, seq)
            return _Base(seq, ids, rows, _build_ivf(rows))
        del matrix  # the mapping of every row ends here: queries read the rows they re-rank
        _remove_other_snapshots(directory, seq)
        self.store.prune_vector_log(seq)
        return _Base(seq, ids, Float16Rows(_snapshot_path(directory, seq, "f16.npy")), ivf)

    # --- queries -------------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        self.refresh()
        return self._state.size

    @property
    def approximate(self) -> bool:
        self.refresh()
        base = self._state.base
        return base is not None and base.ivf is not None

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(vector id, cosine) of the ``k`` nearest stored vectors (fewer where the store holds fewer)."""
        import faiss

        self.refresh()
        state = self._state
        if state.size == 0 or k <= 0:
            return []
        # One query is one core's work: faiss's second OpenMP thread would only spin, and a service runs
        # several searches at once (this sets it for the calling thread only).
        faiss.omp_set_num_threads(1)
        q = np.ascontiguousarray(query, np.float32).reshape(-1)
        hits = self._search_base(state, q, k) + _exact(state.extra_ids, state.extra, q, k)
        hits.sort(key=lambda hit: -hit[1])
        return hits[:k]

    def _search_base(self, state: _State, q: np.ndarray, k: int) -> list[tuple[int, float]]:
        base = state.base
        if base is None or len(base.ids) == 0:
            return []
        if base.ivf is None:
            hits = _exact(np.arange(len(base.ids)), base.matrix, q, k + len(state.dead))
            dead = set(state.dead.tolist())
            return [(int(base.ids[row]), score) for row, score in hits if row not in dead][:k]
        import faiss

        params = faiss.SearchParametersIVF()
        params.nprobe = self.nprobe
        if state.selector is not None:
            params.sel = state.selector[0]
        _, rows = base.ivf.search(q[None], max(2 * k, self.rerank), params=params)
        rows = np.unique(rows[0][rows[0] >= 0])  # sorted: the float16 file is read in order
        return _ranked(base.ids[rows], base.matrix[rows].astype(np.float32) @ q, k)


# --- following the log --------------------------------------------------------------------------------
def _apply(state: _State, seq: int, events: list[tuple[int, bool]], store: SqliteStore, generation: int) -> _State:
    """``state`` moved forward by the log ``events`` (in order) up to ``seq``."""
    base = state.base
    assert base is not None
    extra = dict(zip(state.extra_ids.tolist(), range(len(state.extra_ids)), strict=True))
    added: set[int] = set()
    dead = set(state.dead.tolist())
    for vid, was_added in events:
        if was_added:
            added.add(vid)
        elif vid in added or vid in extra:
            added.discard(vid)
            extra.pop(vid, None)
        else:
            row = int(np.searchsorted(base.ids, vid))
            if row < len(base.ids) and base.ids[row] == vid:
                dead.add(row)
    kept = sorted(extra.values())
    fresh = store.vectors_by_id(sorted(added))  # rows deleted meanwhile are simply missing
    ids = np.concatenate([state.extra_ids[kept], np.array(sorted(fresh), np.int64)])
    rows = [state.extra[kept]] if kept else []
    rows += [np.stack([fresh[i] for i in sorted(fresh)])] if fresh else []
    matrix = np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)
    dead_rows = np.array(sorted(dead), np.int64)
    return replace(
        state,
        seq=seq,
        generation=generation,
        extra_ids=ids,
        extra=matrix,
        dead=dead_rows,
        selector=_excluding(dead_rows) if base.ivf is not None and len(dead_rows) else None,
    )


def _excluding(rows: np.ndarray) -> Any:
    import faiss

    batch = faiss.IDSelectorBatch(len(rows), faiss.swig_ptr(np.ascontiguousarray(rows, dtype=np.int64)))
    return faiss.IDSelectorNot(batch), batch  # the inner selector must live as long as the outer one


# --- exact search ---------------------------------------------------------------------------------------
def _exact(ids: np.ndarray, matrix: np.ndarray, q: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` best rows by inner product, by faiss's SIMD scan (numpy's BLAS would spread one query over
    threads that wait on each other on a busy machine: 8x slower at 10k rows on 2 loaded cores)."""
    import faiss

    k = min(k, len(ids))
    if k == 0:
        return []
    scores, rows = faiss.knn(q[None], matrix, k, metric=faiss.METRIC_INNER_PRODUCT)
    return [(int(ids[r]), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]


def _ranked(ids: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    top = np.argsort(-scores, kind="stable")[:k]
    return [(int(ids[r]), float(scores[r])) for r in top]


def _read_all(store: SqliteStore) -> tuple[np.ndarray, np.ndarray]:
    parts = list(store.iter_vectors(EXPORT_BATCH))
    if not parts:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class Float16Rows:
    """The rows of a float16 .npy matrix, read on demand with ``pread``.

    Not memory-mapped: a mapped file's pages count in the process's resident memory, and the kernel maps whole
    large folios around each random row (640 random rows of the 1M-vector file: +150 MB RSS); read like this,
    they stay in the page cache, shared and reclaimable, and each query copies only its ~64 KB.
    """

    def __init__(self, path: Path):
        with open(path, "rb") as handle:
            major, _ = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(handle)
            self.offset = handle.tell()
        if dtype != np.float16 or len(shape) != 2:
            raise ValueError(f"{path} is not a float16 matrix")
        self.shape = shape
        self.row_bytes = shape[1] * 2
        self._fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        size, start = self.row_bytes, self.offset
        data = b"".join(os.pread(self._fd, size, start + int(row) * size) for row in rows)
        return np.frombuffer(data, np.float16).reshape(len(rows), self.shape[1])


# --- snapshot files ---------------------------------------------------------------------------------------
def _snapshot_path(directory: Path, seq: int, suffix: str) -> Path:
    return directory / f"vectors-{seq}.{suffix}"


def _open_snapshot(directory: Path, seq: int) -> _Base | None:
    """The snapshot saved for log position ``seq`` (the .ivf file is written last: it marks a complete one)."""
    import faiss

    ivf = _snapshot_path(directory, seq, "ivf")
    if not ivf.exists():
        return None
    try:
        ids = np.load(_snapshot_path(directory, seq, "ids.npy"))
        matrix = Float16Rows(_snapshot_path(directory, seq, "f16.npy"))
        return _Base(seq, ids, matrix, faiss.read_index(str(ivf), faiss.IO_FLAG_MMAP))
    except (OSError, RuntimeError, ValueError):  # removed meanwhile by a process that saved a newer one
        return None


def _export(store: SqliteStore, count: int, directory: Path, seq: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Write every vector as float16 to a memory-mapped .npy, and their ids; returns (ids, the mapped matrix), or
    None when the files cannot be written (full disk, read-only directory: nothing is left behind)."""
    target = _snapshot_path(directory, seq, "f16.npy")
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    ids = np.empty(count, np.int64)
    matrix = None
    done = 0
    try:
        for batch_ids, batch in store.iter_vectors(EXPORT_BATCH):
            if matrix is None:
                matrix = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(count, batch.shape[1]))
                _reserve(tmp)
            matrix[done : done + len(batch)] = batch
            ids[done : done + len(batch)] = batch_ids
            done += len(batch)
        assert matrix is not None and done == count, "vectors changed inside a read transaction"
        matrix.flush()
        del matrix
        os.replace(tmp, target)
        _save_npy(_snapshot_path(directory, seq, "ids.npy"), ids)
    except OSError:
        tmp.unlink(missing_ok=True)
        _remove_snapshot(directory, seq)
        return None
    return ids, np.load(target, mmap_mode="r")


def _build_ivf(matrix: np.ndarray, directory: Path | None = None, seq: int = 0) -> Any:
    """Train an IVF with ~4 sqrt(n) lists on a sample (spherical k-means: the vectors are unit length, compared by
    cosine), add every row (id = row position), save it, map it back (``directory`` None: kept in memory)."""
    import faiss

    faiss.omp_set_num_threads(os.cpu_count() or 1)  # building uses every core (searches set 1 for themselves)
    n, dim = matrix.shape
    lists = max(1, min(65_536, round(LISTS_PER_SQRT_N * math.sqrt(n)), n // 8))
    index = faiss.IndexIVFScalarQuantizer(
        faiss.IndexFlatIP(dim), dim, lists, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    index.cp.niter = 10
    index.cp.spherical = True
    index.cp.min_points_per_centroid = 1  # small stores in tests: no warnings
    index.cp.max_points_per_centroid = TRAIN_POINTS_PER_LIST
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(n, min(n, lists * TRAIN_POINTS_PER_LIST), replace=False))
    index.train(np.asarray(matrix[sample], np.float32))
    for start in range(0, n, EXPORT_BATCH):
        rows = np.asarray(matrix[start : start + EXPORT_BATCH], np.float32)
        index.add_with_ids(rows, np.arange(start, start + len(rows), dtype=np.int64))
    if directory is None:
        return index
    path = _snapshot_path(directory, seq, "ivf")
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        faiss.write_index(index, str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return faiss.read_index(str(path), faiss.IO_FLAG_MMAP)


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp.npy")
    try:
        np.save(tmp, array)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _reserve(path: Path) -> None:
    """Allocate every block of a sparse file now: on a full disk this raises ENOSPC, where writing through a
    memory mapping would kill the process (SIGBUS)."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _remove_snapshot(directory: Path, seq: int) -> None:
    """The files of an unfinished snapshot (its .ivf, written last, missing)."""
    for suffix in ("f16.npy", "ids.npy", "ivf"):
        _snapshot_path(directory, seq, suffix).unlink(missing_ok=True)


def _remove_other_snapshots(directory: Path, seq: int) -> None:
    """Older snapshots (and HNSW files of earlier versions); a process still mapping one keeps reading it."""
    keep = {_snapshot_path(directory, seq, s).name for s in ("f16.npy", "ids.npy", "ivf")}
    for stale in [*directory.glob("vectors-*"), *directory.glob("hnsw-*.faiss")]:
        if stale.name not in keep and not stale.name.endswith(".tmp") and not stale.name.endswith(".tmp.npy"):
            stale.unlink(missing_ok=True)
