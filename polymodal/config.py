"""Typed settings: where things live, which models to use, how much of the machine to take.

Every setting comes from, first found wins: an explicit argument (a command-line option), an environment
variable ``POLYMODAL_<NAME>`` (``POLYMODAL_OCR_MODE=never``), the store's ``polymodal.toml`` (``<store>/
polymodal.toml``), the user's ``polymodal.toml`` (``~/.config/polymodal/polymodal.toml``, or ``$POLYMODAL_CONFIG``),
then the defaults below. Every value is checked: a bad one stops with a :class:`~polymodal.errors.ConfigError`
that names the setting, where it came from and what is allowed. Reading settings reads those two small files and
nothing else: no model is loaded, nothing is written.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from polymodal.errors import ConfigError

FILE_NAME = "polymodal.toml"
STORE_URL_SCHEMES = ("postgresql:", "postgres:")  # a store given by one of these is a PostgreSQL database
OCR_MODES = ("auto", "always", "never")
PROVIDER_KINDS = ("openai", "anthropic")
# Older names of variables, still read: POLYMODAL_OCR was the OCR policy before every setting had its own variable.
ENV_ALIASES = {"POLYMODAL_OCR": "ocr_mode"}
ENV_NAMES = {"ocr": "POLYMODAL_OCR_ENGINE"}  # its own name is the alias above


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: a container's or taskset's limit), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _user_dir(kind: str) -> Path:
    from platformdirs import user_cache_dir, user_config_dir, user_data_dir

    where = {"data": user_data_dir, "cache": user_cache_dir, "config": user_config_dir}[kind]
    return Path(where("polymodal"))


def is_url(location: object) -> bool:
    """Whether a store's ``location`` names a database server rather than a directory. A URL that went through
    ``Path`` (``postgresql:/user@host/db``: the double slash collapsed) still counts."""
    return str(location or "").startswith(STORE_URL_SCHEMES)


def as_url(location: str | os.PathLike[str]) -> str:
    """The URL again, where ``Path`` collapsed its ``//``."""
    scheme, _, rest = str(location).partition(":")
    return f"{scheme}://{rest.lstrip('/')}"


