"""Faces as evidence: boxes, a count, and embeddings of the faces in images and video shot keyframes.

Text is the common language of search: a picture with faces gets a ``faces`` evidence row in English and one in
Chinese that say how many people it shows, by count and face size ("a person, one person, a face, a portrait" /
"一个人，人脸，人像，肖像", "two people" / "两个人", "a group of people" / "一群人"), so that the full-text index and
the ranking find "a person" or "一个人" with no new machinery. The English row carries the boxes (``box``: one
[x0, y0, x1, y1] per face, in the picture's pixels); a video's rows carry their shot (``page``) and times.
The embeddings of all of an item's faces are one features row (``<model id>/faces``), in box order.

:class:`FaceHook` is what the indexer calls: it adds faces to new analyses, to stored ones perceived before the
face model (or by another one: the stage id ``faces`` records the model and this recipe), strips them when the
collection turned faces off, and brings the people up to date after each run. Faces are on by default; a
collection's ``faces`` setting (``polymodal people off``) turns them off. Without the ``faces`` extra installed
nothing happens.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.analysis import LABEL, Analysis, Evidence

log = logging.getLogger("polymodal.faces")

FACES = "faces"  # evidence kind, and the stage recorded in an analysis' models
RECIPE = "+count1"  # bumped when the evidence drawn from the faces changes, so stored items are perceived again
META_KEY = "faces"  # the collection setting: "off" turns faces off
FACES_UPDATED = "faces updated"  # an indexing outcome: a stored analysis got (or lost) its faces
# One face whose height is at least this share of the picture's is a portrait (the astronaut's: 0.17; a face
# in a street scene or a group photo is smaller).
PORTRAIT_SHARE = 0.12
GROUP = 3  # this many faces or more are a group of people
MAX_SHOTS = 500  # most video shots looked at for faces
NUMBERS_EN = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}
NUMBERS_ZH = {2: "两", 3: "三", 4: "四", 5: "五", 6: "六", 7: "七", 8: "八", 9: "九", 10: "十"}
PERSON_KINDS = (FACES, "person")  # evidence that the face stage writes (faces) or derives from it (names)


def features_key(model_id: str) -> str:
    return f"{model_id}/faces"


def count_texts(heights: list[int], picture_height: int) -> tuple[str, str]:
    """What a picture with faces of these heights (pixels) shows, in English and in Chinese."""
    n = len(heights)
    if n == 1:
        portrait = max(heights) >= PORTRAIT_SHARE * max(picture_height, 1)
        en = "a person, one person, a face" + (", a portrait of a person" if portrait else "")
        zh = "一个人，人脸" + ("，人像，肖像" if portrait else "")
        return en, zh
    word_en, word_zh = NUMBERS_EN.get(n, "many"), NUMBERS_ZH.get(n, "很多")
    if n == 2:
        return "two people, two persons, two faces", "两个人，两张人脸"
    return f"{word_en} people, a group of people, {word_en} faces", f"{word_zh}个人，一群人"


def face_evidence(faces: list[Any], picture_height: int, **where: Any) -> list[Evidence]:
    """The two ``faces`` evidence rows of one picture (none without faces)."""
    if not faces:
        return []
    en, zh = count_texts([f.height for f in faces], picture_height)
    boxes = [list(f.box) for f in faces]
    best = max(f.score for f in faces)
    return [Evidence(FACES, en, best, box=boxes, **where), Evidence(FACES, zh, best, **where)]


class FaceHook:
    """Faces for the indexer (see the module's text); a hook that does nothing when faces are off or missing."""

    def __init__(self, store: Any, analyzer: Any, fts_text: Any):
        from polymodal.models import faces as face_models
        from polymodal.store.faces import FaceStore

        self.store, self.analyzer, self.fts_text = store, analyzer, fts_text
        self.off = store.get_meta(META_KEY) == "off"
        self.enabled = not self.off and face_models.installed() and FaceStore.supported(store)
        self.changed = False  # faces stored or removed since the people were updated (by this run)

    @property
    def model(self) -> Any:
        from polymodal.models.faces import face_model

        return face_model(self.analyzer.settings)

    @property
    def stage_id(self) -> str:
        return self.model.model_id + RECIPE

    def perceive(self, key: str, analysis: Analysis) -> bool:
        """Add the faces of an image or of a video's shot keyframes to a new analysis of file ``key``; False when
        they could not be looked for (said in a note; looked for again at the next indexing)."""
        if not self.enabled or analysis.modality not in ("image", "video"):
            return False
        try:
            look = _video_faces if analysis.modality == "video" else _image_faces
            faces = look(self.model, Path(key), analysis)
        except Exception as exc:  # a face model failing on one odd file must not fail the file
            log.warning("faces of %s could not be looked for: %s: %s", key, type(exc).__name__, exc)
            analysis.notes.append(f"faces could not be looked for: {type(exc).__name__}: {exc}")
            strip(analysis)
            return False
        if faces:
            analysis.features[features_key(self.model.model_id)] = np.concatenate(faces).astype(np.float32)
            self._embed(analysis)
        analysis.meta["faces"] = len(faces)
        analysis.models[FACES] = self.stage_id
        self.changed = True
        return True

    def _embed(self, analysis: Analysis) -> None:
        """Vectors for the new faces rows, as :meth:`Analyzer.embed` makes them (the rest is embedded already)."""
        from polymodal.analysis import EMBEDDED_KINDS, Vector

        if FACES not in EMBEDDED_KINDS or "text" not in analysis.models:
            return
        rows = [i for i, e in enumerate(analysis.evidence) if e.kind == FACES]
        matrix = self.analyzer.model("text").encode([analysis.evidence[i].text for i in rows])
        analysis.vectors += [Vector(FACES, vector, i) for i, vector in zip(rows, matrix, strict=True)]

    def refresh(self, key: str, sha: str, modality: str, stored: dict[str, str]) -> bool:
        """Faces of a stored analysis made before the face stage (or by another face model), or removed when
        faces are off; True when the analysis was written again."""
        wanted = self.stage_id if self.enabled and modality in ("image", "video") else None
        if stored.get(FACES) == wanted or (wanted is None and not self.off):
            return False
        analysis, row = self.store.load_analysis(sha), self.store.file(key)
        if analysis is None or row is None:
            return False
        strip(analysis)
        if wanted is not None and not self.perceive(key, analysis):
            return False  # not written: the stored analysis stays as it was
        self.store.save(key, sha, row.size, row.mtime_ns, analysis, self.fts_text)
        self.changed = True
        return True

    def finish(self) -> None:
        """After an indexing run: the people follow the faces now stored (or their faces are dropped)."""
        if self.changed or self.off:
            from polymodal.people import People

            People(self.store, self.analyzer.settings, self.fts_text).update()


def strip(analysis: Analysis) -> None:
    """Remove the faces (evidence, embeddings, stage, count) from an analysis."""
    kept = [i for i, e in enumerate(analysis.evidence) if e.kind not in PERSON_KINDS]
    moved = {old: new for new, old in enumerate(kept)}  # vectors point at evidence by position
    analysis.vectors = [v for v in analysis.vectors if v.evidence is None or v.evidence in moved]
    for vector in analysis.vectors:
        vector.evidence = None if vector.evidence is None else moved[vector.evidence]
    analysis.evidence = [analysis.evidence[i] for i in kept]
    analysis.features = {k: v for k, v in analysis.features.items() if not k.endswith("/faces")}
    analysis.models.pop(FACES, None)
    analysis.meta.pop("faces", None)


def _image_faces(model: Any, path: Path, analysis: Analysis) -> list[np.ndarray]:
    from polymodal.media.image import open_image
    from polymodal.models.faces import DETECT_SIDE

    image = open_image(path, model.settings.max_image_pixels, draft_to=DETECT_SIDE // 2)  # a JPEG draft
    faces = model.faces(image)
    scale = analysis.meta.get("width", image.size[0]) / image.size[0]  # boxes in the original's pixels
    for face in faces:
        face.box = tuple(round(v * scale) for v in face.box)
    analysis.evidence += face_evidence(faces, analysis.meta.get("height", image.size[1]))
    return [f.embedding for f in faces]


def _video_faces(model: Any, path: Path, analysis: Analysis) -> list[np.ndarray]:
    """Faces of each shot, in the frame in the middle of the shot (the keyframes are not kept)."""
    from polymodal.media.video import frame_at

    shots = {e.page: (e.start, e.end) for e in analysis.evidence if e.kind == LABEL and e.page is not None}
    embeddings: list[np.ndarray] = []
    for page in sorted(shots)[:MAX_SHOTS]:
        start, end = shots[page]
        if start is None or end is None:
            continue
        frame = frame_at(path, (start + end) / 2, model.settings.threads)
        faces = model.faces(frame)
        analysis.evidence += face_evidence(faces, frame.size[1], start=start, end=end, page=page)
        embeddings += [f.embedding for f in faces]
    return embeddings
