"""Items: list, one item with all its evidence, similar items, delete, the media file and image thumbnails.

Items are addressed by id only. The media route serves the file the store has for that id (with HTTP range
requests), never a path from the request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from polymodal.api import views
from polymodal.api.deps import Svc, caller
from polymodal.api.errors import ApiError
from polymodal.api.media import SAFE_HEADERS, THUMB_SIZES, MediaResponse, existing_file, media_type, thumbnail

router = APIRouter(tags=["items"], dependencies=[Depends(caller)])
MAX_ID = 2**63 - 1  # SQLite's largest integer
MAX_OFFSET = 2**31 - 1
MAX_SHOT = 100_000
ItemId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="an item's id", examples=[1])]


@router.get("/api/items", summary="Items, newest first")
def list_items(
    svc: Svc,
    modality: Literal["text", "image", "audio", "video"] | None = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    total, page = svc.collection.items(modality, offset, limit)
    items = []
    for summary in page:
        data = summary.to_dict()
        data.update(path=svc.display_path(summary.path), name=Path(summary.path).name)
        data.update(views.links(summary.id, summary.modality))
        items.append(data)
    return {"total": total, "offset": offset, "limit": limit, "items": items}


@router.get("/api/items/{item_id}", summary="One item: meta, models and all its evidence")
def get_item(item_id: ItemId, svc: Svc) -> dict[str, Any]:
    return views.item(svc, svc.collection.item(item_id).to_dict())


@router.get("/api/items/{item_id}/similar", summary="Items nearest to this one")
async def similar(item_id: ItemId, svc: Svc, k: Annotated[int, Query(ge=1, le=50)] = 8) -> dict[str, Any]:
    result = await svc.search_pool.run(svc.collection.similar, item_id, k)
    return views.search_result(svc, result.to_dict())


@router.delete("/api/items/{item_id}", summary="Remove an item from the collection (and its uploaded file)")
def delete_item(item_id: ItemId, svc: Svc) -> dict[str, Any]:
    item = svc.collection.item(item_id)
    svc.collection.remove(item_id)
    uploaded = svc.upload_file(item.path)  # resolved: "uploads/../../x" is not an upload
    if uploaded is not None:
        uploaded.unlink(missing_ok=True)
        svc.uploads.prune(uploaded.parent)  # a folder emptied by the removal goes too
    return {"deleted": item_id, "file_deleted": uploaded is not None}


@router.get(
    "/api/items/{item_id}/media",
    summary="The item's file (supports Range requests)",
    response_class=FileResponse,
    responses={206: {"description": "a byte range of the file"}, 416: {"description": "range not satisfiable"}},
)
def media(item_id: ItemId, svc: Svc) -> FileResponse:
    item = svc.collection.item(item_id)
    file = existing_file(item.path)
    return MediaResponse(
        file,
        media_type=media_type(item.format, item.modality),
        headers=SAFE_HEADERS,
        content_disposition_type="inline",
        filename=file.name,
    )


@router.get("/api/items/{item_id}/thumbnail", summary="A JPEG of an image or a video shot", response_class=FileResponse)
def item_thumbnail(
    item_id: ItemId, svc: Svc, size: int = 256, shot: Annotated[int, Query(ge=0, le=MAX_SHOT)] = 0
) -> FileResponse:
    item = svc.collection.item(item_id)
    if item.modality == "video":  # made at indexing, one per shot (256 px)
        found = svc.collection.store.thumbnail(item.sha256, shot)
        if found is None:
            raise ApiError(404, f"item {item_id} has no shot {shot}")
        return FileResponse(found, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})
    if item.modality != "image":
        raise ApiError(404, f"item {item_id} is {item.modality}, not an image: it has no thumbnail")
    if size not in THUMB_SIZES:
        raise ApiError(400, f"size must be one of {', '.join(map(str, THUMB_SIZES))}")
    source, cache = existing_file(item.path), svc.store_dir / "thumbnails"
    path = thumbnail(source, item.sha256, size, cache, svc.collection.settings.max_image_pixels)
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})
