"""Open-vocabulary models the user has: CLIP, SigLIP, Chinese-CLIP (image-text) and CLAP (audio-text), loaded
from a local directory. polymodal never downloads them; the user brings the directory.

Two on-disk layouts are recognised (:func:`detect_layout`):
- a transformers directory (what ``save_pretrained`` writes, e.g. the Hugging Face repository
  ``openai/clip-vit-base-patch32``): ``config.json``, ``*.safetensors`` weights, tokenizer files and
  ``preprocessor_config.json``; run with CPU torch (no torchvision: images are prepared here with PIL and numpy);
- an ONNX export: ``text_model.onnx`` and ``vision_model.onnx`` (or ``audio_model.onnx``), ``tokenizer.json`` and
  ``preprocessor_config.json`` (in the directory or its ``onnx/`` folder); run with ONNX Runtime and ``tokenizers``.

Every file a model loads is hashed on first use (:func:`polymodal.models.assets.file_sha256`); the hashes make the
model's id, so vectors made by other bytes are never mixed with its own. Nothing here touches the network: the
transformers loaders are called with ``local_files_only`` and ``HF_HUB_OFFLINE`` set.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.errors import ConfigError
from polymodal.models import assets
from polymodal.models.base import ModelError

KINDS = ("image-text", "audio-text")
ARCHITECTURES = {"clip": "image-text", "siglip": "image-text", "chinese_clip": "image-text", "clap": "audio-text"}
MODEL_CLASSES = {"clip": "CLIPModel", "siglip": "SiglipModel", "chinese_clip": "ChineseCLIPModel", "clap": "ClapModel"}
# What ``preprocessor_config.json`` calls its processor, when there is no ``config.json`` to say the architecture.
PROCESSOR_TYPES = {
    "CLIPImageProcessor": "clip",
    "CLIPImageProcessorFast": "clip",
    "CLIPFeatureExtractor": "clip",
    "SiglipImageProcessor": "siglip",
    "SiglipImageProcessorFast": "siglip",
    "ChineseCLIPImageProcessor": "chinese_clip",
    "ChineseCLIPImageProcessorFast": "chinese_clip",
    "ChineseCLIPFeatureExtractor": "chinese_clip",
    "ClapFeatureExtractor": "clap",
}
MEDIA_TOWER = {"image-text": "vision_model.onnx", "audio-text": "audio_model.onnx"}
# Text inputs each architecture takes (SigLIP was trained without an attention mask, on text padded to 64).
TEXT_INPUTS = {
    "clip": ("input_ids", "attention_mask"),
    "siglip": ("input_ids",),
    "chinese_clip": ("input_ids", "attention_mask", "token_type_ids"),
    "clap": ("input_ids", "attention_mask"),
}
DEFAULT_TEXT_LENGTH = {"clip": 77, "siglip": 64, "chinese_clip": 52, "clap": 77}
PADDED_TO_LENGTH = {"siglip"}
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "vocab.txt", "spiece.model", "sentencepiece.bpe.model")
OPTIONAL_FILES = ("tokenizer_config.json", "special_tokens_map.json", "config.json")
# CLAP hears 10 s at a time: a longer recording is embedded as the mean of at most this many 10 s windows.
AUDIO_WINDOWS = 6
TEXT_CACHE = 512  # query texts whose vectors are kept, per model


class OpenVocabError(ConfigError):
    """A model directory that cannot be used: a missing file, an unsupported architecture or layout, changed
    files. The user's to fix (a package that is not installed is a :class:`ModelError`)."""


@dataclass(frozen=True)
class Layout:
    """What a model directory holds: its kind, layout, architecture and the files that will be loaded."""

    kind: str
    directory: Path
    layout: str  # "transformers" or "onnx"
    architecture: str  # "clip", "siglip", "chinese_clip", "clap"
    files: dict[str, Path] = field(default_factory=dict)  # role -> file (weights parts as weights:0, weights:1 ...)

    def hashes(self) -> dict[str, str]:
        """File name (relative to the directory) -> SHA-256, hashed once per process and file version."""
        return {_relative(path, self.directory): assets.file_sha256(path) for path in self.files.values()}

    def size(self) -> int:
        return sum(path.stat().st_size for path in self.files.values())


