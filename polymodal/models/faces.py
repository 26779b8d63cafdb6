"""Faces: dlib's HOG face detector, its 5-point landmarks and its ResNet 128-d face embedding.

Weights come from two packages (the ``faces`` extra): ``dlib-bin`` (prebuilt dlib, Boost Software Licence;
the HOG detector is built in) and ``face-recognition-models`` (CC0: the landmark and embedding files). The
68-point landmark model in that package is never loaded: it was trained on a non-commercial data set; the
5-point one is all the embedding needs. ``import face_recognition_models`` fails without ``pkg_resources``, so
its folder is found with ``importlib.util.find_spec`` (:func:`polymodal.models.assets.package_file`).

Detection runs on the picture reduced to ``DETECT_SIDE`` pixels a side, without upsampling (~40 ms for 512 px
here, ~85 ms for 800 px), and once more upsampled 2x when nothing was found in a small picture (``UPSAMPLE_BELOW``:
a thumbnail or a crop, where faces under 80 px would be missed; ~100-250 ms). So in a large picture a face is found
when it is at least ~10 % of the longer side (80 of 800 px). Detections scoring under ``MIN_SCORE`` are dropped (on
the astronaut, upsampling adds a 0.12 false detection beside her face at 1.16). Two faces of one person are within
about 0.6 of each other (Euclidean distance of the embeddings; dlib's figure), see :mod:`polymodal.people`.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from polymodal.models import assets
from polymodal.models.base import LazyModel, ModelError, get_model, register

PACKAGE = "face_recognition_models"
LANDMARKS = "shape_predictor_5_face_landmarks.dat"
EMBEDDING = "dlib_face_recognition_resnet_model_v1.dat"
SHA256 = {
    LANDMARKS: "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    EMBEDDING: "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
}
DIM = 128
DETECT_SIDE = 800  # pictures are reduced to this many pixels a side for detection and embedding
UPSAMPLE_BELOW = 640  # a picture at most this large a side (as stored) is searched again upsampled, if no face
MIN_SCORE = 0.5  # HOG detection score (SVM margin) under which a detection is dropped
DEFAULT = "dlib-resnet-v1"


@dataclass
class Face:
    """One face: its box (x0, y0, x1, y1) in pixels of the picture given, the detector's score, and its
    embedding (128 floats; faces of one person are within ~0.6 of each other)."""

    box: tuple[int, int, int, int]
    score: float
    embedding: np.ndarray

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


def installed() -> bool:
    """Whether the packages of the ``faces`` extra are installed (nothing is imported)."""
    return all(importlib.util.find_spec(name) is not None for name in ("dlib", PACKAGE))


@register
class DlibFaces(LazyModel):
    family = "faces"
    name = DEFAULT
    version = "1"

    def __init__(self, settings: Any):
        super().__init__(settings)
        self._run_lock = threading.Lock()  # dlib's objects are not documented as thread-safe

    def load(self) -> Any:
        try:
            import dlib
        except ImportError as exc:
            raise ModelError("face detection needs dlib: `pip install polymodal[faces]`") from exc
        folder = self.override_path()
        files = {}
        for name in (LANDMARKS, EMBEDDING):
            path = assets.package_file(PACKAGE, "models", name) if folder is None else _in(folder, name)
            files[name] = str(assets.verify(path, SHA256[name]) if folder is None else path)
        return (
            dlib.get_frontal_face_detector(),
            dlib.shape_predictor(files[LANDMARKS]),
            dlib.face_recognition_model_v1(files[EMBEDDING]),
        )

    def faces(self, image: Any) -> list[Face]:
        """Faces in ``image`` (a PIL image or an RGB uint8 array), with boxes in its own pixels."""
        original = max(getattr(image, "info", {}).get("original_size") or _size(image))  # before a JPEG draft
        rgb, scale = _reduced(image)
        detector, landmarks, embedder = self.runtime
        with self._run_lock:  # on RGB: on grey, HOG was ~15 % faster but scored faces ~0.1-0.25 lower (one lost)
            found = _detect(detector, rgb, 0)
            if not found and original <= UPSAMPLE_BELOW:
                found = _detect(detector, rgb, 1)
            out = []
            for rect, score in found:
                shape = landmarks(rgb, rect)
                embedding = np.asarray(embedder.compute_face_descriptor(rgb, shape), np.float32)
                out.append(Face(_box(rect, scale, rgb.shape), round(float(score), 3), embedding))
        return out


def face_model(settings: Any, name: str = DEFAULT) -> DlibFaces:
    return get_model("faces", name, settings)


def distances(embeddings: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Euclidean distance of each row of ``embeddings`` (n, 128) to ``query`` (128,)."""
    if len(embeddings) == 0:
        return np.zeros(0, np.float32)
    return np.linalg.norm(embeddings - query[None, :], axis=1)


def _detect(detector: Any, rgb: np.ndarray, upsample: int) -> list[tuple[Any, float]]:
    rects, scores, _ = detector.run(rgb, upsample, 0.0)
    return [(r, s) for r, s in zip(rects, scores, strict=True) if s >= MIN_SCORE]


def _size(image: Any) -> tuple[int, int]:
    return tuple(image.size) if hasattr(image, "convert") else np.asarray(image).shape[1::-1]


def _reduced(image: Any) -> tuple[np.ndarray, float]:
    """(RGB uint8 array at most DETECT_SIDE a side, scale from it back to ``image``'s pixels)."""
    if hasattr(image, "convert"):
        side = max(image.size)
        if side > DETECT_SIDE:
            factor = DETECT_SIDE / side
            size = (max(1, round(image.size[0] * factor)), max(1, round(image.size[1] * factor)))
            image = image.resize(size, resample=2, reducing_gap=2.0)  # bilinear after a box reduction: fast
            return np.ascontiguousarray(np.asarray(image.convert("RGB"))), 1.0 / factor
        return np.ascontiguousarray(np.asarray(image.convert("RGB"))), 1.0
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] < 3 or array.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image, got an array of shape {array.shape} and type {array.dtype}")
    from PIL import Image

    return _reduced(Image.fromarray(np.ascontiguousarray(array[..., :3])))


def _box(rect: Any, scale: float, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """A dlib rectangle clipped to the reduced picture, in the original picture's pixels."""
    height, width = shape[:2]
    x0, y0 = max(0, rect.left()), max(0, rect.top())
    x1, y1 = min(width, rect.right() + 1), min(height, rect.bottom() + 1)
    return round(x0 * scale), round(y0 * scale), round(x1 * scale), round(y1 * scale)


def _in(folder: str, name: str) -> Any:
    from pathlib import Path

    path = Path(folder) / name
    if not path.is_file():
        raise ModelError(f"{path} is missing (the folder configured for the face model)")
    return path
