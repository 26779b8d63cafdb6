"""Questions answered straight from the evidence that answers them: before, and without, any LLM.

A question is routed by its words (English and Chinese) to one kind of evidence:
- **what is it** → the image's labels, grouped by the name they share (:mod:`polymodal.tasks.subjects`), or
  the sound tags; hedged with "probably" and the image model's scores named as the model's;
- **colour** → the measured colours (:mod:`polymodal.perceivers.visual`): of the whole picture, or, for a
  thing the labels name (the cup of an espresso), of the middle of the picture where the subject is, hedged;
- **text, "what does it say", title** → the OCR lines read with confidence (the title: the first or largest);
- **first / last sentence** → the transcript (or the document's sentences);
- **what is said about X** → every transcript segment (or sentence of a document) about X, with its times;
- **when is X said** → the times of the segments that say it;
- **a chart** (its text laid out by :func:`polymodal.tasks.read.layout`) → its title, how many bars (x-axis
  labels), the first / last bar, the tallest / shortest bar, the value shown for a category; bar or line
  chart from its pixels (:func:`polymodal.perceivers.visual.chart_marks`);
- **how many** → times a word is said; people, faces and objects are not counted by any model here: said so;
- **is there a X / is this a X** → yes when the labels (or their hypernyms: a tabby cat is an animal) name X;
  probably not when X is one of the image model's own classes and it gives X next to nothing; otherwise no
  route (the labels name the main subject only: any other "no" would be a guess).
Each answer is deterministic, carries the facts it rests on, and, when the evidence cannot answer, says what
*is* known ("I can't tell who owns it; the image model sees an espresso").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from polymodal.analysis import LABEL, OCR, PASSAGE, TAG, TRANSCRIPT
from polymodal.tasks.facts import (
    COLOUR,
    META,
    MIN_LABEL_SCORE,
    OCR_NUMBERS_FLOOR,
    PEOPLE,
    PICTURE,
    Fact,
    Facts,
    centre_colours,
    clock,
    edge_colours,
    percent,
    region_colours,
)
from polymodal.tasks.grounding import stem
from polymodal.tasks.subjects import SURE, Subject, article, class_table, main_subject, terms_of

CANT_TELL = "I can't tell"
MAX_QUOTED_LINES = 12
MAX_MATCHES = 8
LONG_SEGMENT = 4.0  # seconds: in a longer transcript segment, when a word is said is worth estimating
MIN_GUESS = 0.1  # below this, the image model's best label is no answer to "what is it"
POSSIBLY = 0.2  # below this, a guess is "possibly", not "probably"
ABSENT_RATIO = 4  # "probably not a zebra": the best guess has at least this many times a zebra's score
SPEECH_TAGS = frozenset({"Speech", "Narration, monologue", "Conversation", "Male speech, man speaking",
                         "Female speech, woman speaking"})  # fmt: skip

_Q = re.IGNORECASE
COUNT_Q = re.compile(r"\bhow many\b|\bnumber of\b|\bcount\b|多少|几个|几只|几次", _Q)
NUMBERS_Q = re.compile(r"\bhow many (numbers|numerals|digits)\b", _Q)
COUNT_SAID_Q = re.compile(r"\bhow many times\b.*\b(say|says|said|mention|mentions|mentioned|repeat|use)|说了几次", _Q)
PEOPLE_Q = re.compile(
    r"\b(?<!clock )(people|persons?|men|women|man|woman|children|kids?|faces?|players?|speakers?|voices?|crowd)\b"
    r"|人|脸",
    _Q,
)
TITLE_Q = re.compile(r"\b(title|headline|heading)\b|标题|题目", _Q)
# The title of something the file only comes from ("the book this page comes from"): not its own title.
OTHER_TITLE_Q = re.compile(
    r"\b(title|name)\s+of\s+(the|this|that|a)\s+(?!(page|image|picture|photo|chart|graph|plot|diagram|figure|"
    r"document|scan|slide|poster|sign|article|text|file|drawing)\b)\w+",
    _Q,
)
READ_Q = re.compile(
    r"\bwhat (does|do|did) (it|this|that|the \w+|this \w+) (say|read)\b|\bwhat('s| is| was| are) (written|printed)"
    r"|\bwhat (text|words?|letters)\b|\bread (it|this|the \w+|out)\b|\bwhat (text|writing) is\b"
    r"|写了什么|写的什么|上面写|什么字|文字是什么",
    _Q,
)
SAID_Q = re.compile(
    r"\bwhat (does|did|do|is) (it|the \w+|he|she|they|someone|somebody) (say|said|saying|talk\w* about)\s*\??$"
    r"|\bwhat (is|was) (said|spoken)\s*\??$|说了什么",
    _Q,
)
COLOUR_Q = re.compile(r"\bcolou?rs?\b|颜色", _Q)
FIRST_Q = re.compile(
    r"\b(first|opening|last|final|closing)\s+((\d+|two|three|four|five|six|few|couple of)\s+)?"
    r"(sentence|line|words?|phrase|thing said)\b|第一句|最后一句",
    _Q,
)
AFTER_Q = re.compile(
    r"\b(?P<which>after|before)\s+[“\"']?(?P<topic>[^,?”\"']+?)[”\"']?\s*[,?]?\s*what\b.*\b(say|says|said)\b"
    r"|\bwhat\b.*\b(say|says|said)\s+(?P<which2>after|before)\s+[“\"']?(?P<topic2>[^?”\"']+)",
    _Q,
)
WHEN_Q = re.compile(
    r"\bwhen\b.*\b(say|says|said|mention|mentions|mentioned|spoken|speak|speaks|talk|talks|heard)\b"
    r"|\bat what (time|point|moment)\b|\bwhat time\b.*\b(say|said|mention)|什么时候(说|提到|讲)",
    _Q,
)
ABOUT_Q = re.compile(
    r"\b(say|says|said|saying|mention|mentions|mentioned|tell|tells|talk|talks|write|writes|written)\b.*?"
    r"\babout\s+(?P<topic>[^?.!]+)|关于(?P<zh>.+?)(说|讲|写|提到)",
    _Q,
)
WHAT_IS_Q = re.compile(
    r"^\s*what('s| is| are)\s+(in|on)\s+(this|the|that)\s+(picture|image|photo|photograph|pic|scan|drawing|frame)"
    r"|^\s*what('s| is) (this|that|it)\s*\??\s*$|\bwhat (do|can) you see\b"
    r"|\bwhat (does|do) (this|the|it)\s*(picture|image|photo|photograph|drawing|scan)?\s*(show|depict)"
    r"|\bwhat (animal|kind of \w+|type of \w+|sort of \w+|breed|object|thing|bird|dog|cat|plant|flower|vehicle|"
    r"food|drink|building) (is|are) (this|that|it|shown|in)\b|\bwhat is shown\b"
    r"|这是什么|(图片|照片|图)里(有|是)什么|画的是什么",
    _Q,
)
IS_THERE_Q = re.compile(
    r"^\s*(is|are)\s+(there|this|that|it)\s+(an?\s+|any\s+|some\s+)?(?P<thing>[a-z][a-z' -]*?)\s*(in\s+(it|this|the"
    r"\s+\w+))?\s*\??\s*$|^\s*(does|do)\s+(it|this|the \w+)\s+(show|contain|have)\s+(an?\s+|any\s+)?"
    r"(?P<thing2>[a-z][a-z' -]*?)\s*\??\s*$",
    _Q,
)
THING_PLACE = re.compile(r"\s+(on|in|at|near|next to|beside|behind|under|over|inside)\s+.*$", _Q)
DOING_Q = re.compile(  # "Is a dog barking in this recording?", "Is anyone speaking?"
    r"^\s*(is|are)\s+(?P<who>(an?|the|any|some)\s+[a-z]+|someone|anyone|somebody|anybody|anything|something)\s+"
    r"(?P<doing>[a-z]+ing)\b[^?]*\??\s*$",
    _Q,
)
DOING_TAGS = {"speak": "speech", "talk": "speech", "laugh": "laughter", "sing": "singing", "cry": "crying",
              "meow": "meow", "purr": "purr", "chirp": "chirp", "clap": "clapping", "whistl": "whistling"}  # fmt: skip
NOBODY = frozenset({"someone", "anyone", "somebody", "anybody", "anything", "something"})
WHAT_SOUND_Q = re.compile(
    r"\bwhat('s| is) (this|that|the) (sound|noise|recording)\b|\bwhat (do|can) (you|i|we) hear\b"
    r"|\bwhat (is|can be) heard\b|\bwhat sounds?\b|\bwhat is in (this|the) recording\b|这是什么声音|听到什么"
    r"|\bwhat (animal|kind of \w+|sort of \w+|instrument|thing|machine|vehicle|bird) (makes|is making|made|"
    r"produces|is) (this|the|that) (sound|noise)|\bwhat (animal|instrument|bird) is (this|that|it)\b",
    _Q,
)
KIND_Q = re.compile(r"\bwhat (kind|type|sort) of (picture|image|photo|file|graphic)\b|这是什么(图|图片)", _Q)
KIND_WHY = {
    "a photo": "soft gradients and texture",
    "a drawing": "flat colours and outlines",
    "a screenshot": "flat colours, straight panel edges and lines of text",
    "a document page": "light paper with lines of dark text",
}
# AudioSet's broad classes ("Animal") say less than the specific ones heard with them ("Cat", "Meow").
BROAD_TAGS = frozenset({"Animal", "Domestic animals, pets", "Livestock, farm animals, working animals",
                        "Wild animals", "Vehicle", "Music", "Inside, small room", "Outside, rural or natural",
                        "Outside, urban or manmade", "Silence", "Speech synthesizer"})  # fmt: skip
# Things a colour question may name that are the picture itself, not something in it.
WHOLE = frozenset("picture image photo photograph it this that scene background drawing scan page".split())
# Parts too small for colours measured over areas: asked about, they are not answered with the subject's colour.
SMALL_PARTS = frozenset("eye eyes nose mouth teeth tooth ear ears beak tongue button buttons lips lip pupil "
                        "pupils nail nails collar logo lettering letters writing text label".split())  # fmt: skip
# Things a colour question may name that are where they usually are: the sky above, the ground below, clothes
# below a face.
ABOVE = frozenset("sky skies clouds ceiling".split())
BELOW = frozenset("ground floor grass road street sand".split())
CLOTHES = frozenset("suit spacesuit shirt t-shirt dress jacket coat clothes clothing sweater jumper uniform blouse "
                    "hoodie outfit top vest jersey".split())  # fmt: skip
PLACE_SHARE = 0.3  # the top or bottom band of the picture, of its height
_COLOUR_THING = re.compile(
    r"colou?rs?\s+(?P<verb>is|are|was|were|of|does|do)\s+(?:the|this|that|these|those|a|an|its|his|her|their)?\s*"
    r"(?P<thing>[a-z][a-z' -]*?)\s*(?:have|has|in|on|\?|$)",
    _Q,
)
QUESTION_WORDS = frozenset(
    """when what where which who whom whose why how time point moment does did do is are was were the a an
    speaker speakers narrator voice say says said saying mention mentions mentioned spoken speak speaks talk
    talks heard hear recording audio file it this that they he she someone somebody word words phrase line""".split()
)


# Words the answers here are phrased with (not claims about the file): for evaluations that look for words no
# evidence supports (bench/eval_qa.py).
PHRASING_WORDS = frozenset(
    """image sound model models together measured measure area areas middle whole picture edge edges usually
    background plain colours colour colors color itself part small too sentence line lines text first largest
    last reads read says said say speaker speech starting starts recognised recognises recognise nothing
    best guess sees hears document page drawing photo screenshot pixels titled title about time times never
    word words transcript more thing things recording starts outlines flat gradients texture paper dark light
    probably possibly yes face faces detector found heard hear""".split()
)


@dataclass
class Routed:
    kind: str  # what the question was routed to: "what", "colour", "title", "text", "said", ...
    answer: str
    answerable: bool
    evidence: list[Fact] = field(default_factory=list)
    reason: str | None = None  # why it cannot tell


def route(question: str, facts: Facts, sees_image: bool = False) -> Routed | None:
    """The answer from the evidence that answers ``question``, or None when no route applies (then an LLM, or
    the closest evidence, answers). ``sees_image``: the phraser is sent the image, so image questions go to it.
    """
    q = " ".join(question.split())
    modality = facts.modality
    speech = modality in ("audio", "video")
    image = modality in ("image", "video") and not sees_image
    chart = _chart_answer(q, facts) if image and modality == "image" and facts.of(OCR) else None
    if chart is not None:
        return chart
    if COUNT_Q.search(q):
        return _count(q, facts, image)
    if TITLE_Q.search(q) and (image or modality == "text") and not OTHER_TITLE_Q.search(q):
        return _title(q, facts)
    if READ_Q.search(q) and image and not ABOUT_Q.search(q):
        return _read(q, facts)
    if COLOUR_Q.search(q) and image and modality == "image":  # a video's frames are not measured for colour
        return _colour(q, facts)
    if FIRST_Q.search(q) and (speech or modality == "text" or (image and facts.of(OCR))):
        return _first(q, facts)
    if WHEN_Q.search(q) and speech:
        return _when(q, facts)
    after = AFTER_Q.search(q)
    if after and speech:
        which = (after.group("which") or after.group("which2") or "after").lower()
        return _next_to(q, (after.group("topic") or after.group("topic2") or "").strip(), which, facts)
    about = ABOUT_Q.search(q)
    if about and (speech or modality == "text"):
        return _about(q, (about.group("topic") or about.group("zh") or "").strip(), facts)
    if SAID_Q.search(q) and speech:
        return _said(q, facts)
    if WHAT_IS_Q.search(q) and image:
        return _what(q, facts)
    is_there = IS_THERE_Q.search(q)
    if is_there and image:
        thing = (is_there.group("thing") or is_there.group("thing2") or "").strip()
        identity = bool(re.match(r"^\s*(is|are)\s+(this|that|it)\b", q, _Q))
        thing = THING_PLACE.sub("", thing)  # "a bee on the flower": a bee
        return _is_there(thing, facts) or _is_not(thing, facts, identity)
    if WHAT_SOUND_Q.search(q) and speech:
        return _heard(q, facts)
    doing = DOING_Q.search(q)
    if doing and speech and facts.of(TAG):
        return _is_doing(doing.group("who"), doing.group("doing"), facts)
    if is_there and speech and facts.of(TAG):
        return _is_heard((is_there.group("thing") or is_there.group("thing2") or "").strip(), facts)
    if KIND_Q.search(q) and image:
        kind = next((f for f in facts.of(PICTURE) if f.text.startswith("a ")), None)
        if kind is not None:
            return Routed("picture", f"{kind.text[0].upper()}{kind.text[1:]} (from its pixels: {KIND_WHY[kind.text]}).",
                          True, [kind])  # fmt: skip
    return None


# --- what it shows --------------------------------------------------------------------------------------------
def _what(q: str, facts: Facts) -> Routed:
    kind = next((f.text for f in facts.of(PICTURE) if f.text.startswith("a ")), "")
    lines = facts.of(OCR)
    subject = main_subject(facts)
    flat_with_text = kind == "a drawing" and lines and (subject is None or not subject.sure)
    if (kind in ("a document page", "a screenshot") or flat_with_text) and lines:
        answer = f"{kind[0].upper()}{kind[1:]} with text; its first line reads “{lines[0].text}”."
        return Routed("what", answer, True, [*facts.of(PICTURE)[:1], lines[0]])
    if subject is None or (subject.score < MIN_GUESS and not lines):
        return refuse(q, facts, "the image model recognises nothing in it with any confidence", "what")
    answer = _subject_sentence(subject, kind)
    if lines:
        answer += f" Text in it reads “{lines[0].text}”" + (", and more." if len(lines) > 1 else ".")
    return Routed("what", answer, True, [*subject.labels, *lines[:1]])


def _subject_sentence(subject: Subject, kind: str = "") -> str:
    phrase = subject.phrase()
    if not subject.sure and subject.labels[0].score is not None and subject.labels[0].score < POSSIBLY:
        phrase = phrase.replace("probably ", "possibly ", 1)
    if kind == "a drawing":
        phrase = f"a drawing of {phrase}" if subject.sure else f"a drawing, {phrase}"
    return f"{phrase[0].upper()}{phrase[1:]} ({subject.attribution()})."


def _is_there(thing: str, facts: Facts) -> Routed | None:
    """Yes when the labels or their hypernyms name ``thing``; None otherwise (no is no answer from labels)."""
    from polymodal.tasks.grounding import singular, words

    subject = main_subject(facts)
    wanted = {singular(w) for w in words(thing)} - {"kind", "sort", "type", "thing", "something", "picture"}
    if subject is None or not wanted:
        return None
    table = class_table(facts.cache)
    found = [f for f in facts.of(LABEL) if wanted <= set().union(*(words(t) for t in terms_of(f.text, table)))]
    total = sum(f.score or 0.0 for f in found)
    if total < MIN_GUESS:
        return None
    hedge = "" if total >= SURE else "possibly " if total < POSSIBLY else "probably "
    named = _or([article(f.text) for f in found[:3]])
    scores = ", ".join(f"{f.text} {percent(f.score or 0.0)}" for f in found[:3])
    together = f"; {percent(total)} together" if len(found) > 1 else ""
    answer = f"Yes, {hedge}{named} (the image model: {scores}{together})."
    return Routed("yes", answer, True, found[:3])


def _is_not(thing: str, facts: Facts, identity: bool) -> Routed | None:
    """No, hedged, from the image model; only for things it has a class of its own for (a zebra, a bee), since
    it names nothing else: "Is this a zebra?" of a picture it is sure shows something else; "Is this / is there
    a zebra?" when it gives a zebra less than MIN_LABEL_SCORE and its best guess ABSENT_RATIO times as much."""
    subject = main_subject(facts)
    name = _class_named(thing, facts)
    if subject is None or name is None or _names_thing(thing, subject, facts):
        return None
    sentence = _subject_sentence(subject)
    sees = f"{sentence[0].lower()}{sentence[1:]}"
    if identity and subject.sure:
        return Routed("no", f"Probably not; the image model sees {sees}", True, subject.labels)
    kept = [e for e in facts.analysis.evidence if e.kind == LABEL]
    given = sum(e.score or 0.0 for e in kept if e.text == name)
    floor = given if given else min((e.score or 0.0 for e in kept), default=1.0)
    best = subject.labels[0].score or 0.0
    if floor >= MIN_LABEL_SCORE or best < MIN_GUESS or best < ABSENT_RATIO * floor:
        return None
    score = percent(given) if given else f"less than {percent(max(floor, 0.01))}"
    missed = "" if identity else "; small things beside the main subject can be missed"
    answer = f"Probably not: the image model, which has a class for “{name}”, gives it {score}; its best guess is "
    answer += sees
    return Routed("no", answer.removesuffix(".") + f"{missed}.", True, subject.labels)


