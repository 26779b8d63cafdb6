"""Errors as clear JSON with the right status, never a stack trace or a server path.

Every error body is ``{"error": "<what went wrong, in words>", "code": "<short name>"}``. Messages pass
through :func:`scrub`, which keeps only the last component of anything that looks like an absolute path.
:class:`Guard` (outermost ASGI middleware) enforces the request-size limit while the body streams in and
turns any unexpected exception into a 500 JSON answer with an incident id (the traceback goes to the server
log only), as the command line does (exit 1 with an incident id). Only the project's own user-error types
(:mod:`polymodal.errors`, and the domain errors handled below) become 4xx answers: a ``ValueError`` or an
``OSError`` from somewhere inside is a fault of the service, never "bad input".
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from typing import Any

log = logging.getLogger("polymodal.api")

_PATH = re.compile(r"(?<![\w/:.~])(?:~|[A-Za-z]:)?/(?:[^\s'\"/:,;()\[\]<>]+/)+([^\s'\"/:,;()\[\]<>]*)")
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    421: "misdirected",
    422: "invalid",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


KEYS_UNREADABLE = "the service cannot read its API keys file; the server log says which file and what to do"


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def scrub(message: str) -> str:
    """``message`` with absolute paths cut to their last component."""
    return _PATH.sub(lambda m: m.group(1) or "…", str(message))


def body(status: int, message: str) -> dict[str, Any]:
    return {"error": scrub(message), "code": CODES.get(status, "error")}


def json_bytes(status: int, message: str) -> bytes:
    return json.dumps(body(status, message), ensure_ascii=False).encode("utf-8")


class _TooLarge(Exception):
    pass


KB = 1024


def size_words(size: int) -> str:
    """A byte count as people say it: "64 KiB", "8 MB"."""
    return f"{size / (KB * KB):g} MB" if size >= KB * KB else f"{size / KB:g} KiB"


class Guard:
    """Pure ASGI middleware: a body-size limit by kind of body, and a JSON 500 instead of any unhandled exception.

    A multipart upload may be as large as ``max_request_bytes``; a url-encoded form ``max_form_bytes``; any other
    body (JSON) ``max_json_bytes``. A declared ``Content-Length`` over it is refused before reading; a streamed
    body is counted as it arrives and refused as soon as it passes the limit.
    """

    def __init__(self, app: Any, max_request_bytes: int, max_form_bytes: int, max_json_bytes: int):
        self.app = app
        self.limits = {"multipart/form-data": (max_request_bytes, "an upload"),
                       "application/x-www-form-urlencoded": (max_form_bytes, "a form without files")}  # fmt: skip
        self.other = (max_json_bytes, "a JSON body")

    def limit(self, headers: dict[bytes, bytes]) -> tuple[int, str]:
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower().decode("latin-1")
        return self.limits.get(kind, self.other)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        limit, what = self.limit(headers)
        too_large = f"the request is over the {size_words(limit)} limit for {what}"
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_error(send, 413, too_large)
            return
        state = {"received": 0, "too_large": False, "started": False}

        async def counted_receive() -> dict:
            message = await receive()
            state["received"] += len(message.get("body", b""))
            if state["received"] > limit:
                state["too_large"] = True
                raise _TooLarge
            return message

        async def guarded_send(message: dict) -> None:
            if state["too_large"]:
                return  # the app's answer to a broken body is replaced by the 413 below
            state["started"] = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception as exc:
            if not state["too_large"]:
                incident = log_incident(exc, scope.get("method"), scope.get("path"))
                if not state["started"]:
                    await send_error(send, 500, internal_message(incident))
                return
        if state["too_large"]:
            await send_error(send, 413, too_large)


def log_incident(exc: BaseException, method: Any, path: Any) -> str:
    """Log an unexpected error with its traceback under a new incident id, and return the id."""
    incident = secrets.token_hex(4)
    log.error("unhandled error %s on %s %s", incident, method, path, exc_info=exc)
    return incident


def internal_message(incident: str) -> str:
    return f"internal error (incident {incident}); the server log has details"


async def send_error(send: Any, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """Answer a raw ASGI request with the JSON error body (for middleware, before any route runs)."""
    payload = json_bytes(status, message)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


def install_handlers(app: Any) -> None:
    """Exception handlers that answer each known failure with its status and a message in words."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    from polymodal.api.jobs import JobNotFound, JobsFull
    from polymodal.api.security import KeyFileError
    from polymodal.api.uploads import UploadError
    from polymodal.collection import ItemNotFound
    from polymodal.errors import UserError
    from polymodal.media.errors import MediaError
    from polymodal.models.base import ModelError

    def answer(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(body(status, message), status_code=status, headers=headers)

    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return answer(exc.status, exc.message, exc.headers)

    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return answer(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    async def keys_unreadable(_: Request, exc: Exception) -> JSONResponse:
        log.error("%s", exc)
        return answer(503, KEYS_UNREADABLE)

    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}" for e in exc.errors()]
        return answer(422, "; ".join(problems) or "invalid request")

    handlers: list[tuple[type[Exception], Any]] = [
        (ApiError, api_error),
        (HTTPException, http_error),
        (RequestValidationError, invalid),
        (ItemNotFound, lambda r, e: answer(404, str(e))),
        (JobNotFound, lambda r, e: answer(404, str(e))),
        (JobsFull, lambda r, e: answer(503, str(e), {"Retry-After": "10"})),
        (UploadError, lambda r, e: answer(e.status, str(e))),
        (MediaError, lambda r, e: answer(415, f"cannot read that file: {e}")),
        (ModelError, lambda r, e: answer(503, f"a model is not available: {e}")),
        (KeyFileError, keys_unreadable),
        (UserError, lambda r, e: answer(400, str(e))),  # a task's own check ("give at least two labels")
    ]
    for kind, handler in handlers:
        app.add_exception_handler(kind, _async(handler))


def _async(handler: Any) -> Any:
    import inspect

    if inspect.iscoroutinefunction(handler):
        return handler

    async def wrapped(request: Any, exc: Exception) -> Any:
        return handler(request, exc)

    return wrapped
