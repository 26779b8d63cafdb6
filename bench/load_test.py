"""A bounded load test of `polymodal serve` on loopback: concurrent clients sending mixed searches.

    .venv/bin/python bench/load_test.py [--clients 20] [--seconds 30]

Starts the service on 127.0.0.1 (a free port) over a store with the sample collection indexed (made once in
.cache/bench-store), measures the cold start (process start to the first search answered), then runs
``--clients`` clients for ``--seconds`` seconds, each sending text searches (English and Chinese), image
uploads and recorded questions (espeak-ng) in a fixed random mix, one request at a time. Reports errors,
p50/p95 latency per kind, throughput and the serving process's resident memory (peak and at the end).
On 2 cores a recorded question costs ~2.7 s of speech recognition on every core, so 20 closed-loop clients
queue up on the audio worker: audio latency measures that queue, while text and image stay fast.
The rate limit is turned off for the run (``--rate-limit 0``): one client address sends everything.
Prints a table and writes JSON to bench/results/load_test.json. A benchmark, not a timed assertion.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
STORE = REPO / ".cache" / "bench-store"
TEXTS = ["a cat", "coffee", "一只猫", "咖啡", "rocket launch", "farm animals", "a dog barking", "best of times"]
MIX = (("text", 0.6), ("image", 0.25), ("audio", 0.15))
MAX_REQUESTS = 20_000  # a hard bound, whatever the clients' speed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=4, help="the server's search threads")
    args = parser.parse_args()
    samples = prepare_store()
    queries = query_media(samples)
    with Server(STORE, args.workers) as server:
        cold = server.cold_start()
        results = run_clients(server, queries, args.clients, args.seconds)
        rss = server.rss.stop()
    summary = summarize(results, args, cold, rss)
    print_table(summary)
    out = REPO / "bench" / "results" / "load_test.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nwritten to {out.relative_to(REPO)}")


# --- setup ------------------------------------------------------------------------------------------------
def prepare_store() -> Path:
    from polymodal.samples import build_sample_collection

    samples = REPO / ".cache" / "sample-collection"
    build_sample_collection(samples)
    print("indexing the sample collection into .cache/bench-store (incremental)…", file=sys.stderr)
    subprocess.run(
        [sys.executable, "-m", "polymodal.cli", "index", str(samples), "--store", str(STORE), "--json"],
        check=True, stdout=subprocess.DEVNULL, env=_env(),
    )  # fmt: skip
    return samples


def query_media(samples: Path) -> dict[str, list[tuple[str, bytes, str]]]:
    images = [(p.name, p.read_bytes(), "image/jpeg") for p in sorted((samples / "photos").glob("*.jpg"))[:4]]
    audio: list[tuple[str, bytes, str]] = []
    if shutil.which("espeak-ng"):
        with tempfile.TemporaryDirectory() as tmp:
            for n, sentence in enumerate(["it was the best of times", "a cup of coffee", "the rocket launch"]):
                path = Path(tmp) / f"q{n}.wav"
                subprocess.run(["espeak-ng", "-w", str(path), sentence], check=True)
                audio.append((path.name, path.read_bytes(), "audio/wav"))
    else:
        audio = [(p.name, p.read_bytes(), "audio/mpeg") for p in sorted((samples / "sounds").glob("*.mp3"))[:3]]
    return {"image": images, "audio": audio}


def _env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.setdefault("POLYMODAL_CACHE", str(REPO / ".cache" / "polymodal"))
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RssSampler:
    """Samples a process's resident memory every ``interval`` seconds (Linux /proc)."""

    def __init__(self, pid: int, interval: float = 0.5):
        self.pid, self.interval = pid, interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def read(self) -> int:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self.read())

    def stop(self) -> dict[str, float]:
        last = self.read()
        self._stop.set()
        self._thread.join()
        return {"peak_mb": round(max(self.samples + [last]) / 1e6, 1), "end_mb": round(last / 1e6, 1)}