def _class_named(thing: str, facts: Facts) -> str | None:
    """The image model's class that ``thing`` names ("zebras" -> "zebra"), by its name or a synonym."""
    from polymodal.tasks.grounding import singular

    wanted = " ".join(singular(w) for w in thing.lower().split() if w not in ("a", "an", "the"))
    for label, text in class_table(facts.cache).items():
        if wanted in {term.lower() for term in (text.name, *text.synonyms)}:
            return label
    return None


def _heard(q: str, facts: Facts) -> Routed:
    """What the sound models hear: the specific tags (a cat's "Meow", not "Animal"), speech with its start."""
    tags = [f for f in facts.of(TAG) if (f.score or 0.0) >= MIN_GUESS]
    specific = [t for t in tags if t.text not in BROAD_TAGS] or [t for t in tags if t.text != "Silence"]
    segments = facts.of(TRANSCRIPT)
    parts = []
    if segments:
        language = _language(facts)
        parts.append(f"Speech{f' in {language}' if language else ''}, starting “{segments[0].text}”")
    others = [t for t in specific if t.text not in SPEECH_TAGS or not segments]
    sure = [t.text.lower() for t in others if t.sure]
    unsure = [t for t in others if not t.sure][:2]
    if sure:
        parts.append(_and(sure))
    if unsure:
        hedge = "possibly" if (unsure[0].score or 0.0) < POSSIBLY else "probably"
        parts.append(f"{hedge} {_or([t.text.lower() for t in unsure])}")
    if not parts:
        return refuse(q, facts, "the sound models recognise nothing in it with any confidence", "what")
    shown = [*[t for t in others if t.sure], *unsure][:4]
    scores = ", ".join(f"{t.text} {percent(t.score or 0.0)}" for t in shown)
    answer = "; ".join(parts) + (f" (the sound model: {scores})." if scores else ".")
    return Routed("what", answer[0].upper() + answer[1:], True, [*segments[:1], *shown])


