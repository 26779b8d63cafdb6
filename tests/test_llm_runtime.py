"""The local LLM's runtime (llama.cpp through xllamacpp), on the real 0.5B model: whole replies, streaming,
stopping, and the memory given back on unload."""

from __future__ import annotations

import re
import threading
import time

import pytest

from polymodal.config import Settings
from polymodal.models.base import ModelError, trim_heap
from polymodal.models.llm import LlamaServer, Qwen05B

STORY = [{"role": "system", "content": "You are a storyteller."},
         {"role": "user", "content": "Tell a long story about a lighthouse keeper and a cat."}]  # fmt: skip


@pytest.fixture(scope="module")
def llm(settings: Settings) -> Qwen05B:
    model = Qwen05B(settings.with_(idle_unload_seconds=0))  # its own instance: unloaded by these tests alone
    yield model
    model.unload()


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_a_whole_reply_answers_the_question(llm) -> None:
    reply = llm.chat([{"role": "user", "content": "What colour is the sky on a clear day? One word."}], max_tokens=8)
    assert "blue" in words(reply), reply


def test_tokens_are_counted_in_the_models_vocabulary(llm) -> None:
    assert llm.count_tokens("") == 0
    assert 1 <= llm.count_tokens("hello world") <= 3
    assert llm.count_tokens("hello world " * 50) > 50


def test_the_first_pieces_arrive_before_the_reply_is_complete(llm) -> None:
    arrivals: list[tuple[float, str]] = []
    for piece in llm.stream(STORY, max_tokens=60):
        arrivals.append((time.perf_counter(), piece))
    finished = time.perf_counter()
    assert len(arrivals) > 10, arrivals
    assert finished - arrivals[0][0] > 0.2  # the first piece came well before the last one
    assert len(words("".join(p for _, p in arrivals))) > 5


def test_the_stream_equals_the_whole_reply(llm) -> None:
    question = [{"role": "user", "content": "List three fruits, comma separated."}]
    assert "".join(llm.stream(question, max_tokens=24)).strip() == llm.chat(question, max_tokens=24)


@pytest.mark.parametrize("kind", ["event", "callable"])
def test_stop_ends_generation_promptly(llm, kind) -> None:
    event = threading.Event()
    stop = event if kind == "event" else event.is_set
    pieces: list[str] = []
    for piece in llm.stream(STORY, max_tokens=400, stop=stop):
        pieces.append(piece)
        if len(pieces) == 3:
            event.set()
            asked = time.perf_counter()
    returned = time.perf_counter() - asked
    assert llm.runtime.wait_idle(timeout=30)
    ended = time.perf_counter() - asked  # llama.cpp's generation thread has returned
    assert len(pieces) == 3
    print(f"stop ({kind}): the stream returned after {returned:.3f} s, generation ended after {ended:.3f} s")
    assert returned < 0.5
    assert ended < 2.0  # the token in progress (~0.1 s measured on a quiet machine)
    assert llm.chat([{"role": "user", "content": "Say yes."}], max_tokens=4)  # the model is free again


def test_a_stop_from_another_thread_ends_a_long_prompt_before_its_first_token(llm) -> None:
    event = threading.Event()
    long_prompt = [{"role": "user", "content": "Summarise: " + "The harbour was quiet that night. " * 450}]
    assert llm.count_tokens(long_prompt[0]["content"]) > 3000  # 12+ prompt batches
    timer = threading.Timer(0.5, event.set)
    timer.start()
    started = time.perf_counter()
    pieces = list(llm.stream(long_prompt, max_tokens=50, stop=event))
    returned = time.perf_counter() - started
    assert llm.runtime.wait_idle(timeout=60)
    ended = time.perf_counter() - started
    timer.join()
    print(f"a ~3,200-token prompt, stop at 0.5 s: the stream returned at {returned:.2f} s, "
          f"generation ended at {ended:.2f} s")
    assert not pieces
    assert returned < 1.5
    # llama.cpp sees the stop at the end of the prompt batch in progress (256 tokens), where the whole prompt
    # takes 12+ batches; loose for a busy machine.
    assert ended < 25.0


def test_closing_the_stream_early_frees_the_model(llm) -> None:
    stream = llm.stream(STORY, max_tokens=400)
    next(stream)
    started = time.perf_counter()
    stream.close()
    assert time.perf_counter() - started < 0.5
    assert llm.runtime.wait_idle(timeout=30)
    assert llm._generation_lock.acquire(blocking=False)
    llm._generation_lock.release()


def test_an_oversized_prompt_is_refused_in_words(llm) -> None:
    with pytest.raises(ModelError, match="does not fit"):
        llm.chat([{"role": "user", "content": "word " * 5000}])


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


def test_unloading_gives_the_memory_back(settings: Settings) -> None:
    model = Qwen05B(settings.with_(idle_unload_seconds=0))
    model.model_path()  # assembled before measuring
    trim_heap()
    before = resident_mb()
    assert model.count_tokens("load it")
    loaded = resident_mb()
    model.unload()
    trim_heap()
    after = resident_mb()
    print(f"resident {before:.0f} MB -> {loaded:.0f} MB loaded -> {after:.0f} MB unloaded")
    assert loaded - before > 300  # the 0.5B model's weights and context
    assert after - before < 0.2 * (loaded - before)
    assert not model.loaded


def test_a_file_that_is_not_a_model_is_told_in_words(tmp_path) -> None:
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"GGUF but not really" * 100)
    with pytest.raises(ModelError, match="could not load the LLM from .*not-a-model.gguf"):
        LlamaServer(bogus, 512, 1)