@dataclass(frozen=True)
class Settings:
    # The store: a directory (the embedded store), or a PostgreSQL URL (``postgresql://user@host:5432/db``, text).
    store: Path | str = field(default_factory=lambda: _user_dir("data") / "store")
    cache: Path = field(default_factory=lambda: _user_dir("cache"))
    # Threads for model inference; by default every CPU the process may use.
    threads: int = field(default_factory=usable_cpus)
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
        for item in fields(self):
            value = _checked(item.name, getattr(self, item.name), "setting")
            object.__setattr__(self, item.name, value)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Settings from every source (see the module's doc); ``overrides`` that are None are not given."""
        return load(overrides, os.environ)

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


# --- checks: one per setting, each naming what is allowed ----------------------------------------------------
def _whole(low: int, high: int | None = None) -> Callable[[str, Any, str], int]:
    def check(name: str, value: Any, source: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(name, value, source, "a whole number")
        if value < low or (high is not None and value > high):
            raise _bad(name, value, source, f"from {low} to {high}" if high is not None else f"at least {low}")
        return value

    return check


def _number(low: float, strictly: bool = False) -> Callable[[str, Any, str], float]:
    def check(name: str, value: Any, source: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _bad(name, value, source, "a number")
        if value < low or (strictly and value == low):
            raise _bad(name, value, source, f"{'over' if strictly else 'at least'} {low:g}")
        return float(value)

    return check


def _one_of(*choices: str) -> Callable[[str, Any, str], str]:
    def check(name: str, value: Any, source: str) -> str:
        if value not in choices:
            raise _bad(name, value, source, f"one of {', '.join(choices)}")
        return value

    return check


def _name(name: str, value: Any, source: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad(name, value, source, "a model name")
    return value.strip()


def _path(name: str, value: Any, source: str) -> Path:
    if not isinstance(value, str | os.PathLike) or not str(value).strip():
        raise _bad(name, value, source, "a path")
    return Path(value).expanduser()


def _store(name: str, value: Any, source: str) -> Path | str:
    """A store directory, or a PostgreSQL URL kept as text (as a ``Path`` its ``//`` would collapse)."""
    if isinstance(value, str | os.PathLike) and is_url(value):
        return as_url(value)
    return _path(name, value, source)


def _provider(name: str, value: Any, source: str) -> dict[str, object] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _bad(name, value, source, 'a table such as {kind = "openai", url = "...", model = "..."}')
    kind = value.get("kind", "openai")  # any OpenAI-compatible server unless said otherwise
    if str(kind).lower() not in PROVIDER_KINDS:
        raise _bad(f"{name}.kind", kind, source, f"one of {', '.join(PROVIDER_KINDS)}")
    return dict(value)


def _paths_by_model(name: str, value: Any, source: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(v, str | os.PathLike) for v in value.values()):
        raise _bad(name, value, source, 'a table of model name = "folder"')
    return {str(k): str(v) for k, v in value.items()}


CHECKS: dict[str, Callable[[str, Any, str], Any]] = {
    "store": _store,
    "cache": _path,
    "threads": _whole(1, 1024),
    "text_encoder": _name,
    "image_classifier": _name,
    "ocr": _name,
    "speech": _name,
    "sound": _name,
    "vad": _name,
    "llm": _name,
    "provider": _provider,
    "ocr_mode": _one_of(*OCR_MODES),
    "bridge_top_k": _whole(1, 1000),
    "exact_search_limit": _whole(0),
    "search_nprobe": _whole(1),
    "idle_unload_seconds": _number(0),
    "speech_beam_size": _whole(1, 20),
    "max_file_bytes": _whole(1),
    "max_image_pixels": _whole(1),
    "max_audio_seconds": _number(0, strictly=True),
    "model_paths": _paths_by_model,
}


def _bad(name: str, value: Any, source: str, allowed: str) -> ConfigError:
    shown = value if isinstance(value, str | int | float) else type(value).__name__
    where = "" if source == "setting" else f" (from {source})"
    return ConfigError(f"setting {name} must be {allowed}, not {shown!r}{where}")


def _checked(name: str, value: Any, source: str) -> Any:
    return CHECKS[name](name, value, source)


# --- the sources, most important first ---------------------------------------------------------------------
def env_name(setting: str) -> str:
    return ENV_NAMES.get(setting, f"POLYMODAL_{setting.upper()}")


def load(overrides: Mapping[str, object], env: Mapping[str, str]) -> Settings:
    given = {name: value for name, value in overrides.items() if value is not None}
    from_env = _from_env(env)
    user = _from_file(_user_file(env))
    # The store's own file: the store as options, environment or the user's file say.
    store = given.get("store") or from_env.get("store") or user.get("store")
    store_file = None if is_url(store) else Path(str(store or _user_dir("data") / "store")).expanduser() / FILE_NAME
    in_store = _from_file(store_file, ignore=("store",))
    values = {**user, **in_store, **from_env, **given}
    return Settings(**values)  # type: ignore[arg-type]


def _user_file(env: Mapping[str, str]) -> Path | None:
    """``$POLYMODAL_CONFIG`` ("none": no user file), else ``polymodal.toml`` in the user's config folder."""
    chosen = env.get("POLYMODAL_CONFIG")
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "none") else Path(chosen).expanduser()
    return _user_dir("config") / FILE_NAME


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for variable, name in ENV_ALIASES.items():
        if variable in env:
            values[name] = _checked(name, env[variable], variable)
    for name in CHECKS:
        variable = env_name(name)
        if variable in env and name != "model_paths":
            values[name] = _checked(name, _parse(name, env[variable], variable), variable)
    paths = {
        key.removeprefix("POLYMODAL_MODEL_PATH_").lower().replace("_", "-"): value
        for key, value in env.items()
        if key.startswith("POLYMODAL_MODEL_PATH_")
    }
    if paths:
        values["model_paths"] = paths
    return values


def _parse(name: str, text: str, variable: str) -> Any:
    """An environment variable's text as the setting's type."""
    kind = {int: "a whole number", float: "a number"}
    default = _default(name)
    try:
        if isinstance(default, int):
            return int(text.strip().replace("_", ""))
        if isinstance(default, float):
            return float(text)
        if name == "provider":
            return json.loads(text) if text.strip() else None
    except ValueError:
        wanted = "JSON" if name == "provider" else kind[type(default)]
        raise _bad(name, text, variable, wanted) from None
    return text


def _default(name: str) -> Any:
    item = next(f for f in fields(Settings) if f.name == name)
    return item.default_factory() if callable(item.default_factory) else item.default  # type: ignore[misc]


def _from_file(path: Path | None, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """The settings in a ``polymodal.toml`` (none when there is no such file), each checked."""
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the settings file {path}: {exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the settings file {path} is not valid TOML: {exc}") from exc
    values: dict[str, Any] = {}
    for name, value in data.items():
        if name not in CHECKS:
            import difflib

            near = difflib.get_close_matches(name, list(CHECKS), n=1)
            hint = f"; did you mean {near[0]}?" if near else f"; known: {', '.join(CHECKS)}"
            raise ConfigError(f"{path}: {name!r} is not a setting{hint}")
        if name not in ignore:  # a store's own file cannot move the store
            values[name] = _checked(name, value, str(path))
    return values