def _is_heard(thing: str, facts: Facts) -> Routed | None:
    """Yes when a sound tag names ``thing`` ("Is there a dog?" and the tagger hears "Dog"); None otherwise."""
    from polymodal.tasks.grounding import singular, words

    wanted = {singular(w) for w in words(thing)} - {"sound", "noise", "recording", "kind", "thing"}
    found = [t for t in facts.of(TAG) if wanted and wanted <= {singular(w) for w in words(t.text)}]
    best = max((t.score or 0.0 for t in found), default=0.0)
    if best < MIN_GUESS:
        return None
    hedge = "" if best >= SURE else "possibly " if best < POSSIBLY else "probably "
    scores = ", ".join(f"{t.text} {percent(t.score or 0.0)}" for t in found[:3])
    return Routed("yes", f"Yes, {hedge}{_and([t.text.lower() for t in found[:3]])} (the sound model: {scores}).",
                  True, found[:3])  # fmt: skip


def _is_doing(who: str, doing: str, facts: Facts) -> Routed:
    """Yes when the sound tags (or, for speech, the transcript) name who or what is heard doing it; "probably
    not" when the tagger is sure of other sounds and hears nothing like it."""
    from polymodal.tasks.grounding import singular, words

    action = stem(doing)
    wanted = {DOING_TAGS.get(action, action)}
    wanted |= {singular(w) for w in words(who)} - NOBODY - {"a", "an", "the", "any", "some"}
    tags = [t for t in facts.of(TAG) if (t.score or 0.0) >= MIN_GUESS]
    found = [t for t in tags if wanted & ({stem(w) for w in words(t.text)} | {singular(w) for w in words(t.text)})]
    segments = facts.of(TRANSCRIPT)
    if "speech" in wanted and segments:
        return Routed("yes", f"Yes: speech is heard, starting “{segments[0].text}” ({clock(segments[0].start or 0)}).",
                      True, segments[:1])  # fmt: skip
    if found:
        best = max(t.score or 0.0 for t in found)
        hedge = "" if best >= SURE else "possibly " if best < POSSIBLY else "probably "
        scores = ", ".join(f"{t.text} {percent(t.score or 0.0)}" for t in found[:3])
        named = _and([t.text.lower() for t in found[:3]])
        return Routed("yes", f"Yes, {hedge}{named} (the sound model: {scores}).", True, found[:3])
    heard = [t for t in tags if t.sure and t.text not in BROAD_TAGS][:3]
    if not heard:
        return refuse(f"whether {who} is {doing}", facts, "the sound models hear nothing they are sure of", "yes")
    scores = ", ".join(f"{t.text} {percent(t.score or 0.0)}" for t in heard)
    return Routed("no", f"Probably not: the sound model hears {_and([t.text.lower() for t in heard])}"
                        f" ({scores}), nothing like {who} {doing}.", True, heard)  # fmt: skip


