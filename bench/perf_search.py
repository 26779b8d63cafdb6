"""Search at 10k, 100k and 1M stored vectors: latency per query modality, recall@10, numpy brute force beside it.

    .venv/bin/python bench/perf_search.py --real-store STORE --out result.json [--quick] [--sizes 10000,100000]

The stored vectors are the real ones of ``--real-store`` (what the indexing benchmark indexed: photos, stamps,
texts, prompts, recordings) plus synthetic ones clustered like them: each synthetic vector is a real vector moved
part of the way (0-50 %) towards one of its 10 nearest real neighbours of the same kind, plus gaussian noise of norm
0.2-0.6 (cosine 0.85-0.98 to where it started), re-normalised. Each becomes an item with the evidence text of the
real vector it came from, so words and vectors are searched at scale together.

Queries go through the product's own query path (``Searcher._represent``): text = Tux Paint captions; image =
photos and stamps; audio = Asterisk prompts (spoken) and animal sounds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf_data  # noqa: E402
from perf_util import peak_rss_mb, percentiles, rss_mb  # noqa: E402

from polymodal.collection import Collection  # noqa: E402
from polymodal.config import Settings  # noqa: E402
from polymodal.store.sqlite import SqliteStore  # noqa: E402
from polymodal.store.vectors import VectorIndex  # noqa: E402

INSERT_BATCH = 50_000
EVIDENCE_KIND = {"labels": "label", "tags": "tag"}


# --- the real pool ---------------------------------------------------------------------------------------
def real_pool(store_dir: Path) -> tuple[np.ndarray, list[str], list[str], list[str]]:
    """(vectors, vector kinds, evidence texts, modalities) of every vector in the real store."""
    store = SqliteStore(store_dir, create=False)
    rows = store.db.execute(
        "SELECT v.vector, v.kind, COALESCE(e.text, (SELECT x.text FROM evidence x WHERE x.sha = v.sha "
        "AND x.kind IN ('label', 'tag') ORDER BY x.ord LIMIT 1), ''), c.modality FROM vectors v "
        "LEFT JOIN evidence e ON e.id = v.evidence_id JOIN contents c ON c.sha = v.sha ORDER BY v.id"
    ).fetchall()
    store.close()
    matrix = np.stack([np.frombuffer(r[0], np.float32) for r in rows])
    return matrix, [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows]


def synthetic(pool: np.ndarray, kinds: list[str], n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` vectors clustered like ``pool`` (see the module text) and the pool row each came from."""
    rng = np.random.default_rng(seed)
    kind = np.array(kinds)
    sims = pool @ pool.T
    np.fill_diagonal(sims, -2)
    sims[kind[:, None] != kind[None, :]] = -2
    neighbours = np.argsort(-sims, axis=1)[:, :10]
    dim = pool.shape[1]
    out = np.empty((n, dim), np.float32)
    parents = rng.integers(0, len(pool), n)
    for start in range(0, n, 100_000):
        i = parents[start : start + 100_000]
        j = neighbours[i, rng.integers(0, neighbours.shape[1], len(i))]
        a = rng.uniform(0, 0.5, (len(i), 1)).astype(np.float32)
        base = (1 - a) * pool[i] + a * pool[j]
        base /= np.linalg.norm(base, axis=1, keepdims=True)
        noise = rng.standard_normal((len(i), dim), dtype=np.float32)
        noise *= (rng.uniform(0.2, 0.6, (len(i), 1)) / np.sqrt(dim)).astype(np.float32)
        out[start : start + len(i)] = base + noise
        out[start : start + len(i)] /= np.linalg.norm(out[start : start + len(i)], axis=1, keepdims=True)
    return out, parents


