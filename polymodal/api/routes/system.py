"""Health, status, Prometheus metrics, and the browser session (an API key kept in an HttpOnly cookie)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse

from polymodal import __version__
from polymodal.api import views
from polymodal.api.deps import COOKIE, Credentials, Svc, Who, caller
from polymodal.api.errors import ApiError

public = APIRouter(tags=["system"])
router = APIRouter(tags=["system"], dependencies=[Depends(caller)])


@public.get("/api/health", summary="Is the service up; does it want a key")
def health(svc: Svc) -> dict[str, Any]:
    return {
        "status": "ok",
        "version": __version__,
        "auth_required": svc.config.keys_required,
        "models": svc.warm["state"],
        "uptime_seconds": round(time.time() - svc.started, 1),
    }


@router.get("/api/status", summary="Counts per modality, models, store size, recent errors")
def status(svc: Svc) -> dict[str, Any]:
    data = views.status(svc, svc.collection.status())
    data["jobs"] = svc.jobs.counts()
    return data


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics (text format)")
def metrics(svc: Svc) -> PlainTextResponse:
    return PlainTextResponse(svc.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


@public.post("/api/session", summary="Check an API key and keep it in an HttpOnly cookie for the web page")
def login(request: Request, response: Response, svc: Svc, credentials: Credentials) -> dict[str, Any]:
    if not svc.config.keys_required:
        return {"ok": True, "auth_required": False}
    wait = svc.limiter.check(f"login:{svc.trust.client_address(request.scope)}")
    if wait > 0:
        raise ApiError(429, f"too many attempts; try again in {wait:.0f} s", {"Retry-After": str(int(wait) + 1)})
    key = svc.keys.verify(credentials.credentials) if credentials else None
    if key is None:
        raise ApiError(401, "that API key is not valid (unknown or revoked)", {"WWW-Authenticate": "Bearer"})
    response.set_cookie(COOKIE, credentials.credentials, httponly=True, samesite="strict", max_age=30 * 86400)
    return {"ok": True, "auth_required": True, "key": key.name}


@public.delete("/api/session", summary="Forget the key cookie")
def logout(response: Response) -> dict[str, bool]:
    response.delete_cookie(COOKIE)
    return {"ok": True}


@router.get("/api/whoami", summary="Which key this request used")
def whoami(who: Who, svc: Svc) -> dict[str, Any]:
    name = next((k.name for k in svc.keys.active() if k.id == who.key_id), None)
    return {"key": name, "auth_required": svc.config.keys_required}
