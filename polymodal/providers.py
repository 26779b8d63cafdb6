"""Who phrases descriptions, answers and summaries: the local LLM or a configured remote model.

One interface, :class:`Phraser`: ``complete(system, user, images)`` returns text; :func:`stream_text` gives it
piece by piece as it is generated (``stream`` where a phraser has it: the local LLM and both wire formats; one
piece otherwise), and stops the model when a ``stop`` event is set. The local LLM ignores images (it is
text-only and sees the evidence instead); a provider is sent the images as well.
Providers speak either the OpenAI chat-completions wire format (OpenAI, Ollama, vLLM, llama.cpp server)
or Anthropic's Messages API, over ``httpx`` (one pooled client per provider, a timeout on every read, retries
with backoff on connection errors and on 408 / 429 / 5xx, honouring Retry-After): nothing is contacted unless
``Settings.provider`` is set.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from polymodal.config import Settings

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_URLS = {"openai": "https://api.openai.com", "anthropic": "https://api.anthropic.com"}
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
MAX_RETRY_AFTER = 30.0


Examples = tuple[tuple[str, str], ...] | list[tuple[str, str]]  # (user, assistant) pairs


class ProviderError(RuntimeError):
    """A configured provider could not be reached, refused, or answered something unusable."""


class Cancelled(Exception):
    """Generation was stopped on request (its ``stop`` event was set)."""


@dataclass(frozen=True)
class ImageData:
    """An image ready to send: JPEG bytes."""

    jpeg: bytes
    media_type: str = "image/jpeg"

    @property
    def base64(self) -> str:
        return base64.b64encode(self.jpeg).decode("ascii")

    @property
    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{self.base64}"


class Phraser(Protocol):
    name: str
    sees_images: bool
    context_tokens: int

    def complete(
        self,
        system: str,
        user: str,
        images: list[ImageData] | None = None,
        max_tokens: int = 300,
        examples: Examples = (),
    ) -> str:
        """The model's answer to ``user`` under the ``system`` instructions, after worked ``examples``."""
        ...

    def count_tokens(self, text: str) -> int: ...


def stream_text(
    phraser: Phraser,
    system: str,
    user: str,
    images: list[ImageData] | None = None,
    max_tokens: int = 300,
    examples: Examples = (),
    stop: threading.Event | None = None,
) -> Iterator[str]:
    """The phraser's answer in pieces as it is generated (one piece for a phraser that cannot stream).

    Setting ``stop`` stops generation (the model is told, not just ignored) and raises :class:`Cancelled`.
    """
    if stop is not None and stop.is_set():
        raise Cancelled("stopped before generation started")
    streamer = getattr(phraser, "stream", None)
    if streamer is None:
        yield phraser.complete(system, user, images, max_tokens=max_tokens, examples=examples)
    else:
        for piece in streamer(system, user, images, max_tokens=max_tokens, examples=examples, stop=stop):
            if stop is not None and stop.is_set():
                break
            yield piece
    if stop is not None and stop.is_set():
        raise Cancelled("stopped while generating")


class LocalPhraser:
    """The local LLM (``Settings.llm``) behind the :class:`Phraser` interface; images are not sent."""

    sees_images = False

    def __init__(self, model: Any):
        self.model = model
        self.name = model.name
        self.context_tokens = model.context_tokens

    def complete(
        self,
        system: str,
        user: str,
        images: list[ImageData] | None = None,
        max_tokens: int = 300,
        examples: Examples = (),
    ) -> str:
        return self.model.chat(_messages(system, user, examples), max_tokens=max_tokens, temperature=0.0)

    def stream(
        self,
        system: str,
        user: str,
        images: list[ImageData] | None = None,
        max_tokens: int = 300,
        examples: Examples = (),
        stop: threading.Event | None = None,
    ) -> Iterator[str]:
        """The reply piece by piece; generation ends when ``stop`` is set (see :func:`stream_text`)."""
        yield from self.model.stream(_messages(system, user, examples), max_tokens=max_tokens, stop=stop)

    def count_tokens(self, text: str) -> int:
        return self.model.count_tokens(text)


