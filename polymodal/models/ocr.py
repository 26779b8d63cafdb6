"""OCR: RapidOCR with PP-OCRv6 small detection/recognition models (Chinese + English), ONNX Runtime.

Models ship inside the ``rapidocr`` wheel (Apache-2.0, weights from PaddleOCR).
Reading costs 0.5-2 s an image (detection on a copy whose short side is at least 736 px, then recognition of
each line). When indexing, a probe runs the detector alone on a copy of at most 480 px first (~40 ms) and the
image is read only if it finds two or more text boxes: see ``read(probe_first=True)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from polymodal.models import assets
from polymodal.models.base import LazyModel, register

MODEL_SHA256 = {
    "PP-OCRv6_det_small.onnx": "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f",
    "PP-OCRv6_rec_small.onnx": "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884",
    "ch_ppocr_mobile_v2.0_cls_mobile.onnx": "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
}


@dataclass
class OcrLine:
    text: str
    confidence: float
    box: list[list[float]]  # four (x, y) corners, clockwise from top-left, in image pixels


@dataclass
class _Engines:
    reader: Any  # detection, orientation, recognition
    probe: Any  # detection alone, on a small copy


@register
class RapidOcr(LazyModel):
    family = "ocr"
    name = "rapidocr"
    version = "ppocrv6-small"
    min_confidence = 0.5
    probe_side = 480
    # One box is most often the outline of an object on a plain background, two or more are text. Of 271 images
    # the priors send to OCR (Tux Paint cut-outs, OpenCV samples, GNOME screenshots, the sample scan), this
    # let through 26 of the 40 with text (every screenshot and scan; missed: small print on objects and
    # one-word signs) and skipped 228 of 231 without: 146 s of OCR became 35 s (bench/ocr_probe.py).
    probe_min_boxes = 2

    def load(self) -> _Engines:
        from rapidocr import RapidOCR

        for filename, digest in MODEL_SHA256.items():
            assets.verify(assets.package_file("rapidocr", "models", filename), digest)
        common = {
            "Global.log_level": "error",
            "EngineConfig.onnxruntime.intra_op_num_threads": self.settings.threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        probe = {
            "Global.use_cls": False,
            "Global.use_rec": False,
            "Global.max_side_len": self.probe_side,
            "Det.limit_side_len": self.probe_side,
            "Det.limit_type": "max",
        }
        return _Engines(RapidOCR(params=common), RapidOCR(params={**common, **probe}))

    def sees_text(self, image) -> bool:
        """Whether the text detector finds ``probe_min_boxes`` boxes on a small copy of ``image`` (~40 ms)."""
        small = image.convert("RGB")
        small.thumbnail((self.probe_side, self.probe_side))  # before the array: a 12 MP copy would cost ~40 ms
        try:
            boxes = self.runtime.probe(_bgr(small), use_det=True, use_cls=False, use_rec=False).boxes
        except Exception:  # RapidOCR refuses images it cannot resize (a few pixels wide): let the reader decide
            return True
        return boxes is not None and len(boxes) >= self.probe_min_boxes

    def read(self, image, probe_first: bool = False) -> list[OcrLine]:
        """Text lines of a PIL image, top to bottom, left to right. ``probe_first``: none unless :meth:`sees_text`."""
        if probe_first and not self.sees_text(image):
            return []
        result = self.runtime.reader(_bgr(image.convert("RGB")))
        if result.txts is None:
            return []
        lines = [
            OcrLine(text.strip(), float(score), np.asarray(box, dtype=float).tolist())
            for text, score, box in zip(result.txts, result.scores, result.boxes, strict=True)
            if text.strip() and score >= self.min_confidence
        ]
        return sorted(lines, key=lambda line: (round(line.box[0][1] / 10), line.box[0][0]))


def _bgr(rgb_image) -> np.ndarray:
    return np.asarray(rgb_image)[:, :, ::-1]  # RapidOCR takes OpenCV's channel order
