"""Read a video as shots: one streaming decode pass, cheap shot detection on tiny frames, one keyframe per shot.

Every frame is decoded once (PyAV, FFmpeg's threads) and reduced to a *signature*: its luma sampled on a
64×36 grid plus a 32-bin Y/U/V histogram, read straight from the decoded planes (no colour conversion).
Boundaries between shots are found on the signatures:

- a **cut** where the change from the previous frame is large in absolute terms and several times the
  change around it (half a second on each side: fast motion changes every frame, a cut only one);
- a **change** inside a shot where the frame differs from the one a second earlier much more than is usual
  in that shot (something enters the frame, a slide changes, the camera turns);
- an **interval** boundary every ``MAX_SHOT_SECONDS`` of a long, steady shot, so that search has moments.

A boundary closer than ``MIN_SHOT_SECONDS`` to the previous one is dropped (a fade from black, a flash).
Each shot keeps one keyframe, the candidate nearest its middle; candidates are taken ``CANDIDATES_PER_SECOND``
times a second at reduced size (short side ``KEYFRAME_SHORT_SIDE``, what the image classifier needs), so
memory holds at most one long shot's candidates, however long the video. A damaged or truncated file
yields the shots that could be read, and ``VideoReader.notes`` says what went wrong.
"""

from __future__ import annotations

import io
import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.media.errors import MediaError

SIGNATURE_WIDTH, SIGNATURE_HEIGHT = 64, 36
KEYFRAME_SHORT_SIDE = 256
THUMBNAIL_SIZE = 256  # longest side of the stored JPEG per shot
CANDIDATES_PER_SECOND = 2.0
MIN_SHOT_SECONDS = 0.5
MAX_SHOT_SECONDS = 10.0
# Cuts: score = mean of the luma difference and the histogram distance to the previous frame, both in [0, 1].
CUT_SCORE = 0.08  # a cut changes at least this much...
CUT_RATIO = 2.5  # ...and this many times the mean change of its neighbours
CUT_SURE = 0.25  # a change this large is a cut whatever the neighbours do
CONTEXT_SECONDS = 0.5  # neighbours on each side (decisions are delayed by this much)
# Changes inside a shot: the luma difference to the frame CHANGE_LAG seconds earlier.
CHANGE_LAG = 1.0
CHANGE_RATIO = 2.0  # times the median of that difference so far in the segment
CHANGE_MIN = 0.03
MIN_CHANGE_SECONDS = 2.0  # a change splits a segment only this long after its start
_PLANAR_YUV = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "yuvj440p"})
START, CUT, CHANGE, INTERVAL = "start", "cut", "change", "interval"
MAX_VIDEO_PIXELS = 8192 * 8192  # 8K is 33 MP; beyond this every decoded frame is over 100 MB


@dataclass
class VideoInfo:
    duration: float  # declared by the container (0 if unknown)
    width: int
    height: int
    fps: float
    codec: str
    has_audio: bool
    frames: int = 0  # declared by the container (0 if unknown)
    origin: float = 0.0  # the stream's first timestamp: shot times count from it (MPEG-TS starts at 1.4 s)

    @property
    def declared_seconds(self) -> float:
        """The longest of the declared duration and frame count: a truncated AVI has lost its index and
        FFmpeg estimates the duration from the remaining bytes, but its header still counts every frame."""
        return max(self.duration, self.frames / self.fps if self.fps else 0.0)

    def to_meta(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "fps": round(self.fps, 3), "video_codec": self.codec}


@dataclass
class Shot:
    """A shot, or part of a long one: ``[start, end)`` seconds, why it starts there, and its keyframe."""

    index: int
    start: float
    end: float
    reason: str  # START, CUT, CHANGE or INTERVAL
    time: float  # of the keyframe
    image: Any = field(repr=False)  # PIL image, short side <= KEYFRAME_SHORT_SIDE


@dataclass
class Signature:
    time: float
    luma: np.ndarray  # (36, 64) float32 in [0, 255]
    histogram: np.ndarray  # (32,) sums to 1

    def difference(self, other: Signature) -> float:
        return float(np.abs(self.luma - other.luma).mean() / 255.0)

    def cut_score(self, previous: Signature) -> float:
        histogram = float(np.abs(self.histogram - previous.histogram).sum() / 2.0)
        return (self.difference(previous) + histogram) / 2.0


