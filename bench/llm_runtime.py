"""The local LLM's runtime: llama-cpp-python (built from source, the old runtime) against xllamacpp (prebuilt).

For each runtime and model: load time, resident memory once loaded, seconds to the first streamed piece of a
~250-token prompt (a fresh prompt each time: no prefix reuse), generation speed (pieces per second after the
first), and for xllamacpp how long generation goes on after a stop. Each (runtime, model) runs in its own
process; rounds alternate the runtimes' order so a busy machine slows both alike. A runtime that is not
installed is skipped (llama-cpp-python is no longer a dependency).

    .venv/bin/python bench/llm_runtime.py [--models qwen2.5-0.5b qwen2.5-1.5b] [--rounds 3] [--prompts 2]

writes bench/results/llm_runtime.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "llm_runtime.json"
RUNTIMES = {"llama-cpp-python": "llama_cpp", "xllamacpp": "xllamacpp"}
THREADS = 2
MAX_TOKENS = 64
EVIDENCE = ("The photo shows a white cup of espresso on a saucer, on a wooden table, beside a spoon. "
            "The cup has a thin handle; the crema is light brown. Detected text: none. ") * 4  # fmt: skip


def messages(index: int) -> list[dict[str, str]]:
    # The run number first: no prompt prefix is shared with an earlier run.
    return [
        {"role": "system", "content": f"Run {index}. You describe photos from their evidence, in detail."},
        {"role": "user", "content": f"Evidence: {EVIDENCE}\nDescribe the photo in a long paragraph."},
    ]


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


def old_stream(llama: Any, chat: list[dict[str, str]]) -> Any:
    chunks = llama.create_chat_completion(messages=chat, max_tokens=MAX_TOKENS, temperature=0.0, seed=0, stream=True)
    for chunk in chunks:
        piece = (chunk["choices"][0].get("delta") or {}).get("content")
        if piece:
            yield piece


def worker(runtime: str, model_name: str, prompts: int, offset: int) -> dict[str, Any]:
    """One process: load the model with ``runtime``, stream ``prompts`` fresh prompts, measure."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from polymodal.config import Settings
    from polymodal.models.base import get_model

    model = get_model("llm", model_name, Settings.from_env(threads=THREADS, idle_unload_seconds=0))
    path = model.model_path()
    started = time.perf_counter()
    if runtime == "llama-cpp-python":
        from llama_cpp import Llama

        llama = Llama(model_path=str(path), n_ctx=model.context_tokens, n_threads=THREADS, verbose=False)
        stream = lambda chat: old_stream(llama, chat)  # noqa: E731
    else:
        model.count_tokens("load")
        stream = lambda chat: model.stream(chat, max_tokens=MAX_TOKENS)  # noqa: E731
    load_s = time.perf_counter() - started
    runs = [one_run(stream, messages(offset + i)) for i in range(prompts)]
    result = {"load_s": load_s, "resident_mb": resident_mb(), "runs": runs}
    if runtime == "xllamacpp":
        result["stop_s"] = [stop_latency(model, messages(offset + 100 + i)) for i in range(prompts)]
    return result


def one_run(stream: Any, chat: list[dict[str, str]]) -> dict[str, float]:
    started = time.perf_counter()
    times = [time.perf_counter() for _ in stream(chat)]
    first = times[0] - started
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return {"first_piece_s": first, "pieces_per_s": rate, "pieces": len(times)}


def stop_latency(model: Any, chat: list[dict[str, str]]) -> float:
    """Seconds from setting the stop event (after the 3rd piece) until the stream, and llama.cpp's generation
    thread with it, has ended."""
    stop = threading.Event()
    asked = 0.0
    for count, _ in enumerate(model.stream(chat, max_tokens=MAX_TOKENS, stop=stop), start=1):
        if count == 3:
            stop.set()
            asked = time.perf_counter()
    return time.perf_counter() - asked


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    runs = [run for result in results for run in result["runs"]]
    out = {
        "n_prompts": len(runs),
        "n_loads": len(results),
        "load_s_median": statistics.median(r["load_s"] for r in results),
        "resident_mb_median": statistics.median(r["resident_mb"] for r in results),
        "first_piece_s_median": statistics.median(r["first_piece_s"] for r in runs),
        "pieces_per_s_median": statistics.median(r["pieces_per_s"] for r in runs),
    }
    stops = [s for result in results for s in result.get("stop_s", [])]
    if stops:
        out |= {"stop_s_median": statistics.median(stops), "stop_s_max": max(stops), "n_stops": len(stops)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["qwen2.5-0.5b", "qwen2.5-1.5b"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=2, help="prompts per loaded model")
    parser.add_argument("--worker", nargs=4, metavar=("RUNTIME", "MODEL", "PROMPTS", "OFFSET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        runtime, model, prompts, offset = args.worker
        print(json.dumps(worker(runtime, model, int(prompts), int(offset))))
        return
    runtimes = [name for name, module in RUNTIMES.items() if importlib.util.find_spec(module)]
    raw: dict[str, dict[str, list[Any]]] = {m: {r: [] for r in runtimes} for m in args.models}
    load_before = os.getloadavg()[0]
    for round_number in range(args.rounds):
        order = runtimes if round_number % 2 == 0 else runtimes[::-1]
        for model in args.models:
            for runtime in order:
                offset = round_number * 1000
                command = [sys.executable, __file__, "--worker", runtime, model, str(args.prompts), str(offset)]
                done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
                raw[model][runtime].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(model, runtime, summary(raw[model][runtime][-1:]), flush=True)
    report = {
        "what": f"llama-cpp-python (old, compiled) vs xllamacpp (new, prebuilt wheel); {THREADS} threads, "
        f"{MAX_TOKENS} new tokens, greedy; a fresh prompt of ~250 tokens each run",
        "machine": {"cpus": os.cpu_count(), "load_average": {"before": load_before, "after": os.getloadavg()[0]}},
        "versions": {r: _version(r) for r in runtimes},
        "results": {m: {r: summary(raw[m][r]) for r in runtimes} for m in args.models},
        "raw": raw,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["results"], indent=2))


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


if __name__ == "__main__":
    main()
