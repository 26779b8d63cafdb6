"""Shared fixtures: the real sample collection, indexed once per test session with the real models."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("POLYMODAL_CACHE", str(REPO / ".cache" / "polymodal"))

from polymodal.collection import Collection  # noqa: E402
from polymodal.config import Settings  # noqa: E402

TUXPAINT = Path("/usr/share/tuxpaint/stamps")


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