def scale_store(directory: Path, pool: tuple, n: int) -> tuple[SqliteStore, np.ndarray]:
    """A store of ``n`` vectors (the real pool first), made once per pool and size; returns it and its matrix."""
    matrix, kinds, texts, modalities = pool
    extra, parents = synthetic(matrix, kinds, max(0, n - len(matrix)))
    everything = np.concatenate([matrix, extra])[:n]
    origin = np.concatenate([np.arange(len(matrix)), parents])[:n]
    key = hashlib.sha1(matrix.tobytes()).hexdigest()[:10]
    folder = directory / f"store-{n}-{key}"
    if not (folder / "complete").exists():
        for other in directory.glob(f"store-{n}-*"):  # made from another pool: gigabytes at 1M
            shutil.rmtree(other, ignore_errors=True)
        store = SqliteStore(folder)
        for start in range(0, n, INSERT_BATCH):
            rows = range(start, min(n, start + INSERT_BATCH))
            _insert(store, everything, origin, rows, kinds, texts, modalities)
        (folder / "complete").write_text("")
        store.close()
    return SqliteStore(folder, create=False), everything


def _insert(store: SqliteStore, matrix, origin, rows, kinds, texts, modalities) -> None:
    contents, files, evidence, fts, vectors = [], [], [], [], []
    for row in rows:
        parent = int(origin[row])
        sha, kind = f"synthetic-{row:08d}", kinds[parent]
        evidence_kind = EVIDENCE_KIND.get(kind, kind)
        contents.append((sha, modalities[parent], "bench", 0, "{}", "{}", "[]", 0.0))
        files.append((f"/bench/{modalities[parent]}/{row:08d}", sha, 0, 0, 0.0))
        evidence.append((row + 1, sha, 0, evidence_kind, texts[parent], 1.0))
        fts.append((row + 1, texts[parent]))
        vectors.append((sha, None if kind in EVIDENCE_KIND else row + 1, kind, "bench", matrix[row].tobytes()))
    with store.transaction() as db:
        db.executemany("INSERT INTO contents VALUES (?,?,?,?,?,?,?,?)", contents)
        db.executemany("INSERT INTO files(path, sha, size, mtime_ns, indexed_at) VALUES (?,?,?,?,?)", files)
        db.executemany("INSERT INTO evidence(id, sha, ord, kind, text, score) VALUES (?,?,?,?,?,?)", evidence)
        db.executemany("INSERT INTO evidence_fts(rowid, text) VALUES (?,?)", fts)
        db.executemany("INSERT INTO vectors(sha, evidence_id, kind, model, vector) VALUES (?,?,?,?,?)", vectors)


# --- queries ---------------------------------------------------------------------------------------------
def query_sources(quick: bool) -> dict[str, list]:
    captions = sorted({p.with_suffix(".txt").read_text(errors="replace").splitlines()[0].strip()
                       for p in perf_data.stamp_pngs()})  # fmt: skip
    samples = perf_data.samples()
    images = sorted((samples / "photos").glob("*.jpg")) + perf_data.stamp_pngs()[::25]
    audio = sorted(perf_data.prompt_folder(60).iterdir())[:: 6 if quick else 3] + sorted(
        (samples / "sounds").glob("*.mp3")
    )
    return {
        "text": captions[: 100 if quick else 300],
        "image": images[: 12 if quick else 30],
        "audio": audio[: 6 if quick else 20],
    }


def query_vectors(collection: Collection, sources: dict[str, list]) -> dict[str, np.ndarray]:
    from polymodal.search import Query, Searcher

    searcher = Searcher(collection.store, collection._index, collection.analyzer, lambda t: t)
    out = {}
    for modality, items in sources.items():
        rows = [searcher._represent(Query(**{modality: item}))[0] for item in items]
        out[modality] = np.stack(rows).astype(np.float32)
    return out


# --- measuring -------------------------------------------------------------------------------------------
def brute_force(matrix: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """The obvious numpy search: float32 matrix in RAM, one product, a partial sort."""
    scores = matrix @ query
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top])]


