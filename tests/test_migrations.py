"""Schema versions of both stores: a store of the previous version opens and is migrated, with its data; a store of a
newer version is refused with a message that says so, and left untouched."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from polymodal.analysis import Analysis, Evidence, Vector
from polymodal.store import sqlite as sqlite_store
from polymodal.store.base import SchemaTooNew, open_store
from polymodal.store.sqlite import SqliteStore


def _analysis() -> Analysis:
    analysis = Analysis("text", "md", {"chars": 5}, models={"text": "test-encoder"})
    analysis.evidence.append(Evidence("text", "hello world"))
    analysis.vectors.append(Vector("text", np.ones(4, np.float32) / 2, 0))
    return analysis


def _v1_sqlite(directory: Path) -> None:
    """A store as version 1 made it: the tables of SCHEMA without what version 2 added."""
    store = SqliteStore(directory)
    store.save("/data/a.md", "a" * 64, 5, 1, _analysis(), str)
    store.close()
    with sqlite3.connect(directory / "polymodal.sqlite") as db:
        db.execute("DROP INDEX evidence_kind")
        db.execute("UPDATE meta SET value='1' WHERE key='schema'")


def test_sqlite_store_of_the_previous_version_is_migrated(tmp_path: Path) -> None:
    _v1_sqlite(tmp_path)
    store = open_store(tmp_path)
    assert store.get_meta("schema") == str(sqlite_store.SCHEMA_VERSION) == "2"
    indexes = {name for (name,) in store.db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "evidence_kind" in indexes
    assert store.file("/data/a.md").sha == "a" * 64
    assert [e.text for e in store.load_analysis("a" * 64).evidence] == ["hello world"]


def test_sqlite_store_of_the_previous_version_reads_read_only(tmp_path: Path) -> None:
    _v1_sqlite(tmp_path)
    store = SqliteStore(tmp_path, create=False, readonly=True)
    assert store.get_meta("schema") == "1"  # read as it is, not written
    assert store.file("/data/a.md") is not None


def test_sqlite_store_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    SqliteStore(tmp_path).close()
    with sqlite3.connect(tmp_path / "polymodal.sqlite") as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema'")
    before = (tmp_path / "polymodal.sqlite").read_bytes()
    with pytest.raises(SchemaTooNew, match=r"schema version 99, newer than this polymodal reads \(2\): upgrade"):
        open_store(tmp_path)
    assert (tmp_path / "polymodal.sqlite").read_bytes() == before


def test_cli_says_a_newer_store_is_newer(tmp_path: Path) -> None:
    from polymodal.cli import main

    SqliteStore(tmp_path).close()
    with sqlite3.connect(tmp_path / "polymodal.sqlite") as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema'")
    assert main(["status", "--store", str(tmp_path)]) == 2


def _old_postgres(url: str, version: int) -> None:
    """A Postgres store as schema ``version`` made it, with a file."""
    import psycopg

    from polymodal.store.postgres import MIGRATIONS

    with psycopg.connect(url, autocommit=True) as conn:
        for step in range(1, version + 1):
            for statement in MIGRATIONS[step]:
                conn.execute(statement)
        conn.execute("INSERT INTO meta VALUES ('schema', %s)", (str(version),))
        conn.execute("INSERT INTO contents VALUES ('s', 'text', 'md', 5, '{}', '{}', '[]', 0)")
        conn.execute(
            "INSERT INTO files(path, sha, size, mtime_ns, indexed_at, names) VALUES ('/a.md', 's', 5, 1, 0, '')"
        )


@pytest.mark.parametrize("version", [1, 2])
def test_postgres_store_of_an_older_version_is_migrated(postgres, version: int) -> None:
    from polymodal.store.faces import face_store
    from polymodal.store.postgres import SCHEMA_VERSION, PostgresStore

    url = postgres(f"migrate_old_{version}")
    _old_postgres(url, version)
    store = PostgresStore(url)
    try:
        assert store.schema_version == SCHEMA_VERSION == 3
        assert store.file("/a.md").sha == "s"
        assert store.thumbnail("s", 0) is None  # the table version 2 added is there
        store.save("/b.md", "b" * 64, 5, 1, _analysis(), str)
        assert [e.text for e in store.load_analysis("b" * 64).evidence] == ["hello world"]
        storage = store._one("SELECT attstorage FROM pg_attribute WHERE attrelid = 'vectors'::regclass "
                             "AND attname = 'vector'")[0]  # fmt: skip
        assert storage == "p"  # vectors inline (plain), as version 2 keeps them: exact scans 10x faster
        faces = face_store(store, "test/faces")  # version 3: people, faces and corrections
        with faces.transaction() as db:
            person = faces.new_person(db, "Anna")
            faces.assign(db, ("b" * 64, 0), person)
        assert faces.people() == {person: "Anna"} and faces.assignments() == {("b" * 64, 0): person}
    finally:
        store.close()


def test_postgres_store_of_a_newer_version_is_refused(postgres) -> None:
    import psycopg

    from polymodal.store.postgres import PostgresStore

    url = postgres("migrate_new")
    PostgresStore(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE meta SET value='4' WHERE key='schema'")
    with pytest.raises(SchemaTooNew, match=r"schema version 4, newer than this polymodal reads \(3\)"):
        open_store(url)
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == "4"