def _messages(system: str, user: str, examples: Examples) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, *example_messages(examples), {"role": "user", "content": user}]


@dataclass
class ProviderConfig:
    kind: str
    url: str
    model: str
    api_key_env: str | None = None
    timeout: float = 60.0
    retries: int = 2
    backoff: float = 1.0  # seconds before the first retry; doubled each time
    vision: bool = True  # send images (False for a text-only model)
    context_tokens: int = 32_000
    extra_headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, provider: dict[str, Any]) -> ProviderConfig:
        kind = str(provider.get("kind", "openai")).lower()
        if kind not in DEFAULT_URLS:
            raise ProviderError(f"unknown provider kind {kind!r}: use 'openai' (any compatible server) or 'anthropic'")
        if not provider.get("model"):
            raise ProviderError("the provider needs a 'model' name")
        known = {f for f in cls.__dataclass_fields__ if f != "kind"}
        unknown = set(provider) - known - {"kind"}
        if unknown:
            raise ProviderError(f"unknown provider settings: {', '.join(sorted(unknown))}")
        values = {k: v for k, v in provider.items() if k in known}
        values.setdefault("url", DEFAULT_URLS[kind])
        return cls(kind=kind, **values)  # type: ignore[arg-type]


class ProviderPhraser:
    """A remote model over HTTP, OpenAI-compatible or Anthropic, with timeouts and retries."""

    def __init__(self, config: ProviderConfig):
        self.config = config
        self.name = f"{config.kind}:{config.model}"
        self.sees_images = config.vision
        self.context_tokens = config.context_tokens
        self._http: httpx.Client | None = None

    def complete(
        self,
        system: str,
        user: str,
        images: list[ImageData] | None = None,
        max_tokens: int = 300,
        examples: Examples = (),
    ) -> str:
        images = list(images or []) if self.sees_images else []
        if self.config.kind == "anthropic":
            body = anthropic_body(self.config.model, system, user, images, max_tokens, examples)
            return _anthropic_text(self._post(self.endpoint, body, self._headers()), self.config.url)
        body = openai_body(self.config.model, system, user, images, max_tokens, examples)
        return _openai_text(self._post(self.endpoint, body, self._headers()), self.config.url)

    def stream(
        self,
        system: str,
        user: str,
        images: list[ImageData] | None = None,
        max_tokens: int = 300,
        examples: Examples = (),
        stop: threading.Event | None = None,
    ) -> Iterator[str]:
        """The reply piece by piece over server-sent events (``"stream": true`` in both wire formats); retried
        like :meth:`complete` until the first event arrives; the connection is closed when ``stop`` is set."""
        images = list(images or []) if self.sees_images else []
        anthropic = self.config.kind == "anthropic"
        build = anthropic_body if anthropic else openai_body
        body = build(self.config.model, system, user, images, max_tokens, examples) | {"stream": True}
        data = json.dumps(body).encode("utf-8")
        response = self._with_retries(lambda: _open_once(self._client(), self.endpoint, data, self._headers()))
        with contextlib.closing(response):
            if "text/event-stream" not in (response.headers.get("content-type") or ""):
                yield self._whole(response, anthropic)  # a server that does not stream answers whole
                return
            for event in _events(response, self.config.url):
                if stop is not None and stop.is_set():
                    return
                piece = _anthropic_piece(event) if anthropic else _openai_piece(event)
                if piece:
                    yield piece

    def _whole(self, response: Any, anthropic: bool) -> str:
        try:
            answer = json.loads(response.read())
        except (ValueError, httpx.HTTPError) as exc:
            raise ProviderError(f"provider {_origin(self.config.url)} answered something unusable: {exc}") from None
        return _anthropic_text(answer, self.config.url) if anthropic else _openai_text(answer, self.config.url)

    def count_tokens(self, text: str) -> int:
        # No tokenizer for a remote model: ~4 characters a token in English, ~1 a token in Chinese.
        return max(1, len(text.encode("utf-8")) // 3)

    @property
    def endpoint(self) -> str:
        url = self.config.url.rstrip("/")
        suffix = "/messages" if self.config.kind == "anthropic" else "/chat/completions"
        if url.endswith(suffix):
            return url
        return url + suffix if url.endswith("/v1") else url + "/v1" + suffix

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", **self.config.extra_headers}
        key = self._api_key()
        if self.config.kind == "anthropic":
            headers["anthropic-version"] = ANTHROPIC_VERSION
            if key:
                headers["x-api-key"] = key
        elif key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    def _api_key(self) -> str | None:
        name = self.config.api_key_env
        if not name:
            return None
        key = os.environ.get(name)
        if not key:
            raise ProviderError(f"the provider's API key variable ${name} is not set")
        return key

    def _post(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        data = json.dumps(body).encode("utf-8")
        return self._with_retries(lambda: _post_once(self._client(), url, data, headers))

    def _client(self) -> httpx.Client:
        """One client per phraser, made on first use: its connections are kept and reused."""
        if self._http is None:
            self._http = httpx.Client(timeout=httpx.Timeout(self.config.timeout), follow_redirects=False)
        return self._http

    def _with_retries(self, call: Any) -> Any:
        attempts = 1 + max(0, int(self.config.retries))
        for attempt in range(attempts):
            try:
                return call()
            except _Retryable as exc:
                if attempt == attempts - 1:
                    suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
                    raise ProviderError(f"{exc}{suffix}") from None
                time.sleep(exc.retry_after if exc.retry_after is not None else self.config.backoff * 2**attempt)
        raise AssertionError("unreachable")


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def _post_once(client: httpx.Client, url: str, data: bytes, headers: dict[str, str]) -> dict[str, Any]:
    with contextlib.closing(_open_once(client, url, data, headers)) as response:
        try:
            raw = response.read()
        except httpx.TimeoutException:
            raise _Retryable(f"provider {_origin(url)} timed out after {_timeout(client):g} s") from None
        except httpx.HTTPError as exc:
            raise _Retryable(f"provider {_origin(url)} connection failed: {exc}") from None
    try:
        return json.loads(raw)
    except ValueError:
        raise ProviderError(f"provider {_origin(url)} answered something that is not JSON: {_excerpt(raw)}") from None


def _open_once(client: httpx.Client, url: str, data: bytes, headers: dict[str, str]) -> httpx.Response:
    """The open (streamed) HTTP response to one POST; errors sorted into retryable and final ones."""
    where = _origin(url)
    try:
        response = client.send(client.build_request("POST", url, content=data, headers=headers), stream=True)
    except httpx.TimeoutException:
        raise _Retryable(f"provider {where} timed out after {_timeout(client):g} s") from None
    except httpx.HTTPError as exc:
        raise _Retryable(f"provider {where} could not be reached: {exc}") from None
    if response.status_code < 400:
        return response
    try:
        excerpt = _excerpt(response.read())
    except httpx.HTTPError as exc:
        excerpt = f"(body unreadable: {exc})"
    finally:
        response.close()
    message = f"provider {where} answered {response.status_code}: {excerpt}"
    if response.status_code in RETRY_STATUSES:
        raise _Retryable(message, _retry_after(response.headers.get("retry-after")))
    raise ProviderError(message)


def _timeout(client: httpx.Client) -> float:
    return float(client.timeout.read or 0)


def _events(response: Any, url: str) -> Iterator[dict[str, Any]]:
    """The JSON payloads of a server-sent event stream (``data:`` lines), up to ``[DONE]``."""
    try:
        for raw in response.iter_lines():
            line = raw.strip()
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                return
            try:
                event = json.loads(payload)
            except ValueError:
                raise ProviderError(f"provider {_origin(url)} streamed something that is not JSON: "
                                    f"{_excerpt(payload.encode())}") from None  # fmt: skip
            if not isinstance(event, dict):
                continue
            if event.get("type") == "error" or ("error" in event and "choices" not in event):
                raise ProviderError(f"provider {_origin(url)} stopped with an error: {_excerpt(event)}")
            yield event
    except httpx.HTTPError as exc:
        raise ProviderError(f"provider {_origin(url)} stopped streaming: {exc or type(exc).__name__}") from None


def _openai_piece(event: dict[str, Any]) -> str:
    choices = event.get("choices") or [{}]
    delta = choices[0].get("delta") if isinstance(choices[0], dict) else None
    return str((delta or {}).get("content") or "")


def _anthropic_piece(event: dict[str, Any]) -> str:
    delta = event.get("delta") if event.get("type") == "content_block_delta" else None
    return str(delta.get("text") or "") if isinstance(delta, dict) and delta.get("type") == "text_delta" else ""


def example_messages(examples: Examples) -> list[dict[str, str]]:
    """Worked examples as alternating user / assistant turns."""
    return [m for question, answer in examples for m in ({"role": "user", "content": question},
                                                         {"role": "assistant", "content": answer})]  # fmt: skip


def openai_body(
    model: str, system: str, user: str, images: list[ImageData], max_tokens: int, examples: Examples = ()
) -> dict[str, Any]:
    content: list[dict[str, Any]] | str = user
    if images:
        content = [{"type": "text", "text": user}] + [
            {"type": "image_url", "image_url": {"url": image.data_url}} for image in images
        ]
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": system},
            *example_messages(examples),
            {"role": "user", "content": content},
        ],
        "max_tokens": max_tokens,
        "temperature": 0,
    }


