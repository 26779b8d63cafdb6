"""Request dependencies: the service, and the caller (API key check, then the caller's rate limit)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from polymodal.api.errors import ApiError
from polymodal.api.service import Service

COOKIE = "polymodal_key"
bearer = HTTPBearer(auto_error=False, description="an API key made with `polymodal keys create NAME`")


@dataclass
class Caller:
    key_id: str | None
    address: str


def service(request: Request) -> Service:
    return request.app.state.service


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def caller(request: Request, credentials: Credentials) -> Caller:
    svc: Service = request.app.state.service
    address = request.client.host if request.client else "unknown"
    key_id = None
    if svc.config.keys_required:
        secret = credentials.credentials if credentials else request.cookies.get(COOKIE)
        if not secret:
            raise ApiError(401, "an API key is required: send `Authorization: Bearer <key>`", _challenge())
        key = svc.keys.verify(secret)
        if key is None:
            raise ApiError(401, "that API key is not valid (unknown or revoked)", _challenge())
        key_id = key.id
    wait = svc.limiter.check(f"key:{key_id}" if key_id else f"ip:{address}")
    if wait > 0:
        svc.metrics.count("rate_limited")
        raise ApiError(429, f"too many requests; try again in {wait:.1f} s", {"Retry-After": str(int(wait) + 1)})
    return Caller(key_id, address)


Svc = Annotated[Service, Depends(service)]
Who = Annotated[Caller, Depends(caller)]


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": "Bearer"}