def measure_index(
    index: VectorIndex, matrix: np.ndarray, ids: np.ndarray, queries: dict, k: int = 10, repeats: int = 3
) -> dict:
    out = {}
    for modality, rows in queries.items():
        ours, theirs, recalls = [], [], []
        for repeat in range(repeats):
            for q in rows:
                started = time.perf_counter()
                found = index.search(q, k)
                ours.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                exact = brute_force(matrix, q, k)
                theirs.append((time.perf_counter() - started) * 1000)
                if repeat == 0:
                    recalls.append(len({i for i, _ in found} & set(ids[exact].tolist())) / k)
        out[modality] = {
            "queries": len(rows),
            "index_ms": percentiles(ours),
            "numpy_ms": percentiles(theirs),
            "recall_at_10": round(float(np.mean(recalls)), 4),
            "speedup_p50": round(statistics.median(theirs) / statistics.median(ours), 1),
        }
    return out


def measure_end_to_end(collection: Collection, sources: dict, quick: bool) -> dict:
    repeats = {"text": 1, "image": 2, "audio": 1}
    limits = {"text": 100 if quick else 200, "image": 6 if quick else 12, "audio": 3 if quick else 6}
    out = {}
    for modality, items in sources.items():
        times = []
        for item in items[: limits[modality] if modality != "audio" else 1]:  # warm: models, page cache
            collection.search(**{modality: item})
        for _ in range(repeats[modality]):
            for item in items[: limits[modality]]:
                started = time.perf_counter()
                collection.search(**{modality: item})
                times.append((time.perf_counter() - started) * 1000)
        out[modality] = {"queries": len(times), "ms": percentiles(times)}
    return out


def nprobe_sweep(store: SqliteStore, settings: Settings, matrix: np.ndarray, ids: np.ndarray, queries: dict) -> dict:
    """Recall@10 and latency for other numbers of probed lists (the saved snapshot, mapped again)."""
    out = {}
    for nprobe in (4, 8, 16, 32, 64):
        index = VectorIndex(store, settings.exact_search_limit, nprobe=nprobe)
        rows = measure_index(index, matrix, ids, {m: q[:50] for m, q in queries.items()}, repeats=1)
        out[str(nprobe)] = {m: {"p50_ms": r["index_ms"]["p50"], "recall": r["recall_at_10"]} for m, r in rows.items()}
    return out


def run_size(n: int, pool: tuple, queries: dict, sources: dict, analyzer, args) -> dict:
    started = time.perf_counter()
    store, matrix = scale_store(Path(args.work), pool, n)
    made = time.perf_counter() - started
    ids = np.arange(1, n + 1, dtype=np.int64)  # vector ids are 1..n in insertion order
    for stale in store.directory.glob("vectors-*"):
        stale.unlink()  # measure the index build every time
    settings = Settings.from_env(store=store.directory)
    index = VectorIndex(store, settings.exact_search_limit)
    started = time.perf_counter()
    index.refresh()
    built = time.perf_counter() - started
    result = {
        "vectors": n,
        "store_seconds": round(made, 1),
        "index_build_seconds": round(built, 1),
        "approximate": index.approximate,
        "index_files_mb": round(sum(p.stat().st_size for p in store.directory.glob("vectors-*")) / 1e6, 1),
        "per_query_modality": measure_index(index, matrix, ids, queries),
    }
    if index.approximate:
        result["nprobe_sweep"] = nprobe_sweep(store, settings, matrix, ids, queries)
    collection = Collection(settings=settings)
    collection.analyzer = analyzer  # the models already loaded
    result["end_to_end_ms"] = measure_end_to_end(collection, sources, args.quick)
    result["rss_mb"] = rss_mb()
    store.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-store", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--work", default=str(perf_data.DATA / "search"))
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    pool = real_pool(args.real_store)
    real = Collection(args.real_store, create=False)
    sources = query_sources(args.quick)
    queries = query_vectors(real, sources)
    result = {"real_vectors": len(pool[0]), "sizes": {}, "query_counts": {m: len(q) for m, q in queries.items()}}
    for n in [int(s) for s in args.sizes.split(",")]:
        result["sizes"][str(n)] = run_size(n, pool, queries, sources, real.analyzer, args)
        print(json.dumps({n: result["sizes"][str(n)]["per_query_modality"]}), flush=True)
    result["peak_rss_mb"] = peak_rss_mb()
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
