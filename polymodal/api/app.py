"""The FastAPI application: ``create_app(collection, config)``, and ``serve()`` for ``polymodal serve``.

One Collection per process, shared by every request; see :mod:`polymodal.api.service` for how work is
spread over bounded pools so that searches never wait behind indexing.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import signal
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from polymodal import __version__
from polymodal.api.boundary import Boundary
from polymodal.api.config import ServeConfig
from polymodal.api.deps import Gate
from polymodal.api.errors import Guard, install_handlers
from polymodal.api.metrics import MetricsMiddleware
from polymodal.api.service import Service
from polymodal.collection import Collection

log = logging.getLogger("polymodal.api")
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def web_dir() -> Path:
    return Path(str(resources.files("polymodal") / "web"))


def create_app(collection: Collection, config: ServeConfig | None = None) -> FastAPI:
    config = config or ServeConfig()
    svc = Service(collection, config)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        svc.start()
        try:
            yield
        finally:
            svc.stop()

    app = FastAPI(
        title="polymodal",
        version=__version__,
        description="Search and understand text, images and audio together, offline. All routes answer JSON; "
        "errors are `{error, code}` with the HTTP status.",
        lifespan=lifespan,
        docs_url=None,  # the Swagger page loads scripts from a CDN: not offline. The schema is at /api/openapi.json
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.service = svc
    install_handlers(app)
    _routes(app)
    _page(app)
    app.add_middleware(Gate, service=svc)  # innermost of these: runs after the size guard, before routes
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(Boundary, trust=svc.trust, metrics=svc.metrics)  # Host and cross-site checks
    app.add_middleware(SecurityHeaders)
    app.add_middleware(MetricsMiddleware, metrics=svc.metrics)
    app.add_middleware(
        Guard, max_request_bytes=config.max_request_bytes, max_form_bytes=config.max_form_bytes,
        max_json_bytes=config.max_json_bytes,
    )  # fmt: skip
    return app


def _routes(app: FastAPI) -> None:
    from polymodal.api.routes import assistant, index, items, search, system, tasks

    for module in (system, search, items, index, tasks, assistant):
        for name in ("public", "router"):
            router = getattr(module, name, None)
            if router is not None:
                app.include_router(router)
    app.include_router(__import__("polymodal.api.routes.people", fromlist=["router"]).router)  # faces and people
    app.include_router(__import__("polymodal.api.routes.generate", fromlist=["router"]).router)  # speak, generate


def _page(app: FastAPI) -> None:
    static = web_dir()
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(static / "index.html", headers={**PAGE_HEADERS, "Cache-Control": "no-cache"})


class SecurityHeaders:
    """Pure ASGI middleware: the page's security headers on every answer that does not set its own."""

    def __init__(self, app: Any):
        self.app = app
        self.extra = [(k.lower().encode(), v.encode()) for k, v in PAGE_HEADERS.items()]

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in self.extra if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)


def server(app: FastAPI, config: ServeConfig) -> Any:
    """The uvicorn server for ``app``. Its own proxy-header handling is off: X-Forwarded-For is believed only
    from ``config.trusted_proxies``, by the service itself (uvicorn would believe any caller on 127.0.0.1)."""
    import uvicorn

    settings = uvicorn.Config(
        app, host=config.host, port=config.port, log_level="info", access_log=False, timeout_graceful_shutdown=5,
        proxy_headers=False, server_header=False,
    )  # fmt: skip
    return uvicorn.Server(settings)


def serve(collection: Collection, config: ServeConfig) -> None:
    """Run the service until interrupted (blocking). ``kill -USR1 PID`` prints every thread's stack to stderr."""
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    app = create_app(collection, config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server(app, config).run()
