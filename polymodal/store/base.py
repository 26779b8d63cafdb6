"""The store's interface: what the collection, the indexer, search and the engines may ask of a store.

Two backends implement it: :class:`polymodal.store.sqlite.SqliteStore` (one directory, the embedded default) and
:class:`polymodal.store.postgres.PostgresStore` (PostgreSQL + pgvector, shared by many processes and machines).
Nothing outside ``polymodal/store/`` writes SQL. :func:`open_store` picks the backend from what it is given: a
``postgresql://`` URL or a directory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from polymodal.analysis import Analysis, Evidence
from polymodal.config import as_url, is_url  # where a store's location is read (collection, cli use them from here)


class StoreError(RuntimeError):
    """The store is missing, unreadable or from an incompatible version."""


class StoreUnavailable(StoreError):
    """A write to the store could not be made (disk full, read-only, locked); nothing of it was kept."""


class SchemaTooNew(StoreError):
    """The store was written by a newer polymodal: this one must not read or write it."""


@dataclass
class FileRow:
    id: int
    path: str
    sha: str
    size: int
    mtime_ns: int


@dataclass
class ItemRow:
    """One file with its content's kind, for listings."""

    id: int
    path: str
    modality: str
    format: str
    size: int
    meta: dict[str, Any]


def too_new(where: object, found: int, supported: int) -> SchemaTooNew:
    return SchemaTooNew(
        f"the store {where} has schema version {found}, newer than this polymodal reads ({supported}): "
        "upgrade polymodal to use it (it was left untouched)"
    )


@runtime_checkable
class VectorSearch(Protocol):
    """Nearest neighbours over a store's vectors (the store keeps the vectors; this finds them)."""

    @property
    def size(self) -> int: ...

    @property
    def approximate(self) -> bool: ...

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]: ...

    def prepare(self) -> None: ...


@runtime_checkable
class Store(Protocol):
    """Files (by path), contents (analyses by SHA-256), evidence with its full-text index, vectors with the id of
    the model that made them, cached features, errors, settings (meta), thumbnails; one transaction per file."""

    directory: Path  # local files of this store (thumbnails, aligners, keys): the store itself for SQLite

    @property
    def writable(self) -> bool: ...

    @property
    def generation(self) -> int: ...

    @property
    def location(self) -> str: ...

    def close(self) -> None: ...

    # files and contents
    def file(self, path: str) -> FileRow | None: ...
    def file_by_id(self, file_id: int) -> FileRow | None: ...
    def files_under(self, root: str) -> list[FileRow]: ...
    def files_for(self, shas: list[str]) -> dict[str, list[FileRow]]: ...
    def items(self, modality: str | None, offset: int, limit: int) -> tuple[int, list[ItemRow]]: ...
    def content_state(self, sha: str) -> tuple[str, dict[str, str]] | None: ...
    def content_states(self) -> list[tuple[str, str, dict[str, str]]]: ...
    def content_info(self, shas: list[str]) -> dict[str, dict[str, Any]]: ...
    def link_file(self, path: str, sha: str, size: int, mtime_ns: int) -> None: ...
    def remove_file(self, path: str) -> bool: ...
    def save(
        self, path: str, sha: str, size: int, mtime_ns: int, analysis: Analysis, fts_text: Callable[[str], str]
    ) -> None: ...
    def replace_vectors(self, sha: str, analysis: Analysis) -> None: ...
    def load_analysis(self, sha: str) -> Analysis | None: ...
    def clean_orphans(self) -> int: ...
    def thumbnail(self, sha: str, shot: int) -> Path | None: ...

    # features, settings, errors
    def feature(self, sha: str, model: str) -> np.ndarray | None: ...
    def put_feature(self, sha: str, model: str, vector: np.ndarray) -> None: ...
    def features_of(self, model: str, shas: list[str]) -> dict[str, np.ndarray]: ...
    def delete_features(self, prefix: str) -> int: ...
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str | None) -> None: ...
    def record_error(self, path: str, reason: str) -> None: ...
    def record_errors(self, errors: list[tuple[str, str]]) -> None: ...
    def errors(self) -> list[tuple[str, str]]: ...
    def clear_errors_under(self, root: str, keep: set[str]) -> None: ...

    # reading for search
    def vector_index(self, exact_limit: int, nprobe: int) -> VectorSearch: ...
    def vector_rows(self, ids: list[int]) -> dict[int, tuple[str, str, int | None]]: ...
    def vectors_by_id(self, ids: list[int]) -> dict[int, np.ndarray]: ...
    def vector_count(self) -> int: ...
    def lexical(self, match: str, limit: int) -> list[tuple[str, int, float]]: ...
    def named(self, match: str, limit: int) -> list[FileRow]: ...
    def count_matches(self, match: str, cap: int) -> int: ...
    def evidence_count(self) -> int: ...
    def evidence_by_id(self, ids: list[int]) -> dict[int, Evidence]: ...
    def top_evidence(self, sha: str, kind: str, limit: int = 3) -> list[Evidence]: ...
    def evidence_group(self, evidence_id: int, limit: int = 3) -> list[Evidence]: ...
    def shot_evidence(self, sha: str, shot: int, kind: str, limit: int = 3) -> list[Evidence]: ...
    def stats(self) -> dict[str, Any]: ...
    def reading(self) -> AbstractContextManager[Any]: ...


def open_store(location: str | Path, create: bool = True, readonly: bool = False, cache: Path | None = None) -> Store:
    """The store at ``location``: ``postgresql://user@host:port/db`` opens PostgreSQL (its local files under
    ``cache``), anything else is a store directory (SQLite)."""
    if is_url(location):
        from polymodal.store.postgres import PostgresStore

        return PostgresStore(as_url(location), create=create, readonly=readonly, cache=cache)
    from polymodal.store.sqlite import SqliteStore

    return SqliteStore(Path(location), create=create, readonly=readonly)


def batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
