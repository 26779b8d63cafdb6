"""Answer a question about an image, a recording or a document from its evidence.

Coverage is decided before any LLM is asked: a question about writing on an image with no OCR lines, about
sound in an image, about what is seen in a recording, or one that needs counting or recognising people
(which no model here does) gets "I can't tell from this" with the reason. Otherwise the most relevant
evidence (passages and transcript segments ranked by similarity to the question) goes to the LLM, which is
told to answer exactly "I can't tell from this" when the evidence does not cover the question; its answer is
checked like a caption (:mod:`polymodal.tasks.grounding`). Without an LLM the relevant evidence is returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.analysis import LABEL, OCR, PASSAGE, TAG, TRANSCRIPT, Analysis, Analyzer
from polymodal.providers import AUTO, Phraser, encode_image, resolve
from polymodal.tasks import grounding
from polymodal.tasks.facts import Fact, Facts, gather

CANT_TELL = "I can't tell from this"
CONTEXT_TOKENS = 1500  # evidence sent with a question
SYSTEM = (
    "Answer the question about {what} from the evidence only. The evidence comes from automatic models "
    "(labels and sound tags with probabilities, text read from the image, a speech transcript, colours of the "
    f"whole image, passages of a document). If the evidence does not answer the question, reply exactly: {CANT_TELL}. "
    "Start the answer to a yes/no question with Yes or No. Say 'probably' when the evidence you use is below 50%. "
    "Answer in one or two short sentences."
)
EXAMPLES = (
    ("EVIDENCE:\n- label: golden retriever (88%)\n- colour: green (40% of the image)\nQUESTION: Is there an animal?",
     "Yes, a golden retriever, which is a dog."),
    ("EVIDENCE:\n- label: mountain bike (31%, probably)\nQUESTION: Is there a vehicle?",
     "Yes, probably a bicycle (a mountain bike)."),
    ("EVIDENCE:\n- passage: The bakery opens at 9 and sells rye bread.\nQUESTION: Who owns the bakery?", CANT_TELL),
)  # fmt: skip
VISION_SYSTEM = (
    "You answer a question about the attached image. Evidence from automatic models is listed too. If neither "
    f"the image nor the evidence answers the question, reply exactly: {CANT_TELL}. Answer in one or two short "
    "sentences."
)
# Below this cosine to every passage / segment, a question must share a word with the text to be asked.
MIN_SIMILARITY = 0.2
QUESTION_WORDS = frozenset(
    "text document passage file say said speaker recording mention mentioned according tell does doe answer "
    "question written write wrote author 文字 文章 说 提到".split()
)
WHAT = {"image": "an image", "audio": "a sound recording", "video": "a video", "text": "a document"}

# Question kinds, English and Chinese.
TEXT_Q = re.compile(
    r"\b(written|writing|write|text|sign|signs|label|labels|caption|read|reads|say|says|word|words|letters?|"
    r"logo|brand|menu|title|headline|printed|inscription|banner|poster)\b|写|文字|字|标志|招牌|标签|牌子"
)
SPEECH_Q = re.compile(
    r"\b(said|say|says|saying|speak|speaks|speaking|speaker|talk|talks|talking|spoken|mention|mentions|"
    r"mentioned|discuss|discussed|voice|quote|words?)\b|说|讲|提到|谈"
)
SOUND_Q = re.compile(r"\b(hear|heard|hearing|sound|sounds|noise|noises|music|audible|loud|quiet)\b|听|声音|噪音|音乐")
VISUAL_Q = re.compile(
    r"\b(colou?rs?|see|seen|look|looks|looking|wear|wearing|picture|photo|image|shown|visible|written|sign|"
    r"logo|printed|poster)\b|颜色|看到|图片|照片|穿"
)
COLOUR_Q = re.compile(r"\bcolou?rs?\b|颜色")
COUNT_Q = re.compile(r"\bhow many\b|\bnumber of\b|\bcount\b|多少|几个|几只")
WHO_Q = re.compile(r"\bwho\b|\bwhose\b|谁")
WHEN_WHERE_Q = re.compile(r"\b(when|where)\b.*\b(taken|shot|photographed|recorded|made)\b|什么时候|在哪")


@dataclass
class Answer:
    source: str
    question: str
    answer: str
    answerable: bool
    by: str  # the phraser's name, "coverage" (decided before any LLM), or "extractive"
    evidence: list[Fact] = field(default_factory=list)
    reason: str | None = None  # why it cannot tell
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "question": self.question,
            "answer": self.answer,
            "answerable": self.answerable,
            "by": self.by,
            "reason": self.reason,
            "evidence": [f.to_dict() for f in self.evidence],
            "notes": self.notes,
        }

    def to_text(self) -> str:
        lines = [self.answer]
        if self.reason:
            lines.append(f"(why: {self.reason})")
        if self.evidence:
            lines += ["", "evidence:"] + [f"  {fact.line()}" for fact in self.evidence]
        lines.append(f"(answered by {self.by})")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def ask(
    analyzer: Analyzer,
    source: Path,
    question: str,
    phraser: Phraser | str | None = AUTO,
    analysis: Analysis | None = None,
    facts: Facts | None = None,
) -> Answer:
    """Answer ``question`` about the file at ``source`` from its evidence (see the module doc)."""
    question = " ".join(question.split())
    if not question:
        raise ValueError("the question is empty")
    facts = facts or gather(analyzer, Path(source), analysis)
    phraser = resolve(phraser, analyzer)
    sees = bool(phraser and phraser.sees_images and facts.image is not None)
    reason = uncovered(question, facts, sees_image=sees)
    if reason:
        return Answer(facts.source, question, CANT_TELL, False, "coverage", [], reason)
    relevant, similarity = relevant_facts(analyzer, question, facts)
    if off_topic(question, facts, similarity, phraser):
        reason = "nothing in the text or speech is about this question"
        return Answer(facts.source, question, CANT_TELL, False, "coverage", [], reason)
    if phraser is None:
        return _extractive(facts, question, relevant)
    return _phrase(facts, question, relevant, phraser)


def uncovered(question: str, facts: Facts, sees_image: bool = False) -> str | None:
    """Why the evidence cannot cover ``question``, or None if it may."""
    q = question.lower()
    if not [f for f in facts.facts if f.kind != "meta"]:
        return "the models found nothing in this file"
    if facts.modality == "image":
        return None if sees_image and not SOUND_Q.search(q) else _image_gap(q, facts)
    if facts.modality == "audio":
        return _audio_gap(q, facts)
    return None


def _image_gap(q: str, facts: Facts) -> str | None:
    has_text = bool(facts.of(OCR))
    if TEXT_Q.search(q):
        return None if has_text else "no text was found in the image (OCR read nothing)"
    if SOUND_Q.search(q) or SPEECH_Q.search(q):
        return "an image has no sound"
    if COUNT_Q.search(q):
        return "the image models name what they see but do not count objects"
    if COLOUR_Q.search(q) and grounding.words(q) & grounding.things_vocabulary():
        return "colours are measured over the whole image, not per object"
    if WHO_Q.search(q) and not has_text:
        return "no model here recognises people, and the image has no text naming anyone"
    if WHEN_WHERE_Q.search(q) and not has_text:
        return "the evidence has no date or place for the image"
    return None


def _audio_gap(q: str, facts: Facts) -> str | None:
    has_speech = bool(facts.of(TRANSCRIPT))
    if VISUAL_Q.search(q):
        return "a recording has no picture"
    if (SPEECH_Q.search(q) or WHO_Q.search(q)) and not has_speech:
        return "no speech was recognised in the recording"
    return None


def relevant_facts(
    analyzer: Analyzer, question: str, facts: Facts, budget: int = CONTEXT_TOKENS
) -> tuple[list[Fact], float]:
    """Short facts all; passages and transcript segments ranked by similarity to the question, within budget.

    Also returns the best cosine between the question and a passage or segment (0 when there are none).
    """
    long_kinds = (PASSAGE, TRANSCRIPT)
    short = [f for f in facts.facts if f.kind not in long_kinds]
    long = [f for f in facts.facts if f.kind in long_kinds]
    if not long:
        return short, 0.0
    vectors = analyzer.model("text").encode([question] + [f.text for f in long])
    scores = vectors[1:] @ vectors[0]
    chosen, used = [], sum(len(f.text) for f in short) // 4
    for i in np.argsort(-scores):
        used += len(long[i].text) // 3
        if used > budget and chosen:
            break
        chosen.append(int(i))
    return short + [long[i] for i in sorted(chosen)], float(scores.max())  # in document / time order


def off_topic(question: str, facts: Facts, similarity: float, phraser: Phraser | None) -> bool:
    """A question about a document (or about what was said) that shares no word and little meaning with it."""
    from polymodal.tasks.summarize import tokens

    if facts.modality == "image" or (facts.modality == "audio" and SOUND_Q.search(question.lower())):
        return False
    texts = [f.text for f in facts.facts if f.kind in (PASSAGE, TRANSCRIPT, TAG)]
    if not texts or similarity >= MIN_SIMILARITY:
        return False
    asked = {grounding.singular(t) for t in tokens(question)} - QUESTION_WORDS
    said = {grounding.singular(t) for t in tokens(" ".join(texts))}
    return not asked & said


def _phrase(facts: Facts, question: str, relevant: list[Fact], phraser: Phraser) -> Answer:
    images = [encode_image(facts.image)] if phraser.sees_images and facts.image is not None else []
    system = VISION_SYSTEM if images else SYSTEM.format(what=WHAT[facts.modality])
    user = f"EVIDENCE:\n{facts.prompt(relevant)}\nQUESTION: {question}"
    reply = clean_reply(phraser.complete(system, user, images, max_tokens=120, examples=EXAMPLES))
    if not reply or cannot_tell(reply):
        return Answer(facts.source, question, CANT_TELL, False, phraser.name, [], "the evidence does not answer it")
    issues = [] if images else grounding.problems(reply, facts)
    if issues:
        note = f"the {phraser.name} answer was not used ({'; '.join(issues)}): “{reply}”"
        return Answer(facts.source, question, CANT_TELL, False, phraser.name, [], "no grounded answer", [note])
    return Answer(facts.source, question, reply, True, phraser.name, cited(reply, question, relevant))


def clean_reply(reply: str) -> str:
    """One paragraph, without an "ANSWER:" label, a "Yes, I can tell from this." preamble or a bare "probably"."""
    reply = " ".join(reply.split("\n\n")[0].split())
    reply = re.sub(r"^answer\s*:\s*", "", reply, flags=re.IGNORECASE)
    reply = re.sub(r"^(yes|no)?,?\s*i can tell from this[.!]?\s*", "", reply, flags=re.IGNORECASE)
    return "" if reply.lower().strip(" .!") in ("probably", "maybe", "possibly", "yes or no") else reply


def cannot_tell(reply: str) -> bool:
    flat = reply.lower().replace("’", "'")
    return bool(re.search(r"can'?no?t tell|cannot tell|can not tell|not enough (information|evidence)", flat))


def cited(reply: str, question: str, relevant: list[Fact]) -> list[Fact]:
    """The facts the answer draws on: those sharing a word with it (else with the question), else all."""
    for text in (reply, question):
        words = grounding.words(text)
        found = [f for f in relevant if grounding.words(f.text) & words]
        if found:
            return found
    return [f for f in relevant if f.kind in (LABEL, TAG, OCR)] or relevant


def _extractive(facts: Facts, question: str, relevant: list[Fact]) -> Answer:
    top = [f for f in relevant if f.kind in (LABEL, TAG, OCR)][:3]
    evidence = list({id(f): f for f in [*cited("", question, relevant)[:5], *top]}.values())
    lines = "; ".join(f.line() for f in evidence)
    answer = f"No language model is configured; the evidence closest to the question: {lines}"
    return Answer(facts.source, question, answer, True, "extractive", evidence)
