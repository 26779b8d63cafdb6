"""Open-vocabulary spaces beside the bundled one: an image-text model (CLIP, SigLIP, Chinese-CLIP) over a
collection's images and an audio-text model (CLAP) over its recordings, when the user has added one.

A space is recorded in the store's meta (``open_vocab:<kind>``: the directory, the model's id and the SHA-256 of
each of its files) by ``polymodal models add``; a ``POLYMODAL_MODEL_PATH_IMAGE_TEXT`` / ``..._AUDIO_TEXT``
setting names one for every collection instead (it wins over the recorded one). Each item's vector in a space is
kept in the store's ``features`` table under ``open:<kind>:<model id>``: the bundled vectors, the vector index and
the stored analyses are never touched, so removing a space gives back exactly what the collection did before.

- Indexing (:func:`index_missing`) embeds the images (or recordings) of the collection that have no vector of the
  space yet, re-reading only those files (a reduced JPEG decode, as the pipeline's own), in batches; the bundled
  models are not run.
- Search (:func:`extra_space_scores`) embeds the query in every space (the text tower's vectors are cached per
  query text) and gives, for the items that stand out, how far their cosine lies above the space's mean for this
  query, in standard deviations: one more relevance feature (``ranking``'s ``open``), on the same scale whatever
  the model, since CLIP, SigLIP and CLAP cosines live on different scales.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.config import Settings
from polymodal.models.base import ModelError
from polymodal.models.open_vocab import KINDS, OpenVocabError, OpenVocabModel, detect_layout, licence

log = logging.getLogger("polymodal.spaces")
META_PREFIX = "open_vocab:"
MODALITY = {"image-text": "image", "audio-text": "audio"}
BATCH = 8  # images (or recordings) per tower call
# Items of a space that join a query's candidates: the nearest this many, and only above the space's mean.
CANDIDATES = 200
STANDOUT_CAP = 8.0  # standard deviations: one item far out in a tiny collection cannot dominate everything
Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class Space:
    kind: str
    directory: Path
    model_id: str
    hashes: dict[str, str]
    source: str  # "collection" (models add) or "setting" (POLYMODAL_MODEL_PATH_...)

    @property
    def feature_key(self) -> str:
        return f"open:{self.kind}:{self.model_id}"

    @property
    def modality(self) -> str:
        return MODALITY[self.kind]


# --- which spaces a collection has -------------------------------------------------------------------------------
def spaces_of(store: Any, settings: Settings) -> list[Space]:
    """The open-vocabulary spaces in use: a setting's model for a kind, else the one the store records."""
    found = []
    for kind in KINDS:
        setting = settings.model_paths.get(kind)
        if setting:
            model = load(kind, setting, settings.threads)
            found.append(Space(kind, model.layout.directory, model.id, model.hashes, "setting"))
            continue
        record = recorded(store, kind)
        if record is not None:
            found.append(Space(kind, Path(record["path"]), record["id"], record["files"], "collection"))
    return found


def recorded(store: Any, kind: str) -> dict[str, Any] | None:
    text = store.get_meta(META_PREFIX + kind)
    return None if text is None else json.loads(text)


