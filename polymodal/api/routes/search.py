"""Search: a JSON body (text), or multipart with an image and/or a recording (and optional text)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile

from polymodal.api import views
from polymodal.api.deps import Svc, caller
from polymodal.api.errors import ApiError
from polymodal.api.routes.people import people_in
from polymodal.api.service import Service
from polymodal.api.uploads import check_kind, clean_name

router = APIRouter(tags=["search"], dependencies=[Depends(caller)])
Modality = Literal["text", "image", "audio", "video"]


class SearchRequest(BaseModel):
    text: str | None = Field(None, max_length=2000, description="words, in any language the encoder knows")
    k: int = Field(10, ge=1, le=100)
    offset: int = Field(0, ge=0, le=10_000, description="hits to pass over: the next page starts where one ended")
    modality: Modality | None = Field(None, description="only items of this kind")
    path: str | None = Field(None, max_length=300, description="only items whose path matches this glob")
    person: str | None = Field(None, max_length=100, description="only items showing this person (id or name)")
    language: str | None = Field(None, max_length=20, description="the language of a spoken query (zh, en, ...)")


_MULTIPART_SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string"},
        "k": {"type": "integer", "default": 10},
        "offset": {"type": "integer", "default": 0},
        "modality": {"type": "string", "enum": ["text", "image", "audio", "video"]},
        "path": {"type": "string"},
        "person": {"type": "string"},
        "language": {"type": "string", "description": "the language of a spoken query (zh, en, ...)"},
        "image": {"type": "string", "format": "binary", "description": "an example image"},
        "audio": {"type": "string", "format": "binary", "description": "a spoken question or a sound"},
    },
}
_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": SearchRequest.model_json_schema()},
            "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
        },
    }
}


@router.post("/api/search", summary="Search by text, image, audio, or a mix", openapi_extra=_OPENAPI)
async def search(request: Request, svc: Svc) -> dict[str, Any]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        params = _validated(await _json(request))
        return await _run(svc, params)
    if kind == "multipart/form-data":
        async with request.form(max_files=2, max_fields=10) as form:
            params = _validated({k: v for k, v in form.items() if isinstance(v, str) and v != ""})
            async with _query_media(svc, form.get("image"), form.get("audio")) as (image, audio):
                return await _run(svc, params, image, audio)
    raise ApiError(415, "send JSON (application/json) or a form with files (multipart/form-data)")


@router.get("/api/search", summary="Search by text (for links and quick tries)")
async def search_get(
    svc: Svc,
    q: Annotated[str, Query(min_length=1, max_length=2000)],
    k: Annotated[int, Query(ge=1, le=100)] = 10,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    modality: Modality | None = None,
) -> dict[str, Any]:
    return await _run(svc, SearchRequest(text=q, k=k, offset=offset, modality=modality))


async def _run(svc: Service, params: SearchRequest, image: Path | None = None, audio: Path | None = None) -> dict:
    if not (params.text and params.text.strip()) and image is None and audio is None:
        raise ApiError(400, "give a text, an image or an audio query")
    pool = svc.audio_pool if audio is not None else svc.search_pool if image is None else svc.media_pool
    result = await pool.run(
        svc.collection.search, params.text, image=image, audio=audio, k=params.k, offset=params.offset,
        modality=params.modality, path=params.path, person=params.person, language=params.language,
    )  # fmt: skip
    svc.metrics.count("searches")
    data = result.to_dict()
    shown = [h["item"] for h in data["hits"] + data["weaker"] if h["modality"] in ("image", "video")]
    people = await pool.run(people_in, svc, shown) if shown else {}
    for h in data["hits"] + data["weaker"]:
        h["people"] = people.get(h["item"], [])
    return views.search_result(svc, data)


@contextlib.asynccontextmanager
async def _query_media(svc: Service, image: Any, audio: Any) -> AsyncIterator[tuple[Path | None, Path | None]]:
    saved: list[Path] = []
    try:
        paths = []
        for upload, allowed, what in ((image, ("image",), "the image"), (audio, ("audio",), "the recording")):
            if isinstance(upload, UploadFile):
                path = await svc.uploads.receive(upload, svc.config.max_query_bytes)
                saved.append(path)
                check_kind(path, allowed, f"{what} {clean_name(upload.filename)}" if upload.filename else what)
                paths.append(path)
            elif upload not in (None, ""):
                raise ApiError(400, f"{what} must be sent as a file")
            else:
                paths.append(None)
        yield paths[0], paths[1]
    finally:
        for path in saved:
            path.unlink(missing_ok=True)


async def _json(request: Request) -> Any:
    """The JSON body (its size is capped by the Guard middleware while it streams in)."""
    raw = await request.body()
    try:
        return json.loads(raw or b"{}")
    except RecursionError:
        raise ApiError(400, 'the JSON body is nested too deeply; send a flat object like {"text": "..."}') from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a number of over 4,300 digits
        reason = getattr(exc, "msg", None) or ("bad encoding" if isinstance(exc, UnicodeDecodeError) else str(exc))
        raise ApiError(400, f"the body is not valid JSON ({reason})") from None


def _validated(data: Any) -> SearchRequest:
    try:
        return SearchRequest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise ApiError(422, problems) from None
