"""Answer a question about an image, a recording or a document from its evidence.

First the question is routed to the evidence that answers it (:mod:`polymodal.tasks.questions`: what it
shows, colours, text, titles, what is said and when, counts): deterministic, with no LLM. Then coverage: a
question about writing on an image with no text, sound in an image, what is seen in a recording, or who
someone is (no model here recognises people) is refused, saying what *is* known. Otherwise the most relevant
evidence (passages and transcript segments ranked by similarity to the question) goes to the LLM, whose
answer is checked sentence by sentence (:func:`polymodal.tasks.grounding.revise`): unsupported sentences are
dropped and "probably" is added where an unsure label was stated as certain. ``on_token`` hears the LLM's
answer as it is generated; when the check changed it, :attr:`Answer.revised` says so and :attr:`Answer.answer`
is what replaces the streamed text. Without an LLM the relevant evidence is returned.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.analysis import LABEL, OCR, PASSAGE, TAG, TRANSCRIPT, Analysis, Analyzer
from polymodal.errors import UsageError
from polymodal.providers import AUTO, Phraser, encode_image, resolve, stream_text
from polymodal.tasks import grounding, questions
from polymodal.tasks.facts import PEOPLE, Fact, Facts, face_boxes, gather, people_facts
from polymodal.tasks.subjects import article, main_subject

CANT_TELL = "I can't tell from this"  # what the LLM is told to reply; refusals shown start "I can't tell"
CONTEXT_TOKENS = 1500  # evidence sent with a question
# The same for every question (what the file is goes in the user message): llama.cpp then reuses the system
# prompt's and worked examples' computed state, and the first words come sooner.
SYSTEM = (
    "Answer the question about a file (an image, a sound recording, a video or a document) from the evidence "
    "only. The evidence comes from automatic models (labels and sound tags, text read from the image, a speech "
    "transcript, colours of the whole image, passages of a document). If the evidence does not answer the "
    f"question, reply exactly: {CANT_TELL}. Start the answer to a yes/no question with Yes or No. Say "
    "'probably' when the evidence you use is marked probably or possibly. Do not give percentages. Answer in one "
    "or two short sentences."
)
EXAMPLES = (
    ("EVIDENCE about an image:\n- label: golden retriever\n- colour: green (a large part of the image)\n"
     "QUESTION: Is there an animal?", "Yes, a golden retriever, which is a dog."),
    ("EVIDENCE about an image:\n- label: mountain bike (probably)\nQUESTION: Is there a vehicle?",
     "Yes, probably a bicycle (a mountain bike)."),
    ("EVIDENCE about a sound recording:\n- transcript: [0:02–0:04] “The shop closes at six.”\n"
     "QUESTION: When does the shop close?", "At six."),
    ("EVIDENCE about a document:\n- passage: The bakery opens at 9 and sells rye bread.\n"
     "QUESTION: Who owns the bakery?", CANT_TELL),
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
NO_LLM = "No language model is configured; the evidence closest to the question"
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
YES_NO_Q = re.compile(
    r"^\s*(is|are|was|were|do|does|did|can|could|will|would|should|has|have|had|may|might|must|shall)\b|吗[?？]?\s*$",
    re.IGNORECASE,
)
COUNT_Q = re.compile(r"\bhow many\b|\bnumber of\b|\bcount\b|多少|几个|几只")
WHO_Q = re.compile(r"\bwho\b|\bwhose\b|谁")
WHEN_WHERE_Q = re.compile(r"\b(when|where)\b.*\b(taken|shot|photographed|recorded|made)\b|什么时候|在哪")


# Parts whose number a kind of thing usually has (a zebra's legs, a bicycle's wheels).
PART_Q = re.compile(
    r"\bhow many (?P<part>legs|eyes|ears|wings|wheels|arms|hands|feet|paws|tails|horns|antennae|fins|tentacles)\b",
    re.IGNORECASE,
)
USUAL_SYSTEM = "You answer questions about what kinds of animals and things are usually like, with one number."
USUAL_EXAMPLES = (("How many legs does a spider usually have? Reply with one number.", "8"),
                  ("How many wheels does a tricycle usually have? Reply with one number.", "3"),
                  ("How many eyes does a dog usually have? Reply with one number.", "2"))  # fmt: skip
MAX_USUAL = 12
SINGULAR_PARTS = {"feet": "foot", "antennae": "antenna"}

OnToken = Callable[[str], None]


@dataclass
class Answer:
    source: str
    question: str
    answer: str
    answerable: bool
    by: str  # the phraser's name, "evidence" (routed, no LLM), "coverage" (refused before any LLM), "extractive"
    evidence: list[Fact] = field(default_factory=list)
    reason: str | None = None  # why it cannot tell
    notes: list[str] = field(default_factory=list)  # remarks for the reader (rare)
    diagnostics: list[str] = field(default_factory=list)  # internal: what was checked, dropped, why (--debug)
    route: str | None = None  # the kind of evidence the question was routed to ("colour", "text", ...)
    streamed: str = ""  # the text as streamed to ``on_token``, before the check
    revised: bool = False  # the check changed the streamed text: ``answer`` replaces it

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "question": self.question,
            "answer": self.answer,
            "answerable": self.answerable,
            "by": self.by,
            "route": self.route,
            "reason": self.reason,
            "evidence": [f.to_dict() for f in self.evidence],
            "notes": self.notes,
            "diagnostics": self.diagnostics,
            "revised": self.revised,
        }

    def to_text(self, debug: bool = False) -> str:
        lines = [self.answer]
        if self.reason:
            lines.append(f"(why: {self.reason})")
        if self.evidence:
            lines += ["", "evidence:"] + [f"  {fact.line()}" for fact in self.evidence]
        lines.append(f"(answered by {self.by})")
        lines += [f"note: {note}" for note in self.notes]
        if debug:
            lines += [f"debug: {note}" for note in self.diagnostics]
        return "\n".join(lines)


def ask(
    analyzer: Analyzer,
    source: Path,
    question: str,
    phraser: Phraser | str | None = AUTO,
    analysis: Analysis | None = None,
    facts: Facts | None = None,
    on_token: OnToken | None = None,
    stop: threading.Event | None = None,
) -> Answer:
    """Answer ``question`` about the file at ``source`` from its evidence (see the module doc).

    ``on_token(text)`` hears the answer as it is made: the LLM's pieces as they are generated, or a routed or
    refused answer whole. ``stop`` set stops the LLM (:class:`polymodal.providers.Cancelled` is raised).
    """
    question = " ".join(question.split())
    if not question:
        raise UsageError("the question is empty")
    facts = facts or gather(analyzer, Path(source), analysis)
    if questions.PEOPLE_Q.search(question) and not facts.of(PEOPLE):
        facts.facts += people_facts(facts, analyzer.settings)
    if questions.asks_clothes_colour(question) and facts.faces is None:
        facts.faces = face_boxes(facts, analyzer.settings)
    phraser = resolve(phraser, analyzer)
    sees = bool(phraser and phraser.sees_images and facts.image is not None)
    answer = _routed_or_refused(question, facts, sees)
    if answer is not None and answer.route == "count" and not answer.answerable and phraser is not None:
        answer = _usual_count(facts, question, phraser, stop) or answer
    relevant: list[Fact] = []
    if answer is None:
        relevant, similarity = relevant_facts(analyzer, question, facts)
        if off_topic(question, facts, similarity, phraser):
            answer = _refusal(facts, question, "nothing in the text or speech is about this question")
        elif phraser is None:
            answer = _extractive(facts, question, relevant)
    if answer is None:
        return _phrase(facts, question, relevant, phraser, on_token, stop)  # type: ignore[arg-type]
    if on_token is not None:
        on_token(answer.answer)
    return answer


def _routed_or_refused(question: str, facts: Facts, sees: bool) -> Answer | None:
    """The answer from the evidence kind the question asks about, or a refusal when the evidence cannot cover
    it; None when neither applies."""
    routed = questions.route(question, facts, sees_image=sees)
    if routed is not None:
        by = "evidence" if routed.answerable else "coverage"
        return Answer(facts.source, question, routed.answer, routed.answerable, by, routed.evidence,
                      routed.reason, route=routed.kind)  # fmt: skip
    reason = uncovered(question, facts, sees_image=sees)
    return _refusal(facts, question, reason) if reason else None


def _usual_count(facts: Facts, question: str, phraser: Phraser, stop: threading.Event | None) -> Answer | None:
    """ "How many legs?" of a picture of a zebra: how many a zebra usually has, from the LLM's knowledge of what a
    zebra is, said to be that and not a count of the picture (no model here counts things in pictures)."""
    asked, subject = PART_Q.search(question), main_subject(facts)
    if asked is None or subject is None or subject.score < questions.MIN_GUESS or facts.modality != "image":
        return None
    part, name = asked.group("part").lower(), subject.name or subject.labels[0].text
    user = f"How many {part} does {article(name)} usually have? Reply with one number."
    reply = "".join(stream_text(phraser, USUAL_SYSTEM, user, max_tokens=8, examples=USUAL_EXAMPLES, stop=stop))
    number = re.search(r"\d+", questions.digits(reply))
    if number is None or int(number.group()) > MAX_USUAL:
        return None
    n = int(number.group())
    if n == 1:
        part = SINGULAR_PARTS.get(part, part.removesuffix("s"))
    sees = questions.sees(subject)
    answer = (f"Probably {n}: {article(name)} usually has {n} {part}. That is what {article(name)} is like, "
              f"not a count of this picture ({sees}).")  # fmt: skip
    return Answer(facts.source, question, answer, True, phraser.name, subject.labels, route="count",
                  notes=[f"the {part} were not counted: the models here do not count things in pictures"])  # fmt: skip


def _refusal(facts: Facts, question: str, reason: str, by: str = "coverage") -> Answer:
    """ "I can't tell <what was asked>; <what is known>.", with the facts that are known."""
    routed = questions.refuse(question, facts, reason)
    return Answer(facts.source, question, routed.answer, False, by, routed.evidence, reason)


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


def _phrase(
    facts: Facts,
    question: str,
    relevant: list[Fact],
    phraser: Phraser,
    on_token: OnToken | None = None,
    stop: threading.Event | None = None,
) -> Answer:
    images = [encode_image(facts.image)] if phraser.sees_images and facts.image is not None else []
    system = VISION_SYSTEM if images else SYSTEM
    user = f"EVIDENCE about {WHAT[facts.modality]}:\n{facts.prompt(relevant)}\nQUESTION: {question}"
    pieces = []
    for piece in stream_text(phraser, system, user, images, max_tokens=120, examples=EXAMPLES, stop=stop):
        pieces.append(piece)
        if on_token is not None:
            on_token(piece)
    streamed = "".join(pieces).strip()
    reply = clean_reply(streamed, yes_no=bool(YES_NO_Q.match(question)))
    if not reply or cannot_tell(reply):
        answer = _quoted(facts, question, relevant) or _refusal(
            facts, question, "the evidence does not answer it", phraser.name
        )
        answer.diagnostics.append(f"the {phraser.name} answer: “{streamed}”")
    elif images:  # a vision model read the picture itself: its reading is not checked against our evidence
        answer = Answer(facts.source, question, reply, True, phraser.name, cited(reply, question, relevant))
    else:
        answer = _checked(facts, question, relevant, phraser, reply)
    answer.streamed, answer.revised = streamed, answer.answer != streamed
    return answer


def _checked(facts: Facts, question: str, relevant: list[Fact], phraser: Phraser, reply: str) -> Answer:
    """The LLM's reply with unsupported sentences dropped and unsure claims hedged; when nothing is left, "I
    can't tell ..." with what is known."""
    revision = grounding.revise(reply, facts, question)
    diagnostics = revision.diagnostics(f"the {phraser.name} answer")
    if not revision.text:
        answer = _refusal(facts, question, "no answer the evidence supports", phraser.name)
        answer.diagnostics += [*diagnostics, f"the {phraser.name} answer was not used: “{reply}”"]
        return answer
    cited_facts = cited(revision.text, question, relevant)
    return Answer(facts.source, question, revision.text, True, phraser.name, cited_facts, diagnostics=diagnostics)


