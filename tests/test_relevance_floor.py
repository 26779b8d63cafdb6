"""The quality floor: judged text queries on the sample collection keep nDCG@10 at the baseline's level.

The queries are those marked ``floor`` in ``bench/relevance/judgements.json`` (English and Chinese words about
the sample collection's photos, notes, recordings and sounds), graded from the media; the baseline figure is
``floor.summary["ndcg@10"]`` of ``bench/results/relevance_baseline.json``, measured by
``bench/eval_relevance.py`` on the sample collection indexed alone, as the ``indexed`` fixture indexes it.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import bench_module

# Models, CPUs (Intel / AMD) and transcripts differ a little between machines; a real loss is larger.
TOLERANCE = 0.05


def test_floor_queries_are_text_about_the_sample_collection(samples: Path):
    relevance = bench_module("eval_relevance")
    queries = relevance.floor_queries(relevance.load_queries())
    assert len(queries) >= 20
    assert {q["kind"] for q in queries} == {"text"} and {q["language"] for q in queries} == {"en", "zh"}
    for query in queries:
        assert query["judgements"], query["id"]
        assert all((samples / path).is_file() for path in query["judgements"]), query["id"]


def test_text_search_keeps_the_baseline_ndcg(indexed, samples: Path):
    relevance = bench_module("eval_relevance")
    queries = relevance.floor_queries(relevance.load_queries())
    baseline = json.loads(relevance.BASELINE.read_text(encoding="utf-8"))["floor"]
    runs = {q["id"]: relevance.run_query(indexed, q, samples) for q in queries}
    now = relevance.summary_of(queries, runs)["judged queries"]
    floor = baseline["summary"]["ndcg@10"] - TOLERANCE
    assert now["n"] == baseline["summary"]["n"]
    worse = [
        f"{q['id']} {q['text']!r}: {[h['path'] for h in runs[q['id']]['hits'][:3]]}"
        for q in queries
        if relevance.score_query(runs[q["id"]], q["judgements"])["ndcg"]
        < relevance.score_query(baseline["queries"][q["id"]], q["judgements"])["ndcg"]
    ]
    assert now["ndcg@10"] >= floor, f"nDCG@10 {now['ndcg@10']:.3f} < {floor:.3f}; worse than the baseline: {worse}"
