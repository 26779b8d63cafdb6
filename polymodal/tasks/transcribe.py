"""Speech to text with times: Whisper (language detected or forced), silence skipped by voice activity detection.

Long recordings are decoded and transcribed in windows of ``WINDOW_SECONDS`` (10 min): each window is cut
in a pause found by the voice activity detector in its last ``CUT_SEARCH_SECONDS`` (so no word is cut in
two), and the rest carries over to the next window. Memory is bounded by one window of audio (16 kHz
float32: 38 MB for 10 min, plus at most 30 s carried over) and Whisper's features for it (~20 MB), whatever
the file's length; the model itself takes ~330 MB. Once a window has speech, its detected language is kept
for the rest of the file (pass ``language`` to force one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.analysis import Analyzer
from polymodal.errors import UsageError
from polymodal.media.audio import iter_audio
from polymodal.models.speech import Segment, Word

WINDOW_SECONDS = 600.0
CUT_SEARCH_SECONDS = 30.0
FORMATS = ("txt", "srt", "vtt", "json")
_SAMPLE_RATE = 16000
SUBTITLE_BEAM = 5  # subtitles are read: the better beam search, whatever the indexing setting


@dataclass
class Transcription:
    source: str
    language: str
    language_probability: float
    duration: float
    segments: list[Segment]
    model: str = ""

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "language": self.language,
            "language_probability": round(self.language_probability, 3),
            "duration": round(self.duration, 2),
            "model": self.model,
            "segments": [_segment_dict(s) for s in self.segments],
        }

    def to_text(self) -> str:
        head = f"language: {self.language} (p={self.language_probability:.2f}), {self.duration:.1f} s"
        lines = [head] + [
            f"[{_clock(s.start)} – {_clock(s.end)}] {s.text}  ({s.confidence:.2f})" for s in self.segments
        ]
        return "\n".join(lines)

    def render(self, fmt: str) -> str:
        """The transcript as ``txt`` (one segment a line), ``srt``, ``vtt`` or ``json``."""
        if fmt == "txt":
            return "".join(f"{s.text}\n" for s in self.segments)
        if fmt == "srt":
            return to_srt(self.segments)
        if fmt == "vtt":
            return to_vtt(self.segments)
        if fmt == "json":
            return json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n"
        raise UsageError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def transcribe(
    analyzer: Analyzer,
    source: Path,
    language: str | None = None,
    words: bool = False,
    window_seconds: float = WINDOW_SECONDS,
) -> Transcription:
    """Segments with times (seconds from the start of the file), per-segment confidence, and word times
    when ``words``; ``language`` ("en", "zh", ...) forces the language instead of detecting it."""
    speech = analyzer.model("speech")
    segments: list[Segment] = []
    detected, probability = language, 1.0 if language else 0.0
    total = 0
    for offset, audio in speech_windows(analyzer, source, window_seconds):
        result = speech.transcribe(audio, language=detected, word_timestamps=words, beam_size=SUBTITLE_BEAM)
        if result.segments and not detected:
            detected, probability = result.language, result.language_probability
        segments += [_shifted(s, offset / _SAMPLE_RATE) for s in result.segments]
        total = offset + audio.size
    return Transcription(str(source), detected or "", probability, total / _SAMPLE_RATE, segments, speech.model_id)


def to_srt(segments: list[Segment]) -> str:
    cues = _cues(segments)
    return "".join(
        f"{n}\n{_timestamp(start, ',')} --> {_timestamp(end, ',')}\n{text}\n\n"
        for n, (start, end, text) in enumerate(cues, 1)
    )


def to_vtt(segments: list[Segment]) -> str:
    cues = _cues(segments)
    body = "".join(
        f"{_timestamp(start, '.')} --> {_timestamp(end, '.')}\n{_vtt_text(text)}\n\n" for start, end, text in cues
    )
    return "WEBVTT\n\n" + body


def speech_windows(
    analyzer: Analyzer, source: Path, window_seconds: float = WINDOW_SECONDS, notes: list[str] | None = None
):  # -> Iterator[tuple[int, np.ndarray]]
    """(offset in samples, samples) windows: ``window_seconds`` of new audio after what the previous window
    left over (at most ``CUT_SEARCH_SECONDS``), each cut in a pause. Also how a video's track is analyzed.
    ``notes`` is told what decoding noticed (a truncated or damaged file)."""
    window = int(window_seconds * _SAMPLE_RATE)
    carry = np.zeros(0, np.float32)
    offset = 0
    for block in iter_audio(source, window_seconds, _SAMPLE_RATE, analyzer.settings.max_audio_seconds, notes):
        audio = np.concatenate([carry, block]) if carry.size else block
        if audio.size < window:  # the last, short block
            carry = audio
            continue
        cut = _pause_before(analyzer, audio, audio.size)
        yield offset, audio[:cut]
        carry, offset = audio[cut:], offset + cut
    if carry.size:
        yield offset, carry


def _pause_before(analyzer: Analyzer, audio: np.ndarray, end: int) -> int:
    """A sample index at or before ``end`` in a pause (the middle of the last gap between speech regions
    in the final ``CUT_SEARCH_SECONDS``); ``end`` itself when the speaker never stops."""
    search = int(CUT_SEARCH_SECONDS * _SAMPLE_RATE)
    start = max(0, end - search)
    regions = analyzer.model("vad").speech_regions(audio[start:end])
    if not regions:
        return end
    gaps = [(a_end, b_start) for (_, a_end), (b_start, _) in zip(regions, regions[1:], strict=False)]
    if regions[-1][1] < (end - start) / _SAMPLE_RATE - 0.3:
        gaps.append((regions[-1][1], (end - start) / _SAMPLE_RATE))
    if not gaps:
        return end
    gap_start, gap_end = gaps[-1]
    return start + int((gap_start + gap_end) / 2 * _SAMPLE_RATE)


def _shifted(segment: Segment, seconds: float) -> Segment:
    if not seconds:
        return segment
    words = [replace(w, start=w.start + seconds, end=w.end + seconds) for w in segment.words]
    return replace(segment, start=segment.start + seconds, end=segment.end + seconds, words=words)


def _cues(segments: list[Segment]) -> list[tuple[float, float, str]]:
    """Subtitle cues: in order, never overlapping, never empty, at least 10 ms long."""
    cues: list[tuple[float, float, str]] = []
    previous_end = 0.0
    for segment in sorted(segments, key=lambda s: s.start):
        text = " ".join(segment.text.split())
        if not text:
            continue
        start = max(segment.start, previous_end)
        end = max(segment.end, start + 0.01)
        cues.append((start, end, text))
        previous_end = end
    return cues


def _timestamp(seconds: float, decimal: str) -> str:
    millis = int(round(max(0.0, seconds) * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def _vtt_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _segment_dict(segment: Segment) -> dict[str, Any]:
    out: dict[str, Any] = {
        "start": round(segment.start, 2),
        "end": round(segment.end, 2),
        "text": segment.text,
        "confidence": round(segment.confidence, 3),
        "no_speech_prob": round(segment.no_speech_prob, 3),
    }
    if segment.words:
        out["words"] = [_word_dict(w) for w in segment.words]
    return out


def _word_dict(word: Word) -> dict[str, Any]:
    return {
        "start": round(word.start, 2),
        "end": round(word.end, 2),
        "word": word.text,
        "p": round(word.probability, 3),
    }


def _clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}:{secs:04.1f}"