def clean_reply(reply: str, yes_no: bool = True) -> str:
    """One paragraph, without an "ANSWER:" label, a "Yes, I can tell from this." preamble or a bare "probably";
    a "Yes, " that opens the answer to a question that is not a yes/no one is dropped (small models copy it from
    the worked examples: "Yes, the best of the period")."""
    reply = " ".join(reply.split("\n\n")[0].split())
    reply = re.sub(r"^answer\s*:\s*", "", reply, flags=re.IGNORECASE)
    reply = re.sub(r"^(yes|no)?,?\s*i can tell from this[.!]?\s*", "", reply, flags=re.IGNORECASE)
    if not yes_no:
        reply = re.sub(r"^(yes|no)\s*[,.!:]\s*", "", reply, flags=re.IGNORECASE)
        reply = reply[:1].upper() + reply[1:]
    return "" if reply.lower().strip(" .!") in ("probably", "maybe", "possibly", "yes or no") else reply


def cannot_tell(reply: str) -> bool:
    flat = reply.lower().replace("’", "'")
    return bool(re.search(r"\bcan'?t tell|cannot tell|can not tell|not enough (information|evidence)", flat))


def cited(reply: str, question: str, relevant: list[Fact]) -> list[Fact]:
    """The facts the answer draws on: those sharing a word with it (else with the question), else all."""
    for text in (reply, question):
        words = grounding.words(text)
        found = [f for f in relevant if grounding.words(f.text) & words]
        if found:
            return found
    return [f for f in relevant if f.kind in (LABEL, TAG, OCR)] or relevant


