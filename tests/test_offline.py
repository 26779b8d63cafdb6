"""Nothing reaches the network: every model loads from installed packages and the cache."""

from __future__ import annotations

import socket

import pytest

from polymodal.analysis import Analyzer
from polymodal.config import Settings


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_every_model_runs_without_network(no_network, samples, tmp_path):
    analyzer = Analyzer(Settings.from_env(store=tmp_path / "store"))
    for relative, kinds in [
        ("notes/coffee.md", {"passage"}),
        ("scans/page.png", {"label", "ocr"}),
        ("recordings/beckett.wav", {"tag", "transcript"}),
    ]:
        analysis = analyzer.analyze_file(samples / relative)
        assert kinds <= {e.kind for e in analysis.evidence}, relative
        assert analysis.vectors
