"""The embedded store: one directory with a SQLite database (files, contents, evidence, FTS5, vectors).

Analyses are keyed by content hash, files by path: a moved or duplicated file points at an existing
analysis and costs nothing. Every file is written in one transaction (WAL journal), so killing the
process at any moment leaves either the old or the new state of that file, never half of it. A video's
shot thumbnails are small JPEG files beside the database, ``thumbs/<sha>/<shot>.jpg``, written inside the
transaction that stores their content (thumbnails without a content, from a crash, are removed by
:meth:`SqliteStore.clean_orphans`). A ``generation`` counter increases with every write, so derived indexes
know when they are stale.

Opening a store writes nothing, so a store on a read-only disk, or on a full one, can still be read: the
database is opened read-write where it can be, else read-only, else as an immutable file. A write that
cannot be made (disk full, read-only) raises :class:`StoreUnavailable`, the transaction rolled back.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.analysis import Analysis, Evidence, Vector
from polymodal.store.base import FileRow, ItemRow, StoreError, StoreUnavailable, too_new

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
# What each version adds to the one before (a store of an older version is brought up to date when opened for
# writing; one opened read-only is read as it is: every change so far only speeds reading up).
MIGRATIONS: dict[int, list[str]] = {
    2: ["CREATE INDEX IF NOT EXISTS evidence_kind ON evidence(sha, kind, ord)"],
}
# Most "?" parameters in one SQLite statement (the library's limit is 32766).
MAX_PARAMS = 30_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS contents (
    sha TEXT PRIMARY KEY, modality TEXT NOT NULL, format TEXT NOT NULL, size INTEGER NOT NULL,
    meta TEXT NOT NULL, models TEXT NOT NULL, notes TEXT NOT NULL, analyzed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, sha TEXT NOT NULL REFERENCES contents(sha),
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, indexed_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS files_sha ON files(sha);
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY, sha TEXT NOT NULL, ord INTEGER NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL,
    score REAL, start REAL, end REAL, page INTEGER, box TEXT);
CREATE INDEX IF NOT EXISTS evidence_sha ON evidence(sha);
CREATE VIRTUAL TABLE IF NOT EXISTS evidence_fts USING fts5(text, tokenize='unicode61 remove_diacritics 2');
-- A file's name and folder as words (rowid = files.id): "kitty_on_sofa.jpg" is found by "kitty on sofa".
CREATE VIRTUAL TABLE IF NOT EXISTS names_fts USING fts5(text, tokenize='unicode61 remove_diacritics 2');
CREATE TABLE IF NOT EXISTS vectors (
    id INTEGER PRIMARY KEY, sha TEXT NOT NULL, evidence_id INTEGER, kind TEXT NOT NULL, model TEXT NOT NULL,
    vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS vectors_sha ON vectors(sha);
CREATE TABLE IF NOT EXISTS features (
    sha TEXT NOT NULL, model TEXT NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (sha, model));
CREATE TABLE IF NOT EXISTS errors (path TEXT PRIMARY KEY, reason TEXT NOT NULL, at REAL NOT NULL);
-- Every vector added or removed, in order: the vector index follows it instead of rereading all vectors.
CREATE TABLE IF NOT EXISTS vector_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id INTEGER NOT NULL, added INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS vector_added AFTER INSERT ON vectors
    BEGIN INSERT INTO vector_log(id, added) VALUES (new.id, 1); END;
CREATE TRIGGER IF NOT EXISTS vector_removed AFTER DELETE ON vectors
    BEGIN INSERT INTO vector_log(id, added) VALUES (old.id, 0); END;
"""


# SQLite result codes (``sqlite3.Error.sqlite_errorcode & 0xFF``) and errno values that mean "cannot write here".
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN = 5, 6, 8, 10, 13, 14
CANNOT_WRITE_CODES = (SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN)
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# How a database file is opened, most capable first: a reader falls back to the next when one fails.
OPEN_MODES = ("rw", "ro", "immutable")
TABLES = {
    "meta",
    "contents",
    "files",
    "evidence",
    "evidence_fts",
    "names_fts",
    "vectors",
    "features",
    "errors",
    "vector_log",
}


