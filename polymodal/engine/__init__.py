"""Where batch work runs: in-process (the default, :class:`polymodal.index.Indexer`) or on a Ray cluster
(:mod:`polymodal.engine.ray_engine`). The worker code (read -> perceive -> embed) is the same in both."""

from __future__ import annotations

ENGINES = ("local", "ray")


def indexer_class(engine: str) -> type:
    """The indexer that runs on ``engine``."""
    if engine == "local":
        from polymodal.index import Indexer

        return Indexer
    if engine == "ray":
        from polymodal.engine.ray_engine import RayIndexer

        return RayIndexer
    raise ValueError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
