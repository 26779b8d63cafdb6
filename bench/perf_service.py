"""Cold start, `polymodal --help`, and the memory of a running service (idle, after queries, after idle unload).

    .venv/bin/python bench/perf_service.py --store STORE --out result.json [--big-store STORE2] [--quick]

- cold start: wall seconds of a fresh `polymodal search "..." --store STORE --json` process, from exec to its
  result (Python start, imports, store, text encoder, vector index, search), median of 3;
- help: wall seconds of `polymodal --help`, median of 5;
- memory: `polymodal serve --no-warm` (models load on first use) with ``POLYMODAL_IDLE_UNLOAD_SECONDS``: resident
  memory (VmRSS, and its anonymous / file-backed parts) idle, after the first text, image and audio query, and once
  the models were unloaded for being idle.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf_data  # noqa: E402
from perf_util import memory_mb  # noqa: E402

VENV_BIN = Path(sys.executable).parent
IDLE_SECONDS = 10


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed: {done.stderr[-2000:]}")
    return time.perf_counter() - started


def cold_start(store: Path, env: dict[str, str], runs: int = 3) -> dict[str, float]:
    command = [str(VENV_BIN / "polymodal"), "search", "a dog playing with a ball", "--store", str(store), "--json"]
    times = [timed(command, env) for _ in range(runs)]
    return {"median_s": round(statistics.median(times), 2), "runs": [round(t, 2) for t in times]}


def help_time(env: dict[str, str], runs: int = 5) -> dict[str, float]:
    times = [timed([str(VENV_BIN / "polymodal"), "--help"], env) for _ in range(runs)]
    bare = [timed([sys.executable, "-c", "pass"], env) for _ in range(runs)]
    return {"median_s": round(statistics.median(times), 3), "python_alone_s": round(statistics.median(bare), 3)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_memory(store: Path, env: dict[str, str]) -> dict[str, object]:
    import httpx

    port = free_port()
    env = {**env, "POLYMODAL_IDLE_UNLOAD_SECONDS": str(IDLE_SECONDS)}
    command = [str(VENV_BIN / "polymodal"), "serve", "--store", str(store), "--port", str(port), "--no-warm"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    steps: dict[str, object] = {}
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            _wait_ready(client, process)
            time.sleep(1)
            steps["idle, store open"] = memory_mb(process.pid)
            samples = perf_data.samples()
            queries = [
                ("text", lambda: client.get("/api/search", params={"q": "a cat on a sofa"})),
                ("image", lambda: _post(client, "image", samples / "photos" / "coffee.jpg", "image/jpeg")),
                ("audio", lambda: _post(client, "audio", samples / "sounds" / "dog.mp3", "audio/mpeg")),
            ]
            for name, send in queries:
                started = time.perf_counter()
                response = send()
                response.raise_for_status()
                steps[f"after first {name} query"] = {
                    **memory_mb(process.pid),
                    "first_query_s": round(time.perf_counter() - started, 2),
                }
            time.sleep(IDLE_SECONDS + IDLE_SECONDS / 4 + 2)
            steps[f"idle {IDLE_SECONDS} s later (models unloaded)"] = memory_mb(process.pid)
            started = time.perf_counter()
            client.get("/api/search", params={"q": "a cat on a sofa"}).raise_for_status()
            steps["text query after unload"] = {
                **memory_mb(process.pid),
                "query_s": round(time.perf_counter() - started, 2),
            }
    finally:
        process.terminate()
        process.wait(20)
    return steps


def _wait_ready(client, process: subprocess.Popen) -> None:
    import httpx

    deadline = time.time() + 90
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the service exited at start")
        try:
            if client.get("/api/health").status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("the service did not start in 90 s")


def _post(client, field: str, path: Path, mime: str):
    with open(path, "rb") as handle:
        return client.post("/api/search", files={field: (path.name, handle, mime)}, data={"k": "10"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--big-store", type=Path, help="a large store (e.g. the 1M-vector one) for cold start too")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result: dict[str, object] = {"help": help_time(env), "cold_start": {"store": cold_start(args.store, env)}}
    if args.big_store:
        result["cold_start"]["big_store"] = cold_start(args.big_store, env)  # type: ignore[index]
    result["service_memory_mb"] = {"store": service_memory(args.store, env)}
    if args.big_store and not args.quick:
        result["service_memory_mb"]["big_store"] = service_memory(args.big_store, env)  # type: ignore[index]
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
