"""Models load on first use and are unloaded once idle for ``Settings.idle_unload_seconds`` (real text encoder)."""

from __future__ import annotations

import time

import numpy as np

from polymodal.models.base import unload_idle
from polymodal.models.text import UseMultilingual


def test_an_idle_model_is_unloaded_and_reloads_on_next_use(settings):
    quick = settings.with_(idle_unload_seconds=0.5)
    encoder = UseMultilingual(quick)  # its own instance (get_model shares one per files and threads)
    first = encoder.encode(["a cat on a sofa"])
    assert encoder.loaded
    assert unload_idle(now=time.monotonic()) == []  # just used: kept
    deadline = time.time() + 10
    while encoder.loaded and time.time() < deadline:  # the reaper thread unloads it
        time.sleep(0.2)
    assert not encoder.loaded
    assert np.allclose(encoder.encode(["a cat on a sofa"]), first, atol=1e-6)  # loaded again on use
    assert encoder.loaded


def test_no_unloading_when_turned_off(settings):
    never = settings.with_(idle_unload_seconds=0)
    encoder = UseMultilingual(never)
    encoder.encode(["coffee"])
    unload_idle(now=time.monotonic() + 10**6)
    assert encoder.loaded