class Server:
    def __init__(self, store: Path, workers: int):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.command = [
            sys.executable, "-m", "polymodal.cli", "serve", "--store", str(store), "--port", str(self.port),
            "--rate-limit", "0", "--workers", str(workers),
        ]  # fmt: skip

    def __enter__(self) -> Server:
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log")  # noqa: SIM115 (closed in __exit__)
        self.started = time.perf_counter()
        self.process = subprocess.Popen(self.command, env=_env(), stdout=self.log, stderr=subprocess.STDOUT)
        self.rss = RssSampler(self.process.pid)
        return self

    def cold_start(self, timeout: float = 180.0) -> dict[str, float]:
        """Seconds from process start to health answering, and to the first search answered."""
        health = None
        with httpx.Client(base_url=self.base, timeout=60) as client:
            while time.perf_counter() - self.started < timeout:
                if self.process.poll() is not None:
                    self.log.seek(0)
                    raise SystemExit(f"the server exited:\n{self.log.read()[-2000:]}")
                try:
                    if health is None and client.get("/api/health").status_code == 200:
                        health = time.perf_counter() - self.started
                    if health is not None:
                        answer = client.post("/api/search", json={"text": "a cat", "k": 5})
                        if answer.status_code == 200:
                            first = time.perf_counter() - self.started
                            return {"to_health_s": round(health, 2), "to_first_answer_s": round(first, 2)}
                except httpx.TransportError:
                    time.sleep(0.1)
        raise SystemExit("the server did not answer in time")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


# --- load ----------------------------------------------------------------------------------------------------
def run_clients(server: Server, queries: dict, clients: int, seconds: float) -> list[tuple[str, float, int, str]]:
    """(kind, seconds, status, error) of every request sent."""
    results: list[tuple[str, float, int, str]] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(number: int) -> None:
        rng = random.Random(number)
        with httpx.Client(base_url=server.base, timeout=300) as http:
            while time.perf_counter() < deadline:
                with lock:
                    if len(results) >= MAX_REQUESTS:
                        return
                kind = rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
                started = time.perf_counter()
                status, problem = send(http, kind, queries, rng)
                with lock:
                    results.append((kind, time.perf_counter() - started, status, problem))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def send(http: httpx.Client, kind: str, queries: dict, rng: random.Random) -> tuple[int, str]:
    try:
        if kind == "text":
            answer = http.post("/api/search", json={"text": rng.choice(TEXTS), "k": 10})
        else:
            name, data, mime = rng.choice(queries[kind])
            answer = http.post("/api/search", files={kind: (name, data, mime)}, data={"k": "10"})
        ok = answer.status_code == 200 and "hits" in answer.json()
        return answer.status_code, "" if ok else answer.text[:200]
    except httpx.HTTPError as exc:
        return 0, f"{type(exc).__name__}: {exc}"


# --- report ---------------------------------------------------------------------------------------------------
def summarize(results: list, args: argparse.Namespace, cold: dict, rss: dict) -> dict:
    per_kind: dict[str, list[float]] = defaultdict(list)
    errors = [r for r in results if r[2] != 200 or r[3]]
    for kind, seconds, status, problem in results:
        if status == 200 and not problem:
            per_kind[kind].append(seconds * 1000)
    everything = [ms for values in per_kind.values() for ms in values]
    return {
        "clients": args.clients,
        "seconds": args.seconds,
        "server_workers": {"search": args.workers, "media": 2, "audio": 1},
        "cpus": os.cpu_count(),
        "requests": len(results),
        "errors": len(errors),
        "error_examples": sorted({f"{status} {problem}" for _, _, status, problem in errors})[:5],
        "throughput_per_s": round(len(results) / args.seconds, 1),
        "latency_ms": {kind: stats(values) for kind, values in sorted(per_kind.items())} | {"all": stats(everything)},
        "rss": rss,
        "cold_start": cold,
    }


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    median = statistics.median(ordered)
    return {"n": len(values), "p50": round(median, 1), "p95": round(p95, 1), "max": round(ordered[-1], 1)}


def print_table(summary: dict) -> None:
    print(f"\n{summary['clients']} clients, {summary['seconds']:.0f} s, {summary['cpus']} CPUs: "
          f"{summary['requests']} requests ({summary['throughput_per_s']}/s), {summary['errors']} errors")  # fmt: skip
    print(f"{'kind':<8}{'n':>7}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for kind, row in summary["latency_ms"].items():
        if row["n"]:
            print(f"{kind:<8}{row['n']:>7}{row['p50']:>10}{row['p95']:>10}{row['max']:>10}")
    rss, cold = summary["rss"], summary["cold_start"]
    print(f"server RSS: peak {rss['peak_mb']} MB, at the end {rss['end_mb']} MB")
    print(f"cold start: health after {cold['to_health_s']} s, first answer after {cold['to_first_answer_s']} s")
    for example in summary["error_examples"]:
        print(f"error: {example}")


if __name__ == "__main__":
    main()
