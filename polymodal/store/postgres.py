"""The server store: PostgreSQL + pgvector, shared by many indexers, engines and service replicas.

The same tables as the embedded store (files by path, contents by SHA-256, evidence, vectors, features, errors,
meta) plus thumbnails as rows, so that every replica sees every write. Differences that matter:

- Vectors are pgvector ``vector(d)`` rows (stored inline) under an HNSW index of their ``halfvec`` copies (inner
  product; vectors are unit length); candidates are re-ranked by the float32 rows. Up to :data:`EXACT_LIMIT`
  vectors a query scans them exactly (the index is not used), as the embedded store does below its own limit, so
  small collections rank the same in both.
- Full text is a ``tsvector`` made from the same tokens SQLite's ``unicode61`` tokenizer makes (lower case,
  diacritics removed; Chinese already segmented with jieba by the caller's ``fts_text``), built in Python and
  stored with ``array_to_tsvector``; queries are ``tsquery`` values built the same way (no Postgres parser or
  dictionary in between), so both stores match the same rows.
- One transaction per file, as before. Writers take transaction-scoped advisory locks on the path and the content
  hash they touch, so two indexers writing the same file or content one after the other replace, never duplicate;
  a deadlock between two of them is retried. Every writer also holds the people lock shared; a people update
  (:mod:`polymodal.store.faces`, which touches many items at once) holds it alone, so it never deadlocks with them.
- Migrations are numbered; each runs in one transaction under an advisory lock, so two processes opening an old
  store at once migrate it once. A store of a newer version is refused before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from polymodal.analysis import Analysis, Evidence, Vector
from polymodal.store.base import FileRow, ItemRow, StoreError, StoreUnavailable, too_new
from polymodal.store.faces import POSTGRES_TYPES, schema

SCHEMA_VERSION = 3
MIGRATION_LOCK = 0x706F6C79  # advisory lock key held while migrating ("poly")
PEOPLE_LOCK = 0x706F706C  # advisory lock key: every writer holds it shared, a people update alone ("popl")
# HNSW graph: ef_construction 200 (not pgvector's 64): on clustered real-like vectors, 60k, recall@10 0.998 -> 1.0
# for twice the build time (bench notes in the readme).
HNSW_M, HNSW_EF_CONSTRUCTION = 16, 200
EF_SEARCH = 100  # HNSW candidates per query at least (more when more neighbours are asked for)
# Up to this many vectors (or the settings' exact limit, if lower) a query scans them all: ~20 ms at 20k here.
EXACT_LIMIT = 20_000
MAX_EF_SEARCH = 1000
WRITE_RETRIES = 5
MAX_TOKEN_CHARS = 200  # longer "words" are not indexed (a tsvector lexeme is at most 2 KB)

MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE SEQUENCE IF NOT EXISTS generation_seq",
        """CREATE TABLE IF NOT EXISTS contents (
            sha TEXT PRIMARY KEY, modality TEXT NOT NULL, format TEXT NOT NULL, size BIGINT NOT NULL,
            meta TEXT NOT NULL, models TEXT NOT NULL, notes TEXT NOT NULL, analyzed_at DOUBLE PRECISION NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS files (
            id BIGSERIAL PRIMARY KEY, path TEXT NOT NULL UNIQUE, sha TEXT NOT NULL REFERENCES contents(sha),
            size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL, indexed_at DOUBLE PRECISION NOT NULL,
            names TSVECTOR NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS files_sha ON files(sha)",
        "CREATE INDEX IF NOT EXISTS files_names ON files USING gin(names)",
        """CREATE TABLE IF NOT EXISTS evidence (
            id BIGSERIAL PRIMARY KEY, sha TEXT NOT NULL, ord INTEGER NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL,
            score DOUBLE PRECISION, start DOUBLE PRECISION, "end" DOUBLE PRECISION, page INTEGER, box TEXT,
            words TSVECTOR NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS evidence_sha ON evidence(sha)",
        "CREATE INDEX IF NOT EXISTS evidence_words ON evidence USING gin(words)",
        """CREATE TABLE IF NOT EXISTS vectors (
            id BIGSERIAL PRIMARY KEY, sha TEXT NOT NULL, evidence_id BIGINT, kind TEXT NOT NULL, model TEXT NOT NULL,
            vector VECTOR NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS vectors_sha ON vectors(sha)",
        """CREATE TABLE IF NOT EXISTS features (
            sha TEXT NOT NULL, model TEXT NOT NULL, vector BYTEA NOT NULL, PRIMARY KEY (sha, model))""",
        """CREATE TABLE IF NOT EXISTS errors (
            path TEXT PRIMARY KEY, reason TEXT NOT NULL, at DOUBLE PRECISION NOT NULL)""",
    ],
    2: [
        "CREATE INDEX IF NOT EXISTS evidence_kind ON evidence(sha, kind, ord)",
        # Vectors inline, not TOASTed: an exact scan of 50k 512-d vectors 500 -> 55 ms (bench notes, readme).
        "ALTER TABLE vectors ALTER COLUMN vector SET STORAGE PLAIN",
        """CREATE TABLE IF NOT EXISTS thumbnails (
            sha TEXT NOT NULL, shot INTEGER NOT NULL, jpeg BYTEA NOT NULL, PRIMARY KEY (sha, shot))""",
    ],
    3: schema(POSTGRES_TYPES),  # people, faces, face_corrections (polymodal.store.faces)
}

_WORD = re.compile(r"[^\W_]+")
_TERM = re.compile(r'"([^"]*)"(\*?)')


def fts_tokens(text: str) -> list[str]:
    """Words as SQLite's ``unicode61 remove_diacritics 2`` tokenizer makes them: runs of letters and digits, lower
    case, without diacritics."""
    decomposed = unicodedata.normalize("NFD", text.lower())
    plain = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return [word for word in _WORD.findall(unicodedata.normalize("NFC", plain)) if len(word) <= MAX_TOKEN_CHARS]


def words(text: str, fts_text: Callable[[str], str]) -> list[str]:
    """The lexemes of an evidence row's ``tsvector`` (``array_to_tsvector``): ``text`` as ``fts_text`` prepares it
    for the full-text index, in tokens."""
    return sorted(set(fts_tokens(fts_text(text))))


def _lexeme(word: str) -> str:
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


def tsquery(match: str) -> str | None:
    """The ``tsquery`` of an FTS5 expression as search builds it (quoted terms, a ``*`` for a prefix, joined by
    OR); a quoted term of several words must have them all. None when nothing in it can match."""
    alternatives = []
    for quoted, prefix in _TERM.findall(match):
        words = fts_tokens(quoted)
        if not words:
            continue
        if prefix:
            words[-1] += "\0"  # marks the prefix word, replaced below
        parts = [_lexeme(w.rstrip("\0")) + (":*" if w.endswith("\0") else "") for w in words]
        alternatives.append(parts[0] if len(parts) == 1 else "(" + " & ".join(parts) + ")")
    return " | ".join(alternatives) or None


def hnsw_index_sql(dim: int, name: str = "vectors_hnsw") -> str:
    """The vector index: HNSW over float16 (halfvec) copies of the vectors. At 200k vectors against float32 HNSW:
    half the size (273 vs 546 MB), 0.63x the build time, p50 5.1 vs 6.2 ms, recall@10 0.9965 vs 0.9985 before the
    float32 re-rank :meth:`PostgresStore.nearest` adds (bench/scale.py)."""
    return (
        f"CREATE INDEX IF NOT EXISTS {name} ON vectors USING hnsw ((vector::halfvec({dim})) halfvec_ip_ops) "
        f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
    )


def _vector_text(vector: np.ndarray) -> str:
    """pgvector's text form; float32 values written as float64 reprs read back to the same float32."""
    return json.dumps(np.asarray(vector, np.float32).astype(np.float64).tolist())


def _blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def _shown(url: str) -> str:
    """The URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def local_directory(url: str, cache: Path | None = None) -> Path:
    """Where this machine keeps a server store's local files (aligners, API keys, cached thumbnails)."""
    digest = hashlib.sha256(_shown(url).encode()).hexdigest()[:16]
    return Path(cache or Path.home() / ".cache" / "polymodal").expanduser() / "postgres" / digest


class PostgresStore:
    def __init__(
        self, url: str, create: bool = True, readonly: bool = False, cache: Path | None = None, pool_size: int = 8
    ):
        """Open the store in the database at ``url`` (its tables made or migrated unless ``readonly``). Local files
        (aligners, keys, cached thumbnails) live under ``cache``."""
        import psycopg
        from psycopg_pool import ConnectionPool

        self.url = url
        self._readonly = readonly
        self.directory = local_directory(url, cache)
        self._local = threading.local()
        self._dim: int | None = None
        self._count: tuple[int, int] = (-1, 0)  # (generation, vector count) last read
        try:  # at once, with the server's words: a pool would retry until its timeout
            psycopg.connect(url, connect_timeout=10).close()
        except psycopg.Error as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StoreError(f"cannot reach the store {self.location}: {reason}") from exc
        self.pool = ConnectionPool(
            url, min_size=1, max_size=pool_size, open=False, kwargs={"autocommit": True}, configure=self._configure
        )
        try:
            self.pool.open(wait=True, timeout=15)
        except Exception as exc:
            self.pool.close()
            raise StoreError(f"cannot reach the store {self.location}: {exc}") from exc
        try:
            self._check_schema(create)
        except BaseException:
            self.pool.close()
            raise

    def _configure(self, conn: Any) -> None:
        if self._readonly:
            conn.execute("SET default_transaction_read_only = on")

    @property
    def location(self) -> str:
        return _shown(self.url)

    @property
    def writable(self) -> bool:
        return not self._readonly

    def close(self) -> None:
        self.pool.close()

    # --- schema ---------------------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        with self._conn() as conn:
            return self._version(conn)

    def _version(self, conn: Any) -> int:
        exists = conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()[0]
        if not exists:
            return 0
        row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        return int(row[0]) if row else 0

    def _check_schema(self, create: bool) -> None:
        with self._conn() as conn:
            found = self._version(conn)
        if found > SCHEMA_VERSION:
            raise too_new(self.location, found, SCHEMA_VERSION)
        if found == 0 and (not create or self._readonly):
            raise StoreError(f"no store in {self.location}; index a folder first")
        if found < SCHEMA_VERSION and not self._readonly:
            self.migrate(SCHEMA_VERSION)

    def migrate(self, target: int = SCHEMA_VERSION) -> None:
        """Bring the schema up to ``target``, one transaction per version, under an advisory lock."""
        with self._conn() as conn:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            for version in range(1, target + 1):
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                    found = self._version(conn)
                    if found > SCHEMA_VERSION:
                        raise too_new(self.location, found, SCHEMA_VERSION)
                    if version <= found:
                        continue
                    for statement in MIGRATIONS[version]:
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO meta VALUES ('schema', %s) ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                        (str(version),),
                    )

    # --- connections and transactions ------------------------------------------------------------------
    @contextmanager
    def _conn(self) -> Iterator[Any]:
        """The connection of the transaction or read in progress on this thread, else one from the pool."""
        held = getattr(self._local, "conn", None)
        if held is not None:
            yield held
            return
        try:
            with self.pool.connection() as conn:
                yield conn
        except _operational() as exc:
            if not _cannot_write(exc):  # a deadlock or a conflict: the writer retries
                raise
            raise StoreUnavailable(f"the store {self.location} cannot be reached or written: {exc}") from exc

    @contextmanager
    def reading(self) -> Iterator[Any]:
        """One read-only snapshot: every query inside sees the same state of the store."""
        if getattr(self._local, "conn", None) is not None:
            yield self._local.conn
            return
        with self._conn() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            self._local.conn = conn
            try:
                yield conn
            finally:
                self._local.conn = None

    @contextmanager
    def transaction(self, locks: Iterable[str] = (), alone: bool = False) -> Iterator[Any]:
        """One write transaction; the store's queries on this thread inside it are part of it. It holds advisory
        locks on ``locks`` (paths, hashes), and the people lock: shared, or with ``alone`` exclusively (no other
        write runs meanwhile). Not retried: :meth:`_write` is."""
        if self._readonly:
            raise StoreUnavailable(f"the store {self.location} is open read-only")
        with self._conn() as conn, conn.transaction():
            outer, self._local.conn = getattr(self._local, "conn", None), conn
            try:
                kind = "pg_advisory_xact_lock" if alone else "pg_advisory_xact_lock_shared"
                conn.execute(f"SELECT {kind}(%s)", (PEOPLE_LOCK,))
                for key in sorted(set(locks)):
                    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
                yield conn
                conn.execute("SELECT nextval('generation_seq')")
            finally:
                self._local.conn = outer

    def _write(self, work: Callable[[Any], Any], locks: list[str]) -> Any:
        """Run ``work(conn)`` in one transaction holding advisory locks on ``locks`` (paths, hashes); retried when
        it deadlocks with another writer."""
        import psycopg

        for attempt in range(WRITE_RETRIES):
            try:
                with self.transaction(locks) as conn:
                    result = work(conn)
                return result
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                if attempt == WRITE_RETRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _one(self, sql: str, args: Any = ()) -> Any:
        with self._conn() as conn:
            return conn.execute(sql, args).fetchone()

    def _all(self, sql: str, args: Any = ()) -> list[Any]:
        with self._conn() as conn:
            return conn.execute(sql, args).fetchall()

    @property
    def generation(self) -> int:
        row = self._one("SELECT last_value, is_called FROM generation_seq")
        return int(row[0]) if row[1] else 0

    # --- files -------------------------------------------------------------------------------------------
    _FILE = "SELECT id, path, sha, size, mtime_ns FROM files"

    def file(self, path: str) -> FileRow | None:
        row = self._one(f"{self._FILE} WHERE path=%s", (path,))
        return FileRow(*row) if row else None

    def file_by_id(self, file_id: int) -> FileRow | None:
        row = self._one(f"{self._FILE} WHERE id=%s", (file_id,))
        return FileRow(*row) if row else None

    def files_under(self, root: str) -> list[FileRow]:
        prefix = root.rstrip("/") + "/"
        rows = self._all(f"{self._FILE} WHERE starts_with(path, %s) OR path = %s", (prefix, root))
        return [FileRow(*row) for row in rows]

    def files_for(self, shas: list[str]) -> dict[str, list[FileRow]]:
        out: dict[str, list[FileRow]] = {}
        if not shas:
            return out
        for row in self._all(f"{self._FILE} WHERE sha = ANY(%s) ORDER BY path", (shas,)):
            out.setdefault(row[2], []).append(FileRow(*row))
        return out

    def items(self, modality: str | None, offset: int, limit: int) -> tuple[int, list[ItemRow]]:
        where, args = ("WHERE c.modality=%s", [modality]) if modality else ("", [])
        base = f"FROM files f JOIN contents c ON c.sha=f.sha {where}"
        with self.reading() as conn:
            total = conn.execute(f"SELECT COUNT(*) {base}", args).fetchone()[0]
            rows = conn.execute(
                f"SELECT f.id, f.path, c.modality, c.format, f.size, c.meta {base} ORDER BY f.id DESC "
                "LIMIT %s OFFSET %s",
                [*args, max(0, limit), max(0, offset)],
            ).fetchall()
        return total, [ItemRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def content_state(self, sha: str) -> tuple[str, dict[str, str]] | None:
        row = self._one("SELECT modality, models FROM contents WHERE sha=%s", (sha,))
        return (row[0], json.loads(row[1])) if row else None

    def content_states(self) -> list[tuple[str, str, dict[str, str]]]:
        return [
            (sha, m, json.loads(models)) for sha, m, models in self._all("SELECT sha, modality, models FROM contents")
        ]

    def content_info(self, shas: list[str]) -> dict[str, dict[str, Any]]:
        if not shas:
            return {}
        rows = self._all("SELECT sha, modality, format, meta FROM contents WHERE sha = ANY(%s)", (shas,))
        return {r[0]: {"modality": r[1], "format": r[2], "meta": json.loads(r[3])} for r in rows}

    def link_file(self, path: str, sha: str, size: int, mtime_ns: int) -> None:
        old = self.file(path)
        locks = [path, sha] + ([old.sha] if old and old.sha != sha else [])
        self._write(lambda conn: self._link(conn, path, sha, size, mtime_ns), locks)

    def _link(self, conn: Any, path: str, sha: str, size: int, mtime_ns: int) -> None:
        from polymodal.store.sqlite import _name_text

        old = conn.execute("SELECT sha FROM files WHERE path=%s FOR UPDATE", (path,)).fetchone()
        conn.execute(
            "INSERT INTO files(path, sha, size, mtime_ns, indexed_at, names) "
            "VALUES (%s,%s,%s,%s,%s,array_to_tsvector(%s::text[])) "
            "ON CONFLICT (path) DO UPDATE SET sha=excluded.sha, size=excluded.size, mtime_ns=excluded.mtime_ns, "
            "indexed_at=excluded.indexed_at",
            (path, sha, size, mtime_ns, time.time(), sorted(set(fts_tokens(_name_text(path))))),
        )
        conn.execute("DELETE FROM errors WHERE path=%s", (path,))
        if old and old[0] != sha:
            self._collect_garbage(conn, old[0])

    def remove_file(self, path: str) -> bool:
        old = self.file(path)
        locks = [path] + ([old.sha] if old else [])

        def remove(conn: Any) -> bool:
            conn.execute("DELETE FROM errors WHERE path=%s", (path,))
            row = conn.execute("DELETE FROM files WHERE path=%s RETURNING sha", (path,)).fetchone()
            if row is None:
                return False
            self._collect_garbage(conn, row[0])
            return True

        return bool(self._write(remove, locks))

    def _collect_garbage(self, conn: Any, sha: str) -> None:
        if conn.execute("SELECT 1 FROM files WHERE sha=%s LIMIT 1", (sha,)).fetchone():
            return
        for table in ("evidence", "vectors", "features", "thumbnails"):
            conn.execute(f"DELETE FROM {table} WHERE sha=%s", (sha,))
        conn.execute("DELETE FROM contents WHERE sha=%s", (sha,))

    # --- analyses ------------------------------------------------------------------------------------------
    def save(self, path: str, sha: str, size: int, mtime_ns: int, analysis: Analysis, fts_text: Callable) -> None:
        """Store an analysis and point ``path`` at it, in one transaction."""
        self._ensure_vector_index(analysis)
        old = self.file(path)
        locks = [path, sha] + ([old.sha] if old and old.sha != sha else [])

        def write(conn: Any) -> None:
            self._write_analysis(conn, sha, size, analysis, fts_text)
            self._link(conn, path, sha, size, mtime_ns)

        self._write(write, locks)

    def _write_analysis(self, conn: Any, sha: str, size: int, analysis: Analysis, fts_text: Callable) -> None:
        for table in ("evidence", "vectors", "features", "thumbnails"):
            conn.execute(f"DELETE FROM {table} WHERE sha=%s", (sha,))
        conn.execute(
            "INSERT INTO contents VALUES (%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (sha) DO UPDATE SET "
            "modality=excluded.modality, format=excluded.format, size=excluded.size, meta=excluded.meta, "
            "models=excluded.models, notes=excluded.notes, analyzed_at=excluded.analyzed_at",
            (sha, analysis.modality, analysis.format, size, json.dumps(analysis.meta), json.dumps(analysis.models),
             json.dumps(analysis.notes), time.time()),
        )  # fmt: skip
        ids = []
        with conn.cursor() as cursor:
            for order, e in enumerate(analysis.evidence):
                cursor.execute(
                    'INSERT INTO evidence(sha, ord, kind, text, score, start, "end", page, box, words) '
                    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,array_to_tsvector(%s::text[])) RETURNING id",
                    (sha, order, e.kind, e.text, e.score, e.start, e.end, e.page,
                     json.dumps(e.box) if e.box else None, words(e.text, fts_text)),
                )  # fmt: skip
                ids.append(cursor.fetchone()[0])
            self._write_vectors(cursor, sha, analysis, ids)
            cursor.executemany(
                "INSERT INTO features VALUES (%s,%s,%s)",
                [(sha, model, _blob(vector)) for model, vector in analysis.features.items()],
            )
            cursor.executemany(
                "INSERT INTO thumbnails VALUES (%s,%s,%s)",
                [(sha, shot, jpeg) for shot, jpeg in enumerate(analysis.thumbnails)],
            )

    def _write_vectors(self, cursor: Any, sha: str, analysis: Analysis, evidence_ids: list[int]) -> None:
        model = analysis.models.get("text", "")
        cursor.executemany(
            "INSERT INTO vectors(sha, evidence_id, kind, model, vector) VALUES (%s,%s,%s,%s,%s::vector)",
            [(sha, evidence_ids[v.evidence] if v.evidence is not None else None, v.kind, model, _vector_text(v.vector))
             for v in analysis.vectors],
        )  # fmt: skip

    def _ensure_vector_index(self, analysis: Analysis) -> None:
        """Give the vector column its dimension and an HNSW index, once, when the first vectors come."""
        if self._dim is not None or not analysis.vectors:
            return
        dim = int(np.asarray(analysis.vectors[0].vector).size)
        self.ensure_dimension(dim)

    def ensure_dimension(self, dim: int) -> None:
        with self._conn() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            row = conn.execute("SELECT value FROM meta WHERE key='vector_dim'").fetchone()
            if row is None:
                conn.execute(f"ALTER TABLE vectors ALTER COLUMN vector TYPE vector({dim})")
                conn.execute("ALTER TABLE vectors ALTER COLUMN vector SET STORAGE PLAIN")
                conn.execute(hnsw_index_sql(dim))
                conn.execute("INSERT INTO meta VALUES ('vector_dim', %s)", (str(dim),))
                found = dim
            else:
                found = int(row[0])
        if found != dim:
            raise StoreError(f"the store {self.location} holds {found}-dimensional vectors, not {dim}")
        self._dim = found

    def replace_vectors(self, sha: str, analysis: Analysis) -> None:
        self._ensure_vector_index(analysis)

        def replace(conn: Any) -> None:
            ids = [r[0] for r in conn.execute("SELECT id FROM evidence WHERE sha=%s ORDER BY ord", (sha,))]
            conn.execute("DELETE FROM vectors WHERE sha=%s", (sha,))
            with conn.cursor() as cursor:
                self._write_vectors(cursor, sha, analysis, ids)
            conn.execute("UPDATE contents SET models=%s WHERE sha=%s", (json.dumps(analysis.models), sha))

        self._write(replace, [sha])

    def load_analysis(self, sha: str) -> Analysis | None:
        with self.reading() as conn:
            row = conn.execute(
                "SELECT modality, format, meta, models, notes FROM contents WHERE sha=%s", (sha,)
            ).fetchone()
            if row is None:
                return None
            analysis = Analysis(row[0], row[1], json.loads(row[2]), models=json.loads(row[3]), notes=json.loads(row[4]))
            order = {}
            for i, (eid, kind, text, score, start, end, page, box) in enumerate(conn.execute(
                'SELECT id, kind, text, score, start, "end", page, box FROM evidence WHERE sha=%s ORDER BY ord', (sha,)
            )):  # fmt: skip
                order[eid] = i
                analysis.evidence.append(
                    Evidence(kind, text, score, start, end, page, json.loads(box) if box else None)
                )
            for kind, evidence_id, vector in conn.execute(
                "SELECT kind, evidence_id, vector::real[] FROM vectors WHERE sha=%s ORDER BY id", (sha,)
            ):
                analysis.vectors.append(Vector(kind, np.asarray(vector, np.float32), order.get(evidence_id)))
            for model, blob in conn.execute("SELECT model, vector FROM features WHERE sha=%s", (sha,)):
                analysis.features[model] = np.frombuffer(blob, np.float32)
        return analysis

    def clean_orphans(self) -> int:
        """Nothing to clean: thumbnails are rows, written and removed with their content."""
        return 0

    def thumbnail(self, sha: str, shot: int) -> Path | None:
        """The JPEG of shot ``shot`` of a stored video, copied to a local file (once) to be served."""
        path = self.directory / "thumbs" / sha / f"{int(shot)}.jpg"
        if path.is_file():
            return path
        row = self._one("SELECT jpeg FROM thumbnails WHERE sha=%s AND shot=%s", (sha, int(shot)))
        if row is None:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_suffix(f".{threading.get_ident()}.part")
        part.write_bytes(row[0])
        part.replace(path)
        return path

    # --- features, settings, errors ----------------------------------------------------------------------------
    def feature(self, sha: str, model: str) -> np.ndarray | None:
        row = self._one("SELECT vector FROM features WHERE sha=%s AND model=%s", (sha, model))
        return np.frombuffer(row[0], np.float32) if row else None

    def put_feature(self, sha: str, model: str, vector: np.ndarray) -> None:
        self._write(lambda conn: conn.execute(
            "INSERT INTO features VALUES (%s,%s,%s) ON CONFLICT (sha, model) DO UPDATE SET vector=excluded.vector",
            (sha, model, _blob(vector))), [])  # fmt: skip

    def features_of(self, model: str, shas: list[str]) -> dict[str, np.ndarray]:
        if not shas:
            return {}
        rows = self._all("SELECT sha, vector FROM features WHERE model=%s AND sha = ANY(%s)", (model, shas))
        return {sha: np.frombuffer(blob, np.float32) for sha, blob in rows}

    def delete_features(self, prefix: str) -> int:
        sql = "DELETE FROM features WHERE starts_with(model, %s)"
        return int(self._write(lambda conn: conn.execute(sql, (prefix,)).rowcount, []))

    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key=%s", (key,))
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        if key in ("schema", "generation", "vector_dim"):
            raise ValueError(f"{key!r} is managed by the store")

        def write(conn: Any) -> None:
            if value is None:
                conn.execute("DELETE FROM meta WHERE key=%s", (key,))
            else:
                conn.execute(
                    "INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                    (key, value),
                )

        self._write(write, [])

    def record_error(self, path: str, reason: str) -> None:
        self.record_errors([(path, reason)])

    def record_errors(self, errors: list[tuple[str, str]]) -> None:
        if not errors:
            return
        now = time.time()
        sql = (
            "INSERT INTO errors VALUES (%s,%s,%s) "
            "ON CONFLICT (path) DO UPDATE SET reason=excluded.reason, at=excluded.at"
        )
        rows = [(p, r, now) for p, r in dict(errors).items()]
        self._write(lambda conn: conn.cursor().executemany(sql, rows), [])

    def errors(self) -> list[tuple[str, str]]:
        return [(p, r) for p, r in self._all("SELECT path, reason FROM errors ORDER BY path")]

    def errors_under(self, root: str) -> list[tuple[str, str]]:
        prefix = root.rstrip("/") + "/"
        return [(p, r) for p, r in self.errors() if p.startswith(prefix) or p == root]

    def clear_errors_under(self, root: str, keep: set[str]) -> None:
        stale = [path for path, _ in self.errors_under(root) if path not in keep]
        if stale:
            self._write(lambda conn: conn.execute("DELETE FROM errors WHERE path = ANY(%s)", (stale,)), [])

    # --- reading for search ------------------------------------------------------------------------------------
    def vector_index(self, exact_limit: int, nprobe: int = 0) -> PgVectorIndex:
        return PgVectorIndex(self, exact_limit)

    def vector_count(self) -> int:
        generation = self.generation
        if self._count[0] != generation:
            self._count = (generation, int(self._one("SELECT COUNT(*) FROM vectors")[0]))
        return self._count[1]

    def vector_rows(self, ids: list[int]) -> dict[int, tuple[str, str, int | None]]:
        if not ids:
            return {}
        rows = self._all("SELECT id, sha, kind, evidence_id FROM vectors WHERE id = ANY(%s)", (ids,))
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def vectors_by_id(self, ids: list[int]) -> dict[int, np.ndarray]:
        if not ids:
            return {}
        rows = self._all("SELECT id, vector::real[] FROM vectors WHERE id = ANY(%s)", (ids,))
        return {r[0]: np.asarray(r[1], np.float32) for r in rows}

    def iter_vectors(self, batch: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, float32 matrix) of every stored vector in id order, ``batch`` rows at a time."""
        last = 0
        while True:
            rows = self._all("SELECT id, vector::real[] FROM vectors WHERE id > %s ORDER BY id LIMIT %s", (last, batch))
            if not rows:
                return
            last = rows[-1][0]
            yield np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.float32)

    def nearest(self, query: np.ndarray, k: int, exact: bool) -> list[tuple[int, float]]:
        """(vector id, inner product) of the ``k`` nearest vectors, best first: candidates from the HNSW index of
        their float16 copies re-ranked by the stored float32 vectors, or (``exact``) by a scan of them all."""
        text = _vector_text(query)
        with self._conn() as conn, conn.transaction():
            if exact:
                conn.execute("SET LOCAL enable_indexscan = off")
                sql = "SELECT id, -(vector <#> %s::vector) AS s FROM vectors ORDER BY vector <#> %s::vector LIMIT %s"
            else:
                dim = self._dimension(conn)
                if dim is None:
                    return []
                conn.execute(f"SET LOCAL hnsw.ef_search = {int(min(MAX_EF_SEARCH, max(EF_SEARCH, k)))}")
                sql = (
                    "SELECT id, -(vector <#> %s::vector) AS s FROM (SELECT id, vector FROM vectors "
                    f"ORDER BY vector::halfvec({dim}) <#> %s::halfvec({dim}) LIMIT %s) AS c ORDER BY s DESC"
                )
            rows = conn.execute(sql, (text, text, k)).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows]

    def _dimension(self, conn: Any) -> int | None:
        if self._dim is None:
            row = conn.execute("SELECT value FROM meta WHERE key='vector_dim'").fetchone()
            self._dim = int(row[0]) if row else None
        return self._dim

    def lexical(self, match: str, limit: int) -> list[tuple[str, int, float]]:
        """(sha, evidence id, score; lower is better) of evidence matching an FTS5 expression, best first."""
        query = tsquery(match)
        if query is None:
            return []
        rows = self._all(
            "SELECT sha, id, -ts_rank(words, q) AS r FROM evidence, CAST(%s AS tsquery) q WHERE words @@ q "
            "ORDER BY r, id LIMIT %s",
            (query, limit),
        )
        return [(r[0], int(r[1]), float(r[2])) for r in rows]

    def named(self, match: str, limit: int) -> list[FileRow]:
        query = tsquery(match)
        if query is None:
            return []
        rows = self._all(
            "SELECT id, path, sha, size, mtime_ns FROM files, CAST(%s AS tsquery) q WHERE names @@ q "
            "ORDER BY ts_rank(names, q) DESC, id LIMIT %s",
            (query, limit),
        )
        return [FileRow(*row) for row in rows]

    def count_matches(self, match: str, cap: int) -> int:
        query = tsquery(match)
        if query is None:
            return 0
        sql = "SELECT count(*) FROM (SELECT 1 FROM evidence WHERE words @@ CAST(%s AS tsquery) LIMIT %s) AS m"
        return int(self._one(sql, (query, cap))[0])

    def evidence_count(self) -> int:
        return int(self._one("SELECT coalesce(max(id), 0) FROM evidence")[0])

    _EVIDENCE = 'SELECT kind, text, score, start, "end", page FROM evidence'

    def evidence_by_id(self, ids: list[int]) -> dict[int, Evidence]:
        if not ids:
            return {}
        rows = self._all(
            'SELECT id, kind, text, score, start, "end", page, box FROM evidence WHERE id = ANY(%s)', (ids,)
        )
        return {r[0]: Evidence(r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]) if r[7] else None) for r in rows}

    def top_evidence(self, sha: str, kind: str, limit: int = 3) -> list[Evidence]:
        rows = self._all(f"{self._EVIDENCE} WHERE sha=%s AND kind=%s ORDER BY ord LIMIT %s", (sha, kind, limit))
        return [Evidence(*r) for r in rows]

    def evidence_group(self, evidence_id: int, limit: int = 3) -> list[Evidence]:
        rows = self._all(
            'SELECT e.kind, e.text, e.score, e.start, e."end", e.page FROM evidence e JOIN evidence first '
            "ON first.id = %s AND e.sha = first.sha AND e.kind = first.kind "
            'AND e.start IS NOT DISTINCT FROM first.start AND e."end" IS NOT DISTINCT FROM first."end" '
            "AND e.ord >= first.ord ORDER BY e.ord LIMIT %s",
            (evidence_id, limit),
        )
        return [Evidence(*r) for r in rows]

    def shot_evidence(self, sha: str, shot: int, kind: str, limit: int = 3) -> list[Evidence]:
        rows = self._all(
            f"{self._EVIDENCE} WHERE sha=%s AND page=%s AND kind=%s ORDER BY ord LIMIT %s", (sha, shot, kind, limit)
        )
        return [Evidence(*r) for r in rows]

    def stats(self) -> dict[str, Any]:
        with self.reading() as conn:
            per_modality = dict(conn.execute(
                "SELECT c.modality, COUNT(*) FROM files f JOIN contents c ON c.sha=f.sha GROUP BY c.modality"
            ).fetchall())  # fmt: skip
            models: set[str] = set()
            for (text,) in conn.execute("SELECT DISTINCT models FROM contents"):
                models.update(json.loads(text).values())

            def count(table: str) -> int:
                return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

            return {
                "files": sum(per_modality.values()),
                "per_modality": per_modality,
                "contents": count("contents"),
                "evidence": count("evidence"),
                "vectors": count("vectors"),
                "errors": count("errors"),
                "models": sorted(models),
                "store_bytes": int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]),
            }


class PgVectorIndex:
    """The vector search of a Postgres store: the database answers (exactly up to ``exact_limit`` vectors, by
    its HNSW index above), so every replica sees every write at once and keeps nothing in memory."""

    def __init__(self, store: PostgresStore, exact_limit: int):
        self.store = store
        self.exact_limit = min(exact_limit, EXACT_LIMIT)

    @property
    def size(self) -> int:
        return self.store.vector_count()

    @property
    def approximate(self) -> bool:
        return self.size > self.exact_limit

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        if k <= 0:
            return []
        return self.store.nearest(np.asarray(query, np.float32).reshape(-1), k, exact=not self.approximate)

    def prepare(self) -> None:
        """Nothing to build: the database keeps its index up to date."""

    def refresh(self) -> None:
        """Nothing to follow: every query reads the database."""

    def wait_for_rebuild(self) -> None:
        """No background rebuild here."""


def _cannot_write(exc: BaseException) -> bool:
    """A failure of the connection or of the server's resources (disk full, shut down), not of one transaction."""
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith(("08", "53", "57P"))


def _operational() -> tuple[type[BaseException], ...]:
    import psycopg
    import psycopg_pool

    return (psycopg.OperationalError, psycopg_pool.PoolTimeout)
