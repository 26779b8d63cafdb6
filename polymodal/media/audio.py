"""Decode any audio (or the audio track of a video) to mono float32 PCM with PyAV's bundled FFmpeg.

Headers are not trusted: a sample rate or channel count outside what recordings use is refused, and so is a
file that decodes to far more audio than its size can hold (a 7 KB WAV that says 1 Hz is an hour at 16 kHz).
A truncated or damaged file gives what could be decoded, and a note saying so.
"""

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
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 768_000
MAX_CHANNELS = 64
# No codec, not even silent FLAC or Opus with DTX (~100 bytes a second), stores a second of audio in fewer
# bytes than this: a file that decodes to more is a crafted or broken header. Short files get a minute.
MIN_BYTES_PER_SECOND = 16
ALWAYS_ALLOWED_SECONDS = 60.0


def decode_audio(
    source: AudioSource,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
    notes: list[str] | None = None,
) -> np.ndarray:
    """Mono float32 samples in [-1, 1] at ``sample_rate``.

    Packets that fail to decode are skipped (real files can have a corrupt first packet), and a truncated
    file gives what it holds; ``notes`` (if given) is told about either. A file that yields no audio at all,
    has no audio stream, declares an absurd format, or runs past ``max_seconds`` (or far past what its size
    can hold) raises :class:`MediaError`.
    """
    with _open(source) as container:
        stream = _audio_stream(container)
        budget = _Budget(source, container, stream, sample_rate, max_seconds)
        progress = _Progress()
        chunks: list[np.ndarray] = []
        for chunk in _decode(container, stream, sample_rate, progress):
            chunks.append(chunk)
            budget.spend(chunk.size)
        progress.check_end(source, container)
    if budget.total == 0:
        raise MediaError(budget.why_nothing())
    progress.report(notes, budget.total / sample_rate, budget.declared)
    samples = np.concatenate(chunks).astype(np.float32, copy=False)
    np.clip(samples, -1.0, 1.0, out=samples)
    return samples


def iter_audio(
    source: AudioSource,
    block_seconds: float,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
    notes: list[str] | None = None,
) -> Iterator[np.ndarray]:
    """Like :func:`decode_audio`, in consecutive blocks of ``block_seconds`` (the last one shorter).

    Memory stays bounded by one block plus one decoded frame, however long the file: long recordings are
    transcribed and tagged block by block (16 kHz float32 is 3.8 MB a minute).
    """
    block = max(1, int(block_seconds * sample_rate))
    with _open(source) as container:
        stream = _audio_stream(container)
        budget = _Budget(source, container, stream, sample_rate, max_seconds)
        progress = _Progress()
        pending: list[np.ndarray] = []
        held = 0
        for chunk in _decode(container, stream, sample_rate, progress):
            pending.append(chunk)
            held += chunk.size
            budget.spend(chunk.size)
            while held >= block:
                joined = np.concatenate(pending)
                yield np.clip(joined[:block], -1.0, 1.0).astype(np.float32, copy=False)
                pending, held = [joined[block:]], joined.size - block
        progress.check_end(source, container)
    if budget.total == 0:
        raise MediaError(budget.why_nothing())
    progress.report(notes, budget.total / sample_rate, budget.declared)
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
    stream = container.streams.audio[0]
    context = stream.codec_context
    if context is None:  # FFmpeg has no decoder for it (or the codec id in the header is garbage)
        raise MediaError("the audio stream's codec is not supported (unknown or damaged header)")
    _check_format(context.sample_rate or 0, context.channels or 0)
    return stream


def _check_format(rate: int, channels: int) -> None:
    """Refuse what no recording uses (0 means "not known yet": decoding will tell)."""
    if rate and not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise MediaError(
            f"declares a sample rate of {rate:,} Hz: not a plausible recording "
            f"({MIN_SAMPLE_RATE:,} to {MAX_SAMPLE_RATE:,} Hz; the header is damaged or crafted)"
        )
    if channels > MAX_CHANNELS:
        raise MediaError(f"declares {channels} audio channels, over the {MAX_CHANNELS}-channel limit")


