"""One entry point for any mix of text, images and recordings with a request: route it to the right task.

The request is one of ``describe``, ``answer``, ``summarize``, ``transcribe``, or free text ("what does the
sign say?", "总结一下"), which is routed by its words: a request to describe, transcribe or summarize goes
there; anything else is a question, answered about the files given, or, with no file, about the collection
(its best search hit). Every answer carries its evidence; ``progress`` hears each step as it happens, and the
answer's text as it is generated (``"token"`` events: ``{"text": ..., "source": file name or None}``; the final
``answer`` replaces the streamed text where the grounding check changed it). ``stop`` set stops the LLM.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polymodal.analysis import Analyzer
from polymodal.media.detect import detect

DESCRIBE, ANSWER, SUMMARIZE, TRANSCRIBE = "describe", "answer", "summarize", "transcribe"
REQUESTS = (DESCRIBE, ANSWER, SUMMARIZE, TRANSCRIBE)
_TRANSCRIBE = re.compile(
    r"transcri|what (is|was|did)\b.*\b(said|say|spoken)|write down what|转录|转写|听写|说了什么", re.I
)
_SUMMARIZE = re.compile(r"summar|\btl;?dr\b|\bgist\b|总结|摘要|概括", re.I)
_DESCRIBE = re.compile(
    r"^\s*(please\s+)?(describe|caption)|what('s| is) (in|on) (this|the)\b|what do you see|what is this\b"
    r"|描述|这是什么",
    re.I,
)
Progress = Callable[[str, dict[str, Any]], None]


@dataclass
class AssistResult:
    request: str
    route: str
    answer: str
    by: str
    question: str | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)  # what the answer rests on, each with its source
    parts: list[dict[str, Any]] = field(default_factory=list)  # the task results it was made from
    notes: list[str] = field(default_factory=list)  # for the reader: why it cannot tell, where an answer came from
    diagnostics: list[str] = field(default_factory=list)  # internal: what the checks changed and why (--debug)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def to_text(self, debug: bool = False) -> str:
        lines = [self.answer, "", f"({self.route}, by {self.by})"]
        for item in self.evidence[:12]:
            when = f"[{item['start']:.1f}s] " if item.get("start") is not None else ""
            lines.append(f"  {item.get('source', '')}: {item.get('kind', '')}: {when}{item.get('text', '')}")
        lines += [f"note: {n}" for n in self.notes]
        if debug:
            lines += [f"debug: {d}" for d in self.diagnostics]
        return "\n".join(lines)


def route(request: str, text: str | None = None) -> tuple[str, str | None]:
    """(capability, question) for a request; a question is the free text, or ``text`` for ``answer``."""
    words = " ".join((request or "").split())
    if words.lower() in REQUESTS:
        return words.lower(), (text or None) if words.lower() == ANSWER else None
    words = words or " ".join((text or "").split())
    if not words:
        return DESCRIBE, None
    if _TRANSCRIBE.search(words):
        return TRANSCRIBE, None
    if _SUMMARIZE.search(words):
        return SUMMARIZE, None
    if _DESCRIBE.search(words):
        return DESCRIBE, None
    return ANSWER, words


def assist(
    analyzer: Analyzer,
    request: str,
    text: str | None = None,
    files: Sequence[Path] = (),
    names: Sequence[str] | None = None,
    phraser: Any = "auto",
    search: Callable[[str], list[Any]] | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> AssistResult:
    """Route ``request`` over ``text`` and ``files`` (shown as ``names``); ``search(q)`` gives hits with paths."""
    emit = progress or (lambda event, data: None)
    capability, question = route(request, text)
    emit("route", {"route": capability, "question": question})
    inputs = [(Path(f), (names[i] if names else Path(f).name), detect(Path(f)).modality) for i, f in enumerate(files)]
    runner = {DESCRIBE: _describe, ANSWER: _answer, SUMMARIZE: _summarize, TRANSCRIBE: _transcribe}[capability]
    result = runner(analyzer, inputs, text, question, phraser, search, emit, stop)
    result.request = request
    return result


Inputs = list[tuple[Path, str, str]]


def _transcribe(analyzer, inputs: Inputs, text, question, phraser, search, emit, stop=None) -> AssistResult:
    from polymodal.tasks.transcribe import transcribe

    recordings = [i for i in inputs if i[2] in ("audio", "video")]
    if not recordings:
        raise ValueError("nothing to transcribe: send a recording")
    result = AssistResult("", TRANSCRIBE, "", "")
    for path, name, _ in recordings:
        emit("step", {"message": f"transcribing {name}"})
        done = transcribe(analyzer, path)
        result.by = done.model
        part = _named(done.to_dict(), name)
        result.parts.append(part)
        result.evidence += [{"source": name, "kind": "transcript", **s} for s in part.get("segments", [])]
        said = done.text.strip() or "(no speech found)"
        result.answer += f"{name}: {said}\n" if len(recordings) > 1 else said
    result.answer = result.answer.strip()
    return result


def _describe(analyzer, inputs: Inputs, text, question, phraser, search, emit, stop=None) -> AssistResult:
    from polymodal.tasks.describe import describe

    if not inputs:
        if text and text.strip():
            return _summarize(analyzer, inputs, text, question, phraser, search, emit, stop)
        raise ValueError("nothing to describe: send an image, a recording or a document")
    result = AssistResult("", DESCRIBE, "", "")
    captions = []
    for path, name, _ in inputs:
        emit("step", {"message": f"describing {name}"})
        done = describe(analyzer, path, phraser, on_token=_tokens(emit, name), stop=stop)
        part = _named(done.to_dict(), name)
        result.parts.append(part)
        result.evidence += [{"source": name, **f} for f in part.get("facts", [])]
        result.notes += done.notes
        result.diagnostics += done.diagnostics
        result.by = done.by
        captions.append(f"{name}: {done.caption}" if len(inputs) > 1 else done.caption)
    result.answer = "\n".join(captions)
    return result


def _answer(analyzer, inputs: Inputs, text, question, phraser, search, emit, stop=None) -> AssistResult:
    from polymodal.tasks import questions
    from polymodal.tasks.ask import ask

    question = question or (text or "").strip()
    if not question:
        raise ValueError("no question: write one, e.g. 'what does the sign say?'")
    targets = [(path, name) for path, name, _ in inputs]
    result = AssistResult("", ANSWER, "", "", question=question)
    if not targets:
        if search is None:
            raise ValueError("send a file to ask about")
        emit("step", {"message": "searching the collection"})
        hits = search(questions.topic_of(question))
        if not hits:
            raise ValueError("nothing in the collection matches that question")
        targets = [(Path(hits[0].path), hits[0].path.rsplit("/", 1)[-1])]
        result.notes.append(f"answered from the best match in the collection: {targets[0][1]}")
    answers = []
    for path, name in targets:
        emit("step", {"message": f"reading {name} for the answer"})
        done = ask(analyzer, path, question, phraser, on_token=_tokens(emit, name), stop=stop)
        part = _named(done.to_dict(), name)
        result.parts.append(part)
        result.evidence += [{"source": name, **f} for f in part.get("evidence", [])]
        result.notes += done.notes + ([done.reason] if done.reason else [])
        result.diagnostics += done.diagnostics
        result.by = done.by
        answers.append(f"{name}: {done.answer}" if len(targets) > 1 else done.answer)
    result.answer = "\n".join(answers)
    return result


def _summarize(analyzer, inputs: Inputs, text, question, phraser, search, emit, stop=None) -> AssistResult:
    from polymodal.providers import resolve
    from polymodal.tasks.summarize import summarize

    result = AssistResult("", SUMMARIZE, "", "")
    pieces = [text.strip()] if text and text.strip() else []
    for path, name, modality in inputs:
        if modality in ("audio", "video"):
            part = _transcribe(analyzer, [(path, name, modality)], None, None, phraser, search, emit, stop)
        else:
            quiet = _without_tokens(emit)  # only the summary itself is streamed
            part = _describe(analyzer, [(path, name, modality)], None, None, phraser, search, quiet, stop)
        result.parts += part.parts
        result.evidence += part.evidence
        result.diagnostics += part.diagnostics
        pieces.append(part.answer)
    if not pieces:
        raise ValueError("nothing to summarize: send text or files")
    emit("step", {"message": "summarizing"})
    summary = summarize("\n\n".join(pieces), resolve(phraser, analyzer), on_token=_tokens(emit, None), stop=stop)
    result.answer, result.by = summary.text or pieces[0], summary.by
    result.parts.append({"summary": summary.to_dict()})
    result.notes += summary.notes
    result.diagnostics += summary.diagnostics
    return result


def _tokens(emit: Progress, source: str | None) -> Callable[[str], None]:
    return lambda text: emit("token", {"text": text, "source": source})


def _without_tokens(emit: Progress) -> Progress:
    return lambda event, data: None if event == "token" else emit(event, data)


def _named(data: dict[str, Any], name: str) -> dict[str, Any]:
    if "source" in data:
        data["source"] = name
    return data
