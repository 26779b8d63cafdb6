"""Who is calling: the API key check and the caller's rate limit.

:class:`Gate` (ASGI middleware) checks them before a request body is read, so a caller without a key cannot
make the service receive an upload; :func:`caller` hands the result to routes (and shows the bearer scheme in
the OpenAPI schema).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from polymodal.api.errors import KEYS_UNREADABLE, ApiError, send_error
from polymodal.api.security import KeyFileError
from polymodal.api.service import Service

log = logging.getLogger("polymodal.api")

COOKIE = "polymodal_key"
FILE_READ = re.compile(r"/api/items/\d+/(media|thumbnail)")  # rate-limited apart: see Service.file_limiter
PUBLIC = frozenset({"/api/health", "/api/session", "/api/openapi.json"})
bearer = HTTPBearer(auto_error=False, description="an API key made with `polymodal keys create NAME`")


@dataclass
class Caller:
    key_id: str | None
    address: str


def authorize(svc: Service, request: Request) -> Caller:
    """The caller of ``request``; 401 without a valid key where keys are required, 429 past its rate.

    Requests without a valid key are limited per address too (a stricter bucket), so guessing keys or
    hammering the service without one is slowed down like any other caller.
    """
    address = svc.trust.client_address(request.scope)
    key_id = None
    if svc.config.keys_required:
        key_id = _verified_key(svc, request, address)
    limiter = svc.file_limiter if FILE_READ.fullmatch(request.url.path) else svc.limiter
    wait = limiter.check(f"key:{key_id}" if key_id else f"ip:{address}")
    if wait > 0:
        raise _too_many(svc, wait)
    return Caller(key_id, address)


def _verified_key(svc: Service, request: Request, address: str) -> str:
    failures = f"ip:{address}"
    wait = svc.failures.wait(failures)
    if wait > 0:
        raise _too_many(svc, wait, "without a valid API key")
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    secret = token.strip() if scheme.lower() == "bearer" else request.cookies.get(COOKIE)
    key = svc.keys.verify(secret) if secret else None
    if key is not None:
        return key.id
    svc.failures.check(failures)
    svc.metrics.count("unauthorized")
    if not secret:
        raise ApiError(401, "an API key is required: send `Authorization: Bearer <key>`", _challenge())
    raise ApiError(401, "that API key is not valid (unknown or revoked)", _challenge())


def _too_many(svc: Service, wait: float, how: str = "") -> ApiError:
    svc.metrics.count("rate_limited")
    what = f"too many requests {how}".strip()
    return ApiError(429, f"{what}; try again in {wait:.1f} s", {"Retry-After": str(int(wait) + 1)})


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
                await send_error(send, exc.status, exc.message, exc.headers)
                return
            except KeyFileError as exc:
                log.error("%s", exc)
                await send_error(send, 503, KEYS_UNREADABLE)
                return
            scope.setdefault("state", {})["caller"] = who
        await self.app(scope, receive, send)


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
