"""The assistant: any mix of text, images and recordings plus a request, routed to the right capability
(:func:`polymodal.tasks.assist.assist`). JSON by default; server-sent events when asked for with
``Accept: text/event-stream`` or ``stream=true`` (events: ``start``, ``route``, ``step``, ``token``, then ``answer``
or ``error``; a caller going away stops the model). An answer from the collection names its items (``items``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse

from polymodal.api.deps import Svc, caller
from polymodal.api.errors import ApiError
from polymodal.api.routes import generate
from polymodal.api.routes.index import SSE_HEADERS
from polymodal.api.routes.tasks import Hooks, phraser, task, task_events
from polymodal.api.service import Service
from polymodal.api.uploads import check_kind
from polymodal.tasks.estimate import Plan

router = APIRouter(tags=["assistant"], dependencies=[Depends(caller)])
MAX_FILES = 8


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
    found: dict[str, int] = {}  # the collection items a question without files was answered from, by name
    search = _searcher(svc, found)
    kwargs = {"text": text, "files": paths, "names": names, "phraser": phraser(phrase), "search": search}

    def finish(result: Any) -> dict[str, Any]:
        return result.to_dict() | ({"items": found} if found else {})

    if stream or "text/event-stream" in request.headers.get("accept", ""):

        def work(hooks: Hooks) -> Any:
            return run(svc.collection.analyzer, ask, progress=hooks.emit, stop=hooks.stop, **kwargs)

        events = task_events(svc, "assistant", work, finish, lambda: _remove(paths), Plan())
        return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
    try:
        result = await svc.task_pool.run(run, svc.collection.analyzer, ask, **kwargs)
    finally:
        _remove(paths)
    svc.metrics.count("task_assistant")
    return finish(result)


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


def _searcher(svc: Service, found: dict[str, int]) -> Any:
    """The collection search a question without files is answered from (the hits' ids noted in ``found``): the
    closest match, a weaker one when nothing reaches the cut-off (the answer's own check says whether it
    answers); 404 when nothing matches at all."""

    def search(question: str) -> list[Any]:
        result = svc.collection.search(question, k=3)
        hits = result.hits or result.weaker[:1]
        if not hits:
            raise ApiError(404, "nothing in the collection matches that question; index some files or send one")
        found.update({hit.path.rsplit("/", 1)[-1]: hit.item for hit in hits})
        return hits

    return search


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