# --- colours ------------------------------------------------------------------------------------------------
def _colour(q: str, facts: Facts) -> Routed:
    colours = [f for f in facts.of(COLOUR) if not f.text.endswith("background")]
    background = next((f for f in facts.of(COLOUR) if f.text.endswith("background")), None)
    whole = _colour_words(colours) + (f", on {article(background.text)}" if background else "")
    if not colours:
        tone = next((f.text for f in facts.of(PICTURE) if f.text == "black and white"), None)
        if tone:
            return Routed("colour", "It is black and white: no colours.", True, facts.of(PICTURE))
        return refuse(q, facts, "no colour was measured in the picture", "colour")
    match = _COLOUR_THING.search(q)
    thing = re.sub(r"^(the|this|that|a|an)\s+", "", match.group("thing").strip()) if match else ""
    verb = match.group("verb").lower() if match and match.group("verb") in ("are", "were") else "is"
    if thing.split()[-1:] == ["background"]:
        return _background_colour(q, facts, background, whole)
    if not thing or thing.split()[-1] in WHOLE:
        return Routed("colour", f"{whole[0].upper()}{whole[1:]} (the colours of the whole picture).", True, colours)
    if thing.split()[-1] in SMALL_PARTS or thing.split()[-1].removesuffix("s") in SMALL_PARTS:
        known = f"colours are measured over areas of the picture, and the {thing} {verb} too small a part of it"
        return Routed("colour", f"{CANT_TELL} what colour the {thing} {verb}: {known}; the picture is {whole}.",
                      False, colours, "colours are not measured on small parts of a thing")  # fmt: skip
    placed = _placed_colour(thing, verb, facts, whole)
    if placed is not None:
        return placed
    subject = main_subject(facts)
    if subject is not None and _names_thing(thing, subject, facts):
        return _subject_colour(facts, thing, subject, colours, whole)
    if background is not None:  # one thing drawn or photographed on a plain background: its colours are the thing's
        answer = f"Probably {_and([c.text for c in colours])}: the colours of the picture apart from its " \
                 f"{background.text}."  # fmt: skip
        return Routed("colour", answer, True, [*colours, background])
    seen = sees(subject) if subject else "the image model recognises nothing"
    known = f"no {thing} was recognised in it ({seen}); the picture is {whole}"
    return Routed("colour", f"{CANT_TELL} what colour the {thing} {verb}: {known}.", False, colours,
                  f"no model found a {thing} in the picture")  # fmt: skip


def _subject_colour(facts: Facts, thing: str, subject: Subject, colours: list[Fact], whole: str) -> Routed:
    """The colour of the middle of the picture, where the subject the labels name usually is: hedged."""
    middle = centre_colours(facts.image) if facts.image is not None else []
    if not middle:
        return Routed("colour", f"Probably {colours[0].text}: the picture is {whole}.", True, colours)
    answer = (
        f"Probably {middle[0].text}. Colours are measured over areas of the picture, not on the {thing} itself: "
        f"the middle of the picture ({sees(subject)}) is {_colour_words(middle)}; the whole picture is {whole}."
    )
    return Routed("colour", answer, True, [*middle, *colours, *subject.labels[:1]])


def _placed_colour(thing: str, verb: str, facts: Facts, whole: str) -> Routed | None:
    """The colour of the part of the picture where ``thing`` usually is, hedged: the sky at the top, the ground
    at the bottom, clothes below the largest face the face detector found; None for other things."""
    last = thing.split()[-1]
    if facts.image is None:
        return None
    width, height = facts.image.size
    if last in ABOVE or last in BELOW:
        top = last in ABOVE
        box = (0, 0, width, int(height * PLACE_SHARE)) if top else (0, int(height * (1 - PLACE_SHARE)), width, height)
        where = f"the {'top' if top else 'bottom'} of the picture (where the {thing} usually {verb})"
    elif last in CLOTHES and facts.faces:
        box = _below_face(max(facts.faces, key=lambda b: (b[2] - b[0]) * (b[3] - b[1])), width, height)
        if box is None:
            return None
        where = "below the face the face detector found, where clothes usually are, the picture"
    else:
        return None
    colours = region_colours(facts.image, box)
    if not colours:
        return None
    answer = f"Probably {colours[0].text}: {where} is {_colour_words(colours)}; the whole picture is {whole}."
    return Routed("colour", answer, True, colours)


