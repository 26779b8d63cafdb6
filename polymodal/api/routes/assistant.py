"""The assistant: any mix of text, images and recordings plus a request, routed to the right capability
(:func:`polymodal.tasks.assist.assist`). JSON by default; server-sent events when asked for with
``Accept: text/event-stream`` or ``stream=true`` (events: ``route``, ``step``, then ``answer`` or ``error``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse

from polymodal.api.deps import Svc, caller
from polymodal.api.errors import ApiError, body, internal_message, log_incident
from polymodal.api.routes import generate
from polymodal.api.routes.index import SSE_HEADERS, sse
from polymodal.api.routes.tasks import phraser, task
from polymodal.api.service import Service
from polymodal.api.uploads import UploadError, check_kind
from polymodal.media.errors import MediaError
from polymodal.models.base import ModelError

router = APIRouter(tags=["assistant"], dependencies=[Depends(caller)])
MAX_FILES = 8
KEEPALIVE_SECONDS = 10.0


@router.post(
    "/api/assistant",
    summary="Describe, answer, summarize or transcribe any mix of text, images and audio",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def assistant(
    request: Request,
    svc: Svc,
    ask: Annotated[
        str, Form(max_length=2000, description="describe | answer | summarize | transcribe | free text")
    ] = "",
    text: Annotated[str | None, Form(max_length=50_000, description="text to work on, or the question")] = None,
    files: Annotated[list[UploadFile] | None, File(description="images, recordings, documents")] = None,
    phrase: Annotated[bool, Form(description="let the LLM word it (false: template / extractive)")] = True,
    stream: Annotated[bool, Form(description="answer as server-sent events")] = False,
    voice: Annotated[UploadFile | None, File(description="a spoken request or question (transcribed)")] = None,
    speak: Annotated[bool, Form(description="also speak the answer: `speech`, a WAV data URL")] = False,
) -> Any:
    files = files or []
    if voice is not None:  # the words heard are the request (or, with a request given, the text)
        heard = await generate.heard(svc, voice)
        ask, text = (heard, text) if not ask.strip() else (ask, text or heard)
    if len(files) > MAX_FILES:
        raise ApiError(413, f"{len(files)} files is over the limit of {MAX_FILES} for the assistant")
    if not ask.strip() and not (text or "").strip() and not files:
        raise ApiError(400, "say what you want (ask) and give text or files")
    run = generate.speaking(task("assist"), svc) if speak else task("assist")
    paths, names, kinds = await _receive(svc, files)
    try:
        _check_inputs(ask, text, kinds)
    except ApiError:
        _remove(paths)
        raise
    kwargs = {"text": text, "files": paths, "names": names, "phraser": phraser(phrase), "search": _searcher(svc)}
    if stream or "text/event-stream" in request.headers.get("accept", ""):
        return StreamingResponse(
            _events(svc, run, ask, kwargs, paths), media_type="text/event-stream", headers=SSE_HEADERS
        )
    try:
        result = await svc.task_pool.run(run, svc.collection.analyzer, ask, **kwargs)
    finally:
        _remove(paths)
    svc.metrics.count("task_assistant")
    return result.to_dict()


async def _receive(svc: Service, files: list[UploadFile]) -> tuple[list[Path], list[str], list[str]]:
    """(paths, names to show, modalities) of the uploaded files."""
    paths: list[Path] = []
    kinds: list[str] = []
    try:
        for upload in files:
            path = await svc.uploads.receive(upload, svc.config.max_upload_bytes)
            paths.append(path)
            detected = check_kind(path, ("image", "audio", "video", "text"), Path(upload.filename or "file").name)
            kinds.append(detected.modality)
    except BaseException:
        _remove(paths)
        raise
    return paths, [Path(u.filename or f"file {i + 1}").name for i, u in enumerate(files)], kinds


def _check_inputs(ask: str, text: str | None, kinds: list[str]) -> None:
    """400 when the request routes to a capability that lacks what it needs (as the assist task would say)."""
    capability, question = task("assist", "route")(ask, text)
    has_text = bool((text or "").strip())
    if capability == "transcribe" and not any(kind in ("audio", "video") for kind in kinds):
        raise ApiError(400, "nothing to transcribe: send a recording")
    if capability in ("describe", "summarize") and not kinds and not has_text:
        raise ApiError(400, f"nothing to {capability}: send text, an image, a recording or a document")
    if capability == "answer" and not ((question or "").strip() or has_text):
        raise ApiError(400, "no question: write one, e.g. 'what does the sign say?'")


def _searcher(svc: Service) -> Any:
    """The collection search a question without files is answered from; 404 when nothing matches."""

    def search(question: str) -> list[Any]:
        hits = svc.collection.search(question, k=3).hits
        if not hits:
            raise ApiError(404, "nothing in the collection matches that question; index some files or send one")
        return hits

    return search


async def _events(svc: Service, run: Any, ask: str, kwargs: dict, paths: list[Path]) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def progress(event: str, data: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (event, data))

    work = asyncio.ensure_future(svc.task_pool.run(run, svc.collection.analyzer, ask, progress=progress, **kwargs))
    try:
        while not (work.done() and queue.empty()):
            try:
                event, data = await asyncio.wait_for(queue.get(), timeout=0.2 if work.done() else KEEPALIVE_SECONDS)
                yield sse(event, data)
            except TimeoutError:
                if not work.done():
                    yield ": still working\n\n"
        try:
            result = work.result()
            svc.metrics.count("task_assistant")
            yield sse("answer", result.to_dict())
        except Exception as exc:  # the stream has started: the error is an event, never a traceback
            yield sse("error", body(*_status(exc)))
    finally:
        if not work.done():
            work.add_done_callback(lambda _: _remove(paths))
        else:
            _remove(paths)


def _status(exc: Exception) -> tuple[int, str]:
    """(status, message) of an error met while streaming: the project's own kinds in words, others 500."""
    if isinstance(exc, ApiError):
        return exc.status, exc.message
    if isinstance(exc, UploadError):
        return exc.status, str(exc)
    if isinstance(exc, MediaError):
        return 415, f"cannot read that file: {exc}"
    if isinstance(exc, ModelError):
        return 503, f"a model is not available: {exc}"
    return 500, internal_message(log_incident(exc, "POST", "/api/assistant (stream)"))


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