class SqliteStore:
    def __init__(self, directory: Path, create: bool = True, readonly: bool = False):
        """Open the store in ``directory`` (made when ``create`` and missing). ``readonly``: never write, and
        open the database read-only from the start."""
        self.directory = Path(directory)
        self.path = self.directory / "polymodal.sqlite"
        self._local = threading.local()
        self._lock = threading.RLock()
        # File actions of the transaction in progress, run once it commits / once it has rolled back.
        self._after_commit: list[Callable[[], None]] = []
        self._after_rollback: list[Callable[[], None]] = []
        # A store the process may not write (read-only disk, no permission) is opened read-only from the start.
        writable = all(os.access(p, os.W_OK) for p in (self.directory, self.path) if p.exists())
        self.mode = "rw" if writable and not readonly else "ro"
        if not self.path.exists():
            if not create or readonly:
                raise StoreError(f"no store at {self.directory}; index a folder first")
            self._create()
        found = self._open(OPEN_MODES[OPEN_MODES.index(self.mode) :])
        if found is not None and int(found) > SCHEMA_VERSION:
            self.close()
            raise too_new(self.directory, int(found), SCHEMA_VERSION)
        if found is None:
            self._migrate()
        elif int(found) < SCHEMA_VERSION and self.writable:
            log.info("upgrading the store %s from schema %s to %d", self.directory, found, SCHEMA_VERSION)
            self._upgrade(int(found))
        log.debug("opened the store %s (%s)", self.directory, self.mode)

    @property
    def location(self) -> str:
        return str(self.directory)

    @property
    def schema_version(self) -> int:
        return int(self.get_meta("schema") or 0)

    def _create(self) -> None:
        log.info("creating a store in %s", self.directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")  # kept in the file: every later connection uses it
            finally:
                conn.close()
        except (OSError, sqlite3.Error) as exc:
            raise _unavailable(exc, self.directory) from exc

    def _open(self, modes: tuple[str, ...]) -> str | None:
        """Connect in the first of ``modes`` that can read the database; returns its schema version."""
        failures = []
        for mode in modes:
            conn = None
            try:
                conn = self._connect(mode)
                tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                found = None
                if "meta" in tables:
                    row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                    found = row[0] if row else None
                if TABLES - tables and mode != "rw":
                    raise StoreError(f"the store at {self.directory} is incomplete and cannot be written")
            except sqlite3.Error as exc:
                failures.append(f"{mode}: {exc}")
                if conn is not None:
                    conn.close()
                continue
            self.mode, self._local.conn = mode, conn
            return found if not TABLES - tables else None
        raise StoreError(f"cannot open the store {self.path} ({'; '.join(failures)})")

    def _connect(self, mode: str) -> sqlite3.Connection:
        uri = f"file:{self.path.absolute().as_posix()}?" + ("immutable=1" if mode == "immutable" else f"mode={mode}")
        conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _migrate(self) -> None:
        """Make missing tables (a new store) and its first meta rows: the only write an open may do."""
        try:
            self.db.execute("PRAGMA journal_mode=WAL")  # again: a crash may have left an empty file
            self.db.executescript(SCHEMA)  # executescript commits on its own: keep it outside a transaction
            with self.transaction() as db:
                db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
                unnamed = db.execute("SELECT id, path FROM files WHERE id NOT IN (SELECT rowid FROM names_fts)")
                for file_id, path in unnamed.fetchall():  # a store made before file names were searchable
                    db.execute("INSERT INTO names_fts(rowid, text) VALUES (?, ?)", (file_id, _name_text(path)))
        except sqlite3.Error as exc:
            raise _unavailable(exc, self.directory) from exc
        self._upgrade(int(self.get_meta("schema") or SCHEMA_VERSION), fresh=True)

    def _upgrade(self, found: int, fresh: bool = False) -> None:
        """Apply the migrations after version ``found``, each version in one transaction. ``fresh``: the tables
        were just made from :data:`SCHEMA` (the current version); indexes the migrations add are still made."""
        for version in sorted(MIGRATIONS):
            if version <= found and not fresh:
                continue
            with self.transaction() as db:
                for statement in MIGRATIONS[version]:
                    db.execute(statement)
                if version > found:
                    db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(version),))

    @property
    def writable(self) -> bool:
        """Whether writes are attempted at all (a store opened read-only, or on a read-only disk, is not)."""
        return self.mode == "rw"

    # --- connections -------------------------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(self.mode)
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the store's write lock (across processes) until it commits.

        A write that cannot be made (disk full, read-only, locked too long) rolls back and raises
        :class:`StoreUnavailable`; so does an ``OSError`` of that kind raised inside (writing thumbnails).
        """
        if not self.writable:
            raise StoreUnavailable(f"the store {self.directory} is open read-only")
        with self._lock:
            db = self.db
            self._after_commit, self._after_rollback = [], []
            try:
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")
                db.execute("COMMIT")
            except BaseException as exc:
                if db.in_transaction:  # SQLite may have rolled back by itself (SQLITE_FULL)
                    db.execute("ROLLBACK")
                for action in reversed(self._after_rollback):
                    action()
                if _cannot_write(exc):
                    raise _unavailable(exc, self.directory) from exc
                raise
            finally:
                done, self._after_commit, self._after_rollback = self._after_commit, [], []
            for action in done:
                action()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @property
    def generation(self) -> int:
        return int(self.db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])

    # --- files -------------------------------------------------------------------------------------
    def file(self, path: str) -> FileRow | None:
        row = self.db.execute("SELECT id, path, sha, size, mtime_ns FROM files WHERE path=?", (path,)).fetchone()
        return FileRow(*row) if row else None

    def file_by_id(self, file_id: int) -> FileRow | None:
        row = self.db.execute("SELECT id, path, sha, size, mtime_ns FROM files WHERE id=?", (file_id,)).fetchone()
        return FileRow(*row) if row else None

    def items(self, modality: str | None, offset: int, limit: int) -> tuple[int, list[ItemRow]]:
        """(total, one page of files with their content's kind), newest first, optionally of one modality."""
        where, args = ("WHERE c.modality=?", [modality]) if modality else ("", [])
        base = f"FROM files f JOIN contents c ON c.sha=f.sha {where}"
        with self.reading() as db:
            total = db.execute(f"SELECT COUNT(*) {base}", args).fetchone()[0]
            rows = db.execute(
                f"SELECT f.id, f.path, c.modality, c.format, f.size, c.meta {base} ORDER BY f.id DESC LIMIT ? OFFSET ?",
                [*args, max(0, limit), max(0, offset)],
            ).fetchall()
        return total, [ItemRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def content_states(self) -> list[tuple[str, str, dict[str, str]]]:
        """(sha, modality, {stage: model id}) of every stored analysis."""
        rows = self.db.execute("SELECT sha, modality, models FROM contents").fetchall()
        return [(sha, modality, json.loads(models)) for sha, modality, models in rows]

    def vector_index(self, exact_limit: int, nprobe: int) -> Any:
        """The in-process vector index over this store (exact, or IVF snapshots beside the database)."""
        from polymodal.store.vectors import VectorIndex

        return VectorIndex(self, exact_limit, nprobe)

    def files_under(self, root: str) -> list[FileRow]:
        prefix = root.rstrip("/") + "/"
        rows = self.db.execute(
            "SELECT id, path, sha, size, mtime_ns FROM files WHERE substr(path, 1, ?) = ? OR path = ?",
            (len(prefix), prefix, root),
        )
        return [FileRow(*row) for row in rows]

    def content_state(self, sha: str) -> tuple[str, dict[str, str]] | None:
        """(modality, {stage: model id}) of a stored analysis."""
        row = self.db.execute("SELECT modality, models FROM contents WHERE sha=?", (sha,)).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def link_file(self, path: str, sha: str, size: int, mtime_ns: int) -> None:
        """Point ``path`` at an analysis already stored (unchanged, moved or duplicated content)."""
        with self.transaction() as db:
            self._link(db, path, sha, size, mtime_ns)

    def _link(self, db: sqlite3.Connection, path: str, sha: str, size: int, mtime_ns: int) -> None:
        old = db.execute("SELECT sha FROM files WHERE path=?", (path,)).fetchone()
        db.execute(
            "INSERT INTO files(path, sha, size, mtime_ns, indexed_at) VALUES (?,?,?,?,?) "
            "ON CONFLICT(path) DO UPDATE SET sha=excluded.sha, size=excluded.size, "
            "mtime_ns=excluded.mtime_ns, indexed_at=excluded.indexed_at",
            (path, sha, size, mtime_ns, time.time()),
        )
        db.execute("DELETE FROM errors WHERE path=?", (path,))
        if not old:
            file_id = db.execute("SELECT id FROM files WHERE path=?", (path,)).fetchone()[0]
            db.execute("INSERT INTO names_fts(rowid, text) VALUES (?, ?)", (file_id, _name_text(path)))
        if old and old[0] != sha:
            self._collect_garbage(db, old[0])

    def remove_file(self, path: str) -> bool:
        with self.transaction() as db:
            row = db.execute("SELECT sha FROM files WHERE path=?", (path,)).fetchone()
            db.execute("DELETE FROM errors WHERE path=?", (path,))
            if row is None:
                return False
            db.execute("DELETE FROM names_fts WHERE rowid = (SELECT id FROM files WHERE path=?)", (path,))
            db.execute("DELETE FROM files WHERE path=?", (path,))
            self._collect_garbage(db, row[0])
            return True

    def _collect_garbage(self, db: sqlite3.Connection, sha: str) -> None:
        if db.execute("SELECT 1 FROM files WHERE sha=? LIMIT 1", (sha,)).fetchone():
            return
        self._delete_content(db, sha)

    def _delete_content(self, db: sqlite3.Connection, sha: str) -> None:
        db.execute("DELETE FROM evidence_fts WHERE rowid IN (SELECT id FROM evidence WHERE sha=?)", (sha,))
        for table in ("evidence", "vectors", "features"):
            db.execute(f"DELETE FROM {table} WHERE sha=?", (sha,))
        db.execute("DELETE FROM contents WHERE sha=? AND NOT EXISTS (SELECT 1 FROM files WHERE sha=?)", (sha, sha))
        # After the commit: a crash before it keeps the content, and so must keep its thumbnails.
        self._after_commit.append(lambda: shutil.rmtree(self._thumbs_dir(sha), ignore_errors=True))

    # --- analyses ----------------------------------------------------------------------------------
    def save(self, path: str, sha: str, size: int, mtime_ns: int, analysis: Analysis, fts_text) -> None:
        """Store an analysis and point ``path`` at it, atomically. ``fts_text`` prepares text for FTS5.

        Thumbnails are written last inside the transaction (under the write lock, so that :meth:`clean_orphans`
        never sees them half-done): a crash before the commit leaves at most a thumbnail folder without content.
        """
        with self.transaction() as db:
            self._write_analysis(db, sha, size, analysis, fts_text)
            self._link(db, path, sha, size, mtime_ns)
            if analysis.thumbnails:
                self._write_thumbnails(sha, analysis.thumbnails)

    def _write_analysis(self, db: sqlite3.Connection, sha: str, size: int, analysis: Analysis, fts_text) -> None:
        db.execute("DELETE FROM evidence_fts WHERE rowid IN (SELECT id FROM evidence WHERE sha=?)", (sha,))
        for table in ("evidence", "vectors", "features"):
            db.execute(f"DELETE FROM {table} WHERE sha=?", (sha,))
        db.execute(
            "INSERT OR REPLACE INTO contents VALUES (?,?,?,?,?,?,?,?)",
            (
                sha,
                analysis.modality,
                analysis.format,
                size,
                json.dumps(analysis.meta),
                json.dumps(analysis.models),
                json.dumps(analysis.notes),
                time.time(),
            ),
        )
        ids = []
        for order, e in enumerate(analysis.evidence):
            cursor = db.execute(
                "INSERT INTO evidence(sha, ord, kind, text, score, start, end, page, box) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    sha,
                    order,
                    e.kind,
                    e.text,
                    e.score,
                    e.start,
                    e.end,
                    e.page,
                    json.dumps(e.box) if e.box else None,
                ),
            )
            ids.append(cursor.lastrowid)
            db.execute("INSERT INTO evidence_fts(rowid, text) VALUES (?, ?)", (cursor.lastrowid, fts_text(e.text)))
        self._write_vectors(db, sha, analysis, ids)
        for model, vector in analysis.features.items():
            db.execute("INSERT INTO features VALUES (?,?,?)", (sha, model, _blob(vector)))

    def _write_vectors(self, db: sqlite3.Connection, sha: str, analysis: Analysis, evidence_ids: list[int]) -> None:
        model = analysis.models.get("text", "")
        db.executemany(
            "INSERT INTO vectors(sha, evidence_id, kind, model, vector) VALUES (?,?,?,?,?)",
            [
                (
                    sha,
                    evidence_ids[v.evidence] if v.evidence is not None else None,
                    v.kind,
                    model,
                    _blob(v.vector),
                )
                for v in analysis.vectors
            ],
        )

    def _thumbs_dir(self, sha: str) -> Path:
        return self.directory / "thumbs" / sha

    def _write_thumbnails(self, sha: str, thumbnails: list[bytes]) -> None:
        """Replace the content's thumbnails as a whole: written to a fresh folder, then swapped in (inside a
        transaction; a failure removes what was written)."""
        final = self._thumbs_dir(sha)
        fresh = final.with_name(f"{sha}.{os.getpid()}.part")
        old = final.with_name(f"{sha}.{os.getpid()}.old")
        try:
            shutil.rmtree(fresh, ignore_errors=True)
            fresh.mkdir(parents=True)
            for index, jpeg in enumerate(thumbnails):
                (fresh / f"{index}.jpg").write_bytes(jpeg)
        except BaseException:
            shutil.rmtree(fresh, ignore_errors=True)
            raise
        had_old = final.exists()
        if had_old:
            final.rename(old)
            self._after_commit.append(lambda: shutil.rmtree(old, ignore_errors=True))
        fresh.rename(final)
        self._after_rollback.append(lambda: _restore(final, old if had_old else None))

    def clean_orphans(self) -> int:
        """Remove thumbnail folders of no stored content and unfinished ``.part`` / ``.old`` folders (left by a
        crash or a full disk); returns how many. Runs under the write lock: no other writer is mid-way."""
        thumbs = self.directory / "thumbs"
        if not self.writable or not thumbs.is_dir():
            return 0
        removed = 0
        with self.transaction() as db:
            for entry in list(thumbs.iterdir()):
                unfinished = entry.name.endswith((".part", ".old"))
                if unfinished or not db.execute("SELECT 1 FROM contents WHERE sha=?", (entry.name,)).fetchone():
                    shutil.rmtree(entry, ignore_errors=True)
                    removed += 1
        return removed

    def thumbnail(self, sha: str, shot: int) -> Path | None:
        """The JPEG of shot ``shot`` of a stored video, if there is one."""
        path = self._thumbs_dir(sha) / f"{int(shot)}.jpg"
        return path if path.is_file() else None

    def replace_vectors(self, sha: str, analysis: Analysis) -> None:
        """Swap in re-embedded vectors for stored evidence (the text encoder changed)."""
        with self.transaction() as db:
            ids = [row[0] for row in db.execute("SELECT id FROM evidence WHERE sha=? ORDER BY ord", (sha,))]
            db.execute("DELETE FROM vectors WHERE sha=?", (sha,))
            self._write_vectors(db, sha, analysis, ids)
            db.execute("UPDATE contents SET models=? WHERE sha=?", (json.dumps(analysis.models), sha))

    def load_analysis(self, sha: str) -> Analysis | None:
        row = self.db.execute(
            "SELECT modality, format, meta, models, notes FROM contents WHERE sha=?", (sha,)
        ).fetchone()
        if row is None:
            return None
        analysis = Analysis(row[0], row[1], json.loads(row[2]), models=json.loads(row[3]), notes=json.loads(row[4]))
        for kind, text, score, start, end, page, box in self.db.execute(
            "SELECT kind, text, score, start, end, page, box FROM evidence WHERE sha=? ORDER BY ord", (sha,)
        ):
            analysis.evidence.append(Evidence(kind, text, score, start, end, page, json.loads(box) if box else None))
        order = {
            eid: i
            for i, (eid,) in enumerate(self.db.execute("SELECT id FROM evidence WHERE sha=? ORDER BY ord", (sha,)))
        }
        for kind, evidence_id, blob in self.db.execute(
            "SELECT kind, evidence_id, vector FROM vectors WHERE sha=? ORDER BY id", (sha,)
        ):
            analysis.vectors.append(Vector(kind, np.frombuffer(blob, np.float32), order.get(evidence_id)))
        for model, blob in self.db.execute("SELECT model, vector FROM features WHERE sha=?", (sha,)):
            analysis.features[model] = np.frombuffer(blob, np.float32)
        return analysis

    # --- cached features and collection settings ---------------------------------------------------
    def feature(self, sha: str, model: str) -> np.ndarray | None:
        """A feature vector cached for content ``sha`` under ``model`` (e.g. by training), if any."""
        row = self.db.execute("SELECT vector FROM features WHERE sha=? AND model=?", (sha, model)).fetchone()
        return np.frombuffer(row[0], np.float32) if row else None

    def put_feature(self, sha: str, model: str, vector: np.ndarray) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO features VALUES (?,?,?)", (sha, model, _blob(vector)))

    def features_of(self, model: str, shas: list[str]) -> dict[str, np.ndarray]:
        """sha -> the feature vector cached under ``model``, for those of ``shas`` that have one."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(shas))
        for start in range(0, len(unique), MAX_PARAMS):
            chunk = unique[start : start + MAX_PARAMS]
            sql = f"SELECT sha, vector FROM features WHERE model=? AND sha IN ({','.join('?' * len(chunk))})"
            found |= {sha: np.frombuffer(blob, np.float32) for sha, blob in self.db.execute(sql, (model, *chunk))}
        return found

    def delete_features(self, prefix: str) -> int:
        """Delete the cached features whose model id starts with ``prefix``; how many."""
        with self.transaction() as db:
            sql = "DELETE FROM features WHERE substr(model, 1, ?) = ?"
            return int(db.execute(sql, (len(prefix), prefix)).rowcount)

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        """Set (or, with ``None``, remove) a collection setting such as the aligner in use."""
        if key in ("schema", "generation"):
            raise ValueError(f"{key!r} is managed by the store")
        with self.transaction() as db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key=?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- errors ------------------------------------------------------------------------------------
    def record_error(self, path: str, reason: str) -> None:
        self.record_errors([(path, reason)])

    def record_errors(self, errors: list[tuple[str, str]]) -> None:
        """Keep (path, reason) pairs, in one transaction."""
        if not errors:
            return
        now = time.time()
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO errors VALUES (?,?,?)", [(p, r, now) for p, r in errors])

    def errors(self) -> list[tuple[str, str]]:
        return list(self.db.execute("SELECT path, reason FROM errors ORDER BY path"))

    def clear_errors_under(self, root: str, keep: set[str]) -> None:
        """Forget the errors of paths under ``root`` but those in ``keep`` (no write when there are none)."""
        stale = [path for path, _ in self.errors_under(root) if path not in keep]
        if not stale:
            return
        with self.transaction() as db:
            db.executemany("DELETE FROM errors WHERE path=?", [(path,) for path in stale])

    def errors_under(self, root: str) -> list[tuple[str, str]]:
        prefix = root.rstrip("/") + "/"
        return [(p, r) for p, r in self.errors() if p.startswith(prefix) or p == root]

    # --- reading for search ------------------------------------------------------------------------
    def all_vectors(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(ids, matrix, shas) of every stored vector."""
        rows = self.db.execute("SELECT id, sha, vector FROM vectors ORDER BY id").fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32), []
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        matrix = np.frombuffer(b"".join(r[2] for r in rows), np.float32).reshape(len(rows), -1)
        return ids, matrix, [r[1] for r in rows]

    def vector_rows(self, ids: list[int]) -> dict[int, tuple[str, str, int | None]]:
        """vector id -> (sha, kind, evidence id)."""
        found: dict[int, tuple[str, str, int | None]] = {}
        for start in range(0, len(ids), MAX_PARAMS):
            chunk = ids[start : start + MAX_PARAMS]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"SELECT id, sha, kind, evidence_id FROM vectors WHERE id IN ({marks})", chunk)
            found.update({r[0]: (r[1], r[2], r[3]) for r in rows})
        return found

    # --- the vector log, for derived vector indexes ---------------------------------------------------
    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: every query inside sees the same state of the store."""
        db = self.db
        if db.in_transaction:
            yield db
            return
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("COMMIT")

    def vector_seq(self) -> int:
        """The position of the last vector change in the vector log (0 for none)."""
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name='vector_log'").fetchone()
        return int(row[0]) if row else 0

    def vector_changes(self, since: int) -> tuple[int, list[tuple[int, bool]]] | None:
        """(log position, [(vector id, added?), ...]) after ``since``; None when the log no longer reaches back."""
        with self.reading() as db:
            last = self.vector_seq()
            if last == since:
                return last, []
            first = db.execute("SELECT MIN(seq) FROM vector_log").fetchone()[0]
            if last < since or first is None or first > since + 1:
                return None
            rows = db.execute(
                "SELECT id, added FROM vector_log WHERE seq > ? AND seq <= ? ORDER BY seq", (since, last)
            ).fetchall()
        return last, [(int(i), bool(a)) for i, a in rows]

    def prune_vector_log(self, upto: int, keep: int = 0) -> None:
        """Forget log entries up to ``upto`` (an index covers them) once more than ``keep`` are there.

        Content and generation are unchanged. A busy or read-only store keeps its log longer: searches never wait.
        """
        first = self.db.execute("SELECT MIN(seq) FROM vector_log").fetchone()[0]
        if first is None or upto - first < keep:
            return
        with self._lock:
            db = self.db
            db.execute("PRAGMA busy_timeout = 0")
            try:
                db.execute("DELETE FROM vector_log WHERE seq <= ?", (upto,))
            except sqlite3.OperationalError:
                pass
            finally:
                db.execute("PRAGMA busy_timeout = 30000")

    def vector_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])

    def iter_vectors(self, batch: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, float32 matrix) of every stored vector in id order, ``batch`` rows at a time."""
        cursor = self.db.execute("SELECT id, vector FROM vectors ORDER BY id")
        while rows := cursor.fetchmany(batch):
            ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            yield ids, np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), -1)

    def vectors_by_id(self, ids: list[int]) -> dict[int, np.ndarray]:
        found: dict[int, np.ndarray] = {}
        for start in range(0, len(ids), MAX_PARAMS):
            chunk = ids[start : start + MAX_PARAMS]
            marks = ",".join("?" * len(chunk))
            for vid, blob in self.db.execute(f"SELECT id, vector FROM vectors WHERE id IN ({marks})", chunk):
                found[vid] = np.frombuffer(blob, np.float32)
        return found

    def lexical(self, match: str, limit: int) -> list[tuple[str, int, float]]:
        """(sha, evidence id, bm25 score; lower is better) for an FTS5 MATCH expression."""
        try:
            # Rank inside FTS5 first, then join only the best: joining every match before sorting costs ~8x
            # at 1M rows (3,500 matches: 101 -> 12 ms). ``rank`` is bm25() with the default weights.
            rows = self.db.execute(
                "SELECT e.sha, e.id, f.rank FROM (SELECT rowid, rank FROM evidence_fts WHERE evidence_fts MATCH ? "
                "ORDER BY rank LIMIT ?) AS f JOIN evidence e ON e.id = f.rowid ORDER BY f.rank",
                (match, limit),
            ).fetchall()
        except sqlite3.OperationalError:
            return []
        return [(r[0], r[1], r[2]) for r in rows]

    def named(self, match: str, limit: int) -> list[FileRow]:
        """Files whose name or folder words match an FTS5 MATCH expression, best first."""
        try:
            rows = self.db.execute(
                "SELECT f.id, f.path, f.sha, f.size, f.mtime_ns FROM (SELECT rowid, rank FROM names_fts "
                "WHERE names_fts MATCH ? ORDER BY rank LIMIT ?) AS n JOIN files f ON f.id = n.rowid ORDER BY n.rank",
                (match, limit),
            ).fetchall()
        except sqlite3.OperationalError:
            return []
        return [FileRow(*row) for row in rows]

    def count_matches(self, match: str, cap: int) -> int:
        """How many evidence rows an FTS5 MATCH expression finds, counting no further than ``cap``."""
        try:
            sql = "SELECT count(*) FROM (SELECT rowid FROM evidence_fts WHERE evidence_fts MATCH ? LIMIT ?)"
            return int(self.db.execute(sql, (match, cap)).fetchone()[0])
        except sqlite3.OperationalError:
            return 0

    def evidence_count(self) -> int:
        """About how many evidence rows there are (the highest id: exact until rows are deleted; O(1))."""
        return int(self.db.execute("SELECT coalesce(max(id), 0) FROM evidence").fetchone()[0])

    def evidence_by_id(self, ids: list[int]) -> dict[int, Evidence]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            f"SELECT id, kind, text, score, start, end, page, box FROM evidence WHERE id IN ({marks})", ids
        )
        return {r[0]: Evidence(r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]) if r[7] else None) for r in rows}

    def top_evidence(self, sha: str, kind: str, limit: int = 3) -> list[Evidence]:
        rows = self.db.execute(
            "SELECT kind, text, score, start, end, page FROM evidence WHERE sha=? AND kind=? ORDER BY ord LIMIT ?",
            (sha, kind, limit),
        )
        return [Evidence(*r) for r in rows]

    def evidence_group(self, evidence_id: int, limit: int = 3) -> list[Evidence]:
        """Evidence ``evidence_id`` and the next of its group: same content, kind and time span (a video shot's
        labels, a sound window's tags), in order."""
        rows = self.db.execute(
            "SELECT e.kind, e.text, e.score, e.start, e.end, e.page FROM evidence e JOIN evidence first "
            "ON first.id = ? AND e.sha = first.sha AND e.kind = first.kind AND e.start IS first.start "
            "AND e.end IS first.end AND e.ord >= first.ord ORDER BY e.ord LIMIT ?",
            (evidence_id, limit),
        )
        return [Evidence(*r) for r in rows]

    def shot_evidence(self, sha: str, shot: int, kind: str, limit: int = 3) -> list[Evidence]:
        """Evidence of ``kind`` of one shot of a video (its ``page``), in order."""
        rows = self.db.execute(
            "SELECT kind, text, score, start, end, page FROM evidence WHERE sha=? AND page=? AND kind=? "
            "ORDER BY ord LIMIT ?",
            (sha, shot, kind, limit),
        )
        return [Evidence(*r) for r in rows]

    def files_for(self, shas: list[str]) -> dict[str, list[FileRow]]:
        out: dict[str, list[FileRow]] = {}
        if not shas:
            return out
        marks = ",".join("?" * len(shas))
        for row in self.db.execute(
            f"SELECT id, path, sha, size, mtime_ns FROM files WHERE sha IN ({marks}) ORDER BY path", shas
        ):
            out.setdefault(row[2], []).append(FileRow(*row))
        return out

    def content_info(self, shas: list[str]) -> dict[str, dict[str, Any]]:
        if not shas:
            return {}
        marks = ",".join("?" * len(shas))
        rows = self.db.execute(f"SELECT sha, modality, format, meta FROM contents WHERE sha IN ({marks})", shas)
        return {r[0]: {"modality": r[1], "format": r[2], "meta": json.loads(r[3])} for r in rows}

    def stats(self) -> dict[str, Any]:
        db = self.db
        per_modality = dict(
            db.execute("SELECT c.modality, COUNT(*) FROM files f JOIN contents c ON c.sha=f.sha GROUP BY c.modality")
        )
        models: set[str] = set()
        for (text,) in db.execute("SELECT DISTINCT models FROM contents"):
            models.update(json.loads(text).values())
        size = sum(p.stat().st_size for p in self.directory.glob("polymodal.sqlite*"))
        return {
            "files": sum(per_modality.values()),
            "per_modality": per_modality,
            "contents": db.execute("SELECT COUNT(*) FROM contents").fetchone()[0],
            "evidence": db.execute("SELECT COUNT(*) FROM evidence").fetchone()[0],
            "vectors": db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0],
            "errors": db.execute("SELECT COUNT(*) FROM errors").fetchone()[0],
            "models": sorted(models),
            "store_bytes": size,
        }