class _Budget:
    """How much audio a file may decode to: ``max_seconds``, and what its size can plausibly hold."""

    def __init__(self, source: AudioSource, container: Any, stream: Any, sample_rate: int, max_seconds: float | None):
        self.sample_rate = sample_rate
        self.declared = _declared_seconds(container, stream)
        self.max_seconds = max_seconds
        self.size = _size(source)
        self.channels = stream.codec_context.channels or 0
        # One second of slack: decoders pad the last frame, and headers round.
        if max_seconds is not None and self.declared > max_seconds + 1:
            raise MediaError(f"longer than the {_human_seconds(max_seconds)} limit")
        self.plausible = (
            None if self.size is None else max(ALWAYS_ALLOWED_SECONDS, self.size / MIN_BYTES_PER_SECOND)
        )
        seconds = min(s for s in (max_seconds, self.plausible, float("inf")) if s is not None)
        self.limit = None if seconds == float("inf") else int((seconds + 1) * sample_rate)
        self.total = 0

    def spend(self, samples: int) -> None:
        self.total += samples
        if self.limit is None or self.total <= self.limit:
            return
        if self.max_seconds is not None and self.total > (self.max_seconds + 1) * self.sample_rate:
            raise MediaError(f"longer than the {_human_seconds(self.max_seconds)} limit")
        size = self.size or 0
        raise MediaError(
            f"a {_human_bytes(size)} file that decodes to over {self.total / self.sample_rate:.0f} s of audio "
            f"(under {MIN_BYTES_PER_SECOND} bytes a second, which no codec achieves): damaged or crafted"
        )


    def why_nothing(self) -> str:
        if self.channels == 0:  # FFmpeg reads 0, or a count it cannot handle (4096), as "no channels"
            return "declares no usable channel count (0, or more than FFmpeg supports): damaged or crafted header"
        return "could not decode any audio (corrupt or truncated?)"


def _size(source: AudioSource) -> int | None:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return len(source)
    if isinstance(source, (str, Path)):
        try:
            return Path(source).stat().st_size
        except OSError:
            return None
    return None  # a file object: its size is not ours to find


class _Progress:
    """What went wrong while decoding: damaged packets skipped, a container that ended early."""

    def __init__(self) -> None:
        self.bad_packets = 0
        self.stopped: str | None = None

    def check_end(self, source: AudioSource, container: Any) -> None:
        """An Ogg file's duration is read from its last page, so a cut one looks whole: its last page tells."""
        if self.stopped is None and container.format.name == "ogg" and _ogg_cut(_tail(source)):
            self.stopped = "the Ogg stream ends without its last page"

    def report(self, notes: list[str] | None, decoded: float, declared: float) -> None:
        if notes is None:
            return
        short = declared > 0 and decoded < declared - max(1.0, 0.02 * declared)
        if self.stopped or short:
            of = f" of the declared {declared:.1f} s" if short else ""
            why = f" ({self.stopped})" if self.stopped else ""
            notes.append(f"truncated or damaged{why}: decoded {decoded:.1f} s{of}")
        if self.bad_packets:
            notes.append(f"damaged: {self.bad_packets} audio packet(s) could not be decoded and were skipped")


def _tail(source: AudioSource, size: int = 65536) -> bytes | None:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source[-size:])
    if isinstance(source, (str, Path)):
        with open(source, "rb") as handle:
            handle.seek(max(0, Path(source).stat().st_size - size))
            return handle.read()
    return None


def _ogg_cut(tail: bytes | None) -> bool:
    """Whether the last Ogg page in ``tail`` is incomplete or is not an end-of-stream page."""
    at = -1 if tail is None else tail.rfind(b"OggS")
    if tail is None or at < 0 or len(tail) < at + 27:
        return tail is not None
    segments = tail[at + 27 : at + 27 + tail[at + 26]]
    complete = len(segments) == tail[at + 26] and at + 27 + len(segments) + sum(segments) <= len(tail)
    return not complete or not tail[at + 5] & 0x04


def _decode(
    container: av.container.InputContainer, stream: Any, sample_rate: int, progress: _Progress
) -> Iterator[np.ndarray]:
    import av

    resampler = _Resampler(sample_rate)
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.FFmpegError as exc:
            progress.stopped = f"the container breaks off: {_reason(exc)}"  # keep what was decoded so far
            break
        try:
            frames = packet.decode()
        except av.FFmpegError:
            progress.bad_packets += 1  # one bad packet; the decoder usually recovers at the next one
            continue
        for frame in frames:
            yield from resampler.push(frame)
    yield from resampler.flush()


class _Resampler:
    """An ``av.AudioResampler`` that starts over when the input format changes mid-stream."""

    def __init__(self, rate: int):
        self.rate = rate
        self._inner: Any = None

    def push(self, frame: Any) -> Iterator[np.ndarray]:
        _check_format(frame.sample_rate, frame.layout.nb_channels)  # a damaged stream can change mid-way
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


def _human_bytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} KB"


def _human_seconds(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[0].strip().lower() or type(exc).__name__
