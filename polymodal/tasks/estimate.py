"""How long an understanding task will take, roughly: "about 40 s", from measured costs.

A task's time is the sum of its parts: perceiving each file (an image per file; a recording or a video per
second of media; a document per 100,000 characters) and, when an LLM words the result, one LLM run per text
it writes. Each part has a cost per unit. The defaults were measured on a 2-core CPU; every finished task
updates the costs it used (a moving average), kept in ``<cache>/timings.json`` so the next estimate, in this
process or the next, is closer to this machine.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import wave
from dataclasses import dataclass, field
from pathlib import Path

# Seconds per unit (see the module doc): measured on 2 busy CPU cores with the models loaded.
DEFAULT_COSTS = {
    "image": 2.0,  # per image (labels, colours, OCR)
    "audio": 0.15,  # per second of sound (speech recognition, sound tags)
    "video": 0.5,  # per second of video
    "text": 1.5,  # per 100,000 characters
    "stored": 0.3,  # an indexed item's evidence read from the store (no perceiving)
    "llm:qwen2.5-0.5b": 2.0,  # per text the LLM writes (a caption, an answer, a summary)
    "llm:qwen2.5-1.5b": 3.0,
    "llm": 6.0,  # another phraser (a remote provider)
    "load": 4.0,  # loading the perception models, once per process
    "load:llm": 15.0,  # loading the local LLM and reading its instructions, once per process
}
WEIGHT = 0.3  # of a new measurement in the moving average
AUDIO_BYTES_PER_SECOND = 16_000  # compressed audio at 128 kbit/s, when the header does not say
_LOCK = threading.Lock()


@dataclass
class Plan:
    """The units of work a task will do; ``seconds()`` is its estimate under the costs."""

    parts: list[tuple[str, float]] = field(default_factory=list)  # (cost key, units)

    def add(self, key: str, units: float = 1.0) -> Plan:
        self.parts.append((key, units))
        return self

    def seconds(self, costs: dict[str, float]) -> float:
        return sum(costs.get(key, DEFAULT_COSTS.get(key, DEFAULT_COSTS["llm"])) * units for key, units in self.parts)


def perception(path: Path, modality: str) -> tuple[str, float]:
    """(cost key, units) of perceiving the file at ``path`` of ``modality``."""
    if modality == "image":
        return "image", 1.0
    size = _size(path)
    if modality in ("audio", "video"):
        return modality, _media_seconds(path, size)
    return "text", max(size, 1) / 100_000


def llm_key(phraser_name: str | None) -> str | None:
    """The cost key of a phraser's runs; None without one (templates cost nothing)."""
    if not phraser_name:
        return None
    return f"llm:{phraser_name}" if f"llm:{phraser_name}" in DEFAULT_COSTS else "llm"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _media_seconds(path: Path, size: int) -> float:
    """A recording's duration: from a WAV header, else from its size at a typical compressed bit rate."""
    if path.suffix.lower() == ".wav":
        try:
            with wave.open(str(path), "rb") as reader:
                return reader.getnframes() / max(1, reader.getframerate())
        except (wave.Error, EOFError, OSError):
            pass
    return size / AUDIO_BYTES_PER_SECOND


class Costs:
    """The costs per unit, read from and saved to ``<cache>/timings.json``."""

    def __init__(self, cache: Path | str | None):
        self.path = Path(cache).expanduser() / "timings.json" if cache else None
        self.values = dict(DEFAULT_COSTS)
        self.values.update(self._read())

    def estimate(self, plan: Plan) -> float:
        return plan.seconds(self.values)

    def learn(self, plan: Plan, seconds: float) -> None:
        """Scale the plan's costs toward the time it really took (each by the same ratio), and save them."""
        predicted = self.estimate(plan)
        if predicted <= 0 or seconds <= 0:
            return
        ratio = min(3.0, max(0.33, seconds / predicted))  # one odd run (a cold start) moves it little
        for key in {key for key, _ in plan.parts}:
            old = self.values.get(key, DEFAULT_COSTS.get(key, DEFAULT_COSTS["llm"]))
            self.values[key] = round(old * (1 - WEIGHT + WEIGHT * ratio), 4)
        self._save()

    def _read(self) -> dict[str, float]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: float(v) for k, v in data.items() if isinstance(v, int | float) and 0 < v < 10_000}

    def _save(self) -> None:
        if self.path is None:
            return
        with _LOCK:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                handle, temp = tempfile.mkstemp(dir=self.path.parent, prefix=".timings-", suffix=".json")
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    json.dump(self.values, out, indent=1, sort_keys=True)
                os.replace(temp, self.path)
            except OSError:  # an estimate is a nicety: a read-only cache only means no learning
                return


def about(seconds: float) -> str:
    """ "about 40 s", "about 3 min"."""
    if seconds < 90:
        return f"about {max(1, round(seconds / 5) * 5 if seconds >= 20 else round(seconds))} s"
    return f"about {round(seconds / 60)} min"
