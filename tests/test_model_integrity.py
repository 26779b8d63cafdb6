"""Damaged model files are never used silently, caches are written safely, and an unloaded LLM is freed.

Real models on real inputs, in a cache of this module's own (the shared one is never damaged): bytes flipped in
the middle of the exported classifier or of Whisper's weights (the mtime put back) are found on the next load
and the file is made again from its package; a damaged label-vector matrix is computed again; threads asking
for a label bridge at once on a cold cache share one computation. The LLM test reads the shared cache's GGUF.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest

from polymodal.analysis import Analyzer
from polymodal.config import Settings
from polymodal.media.audio import decode_audio
from polymodal.media.image import classifier_input, open_image
from polymodal.models import assets
from polymodal.models.base import ModelError, unload_idle
from polymodal.models.image import EfficientNetLite0
from polymodal.models.speech import WhisperBase

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / ".cache" / "sample-collection"


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings with a cache of this module's own (models are derived into it once)."""
    root = tmp_path_factory.mktemp("integrity")
    return Settings.from_env(store=root / "store", cache=root / "cache", idle_unload_seconds=0)


def flip_middle(path: Path, count: int = 4096) -> None:
    """Invert ``count`` bytes in the middle of ``path`` in place, then put its access and modified times back."""
    stat = path.stat()
    with open(path, "r+b") as handle:
        handle.seek(stat.st_size // 2)
        block = handle.read(count)
        handle.seek(stat.st_size // 2)
        handle.write(bytes(b ^ 0xFF for b in block))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_mtime_ns == stat.st_mtime_ns


def top_labels(model: EfficientNetLite0, image: Path, k: int = 3) -> list[str]:
    probabilities = model.analyze(classifier_input(open_image(image, 50_000_000))[None])[0].probabilities
    return [model.labels[i] for i in np.argsort(-probabilities)[:k]]


def remade(caplog: pytest.LogCaptureFixture, path: Path) -> bool:
    return any(str(path) in r.getMessage() and "making it again" in r.getMessage() for r in caplog.records)


def test_a_damaged_classifier_export_is_made_again(own, samples, caplog):
    coffee = samples / "photos" / "coffee.jpg"
    model = EfficientNetLite0(own)
    before = top_labels(model, coffee)
    assert before[0] == "espresso"
    exported = model._exported_onnx()
    assert assets.sidecar(exported).is_file()
    flip_middle(exported)
    model.unload()
    with caplog.at_level(logging.WARNING, logger="polymodal.models"):
        after = top_labels(model, coffee)
    assert after == before
    assert remade(caplog, exported)
    assert assets.sha256_of(exported) == assets.sidecar(exported).read_text().split()[0]


def test_damaged_whisper_weights_with_their_mtime_put_back_are_made_again(own, samples, caplog):
    speech = decode_audio(samples / "recordings" / "two_cities.wav")[: 8 * 16000]
    whisper = WhisperBase(own)
    assert "best of times" in normalised(whisper.transcribe(speech, "en").text)
    weights = whisper._model_dir() / "model.bin"
    flip_middle(weights)
    whisper.unload()
    with caplog.at_level(logging.WARNING, logger="polymodal.models"):
        text = normalised(WhisperBase(own).transcribe(speech, "en").text)
    assert "best of times" in text  # not "!!!!!!"
    assert remade(caplog, weights)


def test_a_package_file_or_part_that_is_damaged_is_an_error_naming_it(tmp_path):
    shipped = tmp_path / "site-packages" / "somemodel" / "weights.bin"
    shipped.parent.mkdir(parents=True)
    shipped.write_bytes(b"weights")
    right = assets.sha256_of(shipped)
    assert assets.verify(shipped, right) == shipped
    shipped.write_bytes(b"weighty")
    with pytest.raises(ModelError, match=re.escape(str(shipped)) + ".*reinstall"):
        assets.verify(shipped, right)
    target = tmp_path / "cache" / "assembled.bin"
    with pytest.raises(ModelError, match=re.escape(str(target)) + ".*reinstall"):
        assets.assemble(target, [shipped], right)  # the parts no longer make the recorded file
    assert not target.exists() and not list(target.parent.glob(".assembled.bin.*.bin"))


def test_a_damaged_label_matrix_is_computed_again(own, caplog):
    bridge = Analyzer(own).bridge("sound")
    first, path = bridge.matrix.copy(), bridge.path
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncated
    with caplog.at_level(logging.WARNING, logger="polymodal.models"):
        again = Analyzer(own).bridge("sound").matrix
    assert np.array_equal(again, first) and remade(caplog, path)
    # Damaged with its record (both rewritten to agree): unreadable, so computed again too.
    path.write_bytes(b"not a matrix")
    assets.sidecar(path).write_text(f"{assets.sha256_of(path)}  {path.name}\n")
    assert np.array_equal(Analyzer(own).bridge("sound").matrix, first)


def test_threads_asking_for_a_bridge_on_a_cold_cache_share_one_computation(own, monkeypatch):
    cold = own.with_(cache=own.cache.parent / "cold-bridge")
    analyzers = [Analyzer(cold), Analyzer(cold)]  # two instances: only the file lock keeps them apart
    encoder = analyzers[0].model("text")
    calls = []
    original = encoder.encode

    def counted(texts):
        calls.append(len(texts))
        time.sleep(0.2)  # widen the window in which a second thread would compute too
        return original(texts)

    monkeypatch.setattr(encoder, "encode", counted)
    start = threading.Barrier(4)
    results: list[np.ndarray] = []

    def ask(analyzer: Analyzer) -> None:
        start.wait()
        results.append(analyzer.bridge("sound").matrix)

    threads = [threading.Thread(target=ask, args=(a,)) for a in analyzers * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [521]  # one computation of the 521 AudioSet label phrasings
    path = analyzers[0].bridge("sound").path
    on_disk = np.load(path)
    assert len(results) == 4 and all(np.array_equal(r, on_disk) for r in results)
    assert assets.sha256_of(path) == assets.sidecar(path).read_text().split()[0]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.") and p.suffix == ".npy"]


def test_an_unloaded_llm_is_freed_and_chats_take_turns(settings):
    from polymodal.models.llm import Qwen05B

    llm = Qwen05B(settings.with_(idle_unload_seconds=30))  # its own instance; the shared cache's GGUF
    messages = [{"role": "user", "content": "Name one colour. One word."}]
    replies: list[str] = []
    threads = [threading.Thread(target=lambda: replies.append(llm.chat(messages, max_tokens=6))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(replies) == 3 and len(set(replies)) == 1 and replies[0]  # greedy: the same words each time
    runtime = weakref.ref(llm._runtime)
    assert llm.model_id in unload_idle(now=time.monotonic() + 60)
    gc.collect()
    assert runtime() is None, gc.get_referrers(runtime())
    assert llm.count_tokens("hello world") > 0  # loaded again on use


def normalised(text: str) -> str:
    return " ".join(re.sub(r"[^a-z ]", " ", text.lower()).split())