class ShotDetector:
    """Boundaries from a stream of signatures; each is reported ``CONTEXT_SECONDS`` after its frame."""

    def __init__(self, fps: float):
        self.context = max(2, round((fps or 25.0) * CONTEXT_SECONDS))
        self._before: deque[float] = deque(maxlen=self.context)  # cut scores of the frames just decided
        self._pending: deque[tuple[Signature, float]] = deque()  # (signature, cut score), not decided yet
        self._recent: deque[Signature] = deque()  # the current shot's last CHANGE_LAG+ seconds
        self._usual: list[float] = []  # lagged differences in the current segment
        self._last: Signature | None = None
        self.segment_start = 0.0

    def push(self, signature: Signature) -> list[tuple[float, str]]:
        score = 0.0 if self._last is None else signature.cut_score(self._last)
        self._last = signature
        self._pending.append((signature, score))
        return self._decide() if len(self._pending) > self.context else []

    def flush(self) -> list[tuple[float, str]]:
        found: list[tuple[float, str]] = []
        while self._pending:
            found += self._decide()
        return found

    def _decide(self) -> list[tuple[float, str]]:
        """Decide on the oldest pending frame, with up to ``context`` frames on each side."""
        signature, score = self._pending.popleft()
        after = [s for _, s in list(self._pending)[: self.context]]
        neighbours = [*self._before, *after] or [0.0]
        self._before.append(score)
        reason = self._boundary(signature, score, neighbours)
        if reason in (CHANGE, INTERVAL) and max(after, default=0.0) >= CUT_SCORE:
            reason = None  # a cut may follow within half a second: let it start the next shot
        if reason is None:
            return []
        self.segment_start = signature.time
        self._usual = []
        if reason == CUT:
            self._recent.clear()
        self._recent.append(signature)
        return [(signature.time, reason)]

    def _boundary(self, signature: Signature, score: float, neighbours: list[float]) -> str | None:
        since = signature.time - self.segment_start
        is_cut = score >= CUT_SURE or (score >= CUT_SCORE and score >= CUT_RATIO * (np.mean(neighbours) + 0.005))
        if is_cut:
            if since < MIN_SHOT_SECONDS:  # a flash or a fade from black: start afresh, but no new shot
                self._recent.clear()
                self._usual = []
                return None
            return CUT
        lagged = self._lagged_difference(signature)
        if lagged is not None:
            usual = float(np.median(self._usual)) if len(self._usual) >= 3 else None
            self._usual.append(lagged)
            if usual is not None and since >= MIN_CHANGE_SECONDS and lagged >= max(CHANGE_MIN, CHANGE_RATIO * usual):
                return CHANGE
        if since >= MAX_SHOT_SECONDS:
            return INTERVAL
        return None

    def _lagged_difference(self, signature: Signature) -> float | None:
        self._recent.append(signature)
        earlier = None
        while self._recent and self._recent[0].time <= signature.time - CHANGE_LAG:
            earlier = self._recent.popleft()
        if earlier is not None:
            self._recent.appendleft(earlier)  # keep one frame at least CHANGE_LAG old
            if signature.time - earlier.time <= 2 * CHANGE_LAG:
                return signature.difference(earlier)
        return None


