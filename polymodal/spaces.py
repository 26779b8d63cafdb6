"""Open-vocabulary spaces beside the bundled one: an image-text model (CLIP, SigLIP, Chinese-CLIP) over a
collection's images and an audio-text model (CLAP) over its recordings, when the user has added one.

A space is recorded in the store's meta (``open_vocab:<kind>``: the directory, the model's id and the SHA-256 of
each of its files) by ``polymodal models add``; a ``POLYMODAL_MODEL_PATH_IMAGE_TEXT`` / ``..._AUDIO_TEXT``
setting names one for every collection instead (it wins over the recorded one). Each item's vector in a space is
kept in the store's ``features`` table under ``open:<kind>:<model id>``: the bundled vectors, the vector index and
the stored analyses are never touched, so removing a space gives back exactly what the collection did before.

- Indexing (:func:`index_missing`) embeds the images (or recordings) of the collection that have no vector of the
  space yet, re-reading only those files (a reduced JPEG decode, as the pipeline's own), in batches; the bundled
  models are not run. A video joins the image-text space with one vector per shot, from the shot thumbnails the
  store already keeps (the video is not read again); it matches at its best shot, which its hit names.
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
MODALITY = {"image-text": "image", "audio-text": "audio"}  # what a query or a classified file of the space is
# What a space embeds: a video's shots (their stored thumbnails) join the image-text space, one vector per shot.
MODALITIES = {"image-text": ("image", "video"), "audio-text": ("audio",)}
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

    @property
    def modalities(self) -> tuple[str, ...]:
        return MODALITIES[self.kind]


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
    replaced = recorded(store, kind)
    store.set_meta(META_PREFIX + kind, json.dumps(record))
    if replaced is not None and replaced["id"] != model.id:  # the vectors of the model it replaces go
        _delete_vectors(store, f"open:{kind}:{replaced['id']}")
        _MATRICES.clear()
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
    items = _items(store, space.modalities)
    have = _vectors(store, space.feature_key, [sha for sha, _, _ in items])
    missing = [item for item in items if item[0] not in have]
    errors: list[tuple[str, str]] = []
    done = embedded = 0
    started = time.perf_counter()
    batches = [missing[start : start + BATCH] for start in range(0, len(missing), BATCH)]
    with ThreadPoolExecutor(max(1, settings.threads), thread_name_prefix="polymodal-open-vocab") as pool:

        def read(batch: list[tuple[str, str, list[str]]]) -> list[Any]:
            return [pool.submit(_read, store, item, space, model, settings) for item in batch]

        ahead = read(batches[0]) if batches else []
        for number, batch in enumerate(batches):
            decoded = [future.result() for future in ahead]
            ahead = read(batches[number + 1]) if number + 1 < len(batches) else []  # decoded while the tower runs
            pairs = list(zip(batch, decoded, strict=True))
            good = [(sha, media) for (sha, _, _), (media, _) in pairs if media]
            errors += [(paths[0], why) for (_, _, paths), (media, why) in pairs if media is None and why]
            for sha, vector in zip([sha for sha, _ in good], _encode(model, space, [m for _, m in good]), strict=True):
                store.put_feature(sha, space.feature_key, vector)  # a video's shots: one row each, flattened
            done, embedded = done + len(batch), embedded + len(good)
            if progress:
                progress(done, len(missing))
    _MATRICES.clear()
    return {"embedded": embedded, "errors": errors, "seconds": round(time.perf_counter() - started, 2)}


def _encode(model: OpenVocabModel, space: Space, media: list[list[Any]]) -> list[np.ndarray]:
    """One vector per item (an image, a recording), or one row per shot of a video, flattened; in tower batches."""
    flat = [one for item in media for one in item]
    if not flat:
        return []
    encode = model.encode_images if space.kind == "image-text" else model.encode_audio
    vectors = np.concatenate([encode(flat[start : start + BATCH]) for start in range(0, len(flat), BATCH)])
    bounds = np.cumsum([0, *[len(item) for item in media]])
    return [vectors[a:b].reshape(-1) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _items(store: Any, modalities: tuple[str, ...]) -> list[tuple[str, str, list[str]]]:
    """(sha, modality, its paths) of every stored item of one of ``modalities``."""
    paths: dict[str, list[str]] = {}
    for row in store.files_under("/"):
        paths.setdefault(row.sha, []).append(row.path)
    shas = list(paths)
    kept: list[tuple[str, str, list[str]]] = []
    for start in range(0, len(shas), 500):
        chunk = shas[start : start + 500]
        info = store.content_info(chunk)
        for sha in chunk:
            modality = info.get(sha, {}).get("modality")
            if modality in modalities:
                kept.append((sha, modality, sorted(paths[sha])))
    return kept


def _read(
    store: Any, item: tuple[str, str, list[str]], space: Space, model: OpenVocabModel, settings: Settings
) -> tuple[list[Any] | None, str]:
    """What the space's tower takes of an item: the decoded image (reduced, as the indexer decodes it) or
    recording, from the first of its paths that reads, or a video's stored shot thumbnails (its file is not read
    again). (None, why) when none reads; ([], "") for a video without thumbnails (nothing to embed)."""
    from polymodal.media.errors import MediaError

    sha, modality, paths = item
    if modality == "video":
        return _thumbnails(store, sha, settings), ""
    why = "no file"
    for path in paths:
        try:
            if space.kind == "image-text":
                from polymodal.media.image import open_image

                return [open_image(Path(path), settings.max_image_pixels, draft_to=256)], ""
            from polymodal.media.audio import decode_audio

            return [decode_audio(Path(path), model.sample_rate, settings.max_audio_seconds)], ""
        except (MediaError, OSError) as exc:
            why = str(exc)
    return None, why


def _thumbnails(store: Any, sha: str, settings: Settings) -> list[Any]:
    from polymodal.media.errors import MediaError
    from polymodal.media.image import open_image

    images = []
    shot = 0
    while (path := store.thumbnail(sha, shot)) is not None:
        try:
            images.append(open_image(path, settings.max_image_pixels))
        except (MediaError, OSError):  # a damaged thumbnail: the video is embedded without it (rows stay in order)
            return images
        shot += 1
    return images


# --- search -----------------------------------------------------------------------------------------------------
@dataclass
class _Matrix:
    generation: int
    shas: list[str]  # the item of each row (a video has one row per shot)
    shots: list[int | None]  # the video shot of each row, None for a photo or recording
    matrix: np.ndarray


class Standing(float):
    """How far an item stands above its space's mean for a query, in standard deviations; for a video, the shot
    where it stands out most, with its start and end."""

    shot: int | None = None
    start: float | None = None
    end: float | None = None


_MATRICES: dict[tuple[str, str, int], _Matrix] = {}
_MATRICES_LOCK = threading.Lock()


def stored(store: Any, space: Space, dim: int) -> _Matrix:
    """The unit vectors of a space's items (``dim`` wide), one row per photo or recording and one per video shot,
    read again only after the store changed."""
    key = (str(store.directory), space.feature_key, dim)
    generation = store.generation
    with _MATRICES_LOCK:
        cached = _MATRICES.get(key)
    if cached is not None and cached.generation == generation:
        return cached
    items = _items(store, space.modalities)
    vectors = _vectors(store, space.feature_key, [sha for sha, _, _ in items])
    shas: list[str] = []
    shots: list[int | None] = []
    blocks = []
    for sha, modality, _ in items:
        vector = vectors.get(sha)
        if vector is None or vector.size % dim:
            continue
        block = vector.reshape(-1, dim)
        shas += [sha] * len(block)
        shots += list(range(len(block))) if modality == "video" else [None] * len(block)
        blocks.append(block)
    matrix = np.concatenate(blocks).astype(np.float32) if blocks else np.zeros((0, dim), np.float32)
    found = _Matrix(generation, shas, shots, matrix)
    with _MATRICES_LOCK:
        _MATRICES[key] = found
    return found


def item_count(store: Any, space: Space) -> int:
    """How many items have a vector in the space."""
    return len(_vectors(store, space.feature_key, [sha for sha, _, _ in _items(store, space.modalities)]))


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
    its space's items, in standard deviations (a :class:`Standing`; only items above the mean, among the nearest
    CANDIDATES); empty when the collection has no open-vocabulary space."""
    scores: dict[str, float] = {}
    for space in spaces_of(store, settings):
        vector = _query_vector(space, settings, query)
        if vector is None:
            continue
        for sha, value in standouts(stored(store, space, len(vector)), vector).items():
            if value > scores.get(sha, 0.0):
                scores[sha] = _timed(store, sha, value)
    return scores