def _restore(final: Path, old: Path | None) -> None:
    """Undo a thumbnail swap whose transaction rolled back (best effort: :meth:`clean_orphans` does the rest)."""
    shutil.rmtree(final, ignore_errors=True)
    if old is not None and old.exists():
        old.rename(final)


def _cannot_write(exc: BaseException) -> bool:
    """A failure of the disk or the database file (full, read-only, locked), not of the data or the SQL."""
    if isinstance(exc, OSError):
        return exc.errno in (*DISK_FULL_ERRNOS, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in CANNOT_WRITE_CODES
    return any(words in str(exc) for words in ("disk is full", "readonly", "locked", "disk I/O"))


def _unavailable(exc: BaseException, directory: Path) -> StoreUnavailable:
    """The words for a write that could not be made to the store in ``directory``."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    message = str(exc)
    if (isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS) or code == SQLITE_FULL or "disk is full" in message:
        return StoreUnavailable(f"disk full while writing {directory} (ENOSPC): free some space and index again")
    if (isinstance(exc, OSError) and exc.errno == errno.EROFS) or code == SQLITE_READONLY or "readonly" in message:
        return StoreUnavailable(f"the store {directory} is read-only: it can be searched, not written")
    if "locked" in message or "busy" in message:
        return StoreUnavailable(f"the store {directory} is busy (another process writes to it): {message}")
    return StoreUnavailable(f"could not write to the store {directory}: {message}")


def _blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def _name_text(path: str) -> str:
    """A file's name and folder as words for the names index (Chinese spaced into words)."""
    from polymodal.media.text import segment_for_search
    from polymodal.ranking import name_words

    return segment_for_search(name_words(path))
