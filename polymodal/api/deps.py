"""Who is calling: the API key check and the caller's rate limit.

:class:`Gate` (ASGI middleware) checks them before a request body is read, so a caller without a key cannot
make the service receive an upload; :func:`caller` hands the result to routes (and shows the bearer scheme in
the OpenAPI schema).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from polymodal.api.errors import ApiError, body
from polymodal.api.service import Service

COOKIE = "polymodal_key"
PUBLIC = frozenset({"/api/health", "/api/session", "/api/openapi.json"})
bearer = HTTPBearer(auto_error=False, description="an API key made with `polymodal keys create NAME`")


@dataclass
class Caller:
    key_id: str | None
    address: str


def authorize(svc: Service, request: Request) -> Caller:
    """The caller of ``request``; 401 without a valid key where keys are required, 429 past its rate."""
    address = request.client.host if request.client else "unknown"
    key_id = None
    if svc.config.keys_required:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        secret = token.strip() if scheme.lower() == "bearer" else request.cookies.get(COOKIE)
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


class Gate:
    """Pure ASGI middleware: authorize every ``/api/`` and ``/metrics`` request (but the public ones) first."""

    def __init__(self, app: Any, service: Service):
        self.app = app
        self.service = service

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        guarded = scope["type"] == "http" and (path.startswith("/api/") or path == "/metrics") and path not in PUBLIC
        if guarded and scope.get("method") != "OPTIONS":
            try:
                who = authorize(self.service, Request(scope))
            except ApiError as exc:
                await _refuse(send, exc)
                return
            scope.setdefault("state", {})["caller"] = who
        await self.app(scope, receive, send)


async def _refuse(send: Any, exc: ApiError) -> None:
    payload = json.dumps(body(exc.status, exc.message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def service(request: Request) -> Service:
    return request.app.state.service


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def caller(request: Request, credentials: Credentials) -> Caller:
    found = getattr(request.state, "caller", None)
    return found if found is not None else authorize(request.app.state.service, request)


Svc = Annotated[Service, Depends(service)]
Who = Annotated[Caller, Depends(caller)]


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": "Bearer"}