def _below_face(face: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int, int] | None:
    """Where a person's clothes usually are: from half a face below the chin (the neck) down one and a half
    faces, and half a face wider on each side (shoulders); None when that is off the picture."""
    x0, y0, x1, y1 = face
    side, tall = x1 - x0, y1 - y0
    box = (max(0, int(x0 - side / 2)), int(y1 + tall * 0.75), min(width, int(x1 + side / 2)),
           min(height, int(y1 + tall * 2.25)))  # fmt: skip
    return box if box[3] - box[1] >= tall / 2 else None


def _background_colour(q: str, facts: Facts, background: Fact | None, whole: str) -> Routed:
    """A uniform background's colour, else the colours along the picture's edges, hedged."""
    if background is not None:
        name = background.text.removesuffix(" background")
        return Routed("colour", f"{name[0].upper()}{name[1:]}: the picture has a plain {name} background.", True,
                      [background])  # fmt: skip
    edges = edge_colours(facts.image) if facts.image is not None else []
    if not edges:
        return refuse(q, facts, "no colour was measured along the picture's edges", "colour")
    answer = f"Probably {edges[0].text}: the edges of the picture, where a background usually is, are " \
             f"{_colour_words(edges)}; the whole picture is {whole}."  # fmt: skip
    return Routed("colour", answer, True, edges)


def asks_clothes_colour(question: str) -> bool:
    """A colour question about clothes: answered from below a face, so the faces are looked for first."""
    from polymodal.tasks.grounding import words

    return bool(COLOUR_Q.search(question) and words(question) & CLOTHES)


def _colour_words(colours: list[Fact]) -> str:
    names = [f.text for f in colours]
    if colours and (colours[0].score or 0.0) >= 0.5:
        return f"mostly {names[0]}" + (f", with {_and(names[1:])}" if names[1:] else "")
    return _and(names)


def _names_thing(thing: str, subject: Subject, facts: Facts) -> bool:
    """Whether the labels (their names, synonyms, hypernyms or written descriptions) speak of ``thing``."""
    from polymodal.tasks.grounding import words

    table = class_table(facts.cache)
    wanted = words(thing)
    for label in subject.labels:
        known = set().union(*(words(term) for term in terms_of(label.text, table)))
        if label.text in table:
            known |= words(table[label.text].description)
        if wanted & known:
            return True
    return False


def sees(subject: Subject) -> str:
    """ "the image model sees an espresso" or, unsure, "the image model's best guess is a palace"."""
    if subject.sure:
        return f"the image model sees {_subject_words(subject)}"
    return f"the image model's best guess is {article(subject.labels[0].text)}"


def _subject_words(subject: Subject | None) -> str:
    if subject is None:
        return "nothing"
    return subject.phrase().split(":")[0]


# --- text in the image, titles ----------------------------------------------------------------------------------
def _read(q: str, facts: Facts) -> Routed:
    lines = facts.of(OCR)
    if not lines:
        unsure = any(e.kind == OCR for e in facts.analysis.evidence)
        why = (
            "no text was read in the image with confidence (only unclear marks)"
            if unsure
            else ("no text was found in the image (OCR read nothing)")
        )
        return refuse(q, facts, why, "text")
    shown = lines[:MAX_QUOTED_LINES]
    more = len(lines) - len(shown)
    answer = "It reads: " + " / ".join(f"“{f.text}”" for f in shown) + (f" (and {more} more lines)" if more else "")
    return Routed("text", answer + ".", True, shown)


def _title(q: str, facts: Facts) -> Routed:
    if facts.modality == "text":
        title = next((f.text.removeprefix("title ") for f in facts.of(META) if f.text.startswith("title ")), None)
        if title:
            return Routed("title", f"“{title}” (the document's title).", True, facts.of(META))
        from polymodal.tasks.summarize import sentences_of

        first = next(iter(sentences_of(_document(facts), headings=True)), "")
        if not first:
            return refuse(q, facts, "the document has no title and no text", "title")
        return Routed("title", f"It has no title of its own; it opens with “{first}”.", True, facts.of(PASSAGE)[:1])
    lines = facts.of(OCR)
    if not lines:
        return refuse(q, facts, "no text was read in the image with confidence", "title")
    line, why = _title_line(lines, facts)
    return Routed("title", f"Probably “{line.text}”: {why}.", True, [line])


def _title_line(lines: list[Fact], facts: Facts) -> tuple[Fact, str]:
    """The first line, unless a clearly larger one (a taller box) is the title; lines set on end (a chart's
    y-axis label: taller than wide) and lines in the lower half are not titles."""
    boxes = {e.text: e.box for e in facts.analysis.evidence if e.kind == OCR and e.box}
    page_height = max((_extent(box)[3] for box in boxes.values()), default=0.0)
    candidates = [f for f in lines if _level(boxes.get(f.text), page_height)] or lines[:1]
    heights = {f.text: _height(boxes.get(f.text)) for f in candidates}
    tallest = max(candidates, key=lambda f: heights.get(f.text, 0.0))
    first = candidates[0]
    if tallest is first or heights.get(first.text, 0.0) >= 0.85 * heights.get(tallest.text, 0.0):
        size = " and largest" if tallest is first and len(lines) > 1 else ""
        return first, f"the first{size} line of text in it"
    return tallest, "the largest line of text in it"


def _level(box: Any, page_height: float) -> bool:
    """A horizontal line in the upper half of the text."""
    if not box:
        return True
    x0, y0, x1, y1 = _extent(box)
    return (x1 - x0) >= (y1 - y0) and (page_height <= 0 or y0 <= page_height / 2)


def _extent(box: Any) -> tuple[float, float, float, float]:
    try:
        xs, ys = [float(p[0]) for p in box], [float(p[1]) for p in box]
    except (TypeError, IndexError, ValueError):
        return 0.0, 0.0, 0.0, 0.0
    return min(xs), min(ys), max(xs), max(ys)


def _height(box: Any) -> float:
    x0, y0, x1, y1 = _extent(box)
    return y1 - y0