def _quoted(facts: Facts, question: str, relevant: list[Fact]) -> Answer | None:
    """What was said or written that shares two or more of the question's content words, quoted with its times,
    when the LLM could not say: "When will the conference begin?" and the recording says "The conference will
    begin when the leader arrives." None when no such line is there."""
    from polymodal.ranking import STOPWORDS

    words = grounding.words(question) - STOPWORDS - questions.QUESTION_WORDS
    lines = [f for f in relevant if f.kind in (TRANSCRIPT, PASSAGE, OCR) and len(grounding.words(f.text) & words) >= 2]
    if not lines:
        return None
    source = {"audio": "The recording says", "video": "The video says", "image": "The text in it reads"}
    said = "; ".join(_plain(f, question) for f in lines[:3])
    return Answer(facts.source, question, f"{source.get(facts.modality, 'The text says')}: {said}", True,
                  "evidence", lines[:3])  # fmt: skip


def _extractive(facts: Facts, question: str, relevant: list[Fact]) -> Answer:
    """The evidence closest to the question, said as such (no LLM phrased it); of a passage, its sentences
    sharing the most words with the question."""
    top = [f for f in relevant if f.kind in (LABEL, TAG, OCR)][:3]
    evidence = list({id(f): f for f in [*cited("", question, relevant)[:5], *top]}.values())
    if not evidence:
        return _refusal(facts, question, "no evidence is close to the question", "extractive")
    lines = "; ".join(_plain(f, question) for f in evidence[:5])
    return Answer(facts.source, question, f"{NO_LLM}: {lines}", True, "extractive", evidence)