def add_space(store: Any, settings: Settings, kind: str, directory: str | Path) -> Space:
    """Load and check a model directory, and record it as the collection's ``kind`` space (replacing one)."""
    model = load(kind, directory, settings.threads, fresh=True)
    model.encode_text(["a test"])  # load both towers now: a broken directory is said here, not at the first search
    if kind == "image-text":
        from PIL import Image

        model.encode_images([Image.new("RGB", (32, 32))])
    else:
        model.encode_audio([np.zeros(model.sample_rate // 10, np.float32)])
    layout = model.layout
    record = {
        "path": str(layout.directory),
        "id": model.id,
        "layout": layout.layout,
        "architecture": layout.architecture,
        "files": model.hashes,
        "bytes": layout.size(),
        "licence": licence(layout.directory),
        "added": time.time(),
    }
    store.set_meta(META_PREFIX + kind, json.dumps(record))
    return Space(kind, layout.directory, model.id, model.hashes, "collection")


def remove_space(store: Any, kind: str) -> bool:
    """Stop using the collection's ``kind`` space and delete its vectors: the collection is as it was before."""
    if kind not in KINDS:
        raise OpenVocabError(f"unknown model kind {kind!r}; use one of: {', '.join(KINDS)}")
    if recorded(store, kind) is None:
        return False
    store.set_meta(META_PREFIX + kind, None)
    _delete_vectors(store, f"open:{kind}:")
    _MATRICES.clear()
    return True


def _delete_vectors(store: Any, prefix: str) -> None:
    """Delete the stored vectors whose feature key starts with ``prefix`` (every model of one space). A store
    that cannot keeps them, unused: search reads a space's vectors only while the space is recorded."""
    from polymodal.store.sqlite import SqliteStore

    delete = getattr(store, "delete_features", None)
    if delete is not None:  # a store interface with the method (asked for)
        delete(prefix)
    elif isinstance(store, SqliteStore):
        with store.transaction() as db:
            db.execute("DELETE FROM features WHERE substr(model, 1, ?) = ?", (len(prefix), prefix))
    else:
        log.info("the vectors of %s are kept in %s, unused", prefix.rstrip(":"), store.directory)


_MODELS: dict[tuple[str, str, int], OpenVocabModel] = {}
_MODELS_LOCK = threading.Lock()


def load(kind: str, directory: str | Path, threads: int, expected: dict[str, str] | None = None,
         fresh: bool = False) -> OpenVocabModel:  # fmt: skip
    """The model in ``directory`` (one per process; its files hashed once per file version)."""
    layout = detect_layout(directory, kind)
    key = (kind, str(layout.directory), threads)
    with _MODELS_LOCK:
        model = None if fresh else _MODELS.get(key)
        if model is not None and model.hashes != layout.hashes():
            model = None  # the files changed: hashed and loaded again
        if model is None:
            model = OpenVocabModel(layout, threads)
            _MODELS[key] = model
    if expected is not None and expected != model.hashes:
        OpenVocabModel(layout, threads, expected)  # raises, naming the files that changed
    return model


def model_of(space: Space, settings: Settings) -> OpenVocabModel:
    return load(space.kind, space.directory, settings.threads, space.hashes)


# --- indexing -------------------------------------------------------------------------------------------------
def index_missing(store: Any, settings: Settings, progress: Progress | None = None) -> dict[str, Any]:
    """Embed, in every space, the items that have no vector of it yet. Returns, per kind, how many were embedded
    and the files that could not be read ((path, reason) pairs)."""
    report: dict[str, Any] = {}
    for space in spaces_of(store, settings):
        report[space.kind] = embed_space(store, settings, space, progress)
    return report


def embed_space(store: Any, settings: Settings, space: Space, progress: Progress | None = None) -> dict[str, Any]:
    model = model_of(space, settings)
    items = _items(store, space.modality)
    have = _vectors(store, space.feature_key, [sha for sha, _ in items])
    missing = [(sha, paths) for sha, paths in items if sha not in have]
    errors: list[tuple[str, str]] = []
    done = 0
    started = time.perf_counter()
    batches = [missing[start : start + BATCH] for start in range(0, len(missing), BATCH)]
    with ThreadPoolExecutor(max(1, settings.threads), thread_name_prefix="polymodal-open-vocab") as pool:

        def read(batch: list[tuple[str, list[str]]]) -> list[Any]:
            return [pool.submit(_read, paths, space, model, settings) for _, paths in batch]

        ahead = read(batches[0]) if batches else []
        for number, batch in enumerate(batches):
            decoded = [future.result() for future in ahead]
            ahead = read(batches[number + 1]) if number + 1 < len(batches) else []  # decoded while the tower runs
            pairs = list(zip(batch, decoded, strict=True))
            good = [(sha, media) for (sha, _), (media, _) in pairs if media is not None]
            errors += [(paths[0], why) for (_, paths), (media, why) in pairs if media is None]
            if good:
                media = [m for _, m in good]
                vectors = model.encode_images(media) if space.kind == "image-text" else model.encode_audio(media)
                for (sha, _), vector in zip(good, vectors, strict=True):
                    store.put_feature(sha, space.feature_key, vector)
            done += len(batch)
            if progress:
                progress(done, len(missing))
    _MATRICES.clear()
    return {"embedded": done - len(errors), "errors": errors, "seconds": round(time.perf_counter() - started, 2)}


def _items(store: Any, modality: str) -> list[tuple[str, list[str]]]:
    """(sha, its paths) of every stored item of ``modality``."""
    paths: dict[str, list[str]] = {}
    for row in store.files_under("/"):
        paths.setdefault(row.sha, []).append(row.path)
    shas = list(paths)
    kept: list[tuple[str, list[str]]] = []
    for start in range(0, len(shas), 500):
        chunk = shas[start : start + 500]
        info = store.content_info(chunk)
        kept += [(sha, sorted(paths[sha])) for sha in chunk if info.get(sha, {}).get("modality") == modality]
    return kept


def _read(paths: list[str], space: Space, model: OpenVocabModel, settings: Settings) -> tuple[Any, str]:
    """The decoded image (reduced, as the indexer decodes it) or recording of an item, from the first of its
    paths that reads; (None, why) when none does."""
    from polymodal.media.errors import MediaError

    why = "no file"
    for path in paths:
        try:
            if space.kind == "image-text":
                from polymodal.media.image import open_image

                return open_image(Path(path), settings.max_image_pixels, draft_to=256), ""
            from polymodal.media.audio import decode_audio

            return decode_audio(Path(path), model.sample_rate, settings.max_audio_seconds), ""
        except (MediaError, OSError) as exc:
            why = str(exc)
    return None, why


# --- search -----------------------------------------------------------------------------------------------------
@dataclass
class _Matrix:
    generation: int
    shas: list[str]
    matrix: np.ndarray


_MATRICES: dict[tuple[str, str], _Matrix] = {}
_MATRICES_LOCK = threading.Lock()


def stored(store: Any, space: Space) -> tuple[list[str], np.ndarray]:
    """(shas, unit vectors) of the items of a space, read again only after the store changed."""
    key = (str(store.directory), space.feature_key)
    generation = store.generation
    with _MATRICES_LOCK:
        cached = _MATRICES.get(key)
    if cached is not None and cached.generation == generation:
        return cached.shas, cached.matrix
    items = [sha for sha, _ in _items(store, space.modality)]
    vectors = _vectors(store, space.feature_key, items)
    shas = [sha for sha in items if sha in vectors]
    matrix = np.stack([vectors[sha] for sha in shas]).astype(np.float32) if shas else np.zeros((0, 1), np.float32)
    with _MATRICES_LOCK:
        _MATRICES[key] = _Matrix(generation, shas, matrix)
    return shas, matrix


def _vectors(store: Any, key: str, shas: list[str]) -> dict[str, np.ndarray]:
    """sha -> the vector stored under feature ``key``, for those of ``shas`` that have one: one query on SQLite
    (a store interface method for it is asked for), one lookup per item elsewhere."""
    from polymodal.store.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        wanted = set(shas)
        rows = store.db.execute("SELECT sha, vector FROM features WHERE model=?", (key,)).fetchall()
        return {sha: np.frombuffer(blob, np.float32) for sha, blob in rows if sha in wanted}
    found = {sha: store.feature(sha, key) for sha in shas}
    return {sha: vector for sha, vector in found.items() if vector is not None}


def extra_space_scores(store: Any, settings: Settings, query: Any) -> dict[str, float]:
    """item sha -> how far its cosine with ``query`` (a :class:`polymodal.search.Query`) stands above the mean of
    its space's items, in standard deviations (only items above the mean, among the nearest CANDIDATES); empty
    when the collection has no open-vocabulary space."""
    scores: dict[str, float] = {}
    for space in spaces_of(store, settings):
        vector = _query_vector(space, settings, query)
        if vector is None:
            continue
        shas, matrix = stored(store, space)
        for sha, value in standouts(shas, matrix, vector).items():
            scores[sha] = max(value, scores.get(sha, 0.0))
    return scores


def similar_scores(store: Any, settings: Settings, sha: str) -> dict[str, float]:
    """:func:`extra_space_scores` for an item's own vector as the query (similar items), the item left out."""
    scores: dict[str, float] = {}
    for space in spaces_of(store, settings):
        vector = store.feature(sha, space.feature_key)
        if vector is None:
            continue
        shas, matrix = stored(store, space)
        found = standouts(shas, matrix, vector)
        found.pop(sha, None)
        scores.update(found)
    return scores


def standouts(shas: list[str], matrix: np.ndarray, vector: np.ndarray) -> dict[str, float]:
    """sha -> (cosine - mean) / std over the space, for the nearest CANDIDATES items above the mean."""
    if len(shas) < 2 or matrix.shape[1] != vector.shape[0]:
        return {}
    cosines = matrix @ vector.astype(np.float32)
    spread = float(cosines.std())
    if spread < 1e-6:
        return {}
    standing = (cosines - cosines.mean()) / spread
    nearest = np.argsort(-cosines)[:CANDIDATES]
    return {shas[i]: min(float(standing[i]), STANDOUT_CAP) for i in nearest if standing[i] > 0}


def _query_vector(space: Space, settings: Settings, query: Any) -> np.ndarray | None:
    """The query in a space: its text through the text tower, its image (image-text) or recording (audio-text)
    through the other; both: their normalised sum. None when the query has nothing this space reads."""
    model = model_of(space, settings)
    parts = []
    media = query.image if space.kind == "image-text" else query.audio
    if media is not None:
        parts.append(_media_vector(model, space, media, settings))
    if query.text and query.text.strip():
        parts.append(model.encode_text([query.text.strip()])[0])
    if not parts:
        return None
    total = np.sum(parts, axis=0)
    return total / max(float(np.linalg.norm(total)), 1e-12)


def _media_vector(model: OpenVocabModel, space: Space, media: Path | bytes, settings: Settings) -> np.ndarray:
    if space.kind == "image-text":
        from polymodal.media.image import open_image

        return model.encode_images([open_image(media, settings.max_image_pixels, draft_to=256)])[0]
    from polymodal.media.audio import decode_audio

    return model.encode_audio([decode_audio(media, model.sample_rate, settings.max_audio_seconds)])[0]


# --- zero-shot classification ---------------------------------------------------------------------------------
def space_for_settings(settings: Settings, kind: str) -> Space | None:
    """The ``kind`` space of the collection the settings name (when its store exists), or of a setting."""
    from polymodal.store.sqlite import SqliteStore, StoreError

    if settings.model_paths.get(kind):
        model = load(kind, settings.model_paths[kind], settings.threads)
        return Space(kind, model.layout.directory, model.id, model.hashes, "setting")
    if not (Path(settings.store) / "polymodal.sqlite").is_file():
        return None
    try:
        store = SqliteStore(settings.store, create=False, readonly=True)
    except StoreError:
        return None
    try:
        return next((s for s in spaces_of(store, settings) if s.kind == kind), None)
    finally:
        store.close()


def zero_shot(
    settings: Settings, modality: str, media: Path | bytes, prompts: list[str]
) -> tuple[np.ndarray, float, str] | None:
    """(cosines of the item with each prompt, the model's logit scale, its id) in the open-vocabulary space that
    reads ``modality`` ("image" or "audio"), or None when there is none."""
    kind = next((k for k, m in MODALITY.items() if m == modality), None)
    space = None if kind is None else space_for_settings(settings, kind)
    if space is None:
        return None
    model = model_of(space, settings)
    item = _media_vector(model, space, media, settings)
    return model.encode_text(prompts) @ item, model.logit_scale, model.id


def index_report(store: Any, settings: Settings, report: Any) -> None:
    """After an index run: embed what the open-vocabulary spaces miss; what could not be read, or a model that
    cannot be used, joins the run's ``errors`` (an :class:`polymodal.index.IndexReport`)."""
    if report.stopped is not None or not store.writable:
        return
    try:
        for kind, done in index_missing(store, settings).items():
            report.errors += [(path, f"not embedded in the {kind} space: {why}") for path, why in done["errors"]]
    except (OpenVocabError, ModelError) as exc:
        report.errors.append((str(settings.store), f"open-vocabulary space not updated: {exc}"))


def unload() -> None:
    """Drop the loaded open-vocabulary models (their memory goes back once collected); the next use loads again."""
    with _MODELS_LOCK:
        _MODELS.clear()
    with _MATRICES_LOCK:
        _MATRICES.clear()


def environment_for(directories: list[Path]) -> dict[str, str]:
    """``POLYMODAL_MODEL_PATH_IMAGE_TEXT`` / ``..._AUDIO_TEXT`` settings naming these model directories, each kind
    told from its files (what the evaluations' ``--with-models DIR`` sets)."""
    found: dict[str, str] = {}
    for directory in directories:
        errors = []
        for kind in KINDS:
            try:
                detect_layout(directory, kind)
            except OpenVocabError as exc:
                errors.append(str(exc))
                continue
            found["POLYMODAL_MODEL_PATH_" + kind.upper().replace("-", "_")] = str(Path(directory).resolve())
            break
        else:
            raise OpenVocabError(f"{directory}: not an image-text or audio-text model ({'; '.join(errors)})")
    return found


OPEN = "open-vocabulary"  # evidence kind of a hit's standing in an open-vocabulary space


def evidence(standing: float) -> list[Any]:
    """What a hit's standing in an open-vocabulary space says, as evidence (none when it has none)."""
    from polymodal.analysis import Evidence

    if standing <= 0:
        return []
    return [Evidence(OPEN, f"{standing:.1f} standard deviations above the mean in the model's space")]
