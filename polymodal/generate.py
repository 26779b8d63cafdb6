"""Generate: images through a configured provider (checked back with the bundled models), text from the LLM.

No text-to-image model runs offline here: images come from a server the user configures, in one of two wire
formats, set by environment variables:

- ``POLYMODAL_IMAGE_PROVIDER_URL``: the server, e.g. ``https://api.openai.com`` or ``http://127.0.0.1:7860``;
- ``POLYMODAL_IMAGE_PROVIDER_KIND``: ``openai`` (``POST /v1/images/generations``, answered with ``b64_json`` or
  a ``url``: OpenAI and the local servers that copy its API) or ``sdwebui`` (a Stable Diffusion web UI's
  ``POST /sdapi/v1/txt2img``: AUTOMATIC1111, Forge, SD.Next); default ``openai``;
- ``POLYMODAL_IMAGE_PROVIDER_KEY`` (sent as a bearer token), ``..._MODEL`` (e.g. ``gpt-image-1``),
  ``..._TIMEOUT`` (seconds, default 180), ``..._RETRIES`` (default 2).

Requests time out, are retried (with backoff) on time-outs, refused connections and 408/429/5xx answers, and
the image is read up to :data:`MAX_IMAGE_BYTES` and must decode as an image no larger than the settings allow.
The saved image is then **checked** (:func:`check_image`): described by the bundled models, and its place in
the search space compared with the prompt's, so a caller sees whether the provider drew what was asked.
"""

from __future__ import annotations

import base64
import io
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from polymodal.config import Settings
from polymodal.errors import ConfigError, OutsideError, UsageError

ENV = "POLYMODAL_IMAGE_PROVIDER_"
KINDS = ("openai", "sdwebui")
MAX_IMAGE_BYTES = 30 * 1024 * 1024  # a 2048 px PNG is ~10 MB, in base64 inside JSON ~14 MB
MAX_PROMPT = 4000
SIZE = re.compile(r"^(\d{2,4})x(\d{2,4})$")
MAX_SIDE = 2048
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
# The image's similarity to the prompt in the shared text space (cosine between the prompt and the image's
# label-bridge vector, as search compares them), and the verdict drawn from it. Measured on the 7 sample photos,
# each against its own prompts (one English, one Chinese) and the other photos' 12: own 0.20-0.72 (median 0.43;
# the two lowest: the astronaut, which the classifier takes for a football helmet), others median 0.15, max 0.37.
MATCHES, PARTLY = 0.35, 0.25
TEXT_SYSTEM = "You are a helpful assistant. Answer clearly and briefly, in the language of the request."
_STOP_WORDS = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to with into onto over "
    "under some very one two photo picture image drawing painting style showing shows".split()
)
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


class GenerateError(OutsideError, RuntimeError):
    """The image provider is unreachable, refused, timed out, or answered something unusable."""

    def __init__(self, message: str, status: int = 502):
        super().__init__(message)
        self.status = status  # the HTTP status the API answers with: 503 not configured, 502 failed, 504 timed out


class NotConfigured(ConfigError):
    """No image provider is configured, or its settings are wrong: the message says which variable to set (the
    API answers 400: the request cannot be served as the service is set up; the caller's operator can fix it)."""

    status = 400


@dataclass(frozen=True)
class ImageProvider:
    url: str
    kind: str = "openai"
    key: str | None = None
    model: str | None = None
    timeout: float = 180.0
    retries: int = 2
    backoff: float = 1.0  # seconds before the first retry, doubled each time

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ImageProvider:
        """The provider the environment configures; :class:`NotConfigured` says how when none is."""
        env = os.environ if env is None else env
        url = env.get(ENV + "URL", "").strip()
        if not url:
            raise NotConfigured(
                "no image provider is configured: set POLYMODAL_IMAGE_PROVIDER_URL (and _KIND: openai or sdwebui, "
                "_KEY, _MODEL), e.g. http://127.0.0.1:7860 for a Stable Diffusion web UI"
            )
        kind = env.get(ENV + "KIND", "openai").strip().lower()
        if kind not in KINDS:
            raise NotConfigured(f"POLYMODAL_IMAGE_PROVIDER_KIND is {kind!r}; use one of {', '.join(KINDS)}")
        if urlsplit(url).scheme not in ("http", "https"):
            raise NotConfigured(f"POLYMODAL_IMAGE_PROVIDER_URL must be an http(s) URL, not {url!r}")
        try:
            timeout = float(env.get(ENV + "TIMEOUT", "180"))
            retries = int(env.get(ENV + "RETRIES", "2"))
        except ValueError as exc:
            raise NotConfigured(f"POLYMODAL_IMAGE_PROVIDER_TIMEOUT / _RETRIES must be numbers: {exc}") from None
        return cls(url.rstrip("/"), kind, env.get(ENV + "KEY") or None, env.get(ENV + "MODEL") or None,
                   max(1.0, timeout), max(0, retries))  # fmt: skip

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.model}" if self.model else self.kind

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"