def anthropic_body(
    model: str, system: str, user: str, images: list[ImageData], max_tokens: int, examples: Examples = ()
) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "image", "source": {"type": "base64", "media_type": image.media_type, "data": image.base64}}
        for image in images
    ]
    blocks.append({"type": "text", "text": user})
    return {
        "model": model,
        "system": system,
        "messages": [*example_messages(examples), {"role": "user", "content": blocks}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }


def _openai_text(answer: dict[str, Any], url: str) -> str:
    try:
        content = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise ProviderError(f"provider {_origin(url)} answered without a message: {_excerpt(answer)}") from None
    if isinstance(content, list):  # some servers return content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "").strip()


def _anthropic_text(answer: dict[str, Any], url: str) -> str:
    blocks = answer.get("content") if isinstance(answer, dict) else None
    if not isinstance(blocks, list):
        raise ProviderError(f"provider {_origin(url)} answered without content: {_excerpt(answer)}")
    return "".join(b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text").strip()


def _origin(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _excerpt(raw: bytes | dict[str, Any], limit: int = 200) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else json.dumps(raw)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _retry_after(value: str | None) -> float | None:
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value))) if value else None
    except ValueError:
        return None


AUTO = "auto"  # as a ``phraser`` argument: the configured provider, else the local LLM, else none


def phraser_for(settings: Settings, analyzer: Any | None = None) -> Phraser | None:
    """The configured provider, else the local LLM, else None (``llm="none"``: template fallbacks)."""
    if settings.provider:
        return ProviderPhraser(ProviderConfig.from_settings(dict(settings.provider)))
    if settings.llm == "none":
        return None
    if analyzer is not None:
        return LocalPhraser(analyzer.model("llm"))
    from polymodal.models.base import get_model

    return LocalPhraser(get_model("llm", settings.llm, settings))


def resolve(phraser: Phraser | str | None, analyzer: Any) -> Phraser | None:
    """``AUTO`` becomes :func:`phraser_for` the analyzer's settings; a phraser or None is kept."""
    return phraser_for(analyzer.settings, analyzer) if phraser == AUTO else phraser  # type: ignore[return-value]


def encode_image(image: Any, max_side: int = 1024, quality: int = 85) -> ImageData:
    """A PIL image as JPEG, at most ``max_side`` pixels on its longer side."""
    import io

    from polymodal.media.image import thumbnail

    buffer = io.BytesIO()
    thumbnail(image, max_side).convert("RGB").save(buffer, format="JPEG", quality=quality)
    return ImageData(buffer.getvalue())