# --- charts -------------------------------------------------------------------------------------------------
BARS_Q = re.compile(r"\bhow many (bars|columns|categories|groups|species|kinds|classes|\w+ are (shown|compared))", _Q)
EXTREME_Q = re.compile(
    r"\b(tallest|highest|largest|biggest|longest|top|shortest|lowest|smallest)\s+"
    r"(bar|column|value|mean|average|number|count|score|total)",
    _Q,
)
ORDINAL_Q = re.compile(r"\b(first|last|leftmost|rightmost)\s+(bar|column|category)", _Q)
CHART_KIND_Q = re.compile(r"\bwhat (kind|type|sort) of (picture|image|chart|graph|graphic)\b", _Q)
IS_CHART_KIND_Q = re.compile(r"^\s*is (this|it|that) an? (?P<kind>line|bar|column)\s*(chart|graph|plot|diagram)\b", _Q)
MARKS_WORDS = {"bars": ("a bar chart", "its data is drawn as solid bars"),
               "lines": ("a line chart", "its data is drawn as thin lines")}  # fmt: skip


def _chart_answer(q: str, facts: Facts) -> Routed | None:
    """Answers read off a chart's layout: title, bars, extremes, a category's value; None for other questions
    or when the picture is no chart."""
    chart = chart_layout(facts)
    if chart is None:
        return None
    labels = chart["x_axis"]["labels"]
    values = [v for v in chart["values"] if v.get("value") is not None]
    title = chart.get("title")
    evidence = [f for f in facts.of(OCR) if f.text == title] or facts.of(OCR)[:1]
    categorical = len(labels) >= 2 and not all(re.fullmatch(r"[\d.,%]+", label) for label in labels)
    if TITLE_Q.search(q) and title and not OTHER_TITLE_Q.search(q):
        return Routed("title", f"“{title}” (the chart's title).", True, evidence)
    if CHART_KIND_Q.search(q) or IS_CHART_KIND_Q.search(q):
        return _chart_kind(q, facts, chart, evidence)
    if BARS_Q.search(q) and categorical:
        return Routed("count", f"{len(labels)}: {_and(labels)} (the labels along the x axis).", True, evidence)
    extreme, ordinal = EXTREME_Q.search(q), ORDINAL_Q.search(q)
    if extreme and values:
        low = extreme.group(1).lower() in ("shortest", "lowest", "smallest")
        value = (min if low else max)(values, key=lambda v: v["value"])
        where = f" ({value['category']})" if value.get("category") else ""
        return Routed("chart", f"{value['text']}{where}: the {'lowest' if low else 'highest'} value written on "
                      f"the chart.", True, evidence)  # fmt: skip
    if ordinal and categorical:
        label = labels[-1] if ordinal.group(1).lower() in ("last", "rightmost") else labels[0]
        return Routed("chart", f"{label} (the {ordinal.group(1).lower()} label along the x axis).", True, evidence)
    named = [v for v in values if v.get("category") and re.search(rf"\b{re.escape(v['category'])}\b", q, _Q)]
    if named:
        shown = "; ".join(f"{v['text']} for {v['category']}" for v in named)
        return Routed("chart", f"{shown} (the value written on the chart).", True, evidence)
    return None


def _chart_kind(q: str, facts: Facts, chart: dict[str, Any], evidence: list[Fact]) -> Routed:
    """What kind of chart it is (a bar or a line chart, from its pixels) or "is this a line chart?": yes / no."""
    from polymodal.perceivers.visual import chart_marks

    marks = chart_marks(facts.image)
    asked = IS_CHART_KIND_Q.search(q)
    if asked is None:
        title, labels = chart.get("title"), chart["x_axis"]["labels"]
        what = MARKS_WORDS[marks][0] if marks else "a chart"
        what = f"{what[0].upper()}{what[1:]}" + (f" titled “{title}”" if title else "")
        axis = f", with {_and(labels)} along its x axis" if labels else ""
        return Routed("picture", f"{what}{axis}.", True, evidence)
    if marks is None:
        return refuse(q, facts, "its pixels do not show whether the data is drawn as bars or lines", "yes")
    kind, why = MARKS_WORDS[marks]
    asked_kind = asked.group("kind").lower()
    same = asked_kind in ("bar", "column") if marks == "bars" else asked_kind == "line"
    return Routed("yes" if same else "no", f"{'Yes' if same else 'No'}, {kind}: {why}.", True, evidence)


def chart_layout(facts: Facts) -> dict[str, Any] | None:
    """The layout of an image's text when it is a chart (:func:`polymodal.tasks.read.layout`), else None."""
    boxed = [e for e in facts.analysis.evidence if e.kind == OCR and e.box]
    if not boxed or facts.image is None:
        return None
    from polymodal.tasks import read

    width = facts.analysis.meta.get("width") or facts.image.width
    scale = facts.image.width / width if width else 1.0  # boxes are in full-size pixels; the image may be a draft
    lines = [read.Line(e.text, e.score or 0.0, [[x * scale, y * scale] for x, y in e.box]) for e in boxed]
    try:
        layout = read.layout(lines, facts.image)
    except (ValueError, TypeError, IndexError):
        return None  # boxes the layout cannot use (a malformed reading): no chart answer
    return layout if layout.get("kind") == "chart" else None


# --- what is said -------------------------------------------------------------------------------------------
def _first(q: str, facts: Facts) -> Routed:
    last = bool(re.search(r"\b(last|final|closing)\b|最后", q, _Q))
    which = "last" if last else "first"
    segments = facts.of(TRANSCRIPT)
    if segments:
        run = _sentence_run(segments[::-1] if last else segments, last)
        text = " ".join(f.text for f in run)
        start, end = run[0].start or 0.0, run[-1].end or run[-1].start or 0.0
        return Routed("said", f"The {which} sentence ({clock(start)}–{clock(end)}): “{text}”", True, run)
    if facts.modality == "text":
        from polymodal.tasks.summarize import sentences_of

        sentences = sentences_of(_document(facts))
        if sentences:
            return Routed("said", f"The {which} sentence: “{sentences[-1 if last else 0]}”", True,
                          facts.of(PASSAGE)[-1:] if last else facts.of(PASSAGE)[:1])  # fmt: skip
    lines = facts.of(OCR)
    if lines:
        line = lines[-1 if last else 0]
        return Routed("text", f"The {which} line of text reads “{line.text}”.", True, [line])
    return refuse(q, facts, "no speech was recognised" if facts.modality != "text" else "the text is empty", "said")


def _sentence_run(segments: list[Fact], backwards: bool) -> list[Fact]:
    """Segments from the start (or the end) up to where a sentence ends, in time order."""
    ends = re.compile(r"[.!?。！？…]”?$")
    run: list[Fact] = []
    for segment in segments:
        if backwards and run and ends.search(segment.text.strip()):
            break
        run.append(segment)
        if not backwards and ends.search(segment.text.strip()):
            break
    return sorted(run, key=lambda f: f.start or 0.0)


def _next_to(q: str, topic: str, which: str, facts: Facts) -> Routed | None:
    """What is said right after (or before) the segment that says ``topic``."""
    segments = facts.of(TRANSCRIPT)
    wanted = _topic_stems(topic)
    if not segments or not wanted:
        return None
    scored = [(len(wanted & _stems(f.text)), i) for i, f in enumerate(segments)]
    best, index = max(scored)
    if best < max(1, math.ceil(len(wanted) / 2)):
        return None
    other = index + (1 if which == "after" else -1)
    if not 0 <= other < len(segments):
        edge = "last" if which == "after" else "first"
        answer = f"Nothing: “{segments[index].text}” is the {edge} thing said."
        return Routed("said", answer, True, [segments[index]])
    answer = f"{which.capitalize()} “{segments[index].text}”, the speaker says {_timed(segments[other])}."
    return Routed("said", answer, True, [segments[other], segments[index]])