@dataclass
class GeneratedImage:
    prompt: str
    data: bytes
    format: str  # "png", "jpeg", "webp"
    width: int
    height: int
    provider: str
    seconds: float
    revised_prompt: str | None = None

    @property
    def media_type(self) -> str:
        return f"image/{self.format}"

    @property
    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{base64.b64encode(self.data).decode('ascii')}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt, "format": self.format, "width": self.width, "height": self.height,
            "bytes": len(self.data), "provider": self.provider, "seconds": round(self.seconds, 2),
        } | ({"revised_prompt": self.revised_prompt} if self.revised_prompt else {})  # fmt: skip


# --- images -----------------------------------------------------------------------------------------------------
def generate_image(
    prompt: str,
    provider: ImageProvider | None = None,
    size: str = "1024x1024",
    negative: str | None = None,
    settings: Settings | None = None,
) -> GeneratedImage:
    """One image for ``prompt`` from the provider (default: the one the environment configures)."""
    prompt = _checked_prompt(prompt)
    width, height = parse_size(size)
    provider = provider or ImageProvider.from_env()
    settings = settings or Settings.from_env()
    started = time.monotonic()
    if provider.kind == "sdwebui":
        body = {"prompt": prompt, "negative_prompt": negative or "", "width": width, "height": height,
                "batch_size": 1, "n_iter": 1}  # fmt: skip
        answer = _post_json(provider, "/sdapi/v1/txt2img", body)
        images = answer.get("images") if isinstance(answer, dict) else None
        if not isinstance(images, list) or not images or not isinstance(images[0], str):
            raise GenerateError(f"image provider {provider.origin} answered without an image: {_excerpt(answer)}")
        data, revised = _b64(images[0], provider), None
    else:
        body = {"prompt": prompt, "n": 1, "size": f"{width}x{height}"}
        if provider.model:
            body["model"] = provider.model
        if not (provider.model or "").startswith("gpt-image"):  # gpt-image models always answer b64_json
            body["response_format"] = "b64_json"
        answer = _post_json(provider, "/v1/images/generations", body)
        data, revised = _openai_image(answer, provider)
    fmt, w, h = _check_image(data, provider, settings)
    return GeneratedImage(prompt, data, fmt, w, h, provider.name, time.monotonic() - started, revised)


def parse_size(size: str) -> tuple[int, int]:
    match = SIZE.match(size.strip().lower())
    if not match:
        raise UsageError(f"size {size!r} is not WIDTHxHEIGHT, e.g. 1024x1024")
    width, height = int(match.group(1)), int(match.group(2))
    if not (64 <= width <= MAX_SIDE and 64 <= height <= MAX_SIDE):
        raise UsageError(f"size {size}: each side must be between 64 and {MAX_SIDE} pixels")
    return width, height


def _checked_prompt(prompt: str) -> str:
    prompt = " ".join((prompt or "").split())
    if not prompt:
        raise UsageError("the prompt is empty: say what to generate")
    if len(prompt) > MAX_PROMPT:
        raise UsageError(f"the prompt is {len(prompt):,} characters, over the limit of {MAX_PROMPT:,}")
    return prompt


def _openai_image(answer: Any, provider: ImageProvider) -> tuple[bytes, str | None]:
    try:
        first = answer["data"][0]
    except (KeyError, IndexError, TypeError):
        raise GenerateError(f"image provider {provider.origin} answered without an image: {_excerpt(answer)}") from None
    revised = first.get("revised_prompt") if isinstance(first, dict) else None
    if isinstance(first, dict) and isinstance(first.get("b64_json"), str):
        return _b64(first["b64_json"], provider), revised
    if isinstance(first, dict) and isinstance(first.get("url"), str):
        return _download(first["url"], provider), revised
    raise GenerateError(f"image provider {provider.origin} answered neither b64_json nor url: {_excerpt(answer)}")


