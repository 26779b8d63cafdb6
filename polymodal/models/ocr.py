"""OCR: RapidOCR with PP-OCRv6 small detection/recognition models (Chinese + English), ONNX Runtime.

Models ship inside the ``rapidocr`` wheel (Apache-2.0, weights from PaddleOCR).
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


@register
class RapidOcr(LazyModel):
    family = "ocr"
    name = "rapidocr"
    version = "ppocrv6-small"
    min_confidence = 0.5

    def load(self) -> Any:
        from rapidocr import RapidOCR

        for filename, digest in MODEL_SHA256.items():
            assets.verify(assets.package_file("rapidocr", "models", filename), digest, self.settings.cache)
        threads = self.settings.threads
        return RapidOCR(
            params={
                "Global.log_level": "error",
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            }
        )

    def read(self, image) -> list[OcrLine]:
        """Text lines of a PIL image, top to bottom, left to right."""
        result = self.runtime(np.asarray(image.convert("RGB"))[:, :, ::-1])  # RapidOCR expects BGR
        if result.txts is None:
            return []
        lines = [
            OcrLine(text.strip(), float(score), np.asarray(box, dtype=float).tolist())
            for text, score, box in zip(result.txts, result.scores, result.boxes, strict=True)
            if text.strip() and score >= self.min_confidence
        ]
        return sorted(lines, key=lambda line: (round(line.box[0][1] / 10), line.box[0][0]))