def _said(q: str, facts: Facts) -> Routed:
    segments = facts.of(TRANSCRIPT)
    if not segments:
        return refuse(q, facts, "no speech was recognised in it", "said")
    shown = segments[:MAX_QUOTED_LINES]
    more = "" if len(shown) == len(segments) else f" … ({len(segments) - len(shown)} more segments)"
    return Routed("said", "It says: " + " ".join(_timed(f) for f in shown) + more, True, shown)


def _about(q: str, topic: str, facts: Facts) -> Routed | None:
    """Every segment (or document sentence) about ``topic``; None when the words never occur (an LLM, or the
    closest evidence by meaning, may still answer)."""
    wanted = _topic_stems(topic)
    if not wanted:
        return None
    segments = facts.of(TRANSCRIPT)
    if segments:
        found = [f for f in segments if _matches(f.text, wanted)]
        if not found:
            return None
        shown = found[:MAX_MATCHES]
        who = "the speaker says" if facts.modality != "text" else "it says"
        answer = f"About {topic}, {who}: " + "; ".join(_timed(f) for f in shown)
        return Routed("said", answer + ("; …" if len(found) > len(shown) else "."), True, shown)
    if facts.modality == "text":
        from polymodal.tasks.summarize import sentences_of

        found_text = [s for s in sentences_of(_document(facts)) if _matches(s, wanted)]
        if not found_text:
            return None
        passages = [f for f in facts.of(PASSAGE) if _matches(f.text, wanted)]
        quoted = "; ".join(f"“{s}”" for s in found_text[:MAX_MATCHES])
        return Routed("said", f"About {topic}, the document says: {quoted}.", True, passages[:MAX_MATCHES])
    return None


def _when(q: str, facts: Facts) -> Routed | None:
    segments = facts.of(TRANSCRIPT)
    if not segments:
        return refuse(q, facts, "no speech was recognised in it", "when")
    quoted = re.findall(r"[“\"']([^”\"']{2,200})[”\"']", q)
    wanted = _topic_stems(" ".join(quoted)) if quoted else _topic_stems(q, drop=QUESTION_WORDS)
    if not wanted:
        return None
    scored = [(len(wanted & _stems(f.text)), f) for f in segments]
    best = max(score for score, _ in scored)
    if best < max(1, math.ceil(len(wanted) / 2)):
        return None
    found = [f for score, f in scored if score == best][:MAX_MATCHES]
    times = [_said_at(f, wanted, facts) for f in found]
    return Routed("when", f"It is said at {_and(times)}.", True, found)


def _said_at(fact: Fact, wanted: set[str], facts: Facts) -> str:
    """ "0:08–0:10 (“Fail better.”)"; in a long segment with word timings, the time of the first word asked
    about: "0:10 (in “...”, 0:01–0:12)". (Estimating it from where the word is in the text missed by seconds.)"""
    start, end = fact.start or 0.0, fact.end or fact.start or 0.0
    whole = f"{clock(start)}–{clock(end)} (“{fact.text}”)"
    words = fact.text.split()
    index = next((i for i, w in enumerate(words) if _stems(w) & wanted), 0)
    if index == 0:
        return whole
    same = [e for e in facts.analysis.evidence if e.kind == TRANSCRIPT and (e.text, e.start) == (fact.text, fact.start)]
    timings = same[0].box if same else None
    if not timings or len(timings) != len(words) or end - start <= LONG_SEGMENT:
        return whole
    return f"{clock(float(timings[index][0]))} (in “{fact.text}”, {clock(start)}–{clock(end)})"


def _count(q: str, facts: Facts, image: bool) -> Routed | None:
    if COUNT_SAID_Q.search(q) and facts.of(TRANSCRIPT):
        topic = re.sub(r"^.*?\b(say|says|said|mention|mentions|mentioned|repeat|use)\b", "", q, flags=_Q)
        wanted = _topic_stems(topic, drop=QUESTION_WORDS)
        if not wanted:
            return None
        hits = [(f, sum(stem(w) in wanted for w in _words(f.text))) for f in facts.of(TRANSCRIPT)]
        hits = [(f, n) for f, n in hits if n]
        total = sum(n for _, n in hits)
        what = " ".join(sorted(wanted))
        if not total:
            return Routed("count", f"Never: no word like “{what}” is in the transcript.", True, [])
        where = "; ".join(_timed(f) for f, _ in hits[:MAX_MATCHES])
        return Routed("count", f"{total} time{'s' if total > 1 else ''}: {where}", True, [f for f, _ in hits])
    if image and NUMBERS_Q.search(q):
        read_well = [e for e in facts.analysis.evidence if e.kind == OCR and (e.score or 0.0) >= OCR_NUMBERS_FLOOR]
        numbers = [e for e in read_well if re.fullmatch(r"\d+", e.text)]
        if numbers:
            read = _and(sorted((e.text for e in numbers), key=int))
            return Routed("count", f"{len(numbers)}: {read} (the numbers read in it).", True,
                          [Fact(OCR, e.text, e.score) for e in numbers])  # fmt: skip
    asks_people = PEOPLE_Q.search(q)
    people = facts.of(PEOPLE)
    if asks_people and people:
        count = int(people[0].score or 0)
        if not count:
            return Routed("count", "No one, as far as the face detector can tell: it found no face.", True, people)
        said = "1 person" if count == 1 else f"{count} people"
        return Routed("count", f"{said} (the face detector found {count} face{'s' if count > 1 else ''}).",
                      True, people)  # fmt: skip
    if asks_people and (facts.modality != "audio" or re.search(r"speakers?|voices?|people", q, _Q)):
        what = "speakers or voices" if facts.modality == "audio" else "people or faces"
        return refuse(q, facts, f"no model here detects or counts {what} yet", "count")
    if facts.of(TRANSCRIPT, PASSAGE) or (image and facts.of(OCR)):
        return None  # what is said or written may give the number ("enter the first three letters")
    if image or facts.modality == "audio":
        return refuse(q, facts, "the models here name what they see or hear but do not count things", "count")
    return None


NUMBER_WORDS = {word: n for n, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split())}  # fmt: skip


def digits(text: str) -> str:
    """``text`` with the numbers zero to twelve written as digits ("four legs" -> "4 legs")."""
    return re.sub(r"\b(" + "|".join(NUMBER_WORDS) + r")\b", lambda m: str(NUMBER_WORDS[m.group().lower()]), text,
                  flags=_Q)  # fmt: skip


