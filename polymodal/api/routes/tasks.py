"""Understanding tasks over one file (uploaded, or an indexed item by id): classify, describe, ask,
transcribe, read, tag; and analyze over a bundle of files. Each route calls the Collection's method of the
same name (:mod:`polymodal.understand`) and returns its ``to_dict()``; quick tasks run on the media pool,
long ones (the LLM, transcription, bundle reports) on the task pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse

from polymodal.api.deps import Svc, caller
from polymodal.api.errors import ApiError
from polymodal.api.media import existing_file
from polymodal.api.routes.index import SSE_HEADERS, error_event, sse
from polymodal.api.routes.items import MAX_ID
from polymodal.api.service import Pool, Service
from polymodal.api.uploads import check_kind
from polymodal.models import speech

router = APIRouter(tags=["tasks"], dependencies=[Depends(caller)])

FileField = Annotated[UploadFile | None, File(description="the file (or give `item`)")]
ItemField = Annotated[
    int | None, Form(ge=1, le=MAX_ID, description="an indexed item's id instead of a file", examples=[1])
]
PhraseField = Annotated[bool, Form(description="let the LLM word it (false: template / extractive, fast)")]
StreamField = Annotated[bool, Form(description="answer as server-sent events (also with Accept: text/event-stream)")]
KEEPALIVE_SECONDS = 10.0


@dataclass
class Source:
    """The file a task works on, the name shown for it, its modality, and how to let it go."""

    path: Path
    shown: str
    modality: str
    uploaded: bool = False
    sha: str | None = None  # an indexed item's content: its stored analysis spares perceiving it again

    def release(self) -> None:
        if self.uploaded:
            self.path.unlink(missing_ok=True)


async def open_source(
    svc: Service, upload: UploadFile | None, item: int | None, allowed: tuple[str, ...], what: str
) -> Source:
    """The file of a request: an upload under the store (removed by ``release``), or an indexed item's file."""
    if (upload is None) == (item is None):
        raise ApiError(400, f"send {what} as `file`, or give an indexed `item` id (one of the two)")
    if item is not None:
        found = svc.collection.item(item)
        if found.modality not in allowed:
            raise ApiError(415, f"item {item} is {found.modality}; this task needs {' or '.join(allowed)}")
        return Source(existing_file(found.path), svc.display_path(found.path), found.modality, sha=found.sha256)
    assert upload is not None
    path = await svc.uploads.receive(upload, svc.config.max_upload_bytes)
    try:
        detected = check_kind(path, allowed, what)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Source(path, Path(upload.filename or "upload").name, detected.modality, uploaded=True)


@contextlib.asynccontextmanager
async def source(
    svc: Service, upload: UploadFile | None, item: int | None, allowed: tuple[str, ...], what: str
) -> AsyncIterator[tuple[Path, str]]:
    """(path, name to show) of the file a task works on: an upload under the store, or an item's file."""
    found = await open_source(svc, upload, item, allowed, what)
    try:
        yield found.path, found.shown
    finally:
        found.release()


def task(name: str, function: str | None = None) -> Callable[..., Any]:
    """The task function ``polymodal.tasks.<name>.<function>``; 501 while that task is not installed."""
    try:
        module = importlib.import_module(f"polymodal.tasks.{name}")
        return getattr(module, function or name)
    except (ImportError, AttributeError) as exc:
        raise ApiError(501, f"the {name} task is not available in this version") from exc


