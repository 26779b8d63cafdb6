"""The question-answering floor: a few questions about real media keep the baseline's correctness, and the
ones whose honest answer is "I can't tell" are never answered with an invented fact.

The questions are those marked ``floor`` in ``bench/qa/questions.json`` (photos and sounds of the sample
collection, the scanned page, Tux Paint stamps; reference answers written from the media), scored by
``bench/eval_qa.py``'s rules. The baseline is the stored run of the same LLM in
``bench/results/qa_baseline.json``, its answers re-scored now: without an LLM (templates and evidence lists)
and with the light LLM (``qwen2.5-0.5b``, the one CI has). If today's figures are poor, the floor is today's
figures: the test stops a regression, other work raises them.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from polymodal.collection import Collection
from polymodal.config import Settings

REPO = Path(__file__).resolve().parents[1]
TUXPAINT = Path("/usr/share/tuxpaint/stamps")
# Answers may differ a little between CPUs (Intel / AMD) and model runs; losing two right answers is a change.
TOLERANCE = 2


def _eval_module() -> Any:
    if "eval_qa" in sys.modules:
        return sys.modules["eval_qa"]
    spec = importlib.util.spec_from_file_location("eval_qa", REPO / "bench" / "eval_qa.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["eval_qa"] = module
    spec.loader.exec_module(module)
    return module


def _floor() -> list[dict[str, Any]]:
    return [q for q in _eval_module().load_questions() if q["floor"]]


def _resolver(samples: Path):
    def resolve(file: str) -> Path:
        folder, _, rest = file.partition("/")
        return {"samples": samples, "stamps": TUXPAINT}[folder] / rest

    return resolve


def test_floor_questions_are_on_media_the_tests_have(samples: Path):
    questions = _floor()
    assert len(questions) >= 10
    assert {q["kind"] for q in questions} >= {"objects", "cant-tell", "yes-no", "text-in-image"}
    resolve = _resolver(samples)
    assert all(resolve(q["file"]).is_file() for q in questions), [q["file"] for q in questions]


@pytest.fixture(scope="module", params=["none", "qwen2.5-0.5b"])
def answered(request, samples: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    qa, llm = _eval_module(), request.param
    settings = Settings.from_env(store=tmp_path_factory.mktemp(f"qa-{llm}"), llm=llm)
    with Collection(settings=settings) as collection:
        answers, files = qa.answer_questions(collection, _floor(), _resolver(samples), say=lambda message: None)
    return llm, {"answers": answers, "files": files}


def _baseline(llm: str) -> dict[str, Any]:
    runs = json.loads(_eval_module().BASELINE.read_text(encoding="utf-8"))["runs"]
    assert llm in runs, f"no {llm} run in {_eval_module().BASELINE}: run bench/eval_qa.py --llm {llm} --save-baseline"
    return runs[llm]


def test_answers_keep_the_baseline_correctness(answered):
    qa, (llm, run) = _eval_module(), answered
    questions = _floor()
    now, before = qa.scores(questions, run), qa.scores(questions, _baseline(llm))
    right_now = sum(now[q["id"]]["correct"] for q in questions)
    right_before = sum(before[q["id"]]["correct"] for q in questions)
    lost = [f"{q['id']}: {run['answers'][q['id']]['answer'][:80]!r}" for q in questions
            if before[q["id"]]["correct"] and not now[q["id"]]["correct"]]  # fmt: skip
    assert right_now >= right_before - TOLERANCE, f"{llm}: {right_now} right, baseline {right_before}; lost: {lost}"


def test_cant_tell_questions_get_no_invented_answer(answered):
    """None may be invented, except where the baseline already invented one (today the light LLM answers
    "What is the cat's name?" with "probably a tabby cat"): those are the work left, not a regression."""
    qa, (llm, run) = _eval_module(), answered
    questions = [q for q in _floor() if q["kind"] == "cant-tell"]
    assert questions
    scored, before = qa.scores(questions, run), qa.scores(questions, _baseline(llm))
    known = {q["id"] for q in questions if before[q["id"]]["hallucinated"]}
    answers = {q["id"]: run["answers"][q["id"]]["answer"] for q in questions}
    new = [qid for qid in answers if scored[qid]["hallucinated"] and qid not in known]
    invented = [f"{qid}: {answers[qid]!r}" for qid in new]
    assert not invented, f"{llm}: {invented}"
    if llm == "none":
        assert not known, "without an LLM nothing is phrased, so nothing can be invented"


def test_scoring_reads_answers_as_documented():
    qa = _eval_module()
    yes_no = {"id": "x", "kind": "yes-no", "question": "Is there a dog?", "accept": ["no"]}
    count = {"id": "x", "kind": "count", "question": "How many bars?", "number": 3, "tolerance": 0}
    when = {"id": "x", "kind": "time", "question": "When is it said?", "seconds": 5.5, "tolerance": 1.5}
    cant = {"id": "x", "kind": "cant-tell", "question": "What is the cat's name?", "also_fine": ["chelsea"]}
    what = {"id": "x", "kind": "objects", "question": "What animal is this?", "accept": ["cat"]}
    assert qa.score(yes_no, {"answer": "No, there is no dog."}, [])["correct"]
    assert not qa.score(yes_no, {"answer": "No language model is configured; the evidence: label: cat"}, [])["correct"]
    assert qa.score(count, {"answer": "Three bars (label: chart 80%)."}, [])["correct"]
    assert qa.score(when, {"answer": "At 0:06, after the greeting."}, [])["correct"]
    assert not qa.score(when, {"answer": "At 0:09."}, [])["correct"]
    assert qa.score(cant, {"answer": "I can’t tell from this."}, [])["correct"]
    assert qa.score(cant, {"answer": "Its name is Whiskers."}, [])["hallucinated"]
    assert not qa.score(cant, {"answer": "Chelsea, from the file name."}, [])["hallucinated"]
    wrong = qa.score(what, {"answer": "A dog named Rex."}, ["dog", "photo"])
    assert not wrong["correct"] and wrong["hallucinated"] and wrong["unsupported"] == ["rex"]
    assert not qa.score(what, {"answer": "A dog."}, ["dog"])["hallucinated"]
    assert qa.score(what, {"answer": "I can't tell from this"}, ["cat"])["refused"]
