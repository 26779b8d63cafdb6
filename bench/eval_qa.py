"""Question answering on real media: is the answer right, does it refuse when it should, does it invent?

The questions and their reference answers are ``bench/qa/questions.json``, written from the media (photos and
stamps looked at, captions, published transcripts and source texts read, chart data computed) before the
system was run; the files are assembled by ``bench/qa/build_qa.py`` into ``.cache/qa/collection/``. Every
question goes through the public API: each file is perceived once (``Collection.analyzer.analyze_file``, as
``ask`` would) and each question is asked with that analysis, ``Collection.ask(path, question,
analysis=...)``; the LLM is ``--llm`` (a ``Settings`` field). Scoring (see ``SCORING`` and
``bench/qa/README.md``) reads the answer's text: correct, refused, hallucinated, per question kind.

Each run is written (answers, timings, each file's evidence words) to ``--json`` (default
``bench/results/qa.json``). The committed baseline ``bench/results/qa_baseline.json`` holds one run per LLM;
the table compares this run with the baseline run of the same LLM, the baseline's stored answers re-scored
against the current questions. ``--save-baseline`` stores this run there as that LLM's baseline.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/eval_qa.py [--llm qwen2.5-1.5b|qwen2.5-0.5b|none] [--json PATH]
        [--label NAME] [--limit N] [--save-baseline] [--show RUN.json]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE / "qa"))
import build_qa  # noqa: E402

from polymodal.tasks.questions import PHRASING_WORDS  # noqa: E402

QUESTIONS = build_qa.QUESTIONS
RESULTS = HERE / "results"
BASELINE = RESULTS / "qa_baseline.json"
STORE = build_qa.CACHE / "store"
CANT_TELL = "cant-tell"
KINDS = ("objects", "colour", "text-in-image", "transcript", "time", "count", "yes-no", CANT_TELL)
VALUE = {"count": "number", "time": "seconds"}  # the reference of a numeric question
ANSWERABLE = "answerable (all kinds)"
ALL = "all questions"

# An answer that says it cannot answer (compared after normalize(): lower case, apostrophes dropped).
REFUSALS = (
    "cant tell", "cannot tell", "can not tell", "not sure", "no evidence", "dont know", "do not know",
    "unable to", "not enough information", "not enough evidence", "cannot determine", "cant determine",
    "cannot be determined", "impossible to tell", "no information", "not possible to", "unclear", "not clear",
    "unknown", "doesnt say", "does not say", "not mentioned", "does not mention", "doesnt mention",
    "not specified", "no way to know", "cannot say", "cant say", "cannot answer", "cant answer",
    "does not provide", "doesnt provide", "not provided", "no mention",
)  # fmt: skip
# An answer that lists evidence instead of answering (no LLM): neither a refusal nor a claim.
LISTING = ("no language model is configured",)
YES = frozenset({"yes", "yeah", "yep", "indeed"})
NO = frozenset({"no", "not", "isnt", "arent", "doesnt", "dont", "wasnt", "werent", "cant", "cannot", "none",
                "nobody", "nothing", "never"})  # fmt: skip
NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty".split()
    )
} | {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90"}
# Words of phrasing, not of content: never counted as unsupported. The answers' own template words count too
# ("the image model sees", "the face detector found"), except those that describe the file.
DESCRIPTIVE = frozenset("dark light flat paper texture gradients outlines small largest".split())
STOPWORDS = frozenset(
    """a about above according across after again against all also am an and any are around as at be because
    been before behind being below beside besides between both but by can cant could did do does doing down
    during each either few for from further had has have having he her here hers herself him his how i if in
    into is it its itself just like may me might more most much must my near next no nor not now of off on
    once one only or other our out over own probably possibly perhaps likely maybe same she should so some
    such than that the their them then there these they this those through to too under until up upon very
    was we were what when where which while who whom whose why will with within without would yes you your
    image picture photo photograph shows show shown showing appears appear seems seem looks look looking
    visible see seen depicted depicts displayed display contains contain containing features feature
    recording recorded audio sound sounds clip speaker speaks speaking says say said saying voice mentioned
    mentions mention text reads read written label labels labelled evidence answer question based
    according given one two first second main left right top bottom middle center centre front background
    foreground side part color colour colours colors coloured colored mostly mainly partly kind type sort
    thing things object objects something someone item file document chart graph named called beginning start
    end approximately""".split()
) | (PHRASING_WORDS - DESCRIPTIVE)
# The rules, as stored with every run.
SCORING = {
    "normalise": "lower case, apostrophes dropped, number words (zero..twenty, tens) to digits, other "
    "punctuation to spaces except a decimal point between digits",
    "refusal": f"the normalised answer contains one of {list(REFUSALS)}",
    "listing": f"an evidence list, not an answer (the answer starts with {list(LISTING)} or was made "
    "'extractive'): neither a refusal nor a claim",
    "correct (answerable)": "not a refusal, and: objects / colour / text-in-image / transcript: contains an "
    "accepted form as whole words (a plural s/es allowed); yes-no: the first yes-word "
    f"{sorted(YES)} or no-word {sorted(NO)} agrees with the reference; count: a number in the answer "
    "(percentages and clock times left out) within the tolerance; time: the first time in the answer "
    "(m:ss, h:mm:ss or N s/seconds) within the tolerance (seconds)",
    "correct (cant-tell)": "a refusal, or an answer naming an 'also_fine' form (a fact outside the media "
    "proper, e.g. the file name)",
    "hallucination": "cant-tell: a claim (not a refusal, not a listing, no also_fine form); answerable: "
    "not correct, not a refusal, not a listing, and a content word or number of the answer (not a stopword "
    "nor a template word of polymodal.tasks.questions.PHRASING_WORDS other than DESCRIPTIVE, "
    "not a clock time or percentage, crude singular) is in none of: the file's evidence (every analysis "
    "evidence text and the describe facts, e.g. colours), the answer's cited evidence, the question, the "
    "accepted forms",
    "rates": "correct, refusal, wrong (a claim, not correct), listing and hallucination over the questions of a row",
}


# --- questions --------------------------------------------------------------------------------------------


def load_questions(path: Path = QUESTIONS) -> list[dict[str, Any]]:
    questions = json.loads(path.read_text(encoding="utf-8"))["questions"]
    problems = []
    ids = [q["id"] for q in questions]
    problems += [f"duplicate id {i}" for i in sorted({i for i in ids if ids.count(i) > 1})]
    for q in questions:
        if q["kind"] not in KINDS:
            problems.append(f"{q['id']}: unknown kind {q['kind']!r}")
        elif q["kind"] in ("count", "time") and not {"tolerance", VALUE[q["kind"]]} <= set(q):
            problems.append(f"{q['id']}: a {q['kind']} question needs its value and a tolerance")
        elif q["kind"] not in ("count", "time", CANT_TELL) and not q.get("accept"):
            problems.append(f"{q['id']}: no accepted answer")
        elif q["kind"] == "yes-no" and q["accept"] not in (["yes"], ["no"]):
            problems.append(f"{q['id']}: a yes-no question accepts ['yes'] or ['no']")
    if problems:
        raise ValueError(f"{path}: {'; '.join(problems)}")
    return questions


# --- scoring ----------------------------------------------------------------------------------------------


def normalize(text: str) -> str:
    text = text.lower().replace("’", "'").replace("'", "")
    text = re.sub(r"(?<!\d)\.|\.(?!\d)|[^\w.]|_", " ", text)
    return " ".join(NUMBER_WORDS.get(word, word) for word in text.split())


def is_refusal(answer: str) -> bool:
    flat = f" {normalize(answer)} "
    return any(f" {phrase} " in flat for phrase in REFUSALS)


def is_listing(answer: str, by: str | None = None) -> bool:
    return by == "extractive" or normalize(answer).startswith(LISTING)


def has_form(answer: str, forms: Iterable[str]) -> bool:
    flat = normalize(answer)
    return any(re.search(rf"(?<![\w.]){re.escape(normalize(f))}(?:s|es)?(?![\w])", flat) for f in forms if f)


def polarity(answer: str) -> str | None:
    for word in normalize(answer).split():
        if word in YES:
            return "yes"
        if word in NO:
            return "no"
    return None


CLOCK = re.compile(r"(?<![\d.])(?:(\d{1,2}):)?(\d{1,2}):(\d{2}(?:\.\d+)?)(?![\d])")
PERCENT = re.compile(r"\d+(?:\.\d+)?\s*%")
SECONDS = re.compile(r"(?<![\d.:])(\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds?)\b")


def _words_to_digits(text: str) -> str:
    return re.sub(r"[a-z]+", lambda m: NUMBER_WORDS.get(m.group(0), m.group(0)), text.lower())


def times(answer: str) -> list[float]:
    """Times mentioned, in the order they appear: m:ss, h:mm:ss, "N s", "N seconds"."""
    text = _words_to_digits(answer)
    found = [(m.start(), int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3)))
             for m in CLOCK.finditer(text)]  # fmt: skip
    found += [(m.start(), float(m.group(1))) for m in SECONDS.finditer(text)]
    return [seconds for _, seconds in sorted(found)]


def numbers(answer: str) -> list[float]:
    """Numbers mentioned, except percentages and clock times."""
    text = CLOCK.sub(" ", _words_to_digits(answer))
    text = PERCENT.sub(" ", text)
    return [float(n) for n in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])", text.replace(",", ""))]


def singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")) else word


def content_words(text: str) -> set[str]:
    """Words and numbers that carry content (not clock times, the time questions' business, nor percentages,
    the models' scores that answers repeat)."""
    text = PERCENT.sub(" ", CLOCK.sub(" ", text))
    words = {singular(w) for w in normalize(text).split() if len(w) >= 3 or w.replace(".", "").isdigit()}
    return {w for w in words if w not in STOPWORDS and not w.startswith("http")}


def unsupported(answer: str, vocabulary: Iterable[str], question: dict[str, Any]) -> list[str]:
    """Content words of the answer found in none of the file's evidence, the question and the accepted forms."""
    known = set(vocabulary) | content_words(question["question"]) | content_words(" ".join(question.get("accept", [])))
    return sorted(content_words(answer) - known)


def listed(answer: str) -> str:
    """An evidence list without its preamble (whose "No ..." is no answer to a yes-no question)."""
    head, colon, rest = answer.partition(":")
    return rest if colon and normalize(head).startswith(LISTING) else answer


def is_hit(question: dict[str, Any], answer: str) -> bool:
    kind, answer = question["kind"], listed(answer)
    if kind == "yes-no":
        return polarity(answer) == question["accept"][0]
    if kind == "count":
        return any(abs(n - question["number"]) <= question["tolerance"] for n in numbers(answer))
    if kind == "time":
        said = times(answer)
        return bool(said) and abs(said[0] - question["seconds"]) <= question["tolerance"]
    return has_form(answer, question["accept"])


def score(question: dict[str, Any], reply: dict[str, Any], vocabulary: Iterable[str]) -> dict[str, Any]:
    """correct / refused / listing / hallucinated (and the unsupported words) of one answer; see SCORING."""
    answer, by = reply["answer"], reply.get("by")
    refused, listing = is_refusal(answer), is_listing(answer, by)
    row: dict[str, Any] = {"refused": refused, "listing": listing}
    if question["kind"] == CANT_TELL:
        fine = has_form(answer, question.get("also_fine", []))
        row |= {"correct": refused or fine, "hallucinated": not (refused or listing or fine), "unsupported": []}
        return row
    correct = not refused and is_hit(question, answer)
    extra = [] if correct or refused or listing else unsupported(answer, vocabulary, question)
    return row | {"correct": correct, "hallucinated": bool(extra), "unsupported": extra}


def scores(questions: list[dict[str, Any]], run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each answered question's score, from the run's stored answers and evidence words."""
    out = {}
    for q in questions:
        reply = run["answers"].get(q["id"])
        if reply is not None:
            vocabulary = run["files"].get(q["file"], {}).get("vocabulary", [])
            out[q["id"]] = score(q, reply, vocabulary + reply.get("cited", []))
    return out


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    if not n:
        return {"n": 0}
    answered = [r for r in rows if not (r["refused"] or r["correct"] or r["listing"])]
    return {
        "n": n,
        "correct": sum(r["correct"] for r in rows) / n,
        "refusal": sum(r["refused"] for r in rows) / n,
        "wrong": len(answered) / n,
        "hallucination": sum(r["hallucinated"] for r in rows) / n,
        "listing": sum(r["listing"] for r in rows) / n,
    }


def summary_of(questions: list[dict[str, Any]], run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    scored = scores(questions, run)
    present = [q for q in questions if q["id"] in scored]
    groups = {f"kind: {kind}": [q for q in present if q["kind"] == kind] for kind in KINDS}
    groups[ANSWERABLE] = [q for q in present if q["kind"] != CANT_TELL]
    groups[ALL] = present
    return {name: summarize([scored[q["id"]] for q in members]) for name, members in groups.items() if members}


# --- running ----------------------------------------------------------------------------------------------


def evidence_words(collection: Any, path: Path, analysis: Any) -> list[str]:
    """Content words of everything the models found in the file, and of its describe facts (colours, size)."""
    texts = [e.text for e in analysis.evidence]
    with contextlib.suppress(TypeError):  # a describe without these options: its facts are not essential
        texts += [f["text"] for f in collection.describe(path, phraser=None, analysis=analysis).to_dict()["facts"]]
    return sorted(content_words(" ".join(texts)))


def perceive(collection: Any, path: Path) -> Any:
    """The file's analysis, made as ``ask`` makes it (images with OCR unless the settings turn it off)."""
    mode = "never" if collection.settings.ocr_mode == "never" else "always"
    return collection.analyzer.analyze_file(path, ocr_mode=mode)


def ask(collection: Any, path: Path, question: str, analysis: Any) -> Any:
    try:
        return collection.ask(path, question, analysis=analysis)
    except TypeError:  # an ask without the analysis option: it perceives the file again
        return collection.ask(path, question)


def answer_questions(
    collection: Any, questions: list[dict[str, Any]], resolve: Callable[[str], Path], say: Callable[[str], None]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ask every question; returns (answers by id, per-file perception time and evidence words)."""
    answers: dict[str, Any] = {}
    files: dict[str, Any] = {}
    order = list(dict.fromkeys(q["file"] for q in questions))
    done = 0
    for file in order:
        path = resolve(file)
        started = time.perf_counter()
        analysis = perceive(collection, path)
        files[file] = {"perception_s": round(time.perf_counter() - started, 3)}
        for q in (q for q in questions if q["file"] == file):
            started = time.perf_counter()
            result = ask(collection, path, q["question"], analysis)
            seconds = time.perf_counter() - started
            answers[q["id"]] = {
                "answer": result.answer,
                "by": result.by,
                "answerable": result.answerable,
                "reason": result.reason,
                "cited": sorted(content_words(" ".join(f.text for f in result.evidence))),
                "seconds": round(seconds, 3),
            }
            done += 1
            if done % 10 == 0 or done == len(questions):
                say(f"  {done}/{len(questions)} questions")
        files[file]["vocabulary"] = evidence_words(collection, path, analysis)
    return answers, files


def timing(questions: list[dict[str, Any]], answers: dict[str, Any], files: dict[str, Any]) -> dict[str, Any]:
    """Median seconds per question (evidence known), and to answer a file's first question from scratch
    (perceiving the file + that question); the first question of the run also loads the models."""
    first: dict[str, str] = {}
    for q in questions:
        if q["id"] in answers:
            first.setdefault(q["file"], q["id"])
    per_question = [answers[q["id"]]["seconds"] for q in questions if q["id"] in answers]
    cold = [files[file]["perception_s"] + answers[qid]["seconds"] for file, qid in first.items()]
    by_llm = [answers[q["id"]]["seconds"] for q in questions
              if q["id"] in answers and answers[q["id"]]["by"] not in ("coverage", "extractive")]  # fmt: skip
    return {
        "median_question_s": round(statistics.median(per_question), 3) if per_question else None,
        "median_llm_question_s": round(statistics.median(by_llm), 3) if by_llm else None,
        "median_time_to_answer_s": round(statistics.median(cold), 3) if cold else None,
        "perception_s": round(sum(f["perception_s"] for f in files.values()), 1),
        "questions_s": round(sum(per_question), 1),
    }


def evaluate(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    from polymodal import Collection
    from polymodal.config import Settings

    started = time.perf_counter()
    questions = load_questions()[: args.limit] if args.limit else load_questions()
    if args.only:
        questions = [q for q in questions if q["id"] in args.only]
    root = build_qa.COLLECTION
    build_qa.build(root, say=lambda message: None)
    settings = Settings.from_env(store=STORE, llm=args.llm)
    say(f"asking {len(questions)} questions (llm {settings.llm})")
    with Collection(settings=settings) as collection:
        answers, files = answer_questions(collection, questions, lambda f: root / f, say)
    run: dict[str, Any] = {
        "label": args.label,
        "llm": settings.llm,
        "date": date.today().isoformat(),
        "git": git_state(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "command": command_line(),
        "questions_sha256": sha256(QUESTIONS),
        "n": len(questions),
        "summary": summary_of(questions, {"answers": answers, "files": files}),
        "timing": timing(questions, answers, files),
        "answers": answers,
        "files": files,
    }
    run["seconds"] = round(time.perf_counter() - started, 1)
    return run


def git_state() -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    import eval_relevance

    return eval_relevance.git_state()


def command_line() -> str:
    prefix = [f"PYTHONPATH={os.environ['PYTHONPATH']}"] if os.environ.get("PYTHONPATH") else []
    return " ".join([*prefix, "python", "bench/eval_qa.py", *sys.argv[1:]])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


# --- the report -------------------------------------------------------------------------------------------


def load_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def baseline_run(baseline: dict[str, Any] | None, llm: str) -> dict[str, Any] | None:
    return (baseline or {}).get("runs", {}).get(llm)


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def pair(before: dict | None, now: dict, key: str) -> str:
    current = now.get(key)
    if before is None or before.get(key) is None or current is None:
        return fmt(current)
    delta = (current - before[key]) * 100
    return f"{fmt(before[key])} → {fmt(current)} ({'+' if delta >= 0 else '-'}{abs(delta):.1f})"


LEGEND = (
    "For cant-tell, correct = an honest refusal and refusal = the same; wrong = a claim that is not correct; "
    "evidence list = the answer lists evidence (no LLM)."
)


def table(run: dict[str, Any], summary: dict, base: dict | None, base_label: str | None) -> str:
    title = f"Question answering, llm {run['llm']}: {run['label']}"
    title += f'; cells: baseline "{base_label}" → this run' if base else " (no stored baseline for this llm)"
    lines = [
        f"### {title}",
        "",
        "| group | n | correct | hallucination | refusal | wrong | evidence list |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, now in summary.items():
        before = (base or {}).get(name)
        cells = [pair(before, now, key) for key in ("correct", "hallucination", "refusal", "wrong", "listing")]
        lines.append(f"| {name} | {now['n']} | {' | '.join(cells)} |")
    lines += ["", LEGEND]
    return "\n".join(lines)


def changes(run: dict[str, Any], baseline: dict | None, questions: list[dict[str, Any]], top: int = 12) -> str:
    """The questions whose correctness or hallucination changed against the baseline."""
    if baseline is None:
        return ""
    now, before = scores(questions, run), scores(questions, baseline)
    moved = [q for q in questions if q["id"] in now and q["id"] in before
             and (now[q["id"]]["correct"], now[q["id"]]["hallucinated"])
             != (before[q["id"]]["correct"], before[q["id"]]["hallucinated"])]  # fmt: skip
    if not moved:
        return "No question changed against the baseline."
    lines = [f"{len(moved)} questions changed (first {min(top, len(moved))}):", "", "| question | before | now |",
             "|---|---|---|"]  # fmt: skip
    for q in moved[:top]:
        cells = [_verdict(s[q["id"]], r["answers"][q["id"]]["answer"]) for s, r in ((before, baseline), (now, run))]
        lines.append(f"| {q['id']}: {q['question']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def _verdict(row: dict[str, Any], answer: str) -> str:
    marks = ("correct", "hallucinated", "refused", "listing")
    mark = next((m for m in marks if row[m]), "wrong")
    return f"{mark}: {answer[:70].replace('|', '/')}"


def report(run: dict[str, Any], baseline_file: dict | None) -> str:
    questions = [q for q in load_questions() if q["id"] in run["answers"]]
    before_run = baseline_run(baseline_file, run["llm"])
    base = summary_of(questions, before_run) if before_run else None
    t = run["timing"]
    parts = [
        table(run, summary_of(questions, run), base, before_run["label"] if before_run else None),
        changes(run, before_run, questions),
        f"Median per question {t['median_question_s']} s (LLM-phrased only: {t['median_llm_question_s']} s); "
        f"median time to answer a file's first question from scratch {t['median_time_to_answer_s']} s; "
        f"perception {t['perception_s']} s, questions {t['questions_s']} s, whole run {run['seconds']} s.",
    ]
    return "\n\n".join(p for p in parts if p)


def rescore_baseline(path: Path = BASELINE) -> None:
    """Recompute the stored runs' summaries from their answers with the current questions and rules."""
    stored = load_json(path) or {}
    questions = load_questions()
    for run in stored.get("runs", {}).values():
        run["summary"] = summary_of([q for q in questions if q["id"] in run["answers"]], run)
    stored["scoring"] = SCORING
    stored["questions_sha256"] = sha256(QUESTIONS)
    path.write_text(json.dumps(stored, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def save_baseline(run: dict[str, Any], path: Path = BASELINE) -> None:
    stored = load_json(path) or {}
    stored["about"] = (
        "Today's question answering, one run per LLM (bench/eval_qa.py --save-baseline); "
        "the answers are re-scored against the current questions when compared."
    )
    stored["scoring"] = SCORING
    stored.setdefault("runs", {})[run["llm"]] = run
    path.write_text(json.dumps(stored, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", default="qwen2.5-1.5b", help="qwen2.5-1.5b (default), qwen2.5-0.5b or none")
    parser.add_argument("--json", type=Path, default=RESULTS / "qa.json", help="where to write this run")
    parser.add_argument("--label", default="current", help="a name for this run (e.g. the change under test)")
    parser.add_argument("--limit", type=int, help="only the first N questions (a quick look)")
    parser.add_argument("--only", nargs="+", metavar="ID", help="only these questions (a quick look)")
    parser.add_argument("--baseline", type=Path, default=BASELINE, help="the stored runs to compare with")
    parser.add_argument("--save-baseline", action="store_true", help="also store this run as its LLM's baseline")
    parser.add_argument("--show", type=Path, help="print a stored run's table against the baseline; run nothing")
    parser.add_argument("--rescore-baseline", action="store_true", help="re-score the stored runs; run nothing")
    args = parser.parse_args()
    if args.rescore_baseline:
        rescore_baseline(args.baseline)
        return 0
    if args.show:
        print(report(json.loads(args.show.read_text(encoding="utf-8")), load_json(args.baseline)))
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("POLYMODAL_CACHE", str(REPO / ".cache" / "polymodal"))
    say = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    try:
        run = evaluate(args, say)
    except build_qa.MissingData as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    baseline = load_json(args.baseline)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(run, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(report(run, baseline))
    if args.save_baseline:
        save_baseline(run, args.baseline)
    print(f"\nwritten: {args.json}{' and ' + str(args.baseline) if args.save_baseline else ''}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
