"""Decode any audio (or the audio track of a video) to mono float32 PCM with PyAV's bundled FFmpeg."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from polymodal.media.errors import MediaError

if TYPE_CHECKING:
    import av.container

SAMPLE_RATE = 16000
AudioSource = Path | str | bytes | bytearray | memoryview | IO[bytes]


def decode_audio(
    source: AudioSource, sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None
) -> np.ndarray:
    """Mono float32 samples in [-1, 1] at ``sample_rate``.

    Packets that fail to decode are skipped (real files can have a corrupt first packet); a file that
    yields no audio at all, has no audio stream, or runs past ``max_seconds`` raises :class:`MediaError`.
    """
    # One second of slack: decoders pad the last frame, and headers round.
    limit = None if max_seconds is None else int((max_seconds + 1) * sample_rate)
    with _open(source) as container:
        stream = _audio_stream(container)
        if max_seconds is not None and _declared_seconds(container, stream) > max_seconds + 1:
            raise MediaError(f"longer than the {_human_seconds(max_seconds)} limit")
        chunks: list[np.ndarray] = []
        total = 0
        for chunk in _decode(container, stream, sample_rate):
            chunks.append(chunk)
            total += chunk.size
            if limit is not None and total > limit:
                raise MediaError(f"longer than the {_human_seconds(max_seconds or 0)} limit")
    if total == 0:
        raise MediaError("could not decode any audio (corrupt or truncated?)")
    samples = np.concatenate(chunks).astype(np.float32, copy=False)
    np.clip(samples, -1.0, 1.0, out=samples)
    return samples


def iter_audio(
    source: AudioSource,
    block_seconds: float,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
) -> Iterator[np.ndarray]:
    """Like :func:`decode_audio`, in consecutive blocks of ``block_seconds`` (the last one shorter).

    Memory stays bounded by one block plus one decoded frame, however long the file: long recordings are
    transcribed and tagged block by block (16 kHz float32 is 3.8 MB a minute).
    """
    block = max(1, int(block_seconds * sample_rate))
    limit = None if max_seconds is None else int((max_seconds + 1) * sample_rate)
    with _open(source) as container:
        stream = _audio_stream(container)
        if max_seconds is not None and _declared_seconds(container, stream) > max_seconds + 1:
            raise MediaError(f"longer than the {_human_seconds(max_seconds)} limit")
        pending: list[np.ndarray] = []
        held = total = 0
        for chunk in _decode(container, stream, sample_rate):
            pending.append(chunk)
            held += chunk.size
            total += chunk.size
            if limit is not None and total > limit:
                raise MediaError(f"longer than the {_human_seconds(max_seconds or 0)} limit")
            while held >= block:
                joined = np.concatenate(pending)
                yield np.clip(joined[:block], -1.0, 1.0).astype(np.float32, copy=False)
                pending, held = [joined[block:]], joined.size - block
    if total == 0:
        raise MediaError("could not decode any audio (corrupt or truncated?)")
    if held:
        yield np.clip(np.concatenate(pending), -1.0, 1.0).astype(np.float32, copy=False)


def audio_duration(source: AudioSource) -> float:
    """Duration in seconds from the container's headers, or by reading packets (not decoding) if absent."""
    with _open(source) as container:
        stream = _audio_stream(container)
        declared = _declared_seconds(container, stream)
        if declared > 0:
            return declared
        return _packet_seconds(container, stream)


def _open(source: AudioSource) -> av.container.InputContainer:
    import av

    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise MediaError("empty file")
        target: Any = io.BytesIO(bytes(source))
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_file() and path.stat().st_size == 0:
            raise MediaError("empty file")
        target = str(path)
    else:
        target = source
    try:
        return av.open(target, mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        if isinstance(exc, OSError):  # missing file, permission denied: not the content's fault
            raise
        raise MediaError(f"not a readable audio or video file ({_reason(exc)})") from exc


def _audio_stream(container: av.container.InputContainer) -> Any:
    if not container.streams.audio:
        raise MediaError("no audio stream")
    return container.streams.audio[0]


def _decode(container: av.container.InputContainer, stream: Any, sample_rate: int) -> Iterator[np.ndarray]:
    import av

    resampler = _Resampler(sample_rate)
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.FFmpegError:
            break  # truncated or damaged container: keep what was decoded so far
        try:
            frames = packet.decode()
        except av.FFmpegError:
            continue  # one bad packet; the decoder usually recovers at the next one
        for frame in frames:
            yield from resampler.push(frame)
    yield from resampler.flush()


class _Resampler:
    """An ``av.AudioResampler`` that starts over when the input format changes mid-stream."""

    def __init__(self, rate: int):
        self.rate = rate
        self._inner: Any = None

    def push(self, frame: Any) -> Iterator[np.ndarray]:
        frame.pts = None  # damaged streams have pts jumps that are irrelevant to a sample dump
        if self._inner is None:
            self._inner = self._new()
        try:
            out = self._inner.resample(frame)
        except ValueError:  # "Frame does not match AudioResampler setup"
            yield from self.flush()
            self._inner = self._new()
            out = self._inner.resample(frame)
        yield from _arrays(out)

    def flush(self) -> Iterator[np.ndarray]:
        if self._inner is not None:
            yield from _arrays(self._inner.resample(None))
            self._inner = None

    def _new(self) -> Any:
        import av

        return av.AudioResampler(format="flt", layout="mono", rate=self.rate)


def _arrays(frames: list[Any]) -> Iterator[np.ndarray]:
    for frame in frames:
        yield frame.to_ndarray().reshape(-1)


def _declared_seconds(container: av.container.InputContainer, stream: Any) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return 0.0


def _packet_seconds(container: av.container.InputContainer, stream: Any) -> float:
    import av

    total = 0
    try:
        for packet in container.demux(stream):
            total += packet.duration or 0
    except av.FFmpegError:
        pass
    return float(total * stream.time_base) if stream.time_base else 0.0


def _human_seconds(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[0].strip().lower() or type(exc).__name__