class VideoReader:
    """Shots of one video file, streamed: ``for shot in VideoReader(path).shots(): ...``.

    After iterating, ``decoded_seconds`` is how far decoding got, ``frames`` how many frames were decoded
    and ``notes`` what was wrong with the file (damaged packets, an early end), if anything.
    """

    def __init__(self, source: Path | str, threads: int = 2, max_seconds: float | None = None):
        self.source = Path(source)
        self.threads = threads
        self.max_seconds = max_seconds
        self.info = probe(self.source)
        self.frames = 0
        self.damaged_packets = 0
        self.decoded_seconds = 0.0
        self.notes: list[str] = []
        self._fallback: tuple[float, Any] = (0.0, None)
        if max_seconds is not None and self.info.duration > max_seconds + 1:
            raise MediaError(f"longer than the {max_seconds / 60:g} min limit")

    def shots(self, progress: Callable[[float, float], None] | None = None) -> Iterator[Shot]:
        """Shots in order; ``progress(seconds decoded, declared duration)`` is called about once a second of video."""
        detector = ShotDetector(self.info.fps)
        candidates: list[tuple[float, Any]] = []
        start, reason, index, reported = 0.0, START, 0, -1.0
        for frame, time in self._frames():
            for boundary, why in detector.push(_signature(frame, time)):
                yield self._shot(index, start, boundary, reason, candidates)
                start, reason, index = boundary, why, index + 1
            if not candidates or time >= candidates[-1][0] + 1.0 / CANDIDATES_PER_SECOND:
                candidates.append((time, _keyframe_image(frame)))
            if progress and time >= reported + 1.0:
                progress(time, self.info.duration)
                reported = time
        if self.frames == 0:
            raise MediaError("could not decode any video frame (corrupt or truncated?)")
        for boundary, why in detector.flush():
            yield self._shot(index, start, boundary, reason, candidates)
            start, reason, index = boundary, why, index + 1
        yield self._shot(index, start, max(self.decoded_seconds, start + 0.01), reason, candidates)
        self._check_end()

    def _shot(self, index: int, start: float, end: float, reason: str, candidates: list[tuple[float, Any]]) -> Shot:
        """Close the shot ``[start, end)``: its keyframe is the candidate nearest its middle."""
        inside = [c for c in candidates if c[0] < end]  # candidates are in time order: a prefix
        pool = inside or candidates[:1] or [self._fallback]
        time, image = min(pool, key=lambda c: abs(c[0] - (start + end) / 2.0))
        if inside:
            self._fallback = inside[-1]
            del candidates[: len(inside)]
        return Shot(index, round(start, 3), round(end, 3), reason, round(time, 3), image)

    def _frames(self) -> Iterator[tuple[Any, float]]:
        """Decoded frames with their times; damaged packets are skipped, a broken container ends the stream."""
        import av

        with _open(self.source) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = max(1, self.threads)
            step = 1.0 / (self.info.fps or 25.0)
            last = -step
            for packet in _packets(container, stream, self.notes):
                try:
                    frames = packet.decode()
                except av.FFmpegError:
                    self.damaged_packets += 1
                    continue
                for frame in frames:
                    time = frame.time - self.info.origin if frame.time is not None else last + step
                    time = max(time, last + 1e-3)  # never backwards, whatever the timestamps say
                    if self.max_seconds is not None and time > self.max_seconds + 1:
                        raise MediaError(f"longer than the {self.max_seconds / 60:g} min limit")
                    self.frames += 1
                    self.decoded_seconds = time + step
                    last = time
                    yield frame, time

    def _check_end(self) -> None:
        if self.damaged_packets:
            self.notes.append(f"{self.damaged_packets} damaged video packet(s) skipped")
        declared = self.info.declared_seconds
        if declared and self.decoded_seconds < declared - max(1.0, 0.02 * declared):
            self.notes.append(
                f"video decoding stopped at {self.decoded_seconds:.1f} s of the declared {declared:.1f} s "
                "(truncated or damaged file); indexed what could be read"
            )


def probe(source: Path | str) -> VideoInfo:
    """The video stream's size, rate and codec, and whether there is sound; ``MediaError`` if no video."""
    with _open(Path(source)) as container:
        if not container.streams.video:
            raise MediaError("no video stream")
        stream = container.streams.video[0]
        context = stream.codec_context
        if context is None:  # FFmpeg has no decoder for it (or the codec id in the header is garbage)
            raise MediaError("the video stream's codec is not supported (unknown or damaged header)")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 25.0
        if not 1.0 <= fps <= 240.0:
            fps = 25.0
        duration = 0.0
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        has_audio = bool(container.streams.audio)
        origin = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
        size = (context.width, context.height)
        _check_size(*size)
        return VideoInfo(duration, *size, fps, context.name, has_audio, stream.frames or 0, origin)


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise MediaError(f"the video stream declares no frame size ({width}x{height})")
    if width * height > MAX_VIDEO_PIXELS:
        raise MediaError(
            f"video frames of {width}x{height} = {width * height / 1e6:.0f} MP, over the "
            f"{MAX_VIDEO_PIXELS / 1e6:.0f} MP limit"
        )


def frame_at(source: Path | str, time: float, threads: int = 2) -> Any:
    """The full-size frame shown at ``time`` seconds (from the first frame), as a PIL image: decoded from the
    keyframe before it (a seek), or from the start where seeking fails (some files have no index)."""
    time += probe(source).origin
    for seek_to in (time, time - 30.0, 0.0):  # a seek can land after the moment: go back further
        image = _decode_at(Path(source), time, threads, max(0.0, seek_to))
        if image is not None:
            return image
    raise MediaError(f"no frame could be decoded at {time:.2f} s")