def similar_scores(store: Any, settings: Settings, sha: str) -> dict[str, float]:
    """:func:`extra_space_scores` for an item's own vector as the query (similar items), the item left out: a
    video's is the mean of its shots'."""
    scores: dict[str, float] = {}
    for space in spaces_of(store, settings):
        vector = store.feature(sha, space.feature_key)
        if vector is None:
            continue
        dim = model_of(space, settings).dim
        mean = vector.reshape(-1, dim).mean(axis=0)
        found = standouts(stored(store, space, dim), mean / max(float(np.linalg.norm(mean)), 1e-12))
        found.pop(sha, None)
        scores.update({other: _timed(store, other, value) for other, value in found.items()})
    return scores


def standouts(space: _Matrix, vector: np.ndarray) -> dict[str, Standing]:
    """sha -> (cosine - mean) / std over the space's rows, for the nearest CANDIDATES items above the mean (a
    video at its best shot)."""
    if len(set(space.shas)) < 2 or space.matrix.shape[1] != vector.shape[0]:
        return {}
    cosines = space.matrix @ vector.astype(np.float32)
    spread = float(cosines.std())
    if spread < 1e-6:
        return {}
    standing = (cosines - cosines.mean()) / spread
    found: dict[str, Standing] = {}
    for row in np.argsort(-cosines):
        if standing[row] <= 0 or len(found) >= CANDIDATES:
            break
        sha = space.shas[row]
        if sha not in found:  # its best row comes first
            found[sha] = Standing(min(float(standing[row]), STANDOUT_CAP))
            found[sha].shot = space.shots[row]
    return found


def _timed(store: Any, sha: str, value: Standing) -> Standing:
    """The standing with its video shot's start and end (from the shot's stored labels), when it has a shot."""
    if value.shot is not None and value.start is None:
        shot = store.shot_evidence(sha, value.shot, "label", 1)
        if shot:
            value.start, value.end = shot[0].start, shot[0].end
    return value


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
    """What a hit's standing in an open-vocabulary space says, as evidence (none when it has none); a video's
    names its shot, with the shot's times (the hit's moment when nothing else gives one)."""
    from polymodal.analysis import Evidence

    if standing <= 0:
        return []
    said = f"{standing:.1f} standard deviations above the mean in the model's space"
    shot = getattr(standing, "shot", None)
    if shot is None:
        return [Evidence(OPEN, said)]
    return [Evidence(OPEN, f"{said} (shot {shot + 1})", start=standing.start, end=standing.end, page=shot)]