def _plain(fact: Fact, question: str = "") -> str:
    """A fact for a reader: scores said to be the model's, text quoted with its time, a passage by its sentences
    closest to ``question``."""
    from polymodal.tasks.facts import clock, percent

    if fact.kind == PASSAGE:
        return " … ".join(f"“{s}”" for s in _closest_sentences(fact.text, question))
    if fact.kind in (LABEL, TAG) and fact.score is not None:
        model = "image" if fact.kind == LABEL else "sound"
        return f"{fact.text} (the {model} model: {percent(fact.score)})"
    if fact.kind in (OCR, TRANSCRIPT, PASSAGE):
        when = f" ({clock(fact.start)})" if fact.start is not None else ""
        return f"“{fact.text}”{when}"
    return fact.line(scores=False)


def _closest_sentences(text: str, question: str, k: int = 2) -> list[str]:
    """The ``k`` sentences of ``text`` sharing the most content words (stems) with ``question``, in order."""
    from polymodal.tasks.summarize import sentences_of, tokens

    sentences = sentences_of(text)
    wanted = {grounding.stem(t) for t in tokens(question)}
    scored = [(len(wanted & {grounding.stem(t) for t in tokens(s)}), -i) for i, s in enumerate(sentences)]
    best = sorted(sorted(scored, reverse=True)[:k], key=lambda pair: -pair[1])
    return [sentences[-i] for shared, i in best if shared] or sentences[:1]