def _decode_at(path: Path, time: float, threads: int, seek_to: float) -> Any:
    import av

    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = max(1, threads)
        seek = seek_to > 0
        if seek:
            try:
                container.seek(int(seek_to / stream.time_base), stream=stream, backward=True)
            except (av.FFmpegError, TypeError, ZeroDivisionError):
                return None
        found = None
        for packet in _packets(container, stream, []):
            try:
                frames = packet.decode()
            except av.FFmpegError:
                continue
            for frame in frames:
                if frame.time is not None and frame.time > time + 1e-3:
                    if found is None and seek:
                        return None  # the seek landed after the moment
                    return (found or frame).to_image()
                found = frame
        return None if found is None else found.to_image()


def thumbnail_jpeg(image: Any, size: int = THUMBNAIL_SIZE, quality: int = 75) -> bytes:
    copy = image.copy()
    copy.thumbnail((size, size))
    buffer = io.BytesIO()
    copy.save(buffer, "JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def shot_at(shots: list[tuple[float, float]], time: float) -> int | None:
    """The index of the shot (``(start, end)`` pairs in order) that shows ``time``."""
    import bisect

    if not shots:
        return None
    return max(0, bisect.bisect_right([start for start, _ in shots], time) - 1)


# --- internals ----------------------------------------------------------------------------------------
def _open(path: Path) -> Any:
    import av

    if path.is_file() and path.stat().st_size == 0:
        raise MediaError("empty file")
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError)):
            raise
        reason = getattr(exc, "strerror", None) or str(exc)
        if _mp4_index_missing(path):
            raise MediaError(f"truncated MP4/MOV: the file ends before its index (moov box) ({reason})") from exc
        raise MediaError(f"not a readable video file: {reason} (corrupt, truncated, or it holds no streams)") from exc


def _mp4_index_missing(path: Path) -> bool:
    """An MP4 / MOV whose top-level boxes run past the end of the file, with no ``moov`` (index) among them:
    cameras and encoders write the index last, so a cut file loses it."""
    import struct

    try:
        with path.open("rb") as handle:
            size = path.stat().st_size
            offset, kinds = 0, []
            while offset + 8 <= size and len(kinds) < 1000:
                handle.seek(offset)
                length, kind = struct.unpack(">I4s", handle.read(8))
                if length == 1:
                    length = struct.unpack(">Q", handle.read(8))[0]
                kinds.append(kind)
                if length < 8:
                    break
                offset += length
    except (OSError, struct.error):
        return False
    return bool(kinds) and kinds[0] == b"ftyp" and b"moov" not in kinds and offset > size


def _packets(container: Any, stream: Any, notes: list[str]) -> Iterator[Any]:
    import av

    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as exc:
            notes.append(f"the container is damaged ({getattr(exc, 'strerror', None) or exc}); reading stopped there")
            return
        yield packet


def _signature(frame: Any, time: float) -> Signature:
    if frame.format.name not in _PLANAR_YUV:
        frame = frame.reformat(width=SIGNATURE_WIDTH, height=SIGNATURE_HEIGHT, format="yuv420p")
    planes = [_sample(frame.planes[i], SIGNATURE_WIDTH >> bool(i), SIGNATURE_HEIGHT >> bool(i)) for i in range(3)]
    luma = planes[0].astype(np.float32)
    bins = zip(planes, (4, 5, 5), (16, 8, 8), strict=True)  # 16 luma bins, 8 for each chroma plane
    counts = [np.bincount(p.ravel() >> shift, minlength=n) for p, shift, n in bins]
    histogram = np.concatenate([c / c.sum() for c in counts]).astype(np.float32) / 3.0
    return Signature(time, luma, histogram)


def _sample(plane: Any, width: int, height: int) -> np.ndarray:
    """A ``height``×``width`` grid of the plane's pixels (nearest, from the centres of the cells)."""
    pixels = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    rows = (np.arange(height) * plane.height + plane.height // 2) // height
    cols = (np.arange(width) * plane.width + plane.width // 2) // width
    return pixels[np.ix_(rows, cols)]


def _keyframe_image(frame: Any) -> Any:
    scale = KEYFRAME_SHORT_SIDE / max(1, min(frame.width, frame.height))
    if scale >= 1.0:
        return frame.to_image()
    width = max(2, math.floor(frame.width * scale / 2) * 2)
    height = max(2, math.floor(frame.height * scale / 2) * 2)
    return frame.to_image(width=width, height=height, interpolation="AREA")