def model_id(layout: Layout, hashes: dict[str, str]) -> str:
    """``clip-transformers-<12 hex>``: the architecture, the layout and a digest of every file's bytes."""
    digest = hashlib.sha256("\n".join(f"{n}:{h}" for n, h in sorted(hashes.items())).encode()).hexdigest()
    return f"{layout.architecture.replace('_', '-')}-{layout.layout}-{digest[:12]}"


def detect_layout(directory: str | Path, kind: str) -> Layout:
    """The layout of a model directory for ``kind`` ("image-text" or "audio-text"), or an error naming what is
    missing or unsupported."""
    if kind not in KINDS:
        raise OpenVocabError(f"unknown model kind {kind!r}; use one of: {', '.join(KINDS)}")
    folder = Path(directory).expanduser()
    if not folder.is_dir():
        raise OpenVocabError(f"{folder} is not a directory (give the folder that holds the model's files)")
    folder = folder.resolve()
    onnx_dir = next((d for d in (folder, folder / "onnx") if (d / "text_model.onnx").is_file()), None)
    if onnx_dir is not None:
        return _onnx_layout(folder, onnx_dir, kind)
    if (folder / "config.json").is_file():
        return _transformers_layout(folder, kind)
    raise OpenVocabError(
        f"{folder} holds neither a transformers model (config.json + *.safetensors) nor an ONNX export "
        f"(text_model.onnx + {MEDIA_TOWER[kind]} + tokenizer.json + preprocessor_config.json)"
    )


def _transformers_layout(folder: Path, kind: str) -> Layout:
    config = _read_json(folder / "config.json")
    architecture = _architecture(config.get("model_type"), folder / "config.json", kind)
    files: dict[str, Path] = {"config": folder / "config.json"}
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        pickled = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt*")]
        hint = (
            f" ({', '.join(pickled)} is a pickle, which can run code when loaded: convert it to safetensors on the "
            "machine it came from, e.g. `model.save_pretrained(dir, safe_serialization=True)`)"
            if pickled
            else ""
        )
        raise OpenVocabError(f"{folder} has no *.safetensors weights{hint}")
    files.update({f"weights:{i}": path for i, path in enumerate(weights)})
    files.update(_common_files(folder, folder, kind, need_tokenizer_json=False))
    return Layout(kind, folder, "transformers", architecture, files)


def _onnx_layout(folder: Path, onnx_dir: Path, kind: str) -> Layout:
    media = onnx_dir / MEDIA_TOWER[kind]
    if not media.is_file():
        other = next((name for k, name in MEDIA_TOWER.items() if k != kind and (onnx_dir / name).is_file()), None)
        found = f"; it has {other}: add it as {'audio-text' if other == MEDIA_TOWER['audio-text'] else 'image-text'}"
        raise OpenVocabError(f"{onnx_dir} has text_model.onnx but no {MEDIA_TOWER[kind]}{found if other else ''}")
    files = {"text_model": onnx_dir / "text_model.onnx", "media_model": media}
    for role, tower in (("text_model", onnx_dir / "text_model.onnx"), ("media_model", media)):
        for extra in _external_data(tower):
            files[f"{role}:{extra.name}"] = extra
    files.update(_common_files(folder, onnx_dir, kind, need_tokenizer_json=True))
    config = _read_json(files["config"]) if "config" in files else {}
    preprocessor = _read_json(files["preprocessor"])
    named = config.get("model_type") or PROCESSOR_TYPES.get(
        str(preprocessor.get("image_processor_type") or preprocessor.get("feature_extractor_type") or "")
    )
    if named is None:
        raise OpenVocabError(
            f"cannot tell the architecture of the ONNX export in {folder}: add its config.json, or a "
            f"preprocessor_config.json naming its processor ({', '.join(sorted(set(PROCESSOR_TYPES)))})"
        )
    return Layout(kind, folder, "onnx", _architecture(named, files["preprocessor"], kind), files)


