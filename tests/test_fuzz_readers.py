"""Bounded fuzzing of the readers: a damaged file gives a result or a :class:`MediaError`, never another exception.

Seeds are real files made from the sample collection (a photo, a speech recording, notes, a page) in every format
the readers take; hypothesis flips bits, cuts, inserts and overwrites bytes (half of them in the first 256 bytes,
where the headers are), or writes random bytes after a format's magic. Each file goes through ``detect`` and
through the reader its name asks for as well as the one ``detect`` chose. Fixed seed (``derandomize``) and
example counts: the file runs in well under a minute on two cores; a per-example deadline catches a hang.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_media_bounds import encode_clip, pdf_line, pdf_pages

from polymodal.media.audio import decode_audio
from polymodal.media.detect import detect
from polymodal.media.errors import MediaError
from polymodal.media.image import classifier_input, looks_like_document, open_image, thumbnail
from polymodal.media.text import read_text
from polymodal.media.video import VideoReader, probe

MAX_PIXELS = 120_000_000


def fuzzing(examples: int) -> Callable:
    return settings(
        derandomize=True,
        database=None,
        max_examples=examples,
        deadline=timedelta(seconds=10),  # generous on busy cores; a hang is minutes
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --- seeds: real material in every format ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeds(samples: Path) -> dict[str, bytes]:
    return {**_images(samples), **_audio(samples), **_texts(samples), **_video(samples)}


def _images(samples: Path) -> dict[str, bytes]:
    from PIL import Image

    photo = Image.open(samples / "photos" / "chelsea_cat.jpg").convert("RGB").resize((48, 32))
    out = {}
    for ext, fmt, mode in [
        ("jpg", "JPEG", "RGB"),
        ("png", "PNG", "RGBA"),
        ("gif", "GIF", "P"),
        ("webp", "WEBP", "RGB"),
        ("bmp", "BMP", "RGB"),
        ("tif", "TIFF", "RGB"),
    ]:
        buffer = io.BytesIO()
        photo.convert(mode).save(buffer, fmt)
        out[f"photo.{ext}"] = buffer.getvalue()
    return out


def _audio(samples: Path) -> dict[str, bytes]:
    import tempfile

    out = {}
    with tempfile.TemporaryDirectory() as folder:
        for ext, codec, rate, layout in [
            ("wav", "pcm_s16le", 16000, "mono"),
            ("flac", "flac", 16000, "mono"),
            ("mp3", "libmp3lame", 22050, "mono"),
            ("ogg", "vorbis", 44100, "stereo"),
            ("opus", "libopus", 48000, "mono"),
            ("m4a", "aac", 16000, "mono"),
        ]:
            speech = decode_audio(samples / "recordings" / "two_cities.wav", rate)[: rate * 3 // 4]
            out[f"speech.{ext}"] = encode_clip(speech, Path(folder) / f"speech.{ext}", codec, rate, layout).read_bytes()
    return out


def _texts(samples: Path) -> dict[str, bytes]:
    notes = samples / "notes"
    return {
        "coffee.md": (notes / "coffee.md").read_bytes()[:1500],
        "cat.txt": (notes / "猫.txt").read_text().encode("gb18030")[:1500],
        "rockets.html": (notes / "rockets.html").read_bytes()[:3000],
        "notes.pdf": pdf_pages([pdf_line("Espresso needs nine bars."), pdf_line("Page two: the cat.")], flate=True),
    }


def _video(samples: Path) -> dict[str, bytes]:
    import av
    from PIL import Image

    photo = np.asarray(Image.open(samples / "photos" / "coffee.jpg").convert("RGB").resize((64, 48)))
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.roll(photo, 3 * i, axis=1)), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return {"clip.mp4": buffer.getvalue()}


# --- mutations --------------------------------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, originals: dict[str, bytes], names: list[str]) -> tuple[str, bytes]:
    name = draw(st.sampled_from(names))
    data = bytearray(originals[name])
    for _ in range(draw(st.integers(1, 4))):
        size = len(data)
        at = draw(st.one_of(st.integers(0, max(0, min(255, size - 1))), st.integers(0, max(0, size - 1))))
        kind = draw(st.sampled_from(["flip", "flip", "cut", "insert", "overwrite", "delete"]))
        if kind == "flip" and size:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "overwrite":
            chunk = draw(st.sampled_from([b"\x00" * 4, b"\xff" * 4, b"\x7f\xff\xff\xff", b"\x00\x00\x00\x01"]))
            data[at : at + len(chunk)] = chunk
        else:
            del data[at : at + draw(st.integers(1, 512))]
    return name, bytes(data)


MAGIC = [
    b"",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff\xe0",
    b"GIF89a",
    b"BM\x00\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00",
    b"II*\x00",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"RIFF\x24\x00\x00\x00WAVEfmt ",
    b"OggS\x00\x02",
    b"fLaC",
    b"ID3\x03\x00\x00\x00\x00\x00\x00",
    b"\xff\xfb\x90\x00",
    b"%PDF-1.7\n",
    b"\x1aE\xdf\xa3",
    b"\x00\x00\x00\x18ftypisom",
    b"\x00\x00\x00\x18ftypheic",
    b"<!DOCTYPE html><html><meta charset=",
    b"\xff\xfe",
    b"# ",
]


# --- readers --------------------------------------------------------------------------------------------------


def _image(path: Path) -> None:
    for draft in (256, None):
        image = open_image(path, MAX_PIXELS, draft_to=draft)
        assert classifier_input(image).shape == (3, 224, 224)
        looks_like_document(image)
        thumbnail(image)


def _audio_reader(path: Path) -> None:
    notes: list[str] = []
    audio = decode_audio(path, 16000, 600, notes)
    assert audio.dtype == np.float32 and audio.size > 0 and all(isinstance(note, str) for note in notes)


def _text(fmt: str) -> Callable[[Path], None]:
    def read(path: Path) -> None:
        document = read_text(path, fmt)
        assert all(document.text[p.start : p.end] == p.text for p in document.passages)

    return read


def _video_reader(path: Path) -> None:
    probe(path)
    reader = VideoReader(path, threads=1, max_seconds=600)
    for shot in reader.shots():
        classifier_input(shot.image)


READERS: dict[str, Callable[[Path], None]] = {
    "image": _image,
    "audio": _audio_reader,
    "txt": _text("txt"),
    "md": _text("md"),
    "html": _text("html"),
    "pdf": _text("pdf"),
    "video": _video_reader,
}
BY_EXTENSION = {
    "jpg": "image", "png": "image", "gif": "image", "webp": "image", "bmp": "image", "tif": "image",
    "wav": "audio", "flac": "audio", "mp3": "audio", "ogg": "audio", "opus": "audio", "m4a": "audio",
    "md": "md", "txt": "txt", "html": "html", "pdf": "pdf", "mp4": "video",
}  # fmt: skip


def read_every_way(path: Path) -> None:
    """``detect``, the reader ``detect`` picks and the one the name asks for: each gives a result or MediaError."""
    asked = {BY_EXTENSION[path.suffix.lstrip(".")]}
    try:
        found = detect(path)
    except MediaError:
        pass
    else:
        asked.add(found.format if found.modality == "text" else found.modality)
    for reader in sorted(asked):
        try:
            READERS[reader](path)
        except MediaError as exc:
            assert str(exc).strip(), f"an empty reason from the {reader} reader"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _check(workdir: Path, name: str, data: bytes) -> None:
    path = workdir / name
    path.write_bytes(data)
    read_every_way(path)


# --- the fuzzing ----------------------------------------------------------------------------------------------

IMAGES = ["photo.jpg", "photo.png", "photo.gif", "photo.webp", "photo.bmp", "photo.tif"]
AUDIO = ["speech.wav", "speech.flac", "speech.mp3", "speech.ogg", "speech.opus", "speech.m4a"]
TEXTS = ["coffee.md", "cat.txt", "rockets.html"]


def test_seeds_are_read(seeds: dict[str, bytes], workdir: Path):
    for name, data in seeds.items():
        path = workdir / name
        path.write_bytes(data)
        READERS[BY_EXTENSION[path.suffix.lstrip(".")]](path)  # the originals read without an error


@pytest.mark.parametrize(("names", "examples"), [(IMAGES, 300), (AUDIO, 250), (TEXTS, 300), (["notes.pdf"], 250)])
def test_mutated_files(seeds: dict[str, bytes], workdir: Path, names: list[str], examples: int):
    @fuzzing(examples)
    @given(case=mutated(seeds, names))
    def run(case: tuple[str, bytes]) -> None:
        _check(workdir, *case)

    run()


def test_mutated_video(seeds: dict[str, bytes], workdir: Path):
    @fuzzing(60)
    @given(case=mutated(seeds, ["clip.mp4"]))
    def run(case: tuple[str, bytes]) -> None:
        _check(workdir, *case)

    run()


@fuzzing(400)
@given(
    magic=st.sampled_from(MAGIC),
    body=st.binary(min_size=0, max_size=4096),
    ext=st.sampled_from(sorted(BY_EXTENSION)),
)
def test_random_bytes_after_a_magic(workdir: Path, magic: bytes, body: bytes, ext: str):
    _check(workdir, f"random.{ext}", magic + body)
