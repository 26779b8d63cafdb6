"""Trained aligners at inference time: frozen image / audio features -> the text space, in numpy.

An aligner (LiT-style, trained by :mod:`polymodal.train.align`) is a small MLP per modality:
standardise -> Linear -> GELU (tanh form) -> Linear -> unit length. Its output is averaged with the label
bridge vector (``blend`` = the aligner's share, 0.5 measured best in shared/FINDINGS.md), and the average
replaces the bridge vector of that item. Saved as ``aligner.safetensors`` (weights) + ``aligner.json``;
reading it needs only numpy and safetensors, never torch.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.models.text import normalize

WEIGHTS_FILE, CONFIG_FILE = "aligner.safetensors", "aligner.json"
FORMAT = "polymodal-aligner"
META_KEY = "aligner"  # the store's meta table: the id of the aligner a collection uses
TENSORS = ("mean", "std", "w1", "b1", "w2", "b2")


class AlignerError(ValueError):
    """An aligner is missing, malformed, or was trained for other models than the ones in use."""


@dataclass
class AlignerHead:
    modality: str  # "image" or "audio"
    feature_model: str  # model id of the frozen features it reads (analysis.features key)
    tensors: dict[str, np.ndarray]

    def project(self, features: np.ndarray) -> np.ndarray:
        """(n, d_in) or (d_in,) features -> unit vectors in the text space."""
        t = self.tensors
        x = (np.asarray(features, np.float32) - t["mean"]) / t["std"]
        hidden = gelu(x @ t["w1"].T + t["b1"])
        return normalize(hidden @ t["w2"].T + t["b2"]).astype(np.float32)


@dataclass
class Aligner:
    id: str
    text_encoder: str
    blend: float
    heads: dict[str, AlignerHead]
    path: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> Aligner:
        from safetensors.numpy import load_file

        path = Path(path).expanduser()
        config_file, weights_file = path / CONFIG_FILE, path / WEIGHTS_FILE
        if not config_file.is_file() or not weights_file.is_file():
            raise AlignerError(f"no aligner at {path} (expected {CONFIG_FILE} and {WEIGHTS_FILE})")
        config = json.loads(config_file.read_text())
        if config.get("format") != FORMAT:
            raise AlignerError(f"{config_file} is not a polymodal aligner")
        weights = load_file(str(weights_file))
        heads = {}
        for modality, head in config["heads"].items():
            tensors = {name: weights[f"{modality}.{name}"] for name in TENSORS}
            heads[modality] = AlignerHead(modality, head["feature_model"], tensors)
        return cls(config["id"], config["text_encoder"], float(config["blend"]), heads, path, config.get("meta", {}))

    def save(self, path: str | Path) -> Path:
        from safetensors.numpy import save_file

        path = Path(path).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        tensors = {f"{m}.{n}": np.ascontiguousarray(v, np.float32) for m, h in self.heads.items()
                   for n, v in h.tensors.items()}  # fmt: skip
        save_file(tensors, str(path / WEIGHTS_FILE))
        config = {
            "format": FORMAT, "version": 1, "id": self.id, "text_encoder": self.text_encoder, "blend": self.blend,
            "heads": {m: {"feature_model": h.feature_model, "dim_in": int(h.tensors["w1"].shape[1]),
                          "dim_out": int(h.tensors["w2"].shape[0])} for m, h in self.heads.items()},
            "meta": self.meta,
        }  # fmt: skip
        (path / CONFIG_FILE).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
        self.path = path
        return path

    def check(self, analyzer: Any) -> None:
        """Raise :class:`AlignerError` unless the analyzer's models are those the aligner was trained on."""
        encoder = analyzer.model("text").model_id
        if encoder != self.text_encoder:
            raise AlignerError(
                f"aligner {self.id} maps into the space of {self.text_encoder}, but the text encoder in use is "
                f"{encoder}; retrain the aligner (polymodal train align) with the current models"
            )
        for modality, head in self.heads.items():
            current = analyzer.model({"image": "image", "audio": "sound"}[modality]).model_id
            if current != head.feature_model:
                raise AlignerError(
                    f"aligner {self.id} reads {modality} features of {head.feature_model}, but the model in use "
                    f"is {current}; retrain the aligner with the current models"
                )

    def blend_vector(self, modality: str, features: dict[str, np.ndarray], bridge: np.ndarray) -> np.ndarray:
        """The bridge vector averaged with the aligned one; the bridge alone if this aligner can't see it."""
        head = self.heads.get(modality)
        if head is None or head.feature_model not in features:
            return bridge
        aligned = head.project(features[head.feature_model])
        return normalize(self.blend * aligned + (1.0 - self.blend) * bridge).astype(np.float32)


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation (torch ``nn.GELU(approximate="tanh")``, the form the heads are trained with)."""
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x**3)))


def weights_digest(tensors: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(tensors[name], np.float32).tobytes())
    return digest.hexdigest()[:10]


# --- a collection's aligner: copied into the store, named in its meta table ------------------------
def aligners_dir(store_dir: Path) -> Path:
    return Path(store_dir) / "aligners"


def resolve(reference: str | Path, store_dir: Path) -> Path:
    """A saved aligner by path, or by id / folder name among those already copied into the store."""
    path = Path(reference).expanduser()
    if (path / CONFIG_FILE).is_file():
        return path
    inside = aligners_dir(store_dir) / str(reference)
    if (inside / CONFIG_FILE).is_file():
        return inside
    raise AlignerError(f"no aligner {reference!r}: give the folder `polymodal train align --out` wrote")


def install(reference: str | Path, store_dir: Path) -> Aligner:
    """Copy an aligner into the store (so the collection keeps working if the original moves) and load it."""
    aligner = Aligner.load(resolve(reference, store_dir))
    target = aligners_dir(store_dir) / aligner.id
    if aligner.path is not None and aligner.path.resolve() != target.resolve():
        target.mkdir(parents=True, exist_ok=True)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            shutil.copyfile(aligner.path / name, target / name)
    return Aligner.load(target)