def _common_files(folder: Path, onnx_dir: Path, kind: str, need_tokenizer_json: bool) -> dict[str, Path]:
    """Preprocessor, tokenizer and optional files, looked for in the ONNX folder first, then the directory."""

    def find(name: str) -> Path | None:
        return next((d / name for d in dict.fromkeys((onnx_dir, folder)) if (d / name).is_file()), None)

    files: dict[str, Path] = {}
    preprocessor = find("preprocessor_config.json")
    if preprocessor is None:
        what = "how images are resized and normalised" if kind == "image-text" else "how audio becomes features"
        raise OpenVocabError(f"{folder} has no preprocessor_config.json (it says {what})")
    files["preprocessor"] = preprocessor
    tokenizer = [name for name in TOKENIZER_FILES if find(name)]
    if need_tokenizer_json and "tokenizer.json" not in tokenizer:
        raise OpenVocabError(f"{folder} has no tokenizer.json (an ONNX export is tokenised with it)")
    if not tokenizer:
        raise OpenVocabError(f"{folder} has no tokenizer files ({', '.join(TOKENIZER_FILES)})")
    for name in tokenizer if "tokenizer.json" not in tokenizer else ["tokenizer.json"]:
        files[f"tokenizer:{name}"] = find(name)  # type: ignore[assignment]
    for name in OPTIONAL_FILES:
        path = find(name)
        if path is not None:
            files[name.removesuffix(".json")] = path
    return files


def _architecture(model_type: Any, source: Path, kind: str) -> str:
    if model_type not in ARCHITECTURES:
        supported = ", ".join(f"{a} ({k})" for a, k in ARCHITECTURES.items())
        raise OpenVocabError(f"{source}: model type {model_type!r} is not supported; supported: {supported}")
    if ARCHITECTURES[model_type] != kind:
        raise OpenVocabError(
            f"{source.parent} is a {model_type} model, an {ARCHITECTURES[model_type]} model: add it as "
            f"`models add {ARCHITECTURES[model_type]} {source.parent}`"
        )
    return str(model_type)


