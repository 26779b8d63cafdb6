"""What the API returns for hits and items: the Python API's dicts, with paths shown safely and media links."""

from __future__ import annotations

from typing import Any

from polymodal.api.errors import scrub
from polymodal.api.service import Service


def links(item_id: int, modality: str, shot: int | None = None) -> dict[str, str]:
    out = {"url": f"/api/items/{item_id}", "media": f"/api/items/{item_id}/media"}
    if modality == "image":
        out["thumbnail"] = f"/api/items/{item_id}/thumbnail"
    elif modality == "video":  # the shot's keyframe (replaces the store path a video hit carries)
        out["thumbnail"] = f"/api/items/{item_id}/thumbnail" + (f"?shot={shot}" if shot else "")
    return out


def hit(svc: Service, data: dict[str, Any]) -> dict[str, Any]:
    path = data["path"]
    moment = next((e for e in data["why"] if e.get("start") is not None), None)
    return {
        **data,
        "path": svc.display_path(path),
        "name": path.rsplit("/", 1)[-1],
        "start": moment["start"] if moment else None,
        **links(data["item"], data["modality"], data.get("shot")),
    }


def search_result(svc: Service, data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "hits": [hit(svc, h) for h in data["hits"]], "weaker": [hit(svc, h) for h in data["weaker"]]}


def item(svc: Service, data: dict[str, Any]) -> dict[str, Any]:
    path = data.pop("path")
    return {
        **data,
        "path": svc.display_path(path),
        "name": path.rsplit("/", 1)[-1],
        "uploaded": svc.is_upload(path),
        "notes": [scrub(n) for n in data.get("notes", [])],
        **links(data["item"], data["modality"]),
    }


def status(svc: Service, data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    data.pop("store", None)
    data["recent_errors"] = [
        {"path": svc.display_path(e["path"]), "reason": scrub(e["reason"])} for e in data.get("recent_errors", [])
    ]
    return data


def job(svc: Service, data: dict[str, Any]) -> dict[str, Any]:
    if data.get("error"):
        data["error"] = scrub(data["error"])
    for entry in (data.get("report") or {}).get("errors", []):
        entry["reason"] = scrub(entry["reason"])
    return data
