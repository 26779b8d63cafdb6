"""Where faces and people are kept: the SQLite store's tables for them, and every SQL statement about them.

What a face *is* (its box, its embedding) is part of an item's analysis and lives with it: a ``faces``
evidence row per picture or video shot (boxes in ``box``), and the embeddings of all of an item's faces in one
``features`` row (``<face model id>/faces``, n x 128 float32, in box order). So they are written in the same
transaction as the rest of the analysis and removed with it. A face is addressed by (content sha, n).

These tables are the people built on top, derived and incremental (:mod:`polymodal.people`):
- ``people``: a person's id and the name a user gave;
- ``faces``: which person each stored face belongs to;
- ``face_corrections``: what a user said, kept when the content is removed and indexed again, or perceived
  again by another face model: ``is`` (this face is this person: merges and splits), ``not`` (this face is not
  this person), ``forgotten`` (this face's embedding was removed and stays removed).
A person's name is also written as evidence (kind ``person``) of each item showing them, so that the normal
search finds "Anna at the beach".

:class:`FaceStore` is the interface another backend implements; this one works on a
:class:`~polymodal.store.sqlite.SqliteStore`'s connection and transactions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS people (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS faces (
    sha TEXT NOT NULL, n INTEGER NOT NULL, person INTEGER NOT NULL, PRIMARY KEY (sha, n));
CREATE INDEX IF NOT EXISTS faces_person ON faces(person);
CREATE TABLE IF NOT EXISTS face_corrections (
    sha TEXT NOT NULL, n INTEGER NOT NULL, kind TEXT NOT NULL, person INTEGER NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (sha, n, kind, person));
"""
PERSON = "person"  # evidence kind of a person's name
IS, NOT, FORGOTTEN = "is", "not", "forgotten"
FaceKey = tuple[str, int]  # (content sha, face number within it)
NameRow = tuple[str, Any, Any, Any]  # (name, video shot, start, end): None for an image


