"""A bounded schema fuzz of the HTTP API: requests generated from /api/openapi.json (schemathesis), none may
get a 5xx answer.

Every operation gets the same fixed number of examples, generated derandomized (the same each run), so CI
is stable. The collection is one small text file with the real text model and no LLM (``llm="none"``: the
tasks that would phrase with it use their templates), so each request costs milliseconds. Rate limits are
off and the job queue is long, so 429/503 answers of a busy service do not hide or fake a fault.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from polymodal.api.app import create_app
from polymodal.api.config import MB, ServeConfig
from polymodal.collection import Collection
from polymodal.config import Settings

EXAMPLES = 25  # per operation (about 30 operations)
CONFIG = ServeConfig(
    warm=False, rate_per_minute=0, max_jobs=1000, max_upload_bytes=1 * MB, max_request_bytes=4 * MB, max_files=5,
    allowed_hosts=("testserver",),  # the name schemathesis's ASGI client sends
)  # fmt: skip


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    docs = tmp_path_factory.mktemp("fuzz-docs")
    (docs / "zebra.txt").write_text("Zebras are striped horses of the African savanna.", encoding="utf-8")
    store = tmp_path_factory.mktemp("fuzz-store") / "store"
    collection = Collection(settings=Settings.from_env(store=store, llm="none"))
    assert not collection.index(docs).errors
    app = create_app(collection, CONFIG)
    with TestClient(app):  # starts and stops the service once, as a server does
        yield app


@pytest.fixture(scope="module")
def operations(fuzz_app: FastAPI) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", RequestsOnly(fuzz_app))
    found = [result.ok() for result in schema.get_all_operations()]
    assert len(found) >= 25, [op.label for op in found]
    return sorted(found, key=lambda op: op.method.upper() == "DELETE")  # the item is deleted last


class RequestsOnly:
    """The app without its lifespan: the client schemathesis makes for each call would stop the service."""

    def __init__(self, app: FastAPI):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await self.app(scope, receive, send)


def fuzz(operation: Any, mode: GenerationMode) -> list[str]:
    """Send EXAMPLES generated requests to ``operation``; what went wrong, if anything."""
    faults: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,  # the same requests every run
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: each fault is reported as found
        suppress_health_check=list(HealthCheck),
    )
    def send(case: Any) -> None:
        response = case.call()
        where = f"{case.method} {case.formatted_path}"
        if response.status_code >= 500:
            faults.append(f"{where}: {response.status_code} {response.text[:300]}")
        elif response.status_code >= 400 and not _content_type(response).startswith("application/json"):
            faults.append(f"{where}: {response.status_code} is not JSON: {response.text[:200]}")

    try:
        send()
    except Unsatisfiable:  # nothing to make invalid: an operation without parameters or body
        assert mode == GenerationMode.NEGATIVE, operation.label
    return faults


def _content_type(response: Any) -> str:
    value = response.headers.get("content-type", "")
    return value[0] if isinstance(value, list) else value


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_server_errors(operations: list[Any], mode: GenerationMode) -> None:
    faults = [fault for operation in operations for fault in fuzz(operation, mode)]
    assert not faults, "\n".join(faults[:20])