def _external_data(model: Path) -> list[Path]:
    """Files holding an ONNX graph's weights outside it (large exports)."""
    names = (model.name + "_data", model.name + ".data", model.stem + ".onnx_data", model.stem + ".data")
    return [model.with_name(n) for n in dict.fromkeys(names) if model.with_name(n).is_file()]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OpenVocabError(f"{path} cannot be read as JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise OpenVocabError(f"{path} is not a JSON object")
    return data


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return path.name


def licence(directory: str | Path) -> str | None:
    """The licence a model directory states: its model card's ``license:`` (README front matter), else the first
    line of a LICENSE file; None when it says nothing."""
    folder = Path(directory)
    readme = folder / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8", errors="replace")[:4000]
        front = re.match(r"---\s*\n(.*?)\n---", text, re.S)
        found = re.search(r"^licen[sc]e:\s*(\S.*)$", front.group(1) if front else "", re.M)
        if found:
            return found.group(1).strip().strip("\"'")
    for name in ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE"):
        path = folder / name
        if path.is_file():
            lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
            first = next((ln for ln in lines if ln), "")
            return first[:80] or None
    return None


# --- the loaded model ------------------------------------------------------------------------------------------
class OpenVocabModel:
    """A loaded image-text or audio-text model: unit-length vectors for texts and for images or recordings."""

    def __init__(self, layout: Layout, threads: int = 2, expected: dict[str, str] | None = None):
        """``expected``: the file hashes recorded when the model was added; other bytes are refused."""
        self.layout = layout
        self.kind, self.architecture = layout.kind, layout.architecture
        self.hashes = layout.hashes()
        if expected is not None and expected != self.hashes:
            changed = sorted(n for n in set(expected) | set(self.hashes) if expected.get(n) != self.hashes.get(n))
            raise OpenVocabError(
                f"the files of {layout.directory} changed since the model was added ({', '.join(changed)}); add it "
                f"again (`polymodal models add {layout.kind} {layout.directory}`) to embed the collection with them"
            )
        self.id = model_id(layout, self.hashes)
        self.threads = threads
        self.config = _read_json(layout.files["config"]) if "config" in layout.files else {}
        self.preprocessor = _read_json(layout.files["preprocessor"])
        self.tokenizer = _Tokenizer(layout, self.config)
        self._backend: _Backend | None = None
        self._lock = threading.Lock()
        self._texts: OrderedDict[str, np.ndarray] = OrderedDict()  # query text -> vector, most recent last
        self._texts_lock = threading.Lock()

    @property
    def backend(self) -> _Backend:
        with self._lock:
            if self._backend is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                loader = _TorchBackend if self.layout.layout == "transformers" else _OnnxBackend
                self._backend = loader(self.layout, self.threads)
            return self._backend

    @functools.cached_property
    def dim(self) -> int:
        """The width of the model's vectors."""
        return int(self.encode_text(["a"]).shape[1])

    @property
    def logit_scale(self) -> float:
        """The model's own temperature for zero-shot scores (100 when an ONNX export does not say)."""
        return self.backend.logit_scale

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of ``texts``; single texts (queries) are remembered."""
        if len(texts) == 1:
            with self._texts_lock:
                known = self._texts.get(texts[0])
                if known is not None:
                    self._texts.move_to_end(texts[0])
                    return known[None]
        inputs = self.tokenizer(texts)
        vectors = _unit(self.backend.text({k: v for k, v in inputs.items() if k in TEXT_INPUTS[self.architecture]}))
        if len(texts) == 1:
            with self._texts_lock:
                self._texts[texts[0]] = vectors[0]
                while len(self._texts) > TEXT_CACHE:
                    self._texts.popitem(last=False)
        return vectors

    def encode_images(self, images: list[Any]) -> np.ndarray:
        """Unit vectors of PIL images (any mode), prepared as ``preprocessor_config.json`` says."""
        if self.kind != "image-text":
            raise OpenVocabError(f"{self.layout.directory} is an {self.kind} model: it takes no images")
        pixels = np.stack([image_input(image, self.preprocessor) for image in images])
        return _unit(self.backend.media({"pixel_values": pixels}))

    @property
    def sample_rate(self) -> int:
        return int(self.preprocessor.get("sampling_rate", 48000))

    def encode_audio(self, clips: list[np.ndarray]) -> np.ndarray:
        """Unit vectors of mono recordings at :attr:`sample_rate`: the mean of up to AUDIO_WINDOWS windows each."""
        if self.kind != "audio-text":
            raise OpenVocabError(f"{self.layout.directory} is an {self.kind} model: it takes no audio")
        extractor = _clap_features(self.preprocessor)
        window = int(extractor.nb_max_samples)
        rows = []
        for clip in clips:
            parts = _windows(np.asarray(clip, np.float32), window)
            features = extractor(parts, sampling_rate=self.sample_rate, return_tensors="np")
            inputs = {"input_features": features["input_features"].astype(np.float32)}
            inputs["is_longer"] = np.asarray(features["is_longer"], bool).reshape(len(parts), 1)
            rows.append(_unit(self.backend.media(inputs)).mean(axis=0))
        return _unit(np.stack(rows))


def _windows(clip: np.ndarray, window: int) -> list[np.ndarray]:
    """At most AUDIO_WINDOWS windows of ``window`` samples, evenly spread over the clip (all of a short one)."""
    if len(clip) <= window:
        return [clip if len(clip) else np.zeros(1, np.float32)]
    starts = np.linspace(0, len(clip) - window, min(AUDIO_WINDOWS, -(-len(clip) // window))).astype(int)
    return [clip[s : s + window] for s in starts]


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


_EXTRACTORS: dict[str, Any] = {}


def _clap_features(preprocessor: dict[str, Any]) -> Any:
    """transformers' ClapFeatureExtractor (numpy only) configured from ``preprocessor_config.json``."""
    key = json.dumps(preprocessor, sort_keys=True)
    if key not in _EXTRACTORS:
        try:
            from transformers import ClapFeatureExtractor
        except ImportError as exc:
            raise ModelError(
                "audio-text models need the transformers package for CLAP's audio features: "
                "pip install 'polymodal[open-vocab]'"
            ) from exc
        settings = {k: v for k, v in preprocessor.items() if k not in ("feature_extractor_type", "processor_class")}
        _EXTRACTORS[key] = ClapFeatureExtractor(**settings)
    return _EXTRACTORS[key]


# --- images ----------------------------------------------------------------------------------------------------
def image_input(image: Any, preprocessor: dict[str, Any]) -> np.ndarray:
    """(3, H, W) float32 for an image tower, as the transformers image processor named in ``preprocessor`` makes it
    (CLIP: short side resized then centre-cropped; SigLIP: resized to a square), without torchvision."""
    from PIL import Image

    if preprocessor.get("do_convert_rgb", True) or image.mode != "RGB":
        image = image.convert("RGB")
    resample = Image.Resampling(int(preprocessor.get("resample", 3)))
    if preprocessor.get("do_resize", True):
        image = image.resize(_resized(image.size, preprocessor.get("size", 224)), resample)
    if preprocessor.get("do_center_crop", False):
        image = _center_crop(image, _side_pair(preprocessor.get("crop_size", 224)))
    pixels = np.asarray(image, np.float32)
    if preprocessor.get("do_rescale", True):
        pixels = pixels * float(preprocessor.get("rescale_factor", 1 / 255))
    if preprocessor.get("do_normalize", True):
        mean = np.asarray(preprocessor.get("image_mean", [0.48145466, 0.4578275, 0.40821073]), np.float32)
        std = np.asarray(preprocessor.get("image_std", [0.26862954, 0.26130258, 0.27577711]), np.float32)
        pixels = (pixels - mean) / std
    return np.ascontiguousarray(pixels.transpose(2, 0, 1), np.float32)


def _resized(size: tuple[int, int], wanted: Any) -> tuple[int, int]:
    """The (width, height) to resize to: a short side (aspect kept, as transformers rounds it) or a fixed size."""
    width, height = size
    short = None
    if isinstance(wanted, dict) and "shortest_edge" in wanted:
        short = int(wanted["shortest_edge"])
    elif isinstance(wanted, int | float) and not isinstance(wanted, bool):
        short = int(wanted)
    if short is not None:  # a panorama's long side is at least one pixel
        if width <= height:
            return short, max(1, int(short * height / width))
        return max(1, int(short * width / height)), short
    crop_height, crop_width = _side_pair(wanted)
    return crop_width, crop_height


def _side_pair(value: Any) -> tuple[int, int]:
    """(height, width) from ``{"height": h, "width": w}`` or a single side."""
    if isinstance(value, dict):
        return int(value.get("height", value.get("shortest_edge", 224))), int(
            value.get("width", value.get("shortest_edge", 224))
        )
    return int(value), int(value)


def _center_crop(image: Any, size: tuple[int, int]) -> Any:
    crop_height, crop_width = size
    width, height = image.size
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    return image.crop((left, top, left + crop_width, top + crop_height))


# --- text ------------------------------------------------------------------------------------------------------
class _Tokenizer:
    """Token ids for the text tower: ``tokenizer.json`` with the ``tokenizers`` package when there is one (both
    layouts: the same ids either way), else transformers' tokenizer of the directory."""

    def __init__(self, layout: Layout, config: dict[str, Any]):
        self.architecture = layout.architecture
        settings = _read_json(layout.files["tokenizer_config"]) if "tokenizer_config" in layout.files else {}
        self.length = _text_length(layout.architecture, config, settings)
        self.pad_to_length = layout.architecture in PADDED_TO_LENGTH
        self.pad_token = settings.get("pad_token")
        if isinstance(self.pad_token, dict):
            self.pad_token = self.pad_token.get("content")
        self.layout = layout
        self._fast: Any = None
        self._lock = threading.Lock()

    def __call__(self, texts: list[str]) -> dict[str, np.ndarray]:
        with self._lock:  # a tokenizers.Tokenizer's padding settings are shared state
            if self._fast is None:
                self._fast = self._load()
            return self._fast(texts)

    def _load(self) -> Any:
        files = self.layout.files
        if "tokenizer:tokenizer.json" in files:
            return self._with_tokenizers(files["tokenizer:tokenizer.json"])
        return self._with_transformers()

    def _with_tokenizers(self, path: Path) -> Any:
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ModelError("open-vocabulary models need the tokenizers package: pip install tokenizers") from exc

        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the library raises its own exception types
            raise OpenVocabError(f"{path} is not a tokenizer the tokenizers package can read: {exc}") from exc
        pad_id = self._pad_id(tokenizer)
        tokenizer.enable_truncation(self.length)
        pad_token = tokenizer.id_to_token(pad_id) or "[PAD]"
        tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token, length=self.length if self.pad_to_length else None)

        def encode(texts: list[str]) -> dict[str, np.ndarray]:
            encodings = tokenizer.encode_batch(list(texts))
            ids = np.asarray([e.ids for e in encodings], np.int64)
            return {
                "input_ids": ids,
                "attention_mask": np.asarray([e.attention_mask for e in encodings], np.int64),
                "token_type_ids": np.zeros_like(ids),
            }

        return encode

    def _pad_id(self, tokenizer: Any) -> int:
        padding = tokenizer.padding
        if padding and padding.get("pad_id") is not None:
            return int(padding["pad_id"])
        for token in (self.pad_token, "<pad>", "[PAD]", "<|endoftext|>", "</s>"):
            if token and tokenizer.token_to_id(token) is not None:
                return int(tokenizer.token_to_id(token))
        return 0

    def _with_transformers(self) -> Any:
        try:
            from transformers import AutoTokenizer
        except ImportError as exc:
            raise ModelError(
                f"{self.layout.directory} has no tokenizer.json: its tokenizer needs the transformers package "
                "(pip install 'polymodal[open-vocab]')"
            ) from exc
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(self.layout.directory), local_files_only=True)
        except Exception as exc:  # missing sentencepiece, a broken file: said with the directory
            raise OpenVocabError(f"cannot load the tokenizer of {self.layout.directory}: {exc}") from exc
        padding = "max_length" if self.pad_to_length else True

        def encode(texts: list[str]) -> dict[str, np.ndarray]:
            out = tokenizer(list(texts), padding=padding, truncation=True, max_length=self.length, return_tensors="np")
            ids = np.asarray(out["input_ids"], np.int64)
            mask = np.asarray(out.get("attention_mask", np.ones_like(ids)), np.int64)
            return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}

        return encode