def _b64(text: str, provider: ImageProvider) -> bytes:
    text = text.split(",", 1)[1] if text.startswith("data:") else text
    if len(text) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise GenerateError(f"image provider {provider.origin} sent an image over {MAX_IMAGE_BYTES // 2**20} MB")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise GenerateError(f"image provider {provider.origin} sent an image that is not valid base64") from None


def _check_image(data: bytes, provider: ImageProvider, settings: Settings) -> tuple[str, int, int]:
    """(format, width, height) of an image that decodes and is within the pixel limit."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, (width, height) = (image.format or "").lower(), image.size
            if width * height > settings.max_image_pixels:
                raise GenerateError(f"image provider {provider.origin} sent a {width}x{height} image, over the limit")
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise GenerateError(f"image provider {provider.origin} sent something that is not an image: {exc}") from None
    if fmt not in ("png", "jpeg", "webp", "gif"):
        raise GenerateError(f"image provider {provider.origin} sent a {fmt or 'unknown'} image; expected PNG or JPEG")
    return fmt, width, height


# --- HTTP ------------------------------------------------------------------------------------------------------------
def _post_json(provider: ImageProvider, path: str, body: dict[str, Any]) -> Any:
    url = provider.url + path if not provider.url.endswith(path) else provider.url
    if provider.kind == "openai" and provider.url.endswith("/v1"):
        url = provider.url + path.removeprefix("/v1")
    headers = {"content-type": "application/json", "accept": "application/json"}
    if provider.key:
        headers["authorization"] = f"Bearer {provider.key}"
    raw = _with_retries(
        provider, lambda client: _read(client.stream("POST", url, json=body, headers=headers), provider)
    )
    try:
        import json

        return json.loads(raw)
    except ValueError:
        raise GenerateError(
            f"image provider {provider.origin} answered something that is not JSON: {_excerpt(raw)}"
        ) from None


def _download(url: str, provider: ImageProvider) -> bytes:
    if urlsplit(url).scheme not in ("http", "https"):
        raise GenerateError(f"image provider {provider.origin} gave an image URL that is not http(s)")
    # The key goes only to the provider itself, never to a storage host the answer points at.
    same = urlsplit(url).netloc == urlsplit(provider.url).netloc
    headers = {"authorization": f"Bearer {provider.key}"} if provider.key and same else {}
    return _with_retries(provider, lambda client: _read(client.stream("GET", url, headers=headers), provider))


class _Retryable(Exception):
    pass


def _with_retries(provider: ImageProvider, call: Any) -> bytes:
    import httpx

    timeout = httpx.Timeout(provider.timeout, connect=min(10.0, provider.timeout))
    attempts = 1 + provider.retries
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        for attempt in range(attempts):
            try:
                return call(client)
            except _Retryable as exc:
                if attempt == attempts - 1:
                    timed_out = "timed out" in str(exc)
                    suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
                    raise GenerateError(f"{exc}{suffix}", 504 if timed_out else 502) from None
                time.sleep(provider.backoff * 2**attempt)
    raise AssertionError("unreachable")


def _read(request: Any, provider: ImageProvider) -> bytes:
    """The body of one request (an ``httpx`` stream context), at most MAX_IMAGE_BYTES * 1.4 (base64 in JSON)."""
    import httpx

    limit = MAX_IMAGE_BYTES * 14 // 10
    try:
        with request as response:
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise GenerateError(f"image provider {provider.origin} answered with over {limit // 2**20} MB")
                chunks.append(chunk)
            raw = b"".join(chunks)
            status = response.status_code
    except httpx.TimeoutException:
        raise _Retryable(f"image provider {provider.origin} timed out after {provider.timeout:g} s") from None
    except httpx.TransportError as exc:
        raise _Retryable(f"image provider {provider.origin} could not be reached: {exc}") from None
    if status in RETRY_STATUSES:
        raise _Retryable(f"image provider {provider.origin} answered {status}: {_excerpt(raw)}")
    if status >= 400:
        raise GenerateError(f"image provider {provider.origin} answered {status}: {_excerpt(raw)}")
    return raw


def _excerpt(raw: Any, limit: int = 200) -> str:
    import json

    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else json.dumps(raw, ensure_ascii=False)[:2000]
    text = re.sub(r"[A-Za-z0-9+/=]{200,}", "…", " ".join(text.split()))  # no base64 walls in messages
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- checking an image against its prompt ------------------------------------------------------------------------
@dataclass
class MatchReport:
    prompt: str
    caption: str  # what the bundled models say the image shows (template caption, or the LLM's)
    labels: list[tuple[str, float]]  # the image classifier's labels with probabilities
    similarity: float  # prompt vs the image in the shared text space (cosine)
    caption_similarity: float  # prompt vs the caption, as texts
    shared_words: list[str]  # the prompt's content words also in the caption or labels
    verdict: str  # "matches" | "partly matches" | "does not match"
    text: list[str] = field(default_factory=list)  # text read in the image (OCR)

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt, "caption": self.caption, "verdict": self.verdict,
            "similarity": round(self.similarity, 3), "caption_similarity": round(self.caption_similarity, 3),
            "labels": [{"label": name, "score": round(score, 3)} for name, score in self.labels],
            "shared_words": self.shared_words, "text": self.text,
            "thresholds": {"matches": MATCHES, "partly": PARTLY},
        }  # fmt: skip

    def to_text(self) -> str:
        labels = ", ".join(f"{name} {score:.0%}" for name, score in self.labels[:5]) or "none"
        shared = ", ".join(self.shared_words) or "none"
        lines = [
            f"check: {self.verdict} (similarity {self.similarity:.2f}; matches >= {MATCHES}, partly >= {PARTLY})",
            f"  seen: {self.caption}",
            f"  labels: {labels}",
            f"  words shared with the prompt: {shared}",
        ]
        if self.text:
            lines.append(f"  text read: {' / '.join(self.text[:5])}")
        return "\n".join(lines)


def check_image(analyzer: Any, path: Path, prompt: str, phraser: Any = None) -> MatchReport:
    """Describe the image at ``path`` with the bundled models and say how well it matches ``prompt``."""
    from polymodal.analysis import media_vector
    from polymodal.tasks.describe import describe
    from polymodal.tasks.facts import gather

    facts = gather(analyzer, Path(path))
    described = describe(analyzer, Path(path), phraser, facts=facts)
    labels = [(f.text, float(f.score or 0.0)) for f in facts.facts if f.kind == "label"]
    read = [f.text for f in facts.facts if f.kind == "ocr"]
    prompt_vector, caption_vector = analyzer.model("text").encode([prompt, described.caption])
    similarity = float(prompt_vector @ media_vector(facts.analysis))
    caption_similarity = float(prompt_vector @ caption_vector)
    seen = " ".join([described.caption, *(name for name, _ in labels), *read])
    verdict = "matches" if similarity >= MATCHES else "partly matches" if similarity >= PARTLY else "does not match"
    return MatchReport(prompt, described.caption, labels, similarity, caption_similarity,
                       shared_words(prompt, seen), verdict, read)  # fmt: skip


def shared_words(prompt: str, seen: str) -> list[str]:
    """Content words (Chinese: characters) of ``prompt`` that ``seen`` also has; plural "s" ignored."""
    seen_words = {_stem(w) for w in _words(seen)}
    return list(dict.fromkeys(w for w in _words(prompt) if w not in _STOP_WORDS and _stem(w) in seen_words))


def _words(text: str) -> list[str]:
    return re.findall(rf"{_CJK.pattern}|[a-z]+", text.lower())


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


# --- text ------------------------------------------------------------------------------------------------------------
def generate_text(
    prompt: str, settings: Settings | None = None, max_tokens: int = 400, analyzer: Any = None
) -> Iterator[str]:
    """The local LLM's (or the configured provider's) answer to ``prompt``, piece by piece as generated."""
    from polymodal.providers import phraser_for, stream_text

    prompt = _checked_prompt(prompt)
    phraser = phraser_for(settings or Settings.from_env(), analyzer)
    if phraser is None:
        raise ConfigError("no language model to generate text: the LLM is set to 'none' (POLYMODAL_LLM) and no "
                          "provider is configured")  # fmt: skip
    yield from stream_text(phraser, TEXT_SYSTEM, prompt, max_tokens=max_tokens)


def text_model(settings: Settings) -> str:
    """The name of what answers :func:`generate_text`."""
    if settings.provider:
        return f"{settings.provider.get('kind', 'openai')}:{settings.provider.get('model', '')}"
    return settings.llm