def topic_of(question: str) -> str:
    """What a question is about, to search a collection with: "What does the speaker say about times?" ->
    "times" (the words that phrase a question about a recording match every recording)."""
    from polymodal.ranking import STOPWORDS

    words = re.findall(r"[\w'-]+", question)
    kept = [w for w in words if w.lower() not in QUESTION_WORDS and w.lower() not in STOPWORDS]
    return " ".join(kept) or question


def _timed(fact: Fact) -> str:
    start, end = fact.start or 0.0, fact.end or fact.start or 0.0
    return f"“{fact.text}” ({clock(start)}–{clock(end)})"


def _topic_stems(topic: str, drop: frozenset[str] = frozenset()) -> set[str]:
    from polymodal.tasks.summarize import tokens

    found = [t for t in tokens(topic) if t not in drop]
    return {stem(t) for t in found}


def _stems(text: str) -> set[str]:
    return {stem(w) for w in _words(text)}


def _words(text: str) -> list[str]:
    from polymodal.tasks.summarize import tokens

    return tokens(text)


def _matches(text: str, wanted: set[str]) -> bool:
    from polymodal.media.text import has_cjk

    if any(has_cjk(w) for w in wanted):
        return any(w in text for w in wanted)
    return bool(wanted & _stems(text))


def _document(facts: Facts) -> str:
    return "\n\n".join(f.text for f in facts.of(PASSAGE))


def _language(facts: Facts) -> str:
    spoken = next((f.text for f in facts.of(META) if f.text.startswith("spoken language ")), "")
    return spoken.removeprefix("spoken language ").split(" (")[0]


# --- refusing, saying what is known ---------------------------------------------------------------------------
def refuse(question: str, facts: Facts, reason: str, kind: str = "none") -> Routed:
    """ "I can't tell <what was asked>; <what is known>." with ``reason`` kept apart."""
    return Routed(kind, refusal(question, facts), False, known_facts(facts), reason)


def refusal(question: str, facts: Facts) -> str:
    said = known(facts)
    return f"{CANT_TELL} {embedded(question)}; {said}" + ("" if said.endswith((".”", "!”", "?”")) else ".")


_WH_PHRASE = r"(?P<wh>(what|which|who|whom|whose|where|when|why|how)(\s+\w+){0,2}?)"
_SUBJECT = (
    r"(?P<subject>(it|there|they|he|she|we|you)\b|(this|that)(?!\s+\w+(?<!ed)(?<!en)(?<!ing)\b)"
    r"|(the|this|that|these|those|his|her|its|their|a|an)\s+\w+('s\s+\w+)?"
    r"(\s+of\s+((the|this|that|a|an|its)\s+)?\w+)?)"
)
_BE_QUESTION = re.compile(rf"^{_WH_PHRASE}\s+(?P<be>is|are|was|were)\s+{_SUBJECT}(?P<rest>.*)$", _Q)
_DO_QUESTION = re.compile(rf"^{_WH_PHRASE}\s+(?P<do>does|do|did)\s+{_SUBJECT}\s+(?P<verb>\w+)(?P<rest>.*)$", _Q)
_WH = re.compile(r"^(who|whose|where|when|why|how|what|which)\b", _Q)
_PAST = {"say": "said", "mean": "meant", "write": "wrote", "tell": "told", "see": "saw", "do": "did", "go": "went",
         "make": "made", "hear": "heard", "have": "had", "read": "read", "show": "showed", "get": "got"}  # fmt: skip


_CLAUSE_STARTS = frozenset("of in on at for to from with by about into under over near behind like than".split())


def _noun_phrase(subject: str, rest: list[str], most: int = 3) -> tuple[str, list[str]]:
    """The subject grown by the following words up to a preposition or a participle ("this phone" + "line for"
    -> "this phone line", "for"), at most ``most`` words."""
    words = subject.split()
    while rest and len(words) < most + 1 and rest[0].lower() not in _CLAUSE_STARTS:
        if re.search(r"(ed|en|ing)$", rest[0]) and len(rest[0]) > 4:
            break
        words.append(rest.pop(0))
    return " ".join(words), rest


def embedded(question: str) -> str:
    """The question as a clause after "I can't tell": "who owns this cup", "what colour the car is", "what the
    sign says"; "from this" for a yes/no question."""
    q = question.strip().rstrip("?？ ").strip()
    if not q or not _WH.match(q) or not q.isascii():
        return "from this"
    q = q[0].lower() + q[1:]
    match = _BE_QUESTION.match(q)
    if match:
        subject, rest = _noun_phrase(match.group("subject"), match.group("rest").split())
        return " ".join([match.group("wh"), subject, match.group("be"), *rest])
    match = _DO_QUESTION.match(q)
    if match:
        verb = match.group("verb").lower()
        if match.group("do").lower() == "did":
            verb = _PAST.get(verb, verb + "d" if verb.endswith("e") else verb + "ed")
        elif match.group("do").lower() == "does":
            verb = "has" if verb == "have" else verb + ("es" if verb.endswith(("s", "sh", "ch", "x", "o")) else "s")
        return f"{match.group('wh')} {match.group('subject')} {verb}{match.group('rest')}"
    return q


def known(facts: Facts) -> str:
    """What the evidence does say about the file, in a clause: "the image model sees an espresso"."""
    if facts.modality in ("image", "video"):
        parts = []
        subject = main_subject(facts)
        if subject is not None and subject.score >= MIN_GUESS:
            parts.append(sees(subject))
        lines = facts.of(OCR)
        if lines:
            parts.append(f"the text in it begins “{lines[0].text}”")
        colours = [f for f in facts.of(COLOUR) if not f.text.endswith("background")]
        if not parts and colours:
            parts.append(f"the picture is {_colour_words(colours)}")
        speech = facts.of(TRANSCRIPT)
        if speech:
            parts.append(f"it says “{speech[0].text}”")
        return _and(parts) if parts else "the models recognise nothing in it"
    if facts.modality == "audio":
        speech = facts.of(TRANSCRIPT)
        if speech:
            return f"the recording is speech, starting “{speech[0].text}”"
        sure = [f for f in facts.of(TAG) if f.text != "Silence" and f.sure]
        tags = [f.text.lower() for f in ([f for f in sure if f.text not in BROAD_TAGS] or sure)][:3]
        return f"the sound model hears {_and(tags)}" if tags else "no speech and no clear sound were recognised"
    title = next((f.text.removeprefix("title ") for f in facts.of(META) if f.text.startswith("title ")), None)
    if title:
        return f"the document is titled “{title}”"
    from polymodal.tasks.summarize import keywords

    words = keywords(_document(facts), 4)
    return f"the document is about {_and(words)}" if words else "the document has no text"


def known_facts(facts: Facts) -> list[Fact]:
    subject = main_subject(facts) if facts.modality in ("image", "video") else None
    out = list(subject.labels) if subject is not None and subject.score >= MIN_GUESS else []
    return out + facts.of(OCR)[:1] + facts.of(TRANSCRIPT)[:1]


def _and(items: list[str]) -> str:
    if not items:
        return ""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _or(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]
