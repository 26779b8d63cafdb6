"""Sound events in a recording: what is heard, and from when to when (YAMNet, 521 AudioSet classes).

The file is decoded block by block (``BLOCK_SECONDS``) and scored in 0.96 s patches every 0.48 s; each block
ends on a whole patch and the next one starts where its next patch would, so the patch grid (and every score)
is the same as for one decode of the whole file, while memory holds one block of audio plus the score matrix
(521 floats per 0.48 s: 15 MB an hour).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.analysis import Analyzer
from polymodal.media.audio import iter_audio
from polymodal.models.sound import HOP, N_FFT, PATCH_FRAMES, PATCH_HOP_FRAMES

BLOCK_SECONDS = 600.0
_SAMPLE_RATE = 16000
PATCH_SAMPLES = (PATCH_FRAMES - 1) * HOP + N_FFT  # one 0.96 s patch of 96 frames


@dataclass
class Event:
    label: str
    start: float
    end: float
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "start": round(self.start, 2),
            "end": round(self.end, 2),
            "score": round(self.score, 3),
        }


@dataclass
class Tagging:
    source: str
    duration: float
    tags: list[tuple[str, float]]  # clip-level: best patch score per class, best first
    events: list[Event] = field(default_factory=list)  # sorted by start
    threshold: float = 0.2
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "duration": round(self.duration, 2),
            "model": self.model,
            "threshold": self.threshold,
            "tags": [{"label": label, "score": round(score, 3)} for label, score in self.tags],
            "events": [e.to_dict() for e in self.events],
        }

    def to_text(self) -> str:
        lines = [f"{self.duration:.1f} s; heard: " + ", ".join(f"{label} {score:.2f}" for label, score in self.tags)]
        if not self.events:
            lines.append(f"no event scores {self.threshold:g} or more")
        for event in self.events:
            lines.append(f"{_clock(event.start)} – {_clock(event.end)}  {event.label} ({event.score:.2f})")
        return "\n".join(lines)


def tag(
    analyzer: Analyzer,
    source: Path,
    threshold: float = 0.2,
    min_duration: float = 0.5,
    top_k: int = 5,
    block_seconds: float = BLOCK_SECONDS,
) -> Tagging:
    """Clip-level tags (``top_k``) and events: runs of patches where a class scores ``threshold`` or more,
    lasting at least ``min_duration`` seconds."""
    model = analyzer.model("sound")
    starts: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    samples = 0
    for offset, audio in _patch_blocks(analyzer, source, block_seconds):
        block_starts, block_scores = model.frame_scores(audio)  # only the last block gets padded
        starts.append(block_starts + offset / _SAMPLE_RATE)
        scores.append(block_scores)
        samples = offset + audio.size
    all_starts, all_scores = np.concatenate(starts), np.concatenate(scores)
    duration = samples / _SAMPLE_RATE
    events = [
        Event(e.label, e.start, e.end, e.score)
        for e in model.events_from_scores(all_starts, all_scores, duration, threshold, min_duration)
    ]
    tags = model.tags_from_scores(all_scores, top_k)
    return Tagging(str(source), duration, tags, events, threshold, model.model_id)


def _patch_blocks(analyzer: Analyzer, source: Path, block_seconds: float) -> Iterator[tuple[int, np.ndarray]]:
    """(offset in samples, samples) blocks; each but the last ends exactly after its last whole patch and the
    next begins at the patch after it (consecutive blocks overlap by half a patch)."""
    hop = PATCH_HOP_FRAMES * HOP
    carry = np.zeros(0, np.float32)
    offset = 0
    blocks = iter_audio(source, block_seconds, _SAMPLE_RATE, analyzer.settings.max_audio_seconds)
    current = next(blocks)
    for following in blocks:
        audio = np.concatenate([carry, current])
        whole = _whole_patches(audio.size)
        if whole > 0:
            yield offset, audio[: (whole - 1) * hop + PATCH_SAMPLES]
            carry, offset = audio[whole * hop :], offset + whole * hop
        else:
            carry = audio
        current = following
    yield offset, np.concatenate([carry, current])


def _whole_patches(n_samples: int) -> int:
    return max(0, 1 + (n_samples - PATCH_SAMPLES) // (PATCH_HOP_FRAMES * HOP))


def _clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}:{secs:04.1f}"
