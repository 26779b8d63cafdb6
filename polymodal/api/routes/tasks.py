"""Understanding tasks over one file (uploaded, or an indexed item by id): classify, describe, ask,
transcribe, read, tag; and analyze over a bundle of files. Each route calls the Collection's method of the
same name (:mod:`polymodal.understand`) and returns its ``to_dict()``; quick tasks run on the media pool,
long ones (the LLM, transcription, bundle reports) on the task pool.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile

from polymodal.api.deps import Svc, caller
from polymodal.api.errors import ApiError
from polymodal.api.media import existing_file
from polymodal.api.routes.items import MAX_ID
from polymodal.api.service import Pool, Service
from polymodal.api.uploads import check_kind

router = APIRouter(tags=["tasks"], dependencies=[Depends(caller)])

FileField = Annotated[UploadFile | None, File(description="the file (or give `item`)")]
ItemField = Annotated[
    int | None, Form(ge=1, le=MAX_ID, description="an indexed item's id instead of a file", examples=[1])
]
PhraseField = Annotated[bool, Form(description="let the LLM word it (false: template / extractive, fast)")]


@contextlib.asynccontextmanager
async def source(
    svc: Service, upload: UploadFile | None, item: int | None, allowed: tuple[str, ...], what: str
) -> AsyncIterator[tuple[Path, str]]:
    """(path, name to show) of the file a task works on: an upload under the store, or an item's file."""
    if (upload is None) == (item is None):
        raise ApiError(400, f"send {what} as `file`, or give an indexed `item` id (one of the two)")
    if item is not None:
        found = svc.collection.item(item)
        if found.modality not in allowed:
            raise ApiError(415, f"item {item} is {found.modality}; this task needs {' or '.join(allowed)}")
        yield existing_file(found.path), svc.display_path(found.path)
        return
    assert upload is not None
    path = await svc.uploads.receive(upload, svc.config.max_upload_bytes)
    try:
        check_kind(path, allowed, what)
        yield path, Path(upload.filename or "upload").name
    finally:
        path.unlink(missing_ok=True)


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


@router.post("/api/describe", summary="A few sentences about an image, a recording, a video or a document")
async def describe(svc: Svc, file: FileField = None, item: ItemField = None, phrase: PhraseField = True) -> dict:
    async with source(svc, file, item, ("image", "audio", "video", "text"), "the file") as (path, shown):
        return await run_task(svc, svc.task_pool, "describe", shown, path, phraser=phraser(phrase))


@router.post("/api/ask", summary="Answer a question about an image, a recording or a document")
async def ask(
    svc: Svc,
    question: Annotated[str, Form(min_length=1, max_length=2000)],
    file: FileField = None,
    item: ItemField = None,
    phrase: PhraseField = True,
) -> dict[str, Any]:
    if not question.strip():
        raise ApiError(400, "the question is empty")
    async with source(svc, file, item, ("image", "audio", "video", "text"), "the file") as (path, shown):
        return await run_task(svc, svc.task_pool, "ask", shown, path, question, phraser=phraser(phrase))


@router.post("/api/transcribe", summary="What is said in a recording, with times")
async def transcribe(
    svc: Svc,
    file: FileField = None,
    item: ItemField = None,
    language: Annotated[str | None, Form(max_length=8, description="force a language, e.g. en, zh")] = None,
    words: Annotated[bool, Form(description="word times too")] = False,
) -> dict[str, Any]:
    language = _language(language)
    async with source(svc, file, item, ("audio", "video"), "the recording") as (path, shown):
        return await run_task(svc, svc.task_pool, "transcribe", shown, path, language=language, words=words)


def _language(code: str | None) -> str | None:
    """A language code the speech model knows, or None to detect it; 400 for any other."""
    code = (code or "").strip().lower()
    if not code:
        return None
    try:
        from faster_whisper.tokenizer import _LANGUAGE_CODES as known
    except ImportError:  # the model's own check then decides
        return code
    if code not in known:
        raise ApiError(400, f"unknown language {code!r}: give a code like en, zh, fr, de, es, ja (or none to detect)")
    return code


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


@router.post("/api/analyze", summary="A report on a bundle of files: each one, and what they say together")
async def analyze(
    svc: Svc,
    files: Annotated[list[UploadFile], File(description="the files of the bundle (documents, images, recordings)")],
    phrase: PhraseField = True,
) -> dict[str, Any]:
    if len(files) > MAX_BUNDLE:
        raise ApiError(413, f"{len(files)} files is over the limit of {MAX_BUNDLE} for one report")
    folder = svc.uploads.temp_dir()
    try:
        paths = []
        for upload in files:
            path = await svc.uploads.receive(upload, svc.config.max_upload_bytes, into=folder)
            check_kind(path, ("image", "audio", "text"), path.name)
            paths.append(path)
        report = await svc.task_pool.run(svc.collection.analyze, paths, phraser=phraser(phrase))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    svc.metrics.count("task_analyze")
    data = report.to_dict()
    for item in data["items"]:
        item["source"] = item["name"]
    data["markdown"] = report.to_text()
    return data


MAX_BUNDLE = 12
