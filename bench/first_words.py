"""Time to the first streamed words of an answer through the HTTP API (issue 13: <= 3 s median, default model).

Each question is asked ``--repeat`` times, as server-sent events (``stream=true``), about the sample file uploaded
with the question, and (``--indexed``) about the same file as an indexed item (what the web page's item page
does: its stored evidence is used, nothing is perceived again). The time from sending the request to the first
``token`` event is measured, and to the ``answer`` event. The first request of the run (loading the models) is
timed apart as the cold start.

    .venv/bin/python bench/first_words.py [--llm qwen2.5-1.5b] [--repeat 5] [--indexed] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUESTIONS = [  # (sample file, question): answered by the LLM from the evidence, or routed to it directly
    ("notes/coffee.md", "what makes a good espresso?"),
    ("photos/chelsea_cat.jpg", "is the cat sleeping?"),
    ("photos/chelsea_cat.jpg", "what is in this picture?"),
    ("recordings/two_cities.wav", "what is this recording about?"),
]


def ask(client, sample: Path, question: str, item: int | None = None) -> tuple[float, float, str]:
    """(seconds to the first token, seconds to the answer, who answered) of one streamed question."""
    started = time.perf_counter()
    first = None
    form = {"question": question, "stream": "true"}
    files = None if item else {"file": (sample.name, sample.read_bytes())}
    if item:
        form["item"] = str(item)
    with client.stream("POST", "/api/ask", data=form, files=files) as response:
        event = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
                if event == "token" and first is None:
                    first = time.perf_counter() - started
            elif line.startswith("data:") and event == "answer":
                return first or 0.0, time.perf_counter() - started, json.loads(line[5:])["by"]
            elif line.startswith("data:") and event == "error":
                raise RuntimeError(line[5:])
    raise RuntimeError("the stream ended without an answer")


def main() -> None:
    from fastapi.testclient import TestClient

    from polymodal.api.app import create_app
    from polymodal.api.config import ServeConfig
    from polymodal.collection import Collection
    from polymodal.config import Settings
    from polymodal.samples import build_sample_collection

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--llm", default=None, help="the local LLM (default: the configured default)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--indexed", action="store_true", help="also ask about the files indexed, by item id")
    parser.add_argument("--indexed-only", action="store_true", help="only about the indexed items")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    samples = Path(".cache/sample-collection")
    build_sample_collection(samples)
    chosen = {"llm": args.llm} if args.llm else {}
    settings = Settings.from_env(store=tempfile.mkdtemp(prefix="first-words-"), **chosen)
    collection = Collection(settings=settings)
    config = ServeConfig(warm=False, allowed_hosts=("testserver",))
    rows, first_words, per_source = [], [], {}
    with TestClient(create_app(collection, config)) as client:
        cold = ask(client, samples / QUESTIONS[0][0], QUESTIONS[0][1])
        print(f"cold start (models loading): first words {cold[0]:.2f} s, answer {cold[1]:.2f} s")
        items = {}
        if args.indexed or args.indexed_only:
            collection.index(*[samples / name for name in {name for name, _ in QUESTIONS}])
            for summary in collection.items(limit=50)[1]:
                items[Path(summary.path).relative_to(samples.resolve()).as_posix()] = summary.id
        uploads = [] if args.indexed_only else [(q, None) for q in QUESTIONS]
        for (name, question), item in uploads + [(q, items[q[0]]) for q in QUESTIONS if items]:
            runs = [ask(client, samples / name, question, item) for _ in range(args.repeat)]
            firsts = [r[0] for r in runs]
            first_words += firsts
            per_source.setdefault("indexed item" if item else "upload", []).extend(firsts)
            row = {
                "file": name,
                "as": "indexed item" if item else "upload",
                "question": question,
                "by": runs[-1][2],
                "first_words_median": statistics.median(firsts),
                "answer_median": statistics.median(r[1] for r in runs),
                "first_words": [round(x, 2) for x in firsts],
            }
            rows.append(row)
            print(f"{name:26} {row['as']:12} {question:34} by {row['by']:14} "
                  f"first words {row['first_words_median']:.2f} s (answer {row['answer_median']:.2f} s)")  # fmt: skip
    summary = {"llm": settings.llm, "repeat": args.repeat, "cold": {"first_words": cold[0], "answer": cold[1]},
               "first_words_median": statistics.median(first_words), "questions": rows}  # fmt: skip
    summary["first_words_median_by_source"] = {source: statistics.median(v) for source, v in per_source.items()}
    print(f"all questions: median first words {summary['first_words_median']:.2f} s ({settings.llm}); "
          + ", ".join(f"{k}: {v:.2f} s" for k, v in summary["first_words_median_by_source"].items()))  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
