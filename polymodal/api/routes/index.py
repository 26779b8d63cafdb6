"""Adding files: upload (files or a dropped folder) into ``<store>/uploads/``, then index them in the background.

Progress is a JSON snapshot (``GET /api/jobs/{id}``) or a live stream of server-sent events
(``GET /api/jobs/{id}/events``); ``DELETE /api/jobs/{id}`` cancels before the next file.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse

from polymodal.api import views
from polymodal.api.deps import Svc, caller
from polymodal.api.errors import ApiError
from polymodal.api.jobs import FINISHED
from polymodal.api.service import Service
from polymodal.api.uploads import UploadError, check_kind, clean_relative

router = APIRouter(tags=["index"], dependencies=[Depends(caller)])
INDEXABLE = ("text", "image", "audio", "video")  # videos too: the upload size limit applies
POLL_SECONDS = 0.25
PLACED: dict[str, list[dict[str, Any]]] = {}  # job id -> the files its upload placed (for GET .../files)
REMEMBERED_JOBS = 64
HASH_CHUNK = 1 << 20


@router.post("/api/index", status_code=202, summary="Upload files (or a folder) and index them in the background")
async def upload_and_index(
    svc: Svc,
    files: Annotated[list[UploadFile], File(description="the files; a dropped folder sends each file")],
    paths: Annotated[list[str] | None, Form(description="each file's relative path in a dropped folder")] = None,
) -> JSONResponse:
    if len(files) > svc.config.max_files:
        raise ApiError(413, f"{len(files)} files is over the limit of {svc.config.max_files} per upload")
    if paths and len(paths) != len(files):
        raise ApiError(400, "give one relative path per file, or none")
    names = paths or [upload.filename or f"file-{n}" for n, upload in enumerate(files)]
    _check_tree(names)
    batch = svc.uploads.new_batch()
    accepted, rejected, placed = 0, [], []
    try:
        for upload, name in zip(files, names, strict=True):
            try:
                temp = await svc.uploads.receive(upload, svc.config.max_upload_bytes)
                try:
                    detected = check_kind(temp, INDEXABLE, name.rsplit("/", 1)[-1])
                    known = _known_content(svc, temp)
                    target = svc.uploads.place(temp, batch, name, detected)
                    placed.append({"name": name[:300], "path": os.path.realpath(target), "duplicate": known})
                    accepted += 1
                finally:
                    temp.unlink(missing_ok=True)
            except UploadError as exc:
                if exc.status == 413:
                    raise
                rejected.append({"name": name.rsplit("/", 1)[-1][:120], "reason": str(exc)})
        if not accepted:
            reasons = "; ".join(r["reason"] for r in rejected[:3])
            raise ApiError(415, f"none of the files can be indexed: {reasons}")
        job = svc.jobs.start(batch, f"{accepted} uploaded file{'s' * (accepted != 1)}", accepted, rejected)
    except BaseException:
        shutil.rmtree(batch, ignore_errors=True)
        raise
    PLACED[job.id] = placed
    for old in list(PLACED)[:-REMEMBERED_JOBS]:
        del PLACED[old]
    return JSONResponse(views.job(svc, job.to_dict()), status_code=202)


def _known_content(svc: Service, path: Path) -> str | None:
    """The file of the collection with exactly this content, as the page shows paths (the upload is then a
    duplicate of it), or None."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    rows = svc.collection.store.files_for([digest.hexdigest()]).get(digest.hexdigest())
    return svc.display_path(rows[0].path) if rows else None


@router.get("/api/jobs/{job_id}/files", summary="Each file of an upload: indexed (with its item), duplicate, skipped")
def job_files(job_id: str, svc: Svc) -> dict[str, Any]:
    job = svc.jobs.get(job_id)
    finished = job.state in FINISHED
    errors = {entry["path"]: entry["reason"] for entry in (job.report or {}).get("errors", [])}
    files: list[dict[str, Any]] = [
        {"name": r["name"], "status": "skipped", "reason": r["reason"], "item": None} for r in job.rejected
    ]
    for placed in PLACED.get(job_id, []):
        row = svc.collection.store.file(placed["path"]) if finished else None
        if row is not None:
            status, reason = ("duplicate", placed["duplicate"]) if placed["duplicate"] else ("indexed", None)
        elif not finished:
            status, reason = "waiting", None
        else:
            reason = errors.get(svc.display_path(placed["path"]), "not indexed (the job was " + job.state + ")")
            status = "failed"
        files.append({"name": placed["name"], "status": status, "reason": reason, "item": row.id if row else None})
    return {"id": job.id, "state": job.state, "files": files}


def _check_tree(names: list[str]) -> None:
    """400 when one name is a file and, in another, a folder (``a.txt`` and ``a.txt/b.txt``)."""
    cleaned = [clean_relative(name) for name in names]
    files = set(cleaned)
    for path in cleaned:
        folder = next((parent for parent in path.parents if parent in files), None)
        if folder is not None:
            shown, inner = str(folder)[:120], str(path)[:120]
            raise ApiError(400, f"{shown!r} is both a file and the folder of {inner!r} in this upload")


@router.get("/api/jobs", summary="Index jobs, newest first")
def list_jobs(svc: Svc) -> dict[str, Any]:
    return {"jobs": [views.job(svc, j.to_dict()) for j in svc.jobs.list()]}


@router.get("/api/jobs/{job_id}", summary="One index job's progress")
def get_job(job_id: str, svc: Svc) -> dict[str, Any]:
    return views.job(svc, svc.jobs.get(job_id).to_dict())


@router.delete("/api/jobs/{job_id}", summary="Cancel an index job (files already indexed stay)")
def cancel_job(job_id: str, svc: Svc) -> dict[str, Any]:
    return views.job(svc, svc.jobs.cancel(job_id).to_dict())


@router.get(
    "/api/jobs/{job_id}/events",
    summary="Live progress as server-sent events (event: progress, then event: done)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def job_events(job_id: str, request: Request, svc: Svc) -> StreamingResponse:
    job = svc.jobs.get(job_id)

    async def events() -> AsyncIterator[str]:
        last = None
        while True:
            snapshot = views.job(svc, job.to_dict())
            key = (snapshot["state"], snapshot["done"], snapshot["total"], snapshot["current"])
            if key != last:
                last = key
                kind = "done" if snapshot["state"] in FINISHED else "progress"
                yield sse(kind, snapshot)
                if kind == "done":
                    return
            if await request.is_disconnected():
                return
            await asyncio.sleep(POLL_SECONDS)

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def error_event(exc: BaseException, where: str) -> dict[str, Any]:
    """The body of an ``error`` event for an exception met after a stream started: the project's own kinds in
    words, with the status they would have had; anything else an internal error with an incident id."""
    from polymodal.api.errors import body, internal_message, log_incident
    from polymodal.media.errors import MediaError
    from polymodal.models.base import ModelError

    if isinstance(exc, ApiError):
        status, message = exc.status, exc.message
    elif isinstance(exc, UploadError):
        status, message = exc.status, str(exc)
    elif isinstance(exc, MediaError):
        status, message = 415, f"cannot read that file: {exc}"
    elif isinstance(exc, ModelError):
        status, message = 503, f"a model is not available: {exc}"
    else:
        status, message = 500, internal_message(log_incident(exc, "POST", where))
    return {**body(status, message), "status": status}