class FaceStore:
    """People, face assignments and corrections in a SQLite store (tables made on first use)."""

    def __init__(self, store: Any, features_key: str):
        self.store = store
        self.key = features_key  # the features row holding an item's face embeddings
        self._ready = False

    def _tables(self) -> None:
        if not self._ready and self.store.writable:
            missing = self.store.db.execute("SELECT 1 FROM sqlite_master WHERE name='face_corrections'").fetchone()
            if missing is None:
                self.store.db.executescript(SCHEMA)
        self._ready = True

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        try:
            return self.store.db.execute(sql, tuple(params)).fetchall()
        except Exception as exc:  # a store without people yet (tables are made by the first write)
            if "no such table" in str(exc):
                return []
            raise

    # --- what indexing stored ---------------------------------------------------------------------
    def embeddings(self) -> dict[str, np.ndarray]:
        """sha -> (n, 128) face embeddings of every stored item with faces (a forgotten face is a zero row)."""
        rows = self._read("SELECT sha, vector FROM features WHERE model=?", (self.key,))
        return {sha: np.frombuffer(blob, np.float32).reshape(-1, 128) for sha, blob in rows}

    def zero_embeddings(self, db: Any, keys: list[FaceKey]) -> None:
        """Remove the embeddings of faces (their rows become zeros: the other faces keep their numbers)."""
        by_sha: dict[str, list[int]] = {}
        for sha, n in keys:
            by_sha.setdefault(sha, []).append(n)
        for sha, numbers in by_sha.items():
            row = db.execute("SELECT vector FROM features WHERE sha=? AND model=?", (sha, self.key)).fetchone()
            if row is None:
                continue
            matrix = np.frombuffer(row[0], np.float32).reshape(-1, 128).copy()
            matrix[[n for n in numbers if n < len(matrix)]] = 0.0
            db.execute("UPDATE features SET vector=? WHERE sha=? AND model=?", (matrix.tobytes(), sha, self.key))

    # --- people and assignments -------------------------------------------------------------------
    def assignments(self) -> dict[FaceKey, int]:
        return {(sha, n): person for sha, n, person in self._read("SELECT sha, n, person FROM faces")}

    def people(self) -> dict[int, str | None]:
        return dict(self._read("SELECT id, name FROM people ORDER BY id"))

    def corrections(self) -> list[tuple[str, int, str, int]]:
        return list(self._read("SELECT sha, n, kind, person FROM face_corrections"))

    def new_person(self, db: Any, name: str | None = None) -> int:
        return int(db.execute("INSERT INTO people(name, created) VALUES (?, ?)", (name, time.time())).lastrowid)

    def ensure_person(self, db: Any, person: int) -> None:
        db.execute("INSERT OR IGNORE INTO people(id, name, created) VALUES (?, NULL, ?)", (person, time.time()))

    def assign(self, db: Any, key: FaceKey, person: int) -> None:
        db.execute("INSERT OR REPLACE INTO faces(sha, n, person) VALUES (?,?,?)", (*key, person))

    def unassign(self, db: Any, keys: Iterable[FaceKey]) -> None:
        db.executemany("DELETE FROM faces WHERE sha=? AND n=?", list(keys))

    def correct(self, db: Any, key: FaceKey, kind: str, person: int) -> None:
        if kind == IS:  # a face is one person: an earlier "is" is replaced
            db.execute("DELETE FROM face_corrections WHERE sha=? AND n=? AND kind=?", (*key, IS))
        db.execute("INSERT OR REPLACE INTO face_corrections VALUES (?,?,?,?,?)", (*key, kind, person, time.time()))

    def uncorrect(self, db: Any, key: FaceKey, kind: str) -> None:
        db.execute("DELETE FROM face_corrections WHERE sha=? AND n=? AND kind=?", (*key, kind))

    def drop_unnamed_without_faces(self, db: Any) -> None:
        db.execute("DELETE FROM people WHERE name IS NULL AND id NOT IN (SELECT person FROM faces)")

    def rename(self, db: Any, person: int, name: str | None) -> None:
        db.execute("UPDATE people SET name=? WHERE id=?", (name, person))

    def move_corrections(self, db: Any, source: int, target: int) -> None:
        """A merge: what was said of ``source`` is now said of ``target``."""
        db.execute("UPDATE OR REPLACE face_corrections SET person=? WHERE person=? AND kind=?", (target, source, IS))
        db.execute("DELETE FROM face_corrections WHERE person=? AND kind=?", (source, NOT))

    def delete_person(self, db: Any, person: int) -> None:
        db.execute("DELETE FROM faces WHERE person=?", (person,))
        db.execute("DELETE FROM face_corrections WHERE person=? AND kind IN (?, ?)", (person, IS, NOT))
        db.execute("DELETE FROM people WHERE id=?", (person,))

    def purge(self, db: Any) -> None:
        """Remove every face of the store: embeddings, face and name evidence (and their vectors), people,
        assignments, and the face stage of each analysis (corrections are kept, for when faces are on again)."""
        rows = [r[0] for r in db.execute("SELECT id FROM evidence WHERE kind IN ('faces', ?)", (PERSON,))]
        db.executemany("DELETE FROM vectors WHERE evidence_id=?", [(i,) for i in rows])
        db.executemany("DELETE FROM evidence_fts WHERE rowid=?", [(i,) for i in rows])
        db.executemany("DELETE FROM evidence WHERE id=?", [(i,) for i in rows])
        db.execute("DELETE FROM features WHERE model LIKE '%/faces'")
        db.execute("UPDATE contents SET models = json_remove(models, '$.faces') WHERE models LIKE '%\"faces\"%'")
        db.execute("DELETE FROM faces")
        db.execute("DELETE FROM people")

    def transaction(self) -> Any:
        self._tables()
        return self.store.transaction()

    # --- names as evidence ------------------------------------------------------------------------
    def name_evidence(self) -> dict[str, list[NameRow]]:
        """sha -> the person names written as its evidence, with their shot and times (a video's)."""
        out: dict[str, list[NameRow]] = {}
        rows = self._read("SELECT sha, text, page, start, end FROM evidence WHERE kind=? ORDER BY ord", (PERSON,))
        for sha, text, page, start, end in rows:
            out.setdefault(sha, []).append((text, page, start, end))
        return out

    def write_names(
        self, db: Any, sha: str, names: list[NameRow], fts_text: Callable[[str], str], encode: Callable | None = None
    ) -> None:
        """Replace the person-name evidence of content ``sha`` (after its other evidence): (name, shot, start, end)
        rows, a vector per row from ``encode`` (the content's text encoder) when given."""
        old = [r[0] for r in db.execute("SELECT id FROM evidence WHERE sha=? AND kind=?", (sha, PERSON))]
        db.executemany("DELETE FROM vectors WHERE evidence_id=?", [(i,) for i in old])
        db.executemany("DELETE FROM evidence_fts WHERE rowid=?", [(i,) for i in old])
        db.executemany("DELETE FROM evidence WHERE id=?", [(i,) for i in old])
        last = db.execute("SELECT coalesce(max(ord), -1) FROM evidence WHERE sha=?", (sha,)).fetchone()[0]
        models = db.execute("SELECT models FROM contents WHERE sha=?", (sha,)).fetchone()
        model = json.loads(models[0]).get("text", "") if models else ""
        vectors = encode([row[0] for row in names]) if encode is not None and names else [None] * len(names)
        for order, ((name, page, start, end), vector) in enumerate(zip(names, vectors, strict=True), last + 1):
            cursor = db.execute(
                "INSERT INTO evidence(sha, ord, kind, text, score, start, end, page) VALUES (?,?,?,?,NULL,?,?,?)",
                (sha, order, PERSON, name, start, end, page),
            )
            db.execute("INSERT INTO evidence_fts(rowid, text) VALUES (?, ?)", (cursor.lastrowid, fts_text(name)))
            if vector is not None:
                db.execute(
                    "INSERT INTO vectors(sha, evidence_id, kind, model, vector) VALUES (?,?,?,?,?)",
                    (sha, cursor.lastrowid, PERSON, model, np.ascontiguousarray(vector, np.float32).tobytes()),
                )

    def has_content(self, db: Any, sha: str) -> bool:
        return db.execute("SELECT 1 FROM contents WHERE sha=?", (sha,)).fetchone() is not None

    def person_evidence(self, sha: str) -> int | None:
        """The id of the evidence row that says who or how many people content ``sha`` shows (a name first)."""
        rows = self._read(
            "SELECT id FROM evidence WHERE sha=? AND kind IN (?, 'faces') ORDER BY kind = ? DESC, ord LIMIT 1",
            (sha, PERSON, PERSON),
        )
        return int(rows[0][0]) if rows else None

    @staticmethod
    def supported(store: Any) -> bool:
        """Whether this implementation can keep people in ``store`` (the SQLite store; not PostgreSQL yet)."""
        from polymodal.store.sqlite import SqliteStore

        return isinstance(store, SqliteStore)

    def face_evidence(self, sha: str) -> list[tuple[int | None, float | None, float | None, list]]:
        """(shot, start, end, boxes) of each picture of content ``sha`` with faces, in face order."""
        rows = self._read(
            "SELECT page, start, end, box FROM evidence WHERE sha=? AND kind='faces' AND box IS NOT NULL "
            "ORDER BY ord",
            (sha,),
        )
        return [(page, start, end, json.loads(box)) for page, start, end, box in rows]
