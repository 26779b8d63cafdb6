"""Typed settings: where things live, which models to use, how much of the machine to take.

Settings come from defaults, then environment variables (``POLYMODAL_*``), then explicit arguments.
Nothing here touches the disk or loads a model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path


def _user_dir(kind: str) -> Path:
    from platformdirs import user_cache_dir, user_data_dir

    return Path(user_data_dir("polymodal") if kind == "data" else user_cache_dir("polymodal"))


@dataclass(frozen=True)
class Settings:
    store: Path = field(default_factory=lambda: _user_dir("data") / "store")
    cache: Path = field(default_factory=lambda: _user_dir("cache"))
    threads: int = 2
    text_encoder: str = "use-multilingual"
    image_classifier: str = "efficientnet-lite0"
    ocr: str = "rapidocr"
    speech: str = "whisper-base"
    sound: str = "yamnet"
    vad: str = "silero"
    # Local LLM that phrases descriptions, answers and summaries ("none": template/extractive fallbacks only).
    llm: str = "qwen2.5-1.5b"
    # A remote model for describe / ask / summarize, used only when configured:
    # {"kind": "openai" | "anthropic", "url": ..., "model": ..., "api_key_env": ..., "timeout": 60, "retries": 2}
    provider: dict[str, object] | None = None
    # OCR policy for images: "auto" runs it only where a cheap detector sees text.
    ocr_mode: str = "auto"
    # Number of classifier labels that make an image's (or sound's) label-bridge vector.
    bridge_top_k: int = 10
    # Vectors above this count are searched with an HNSW index instead of exactly.
    exact_search_limit: int = 50_000
    # Inverted lists probed per query above that (of ~4 sqrt(n)); more: higher recall, slower (bench/PERFORMANCE.md).
    search_nprobe: int = 16
    # A model unused for this long is unloaded (memory back to the system) and reloaded on next use; 0: never.
    idle_unload_seconds: float = 300.0
    # Whisper's beam when indexing: greedy (1) is 1.6x faster than 5 for +0.5 point WER on the Asterisk prompts
    # (bench/speech_beam.py); the `transcribe` task (subtitles) always uses 5.
    speech_beam_size: int = 1
    max_file_bytes: int = 2 * 1024**3
    max_image_pixels: int = 120_000_000
    max_audio_seconds: float = 4 * 3600
    # Model files a user wants instead of the bundled ones: {"whisper-base": "/path/to/dir"}.
    model_paths: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("store", "cache"):
            object.__setattr__(self, name, Path(getattr(self, name)).expanduser())

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {}
        if "POLYMODAL_STORE" in env:
            values["store"] = Path(env["POLYMODAL_STORE"]).expanduser()
        if "POLYMODAL_CACHE" in env:
            values["cache"] = Path(env["POLYMODAL_CACHE"]).expanduser()
        if "POLYMODAL_THREADS" in env:
            values["threads"] = max(1, int(env["POLYMODAL_THREADS"]))
        if "POLYMODAL_LLM" in env:
            values["llm"] = env["POLYMODAL_LLM"]
        if "POLYMODAL_OCR" in env:
            values["ocr_mode"] = env["POLYMODAL_OCR"]
        if "POLYMODAL_IDLE_UNLOAD_SECONDS" in env:
            values["idle_unload_seconds"] = max(0.0, float(env["POLYMODAL_IDLE_UNLOAD_SECONDS"]))
        for key, value in env.items():
            if key.startswith("POLYMODAL_MODEL_PATH_"):
                name = key.removeprefix("POLYMODAL_MODEL_PATH_").lower().replace("_", "-")
                values.setdefault("model_paths", {})[name] = value  # type: ignore[index]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]