def _text_length(architecture: str, config: dict[str, Any], tokenizer_config: dict[str, Any]) -> int:
    """How many tokens a text keeps: the tokenizer's own limit when sane, else the text tower's positions."""
    text_config = config.get("text_config") or {}
    positions = int(text_config.get("max_position_embeddings", 0)) or None
    if architecture == "clap" and positions:
        positions -= 2  # RoBERTa counts positions from the padding index + 1
    stated = tokenizer_config.get("model_max_length")
    length = int(stated) if isinstance(stated, int | float) and 0 < stated < 100_000 else None
    if architecture in PADDED_TO_LENGTH:
        return positions or length or DEFAULT_TEXT_LENGTH[architecture]
    return min(x for x in (length, positions, max(DEFAULT_TEXT_LENGTH[architecture], 77)) if x)


# --- runtimes ---------------------------------------------------------------------------------------------------
class _Backend:
    logit_scale: float = 100.0

    def text(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def media(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError


class _TorchBackend(_Backend):
    def __init__(self, layout: Layout, threads: int):
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise ModelError(
                f"{layout.directory} is a transformers model: it needs torch and transformers "
                "(pip install 'polymodal[open-vocab]'), or use its ONNX export"
            ) from exc
        self.torch = torch
        transformers.logging.disable_progress_bar()  # "Loading weights" bars in a search's output
        model_class = getattr(transformers, MODEL_CLASSES[layout.architecture])
        try:
            self.model = model_class.from_pretrained(str(layout.directory), local_files_only=True).eval()
        except Exception as exc:  # a damaged or mismatched file: said with the directory
            raise OpenVocabError(f"cannot load {layout.directory} as {model_class.__name__}: {exc}") from exc
        self.audio = layout.kind == "audio-text"
        scale = getattr(self.model, "logit_scale_a" if self.audio else "logit_scale", None)
        self.logit_scale = float(scale.detach().exp()) if scale is not None else 100.0

    def text(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        with self.torch.inference_mode():
            tensors = {k: self.torch.from_numpy(v) for k, v in inputs.items()}
            return _embeddings(self.model.get_text_features(**tensors))

    def media(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        with self.torch.inference_mode():
            tensors = {k: self.torch.from_numpy(v) for k, v in inputs.items()}
            if self.audio:
                return _embeddings(self.model.get_audio_features(**tensors))
            return _embeddings(self.model.get_image_features(**tensors))


def _embeddings(output: Any) -> np.ndarray:
    return _pooled(output).detach().float().numpy()


def _pooled(output: Any) -> Any:
    """The projected embeddings from a tower's output (a tensor, or transformers 5's output with them pooled)."""
    return output if hasattr(output, "detach") else output.pooler_output


class _OnnxBackend(_Backend):
    def __init__(self, layout: Layout, threads: int):
        from polymodal.models.onnx_tools import onnx_session

        try:
            self.text_session = onnx_session(str(layout.files["text_model"]), threads)
            self.media_session = onnx_session(str(layout.files["media_model"]), threads)
        except Exception as exc:  # onnxruntime's own exception types
            raise OpenVocabError(f"cannot load the ONNX export in {layout.directory}: {exc}") from exc

    def text(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return _run(self.text_session, inputs, ("text_embeds",))

    def media(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return _run(self.media_session, inputs, ("image_embeds", "audio_embeds"))


def _run(session: Any, inputs: dict[str, np.ndarray], wanted: tuple[str, ...]) -> np.ndarray:
    """Run a tower with the inputs it declares; the named embedding output, else its first 2-d output."""
    feeds = {}
    for declared in session.get_inputs():
        if declared.name not in inputs:
            raise OpenVocabError(f"the ONNX graph wants an input {declared.name!r} that polymodal does not make")
        value = inputs[declared.name]
        feeds[declared.name] = value.astype(bool) if "bool" in declared.type else value
    outputs = session.get_outputs()
    name = next((o.name for o in outputs if o.name in wanted), None)
    name = name or next((o.name for o in outputs if len(o.shape) == 2), outputs[0].name)
    return np.asarray(session.run([name], feeds)[0], np.float32)


# --- exporting a transformers directory to ONNX --------------------------------------------------------------
def export_onnx(source: str | Path, target: str | Path, kind: str) -> Layout:
    """Write the ONNX layout of a transformers model directory into ``target`` (towers, tokenizer, preprocessor and
    config copied); needs torch and transformers once. Returns the new layout."""
    import shutil

    import torch

    layout = detect_layout(source, kind)
    if layout.layout != "transformers":
        raise OpenVocabError(f"{source} is already an ONNX export")
    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    model = _TorchBackend(layout, 1).model
    tokenizer = _Tokenizer(layout, _read_json(layout.files["config"]))
    text_inputs = TEXT_INPUTS[layout.architecture]
    sample = tokenizer(["a photo of a cat", "two dogs"])
    text_args = tuple(torch.from_numpy(sample[name]) for name in text_inputs)

    model.requires_grad_(False)

    class Tower(torch.nn.Module):
        def __init__(self, text: bool):
            super().__init__()
            self.model, self.is_text = model, text  # a submodule: its weights go into the graph

        def forward(self, *args: Any) -> Any:
            if self.is_text:
                return _pooled(self.model.get_text_features(**dict(zip(text_inputs, args, strict=True))))
            if kind == "audio-text":
                return _pooled(self.model.get_audio_features(input_features=args[0], is_longer=args[1]))
            return _pooled(self.model.get_image_features(pixel_values=args[0]))

    if kind == "audio-text":
        extractor = _clap_features(_read_json(layout.files["preprocessor"]))
        silence = [np.zeros(extractor.sampling_rate, np.float32)] * 2
        features = extractor(silence, sampling_rate=extractor.sampling_rate, return_tensors="np")
        media_args = (torch.from_numpy(features["input_features"]), torch.from_numpy(features["is_longer"]).bool())
        media_names, output = ["input_features", "is_longer"], "audio_embeds"
    else:
        from PIL import Image

        pixels = image_input(Image.new("RGB", (320, 240)), _read_json(layout.files["preprocessor"]))
        media_args, media_names, output = (torch.zeros(2, *pixels.shape),), ["pixel_values"], "image_embeds"
    batch = {0: "n"}
    with torch.no_grad():
        torch.onnx.export(
            Tower(True), text_args, str(out / "text_model.onnx"), input_names=list(text_inputs),
            output_names=["text_embeds"], opset_version=17, dynamo=False,
            dynamic_axes={**{n: {0: "n", 1: "tokens"} for n in text_inputs}, "text_embeds": batch},
        )  # fmt: skip
        torch.onnx.export(
            Tower(False), media_args, str(out / MEDIA_TOWER[kind]), input_names=media_names, output_names=[output],
            opset_version=17, dynamo=False, dynamic_axes={**{n: batch for n in media_names}, output: batch},
        )  # fmt: skip
    for role in ("preprocessor", "config", "tokenizer_config", "special_tokens_map", "tokenizer:tokenizer.json"):
        if role in layout.files:
            shutil.copyfile(layout.files[role], out / layout.files[role].name)
    if "tokenizer:tokenizer.json" not in layout.files:  # a slow tokenizer's files: its fast form writes one
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(layout.directory), local_files_only=True).save_pretrained(str(out))
    for name in ("README.md", "LICENSE", "LICENSE.txt", "LICENSE.md"):  # they say the licence
        if (layout.directory / name).is_file():
            shutil.copyfile(layout.directory / name, out / name)
    return detect_layout(out, kind)
