"""The Python API: a collection of indexed media in one store directory.

    from polymodal import Collection
    c = Collection("~/.polymodal-store")
    c.index("~/notes")
    for hit in c.search("a cat on a sofa").hits:
        print(hit.path, hit.why[0].text)

The CLI, the HTTP API and the web page call only this.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polymodal.analysis import Analyzer, Evidence
from polymodal.config import Settings
from polymodal.engine import indexer_class
from polymodal.errors import InputNotFound
from polymodal.index import Indexer, IndexReport, Progress, VideoProgress, real_path
from polymodal.models.base import loaded_models
from polymodal.search import Query, Searcher, SearchResult
from polymodal.store.base import Store, is_url, open_store
from polymodal.understand import Understanding


class ItemNotFound(KeyError):
    def __str__(self) -> str:
        return f"no item {self.args[0]!r} in this collection"


@dataclass
class Item:
    id: int
    path: str
    sha256: str
    modality: str
    format: str
    size: int
    meta: dict[str, Any]
    models: dict[str, str]
    notes: list[str]
    evidence: list[Evidence]

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.id,
            "path": self.path,
            "sha256": self.sha256,
            "modality": self.modality,
            "format": self.format,
            "size": self.size,
            "meta": self.meta,
            "models": self.models,
            "notes": self.notes,
            "evidence": [e.to_dict() for e in self.evidence],
        }


@dataclass
class ItemSummary:
    id: int
    path: str
    modality: str
    format: str
    size: int
    meta: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.id,
            "path": self.path,
            "modality": self.modality,
            "format": self.format,
            "size": self.size,
            "meta": self.meta,
        }


class Collection(Understanding):
    def __init__(
        self,
        store: str | Path | None = None,
        settings: Settings | None = None,
        create: bool = True,
        readonly: bool = False,
    ):
        """``create``: make the store when it is missing; ``readonly``: never write to it (searching, showing).
        A store on a read-only or full disk opens read-only by itself."""
        settings = settings or Settings.from_env()
        if store is not None:
            settings = settings.with_(store=store if is_url(store) else Path(store).expanduser())
        self.settings = settings
        self.store: Store = open_store(settings.store, create=create, readonly=readonly, cache=settings.cache)
        self.analyzer = Analyzer(settings)
        self.analyzer.aligner = _stored_aligner(self.store, self.analyzer)
        self._index = self.store.vector_index(settings.exact_search_limit, settings.search_nprobe)

    def index(
        self,
        *paths: str | Path,
        progress: Progress | None = None,
        aligner: str | Path | None = None,
        video_progress: VideoProgress | None = None,
        follow_links: bool = False,
        engine: str = "local",
        ray_address: str | None = None,
        workers: int | None = None,
    ) -> IndexReport:
        """Index files and folders; re-running it only does what changed. ``progress`` is told of each file,
        ``video_progress`` how far into a video the analysis is. ``follow_links``: index the targets of links
        that lead out of the folders given (skipped by default, with a note).

        ``aligner``: a trained aligner (folder, or the id of one this store already has; "none" removes it)
        that the collection uses from now on; stored items are re-embedded from their stored features.

        ``engine``: "local" (this process) or "ray" (actors on the Ray cluster at ``ray_address``, ``workers`` of
        them; by default one per CPU of the cluster): the same items, evidence and vectors either way.
        """
        if aligner is not None:
            self.set_aligner(aligner)
        if engine == "local":
            indexer = Indexer(self.store, self.analyzer, fts_text, video_progress, follow_links)
        else:
            indexer = indexer_class(engine)(
                self.store, self.analyzer, fts_text, video_progress, follow_links, address=ray_address, workers=workers
            )
        report = indexer.index([Path(p) for p in paths], progress)
        if aligner is not None and report.stopped is None:
            self.reembed()  # items outside ``paths`` move to the new space too
        from polymodal import spaces

        spaces.index_report(self.store, self.settings, report)  # vectors of the open-vocabulary spaces, if any
        self._index.prepare()  # a large store's search snapshot is built now, not by the first search
        return report

    def set_aligner(self, aligner: str | Path | None) -> None:
        """Use a trained aligner for indexing and search (``None`` / "none": the label bridge alone)."""
        from polymodal.space import aligner as aligners

        if aligner is None or str(aligner).lower() == "none":
            self.analyzer.aligner = None
            self.store.set_meta(aligners.META_KEY, None)
            return
        installed = aligners.install(aligner, self.store.directory)
        installed.check(self.analyzer)
        self.analyzer.aligner = installed
        self.store.set_meta(aligners.META_KEY, installed.id)

    def reembed(self) -> int:
        """Re-embed every stored item whose vectors are stale (no re-analysis); returns how many."""
        stale = [sha for sha, modality, models in self.store.content_states()
                 if models.get("text") != self.analyzer.embedding_id(modality)]  # fmt: skip
        for sha in stale:
            analysis = self.store.load_analysis(sha)
            if analysis is not None:
                self.analyzer.embed(analysis)
                self.store.replace_vectors(sha, analysis)
        return len(stale)

    def search(
        self,
        text: str | None = None,
        *,
        image: str | Path | bytes | None = None,
        audio: str | Path | bytes | None = None,
        k: int = 10,
        offset: int = 0,
        modality: str | None = None,
        path: str | None = None,
        person: str | None = None,
        language: str | None = None,
    ) -> SearchResult:
        """The ``k`` most relevant items above the cut-off after the first ``offset`` (``result.more``: there are
        more), and the best few below it (``result.weaker``). ``language``: of a spoken query ("zh"), else
        detected."""
        query = Query(text, _as_source(image), _as_source(audio), k, offset, modality, path, person, language)
        return self.searcher().search(query)

    def searcher(self) -> Searcher:
        """The collection's search engine (``Collection.search`` is the usual way in)."""
        return Searcher(self.store, self._index, self.analyzer, fts_text)

    def item(self, ref: int | str) -> Item:
        """An item by id or path, with everything known about it."""
        row = self._file_row(ref)
        analysis = self.store.load_analysis(row[2])
        if analysis is None:
            raise ItemNotFound(ref)
        return Item(
            row[0],
            row[1],
            row[2],
            analysis.modality,
            analysis.format,
            row[3],
            analysis.meta,
            analysis.models,
            analysis.notes,
            analysis.evidence,
        )

    def items(
        self, modality: str | None = None, offset: int = 0, limit: int = 50
    ) -> tuple[int, list[ItemSummary]]:
        """(total, one page of items), newest first, optionally of one modality."""
        total, rows = self.store.items(modality, offset, limit)
        return total, [ItemSummary(r.id, r.path, r.modality, r.format, r.size, r.meta) for r in rows]

    def similar(self, ref: int | str, k: int = 8) -> SearchResult:
        """Items like this one: the item searched as a query by example (its vector, words, looks or sound), as a
        query image or recording is, itself and its copies left out; the nearest however near (no cut-off)."""
        row = self._file_row(ref)
        analysis = self.store.load_analysis(row[2])
        if analysis is None or not analysis.vectors:
            raise ItemNotFound(ref)
        return self.searcher().search(Query(k=k, example=analysis, exclude=row[2]))

    def remove(self, ref: int | str) -> None:
        self.store.remove_file(self._file_row(ref)[1])

    def status(self) -> dict[str, Any]:
        stats = self.store.stats()
        stats["store"] = self.store.location
        stats["read_only"] = not self.store.writable
        stats["models_loaded"] = loaded_models()
        stats["recent_errors"] = [{"path": p, "reason": r} for p, r in self.store.errors()[:20]]
        return stats

    def speak(self, text: str, out: str | Path | None = None, **options: Any) -> Any:
        """``text`` as speech (:func:`polymodal.tasks.speak.speak`; ``voice=``, ``language=``), written to ``out``."""
        from polymodal.tasks.speak import speak

        return speak(text, out, settings=self.settings, **options)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _file_row(self, ref: int | str) -> tuple[int, str, str, int]:
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            row = self.store.file_by_id(int(ref))
        else:  # keys are real paths (a followed link's: its own absolute path)
            for path in (real_path(ref), str(Path(ref).expanduser().absolute())):
                row = self.store.file(path)
                if row is not None:
                    break
        if row is None:
            raise ItemNotFound(ref)
        return row.id, row.path, row.sha, row.size


def fts_text(text: str) -> str:
    """Text as the full-text index sees it: Chinese is segmented into words first."""
    from polymodal.media.text import segment_for_search

    return segment_for_search(text)


def _stored_aligner(store: Store, analyzer: Analyzer) -> Any:
    """The aligner this store's collection uses (its meta table names it), or None."""
    from polymodal.space import aligner as aligners

    name = store.get_meta(aligners.META_KEY)
    if name is None:
        return None
    try:
        found = aligners.Aligner.load(aligners.aligners_dir(store.directory) / name)
        found.check(analyzer)
        return found
    except aligners.AlignerError as exc:
        warnings.warn(f"the collection's aligner is not used: {exc}", stacklevel=3)
        return None


def _as_source(value: str | Path | bytes | None) -> Path | bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise InputNotFound(f"query file not found: {value}")
    return path