async def run_task(svc: Service, pool: Pool, name: str, shown: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run ``Collection.<name>(*args, **kwargs)`` on ``pool``; the result's ``to_dict()``, shown safely."""
    method = getattr(svc.collection, name, None)
    if method is None:
        raise ApiError(501, f"the {name} task is not available in this version")
    result = await pool.run(method, *args, **kwargs)
    svc.metrics.count(f"task_{name}")
    return shown_dict(result, shown)


def shown_dict(result: Any, shown: str) -> dict[str, Any]:
    """A task result's ``to_dict()`` with its source as the caller knows it, and its text as a reader sees it."""
    data = result.to_dict()
    if "source" in data:
        data["source"] = shown
    data["text"] = result.to_text() if hasattr(result, "to_text") else None
    return data


def phraser(phrase: bool) -> Any:
    from polymodal.providers import AUTO

    return AUTO if phrase else None


@router.post("/api/classify", summary="Zero-shot labels for an image, a recording or a text")
async def classify(
    svc: Svc,
    labels: Annotated[str, Form(description="labels separated by commas, e.g. 'cat, dog, bird'", max_length=4000)],
    file: FileField = None,
    item: ItemField = None,
    text: Annotated[str | None, Form(description="classify this text instead of a file", max_length=20000)] = None,
    top_k: Annotated[int | None, Form(ge=1, le=100)] = None,
    template: Annotated[str | None, Form(max_length=200)] = None,
) -> dict[str, Any]:
    names = _labels(labels)
    if template is not None and "{}" not in template:
        raise ApiError(400, "a template must contain {} where the label goes, e.g. 'a drawing of a {}'")
    options = {"template": template}
    if text is not None and file is None and item is None:
        if not text.strip():
            raise ApiError(400, "the text to classify is empty")
        return await run_task(svc, svc.media_pool, "classify", "text", None, names, top_k, text=text, **options)
    async with source(svc, file, item, ("image", "audio", "text"), "the file") as (path, shown):
        return await run_task(svc, svc.media_pool, "classify", shown, path, names, top_k, **options)


def _labels(labels: str) -> list[str]:
    """The distinct labels of a request; 400 with fewer than two."""
    parsed = task("classify", "parse_labels")(labels)
    if len(parsed) < 2:
        raise ApiError(400, "give at least two different labels, separated by commas, e.g. 'cat, dog'")
    return parsed


@router.post(
    "/api/describe",
    summary="A few sentences about an image, a recording, a video or a document",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def describe(
    request: Request,
    svc: Svc,
    file: FileField = None,
    item: ItemField = None,
    phrase: PhraseField = True,
    stream: StreamField = False,
) -> Any:
    found = await open_source(svc, file, item, ("image", "audio", "video", "text"), "the file")
    plan = _plan(svc, [found], phrase)

    def work(hooks: Hooks) -> Any:
        facts = _perceive(svc, found, hooks)
        return svc.collection.describe(found.path, phraser=phraser(phrase), facts=facts, **hooks.llm())

    return await _answer(request, svc, "describe", work, lambda result: shown_dict(result, found.shown),
                         found.release, plan, stream)  # fmt: skip


@router.post(
    "/api/ask",
    summary="Answer a question about an image, a recording or a document",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def ask(
    request: Request,
    svc: Svc,
    question: Annotated[str, Form(min_length=1, max_length=2000)],
    file: FileField = None,
    item: ItemField = None,
    phrase: PhraseField = True,
    stream: StreamField = False,
) -> Any:
    if not question.strip():
        raise ApiError(400, "the question is empty")
    found = await open_source(svc, file, item, ("image", "audio", "video", "text"), "the file")
    plan = _plan(svc, [found], phrase)

    def work(hooks: Hooks) -> Any:
        facts = _perceive(svc, found, hooks)
        options = {"phraser": phraser(phrase), "facts": facts, **hooks.llm()}
        return svc.collection.ask(found.path, question, **options)

    return await _answer(request, svc, "ask", work, lambda result: shown_dict(result, found.shown),
                         found.release, plan, stream)  # fmt: skip


@router.post("/api/transcribe", summary="What is said in a recording, with times")
async def transcribe(
    svc: Svc,
    file: FileField = None,
    item: ItemField = None,
    language: Annotated[str | None, Form(max_length=8, description="force a language, e.g. en, zh")] = None,
    words: Annotated[bool, Form(description="word times too")] = False,
) -> dict[str, Any]:
    language = speech.language_code(language)
    async with source(svc, file, item, ("audio", "video"), "the recording") as (path, shown):
        return await run_task(svc, svc.task_pool, "transcribe", shown, path, language=language, words=words)


@router.post("/api/read", summary="Text in an image (OCR lines with boxes) and its layout")
async def read(svc: Svc, file: FileField = None, item: ItemField = None) -> dict[str, Any]:
    async with source(svc, file, item, ("image",), "the image") as (path, shown):
        return await run_task(svc, svc.media_pool, "read", shown, path)


@router.post("/api/tag", summary="Sounds heard in a recording, and when")
async def tag(
    svc: Svc,
    file: FileField = None,
    item: ItemField = None,
    threshold: Annotated[float, Form(ge=0.0, le=1.0)] = 0.2,
    top_k: Annotated[int, Form(ge=1, le=50)] = 5,
) -> dict[str, Any]:
    async with source(svc, file, item, ("audio", "video"), "the recording") as (path, shown):
        return await run_task(svc, svc.media_pool, "tag", shown, path, threshold=threshold, top_k=top_k)


@router.post(
    "/api/analyze",
    summary="A report on a bundle of files: each one, and what they say together",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def analyze(
    request: Request,
    svc: Svc,
    files: Annotated[list[UploadFile], File(description="the files of the bundle (documents, images, recordings)")],
    phrase: PhraseField = True,
    stream: StreamField = False,
) -> Any:
    if len(files) > MAX_BUNDLE:
        raise ApiError(413, f"{len(files)} files is over the limit of {MAX_BUNDLE} for one report")
    folder = svc.uploads.temp_dir()
    found: list[Source] = []
    try:
        for upload in files:
            path = await svc.uploads.receive(upload, svc.config.max_upload_bytes, into=folder)
            detected = check_kind(path, ("image", "audio", "text"), path.name)
            found.append(Source(path, path.name, detected.modality))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    plan = _plan(svc, found, phrase, items_phrased=True)

    def work(hooks: Hooks) -> Any:
        def progress(done: int, total: int, current: str) -> None:
            name = Path(current).name if current else None
            left = sum(_costs(svc).estimate(_plan(svc, [f], phrase, items_phrased=True)) for f in found[done:])
            message = f"reading {name} ({done + 1} of {total})" if name else "writing the summary"
            hooks.emit("progress", {"done": done, "total": total, "current": name, "message": message,
                                    "seconds_left": round(left, 1)})  # fmt: skip

        paths = [f.path for f in found]
        return svc.collection.analyze(paths, phraser=phraser(phrase), progress=progress, **hooks.llm())

    def release() -> None:
        shutil.rmtree(folder, ignore_errors=True)

    return await _answer(request, svc, "analyze", work, _report_dict, release, plan, stream)


def _report_dict(report: Any) -> dict[str, Any]:
    data = report.to_dict()
    for item in data["items"]:
        item["source"] = item["name"]
    data["markdown"] = report.to_text()
    return data


MAX_BUNDLE = 12


# --- answers as they are written: server-sent events ------------------------------------------------------------
@dataclass
class Hooks:
    """How a task running on a worker thread reports: events for the caller, and the event that stops it."""

    emit: Callable[[str, dict[str, Any]], None]
    stop: threading.Event = field(default_factory=threading.Event)

    def token(self, piece: str) -> None:
        if piece:
            self.emit("token", {"text": piece})

    def step(self, message: str, **data: Any) -> None:
        self.emit("step", {"message": message, **data})

    def llm(self) -> dict[str, Any]:
        """The task options that stream the LLM's words and let ``stop`` end it."""
        return {"on_token": self.token, "stop": self.stop}


def _perceive(svc: Service, found: Source, hooks: Hooks) -> Any:
    """The file's facts (the models' evidence), said as steps: the slow part before any word is written. An
    indexed item's evidence comes from the store (a recording is not heard again)."""
    from polymodal.tasks.facts import gather

    hooks.step(f"reading {found.shown}")
    stored = svc.collection.store.load_analysis(found.sha) if found.sha else None
    facts = gather(svc.collection.analyzer, found.path, stored)
    if hooks.stop.is_set():
        from polymodal.providers import Cancelled

        raise Cancelled("stopped after reading the file")
    hooks.step("writing the answer")
    return facts


def _plan(svc: Service, found: list[Source], phrase: bool, items_phrased: bool = False) -> Any:
    """The units of work of a task on ``found`` (see :mod:`polymodal.tasks.estimate`)."""
    from polymodal.tasks.estimate import Plan, llm_key, perception

    plan = Plan()
    settings = svc.collection.settings
    name = None if not phrase or (settings.llm == "none" and not settings.provider) else settings.llm
    llm = llm_key("provider" if phrase and settings.provider else name)
    for each in found:
        plan.add(*(("stored", 1.0) if each.sha else perception(each.path, each.modality)))
        if llm and items_phrased and each.modality != "text":
            plan.add(llm)
    if llm:
        plan.add(llm)  # the answer, the caption, or the bundle's summary
    return plan


_COSTS: dict[str, Any] = {}


def _costs(svc: Service) -> Any:
    from polymodal.tasks.estimate import Costs

    cache = str(svc.collection.settings.cache)
    if cache not in _COSTS:
        _COSTS[cache] = Costs(cache)
    return _COSTS[cache]


def wants_stream(request: Request, stream: bool) -> bool:
    return stream or "text/event-stream" in request.headers.get("accept", "")


async def _answer(
    request: Request,
    svc: Service,
    name: str,
    work: Callable[[Hooks], Any],
    finish: Callable[[Any], dict[str, Any]],
    release: Callable[[], None],
    plan: Any,
    stream: bool,
) -> Any:
    """Run ``work`` on the task pool: its JSON answer, or (asked for) its events as they happen."""
    if wants_stream(request, stream):
        events = task_events(svc, name, work, finish, release, plan)
        return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
    started = time.monotonic()
    try:
        result = await svc.task_pool.run(work, Hooks(lambda event, data: None))
    finally:
        release()
    _costs(svc).learn(plan, time.monotonic() - started)
    svc.metrics.count(f"task_{name}")
    return finish(result)


async def task_events(
    svc: Service,
    name: str,
    work: Callable[[Hooks], Any],
    finish: Callable[[Any], dict[str, Any]],
    release: Callable[[], None],
    plan: Any,
) -> AsyncIterator[str]:
    """``start`` (with the estimate), ``step`` / ``progress``, ``token`` ..., then ``answer`` or ``error``. The
    caller going away (the stream is cancelled) sets ``stop``: the LLM ends at its next token."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    hooks = Hooks(lambda event, data: loop.call_soon_threadsafe(queue.put_nowait, (event, data)))
    started = time.monotonic()
    yield sse("start", {"task": name, "estimate_seconds": round(_costs(svc).estimate(plan), 1)})
    work_done = asyncio.ensure_future(svc.task_pool.run(work, hooks))
    getter: asyncio.Future | None = None
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, work_done}, timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield sse(*getter.result())
                continue
            getter.cancel()
            if work_done.done() and queue.empty():
                break
            if not work_done.done():
                yield ": still working\n\n"
        try:
            result = work_done.result()
        except Exception as exc:  # the stream has started: the error is an event, never a traceback
            yield sse("error", error_event(exc, f"/api/{name} (stream)"))
            return
        _costs(svc).learn(plan, time.monotonic() - started)
        svc.metrics.count(f"task_{name}")
        yield sse("answer", finish(result))
    finally:
        if getter is not None:
            getter.cancel()
        hooks.stop.set()  # a caller gone mid-answer: the model stops instead of writing for nobody
        _when_done(svc, name, work_done, release)


def _when_done(svc: Service, name: str, work: asyncio.Future, release: Callable[[], None]) -> None:
    """Release the task's files once its work has ended; count work that ended because it was stopped."""

    def finished(future: asyncio.Future) -> None:
        from polymodal.providers import Cancelled

        release()
        if not future.cancelled() and isinstance(future.exception(), Cancelled):
            svc.metrics.count(f"task_{name}_cancelled")

    if work.done():
        finished(work)
    else:
        work.add_done_callback(finished)
