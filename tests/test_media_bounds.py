"""Every input the readers take is bounded, and bad input gets a reason in words (issue 11).

Each case is generated here, in ``tmp_path``, most from real material (the sample collection's notes, photos and
speech). The heavy ones run in a child Python whose own peak RSS (``VmHWM``) and wall time are asserted, with a
watchdog that kills it past its time. Bounds are loose (2 busy cores): they catch the blow-ups, which were 10-100x.

Measured before the fix, on a fresh clone: a 100 KB Markdown file took 125 s (quadratic heading regex); a 116-byte
PNG of 1x8000 pixels took ~2 GB (resized whole to 256 x 2 million); a 17 MB Chinese text took 1.5 GB and 195 s
(encoding guessed over every byte); a 7 KB WAV declaring 1 Hz decoded to an hour of audio.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import time
import wave
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from polymodal.media.audio import decode_audio, iter_audio
from polymodal.media.detect import Detected, detect
from polymodal.media.errors import MediaError
from polymodal.media.image import classifier_input, open_image
from polymodal.media.text import MAX_TEXT_BYTES, read_text

REPO = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


# --- a child Python, measured ------------------------------------------------------------------------------


@dataclass
class Child:
    result: dict
    seconds: float
    peak_mb: float


# The child's own peak RSS, printed by the child: ``wait4``'s ru_maxrss also counts the memory of the parent it was
# forked from (Linux keeps the pre-exec high-water mark), which is pytest's, hundreds of MB late in a run.
_PEAK = "\nprint(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n"


def run_child(code: str, timeout: float, folder: Path) -> Child:
    """Run ``code`` (which prints one JSON line last) in a fresh Python; its own peak RSS and time."""
    out, err = folder / "child.out", folder / "child.err"
    start = time.monotonic()
    source = textwrap.dedent(code) + _PEAK
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", source], stdout=stdout, stderr=stderr, cwd=REPO)
        while True:
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                proc.kill()
                os.wait4(proc.pid, 0)
                pytest.fail(f"the child ran past {timeout} s: {err.read_text()[-2000:]}")
            time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, err.read_text()[-3000:]
    *_, result, peak_kb = out.read_text().strip().splitlines()
    return Child(json.loads(result), seconds, int(peak_kb) / 1024)


# --- 1. text parsing is linear ------------------------------------------------------------------------------

PATHOLOGICAL = {  # ~100 KB each; the first took 125 s
    "heading.md": "# a" + " #" * 50_000 + "x\n",
    "dots.txt": "a" + "." * 100_000 + "b",
    "marks.txt": "!?" * 50_000,
    "closers.txt": ".)" * 50_000,
    "one-word.txt": "a" * 100_000,
    "list-items.txt": "\n- " * 33_000,
    "comments.html": "<!--" * 25_000,
    "unclosed-tags.html": "a<" * 50_000,
    "cells.html": "<td></td>" * 11_000,
    "pre-spaces.html": "<pre>" + " " * 100_000 + "</pre><p>x</p>",
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_text_is_read_in_linear_time(tmp_path: Path, name: str):
    path = tmp_path / name
    path.write_text(PATHOLOGICAL[name])
    start = time.monotonic()
    document = read_text(path, detect(path).format)
    assert time.monotonic() - start < 5.0
    assert all(document.text[p.start : p.end] == p.text for p in document.passages)


def test_markdown_headings_keep_their_titles(tmp_path: Path):
    path = tmp_path / "titles.md"
    path.write_text("Intro\n\n## Second ##\n\ntext\n\n# Main   title  #  \n\nbody\n\n# C#\n")
    document = read_text(path, "md")
    assert document.title == "Main   title"
    first_lines = [p.text.splitlines()[0].strip() for p in document.passages]
    assert first_lines == ["Intro", "## Second ##", "# Main   title  #", "# C#"]


def test_unclosed_comment_hides_the_rest_of_a_page_as_a_browser_does(tmp_path: Path):
    path = tmp_path / "page.html"
    path.write_text("<html><body><p>Seen.</p><!-- never closed <p>hidden</p>" + "x" * 50_000)
    document = read_text(path, "html")
    assert document.text == "Seen."
    assert any("unclosed tag or comment" in note for note in document.notes)


# --- 2. images: work is bounded by the pixels a step makes ----------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(1, 8000), (1, 20000), (20000, 1)])
def test_extreme_aspect_ratio_png_is_bounded(tmp_path: Path, width: int, height: int):
    from PIL import Image

    path = tmp_path / f"strip-{width}x{height}.png"
    Image.fromarray(np.full((height, width, 3), (200, 40, 90), np.uint8)).save(path)
    assert path.stat().st_size < 300  # the 116-byte file of the issue cost ~2 GB
    child = run_child(
        f"""
        import json
        from pathlib import Path
        from polymodal.analysis import Analyzer
        from polymodal.config import Settings
        prepared = Analyzer(Settings()).prepare_image(Path({str(path)!r}), "png")  # indexing and image queries
        print(json.dumps({{"shape": list(prepared.tensor.shape), "size": [prepared.width, prepared.height]}}))
        """,
        timeout=60,
        folder=tmp_path,
    )
    assert child.result == {"shape": [3, 224, 224], "size": [width, height]}
    assert child.peak_mb < 200, f"{child.peak_mb:.0f} MB"


def test_crop_only_resize_matches_the_full_resize(photo_path: Path, monkeypatch: pytest.MonkeyPatch):
    """For a narrow strip both ways are affordable: resizing only the centre square gives the same input."""
    from polymodal.media import image as image_module

    strip = open_image(photo_path, 10**8).crop((0, 0, 60, 400))
    full = classifier_input(strip)
    monkeypatch.setattr(image_module, "MAX_RESIZED_PIXELS", 0)
    cropped = classifier_input(strip)
    assert cropped.shape == full.shape == (3, 224, 224)
    assert np.abs(cropped - full).mean() < 0.02


@pytest.fixture(scope="module")
def photo_path(samples: Path) -> Path:
    return samples / "photos" / "chelsea_cat.jpg"


def test_big_image_is_reduced_early_and_keeps_its_orientation(tmp_path: Path):
    from PIL import Image

    pixels = np.zeros((3000, 6000, 4), np.uint8)  # 18 MP RGBA: over REDUCE_ABOVE_PIXELS
    pixels[:, :, 3] = 255  # opaque
    pixels[:, :3000] = 255  # the left half white, the right half black
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: the white half on top
    path = tmp_path / "turned.png"
    image.save(path, exif=exif)
    for draft in (256, None):
        shown = open_image(path, 10**8, draft_to=draft)
        assert shown.info["original_size"] == (3000, 6000)
        top, bottom = np.asarray(shown)[: shown.height // 4].mean(), np.asarray(shown)[-shown.height // 4 :].mean()
        assert top > 250 and bottom < 5, (draft, top, bottom)
    assert open_image(path, 10**8, draft_to=256).size == (600, 1200)  # reduced by 5 before any conversion


def test_tiff_tag_of_the_wrong_type_is_a_reason(tmp_path: Path, photo_path: Path):
    """Found by fuzzing: StripOffsets as a RATIONAL made Pillow raise TypeError."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.open(photo_path).convert("RGB").resize((48, 32)).save(buffer, "TIFF")
    data = buffer.getvalue()
    assert data.count(b"\x11\x01\x04\x00") == 1  # tag 0x0111 (StripOffsets), type LONG
    path = tmp_path / "odd.tif"
    path.write_bytes(data.replace(b"\x11\x01\x04\x00", b"\x11\x01\x05\x00"))
    with pytest.raises(MediaError, match=r"could not decode image \(corrupt or truncated\?\): TypeError"):
        open_image(path, 10**8)


def test_heic_is_named_as_unsupported(tmp_path: Path):
    path = tmp_path / "IMG_0001.heic"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(range(256)) * 4)
    assert detect(path) == Detected("image", "heif", None)
    with pytest.raises(MediaError, match="HEIC/HEIF images are not supported"):
        open_image(path, 10**8)


def test_garbage_after_a_png_signature_is_called_corrupt(tmp_path: Path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    with pytest.raises(MediaError, match="corrupt"):
        open_image(path, 10**8)


# --- 3. text: bounded sample for the encoding, streamed decoding, a stated maximum ----------------------------


def _chinese_notes(samples: Path) -> str:
    return (samples / "notes" / "猫.txt").read_text() + (samples / "notes" / "咖啡.md").read_text()


def test_huge_chinese_text_is_read_in_bounded_time_and_memory(tmp_path: Path, samples: Path):
    chinese = _chinese_notes(samples).encode("gb18030")
    path = tmp_path / "chinese-17mb.txt"
    path.write_bytes((chinese * (17 * MB // len(chinese) + 1))[: 17 * MB])
    assert detect(path) == Detected("text", "txt", None)
    child = run_child(
        f"""
        import json
        from pathlib import Path
        from polymodal.media.text import read_text
        document = read_text(Path({str(path)!r}), "txt")
        print(json.dumps({{"head": document.text[:6], "notes": document.notes, "passages": len(document.passages)}}))
        """,
        timeout=90,
        folder=tmp_path,
    )
    assert child.result["head"] == _chinese_notes(samples)[:6]
    assert child.result["notes"] == ["only the first 16 MB of 17 MB was read and indexed (text size limit)"]
    assert child.result["passages"] > 10_000
    assert child.peak_mb < 400 and child.seconds < 60, (child.peak_mb, child.seconds)  # was 1.5 GB, 195 s


def test_one_line_of_24_mb_is_cut_at_the_limit(tmp_path: Path, samples: Path):
    words = (samples / "notes" / "dickens.txt").read_text().replace("\n", " ").encode()
    path = tmp_path / "one-line.txt"
    with path.open("wb") as handle:
        for _ in range(24 * MB // len(words) + 1):
            handle.write(words)
    child = run_child(
        f"""
        import json
        from pathlib import Path
        from polymodal.media.text import read_text
        document = read_text(Path({str(path)!r}), "txt")
        longest = max(len(p.text) for p in document.passages)
        print(json.dumps({{"chars": len(document.text), "longest": longest, "notes": document.notes}}))
        """,
        timeout=90,
        folder=tmp_path,
    )
    assert child.result["chars"] == MAX_TEXT_BYTES and child.result["longest"] <= 600
    assert "only the first 16 MB" in child.result["notes"][0]
    assert child.peak_mb < 300 and child.seconds < 60, (child.peak_mb, child.seconds)


def test_max_bytes_cuts_between_characters(tmp_path: Path):
    path = tmp_path / "cut.txt"
    path.write_bytes("猫咪".encode() * 1000)  # 3 bytes a character: a cut at 1000 bytes splits one
    document = read_text(path, "txt", max_bytes=1000)
    assert document.text == "猫咪" * 166 + "猫"
    assert document.notes == ["only the first 0.000954 MB of 0.00572 MB was read and indexed (text size limit)"]


def test_html_with_a_rot13_charset_falls_back_to_detection(tmp_path: Path):
    path = tmp_path / "rot13.html"
    path.write_bytes(
        b'<!DOCTYPE html>\n<html><head><meta charset="rot13"><title>Caf\xe9 notes</title></head>\n'
        b"<body><p>Un caf\xe9 cr\xe8me, tr\xe8s bien.</p></body></html>"
    )
    document = read_text(path, detect(path).format)
    assert document.title == "Café notes" and document.text == "Un café crème, très bien."
    assert document.notes == [
        "the page declares charset 'rot13', which is not a text encoding Python knows; "
        "the encoding was detected instead (cp1252)"
    ]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("language", ["english", "chinese"])
def test_utf16_without_bom_is_text(tmp_path: Path, samples: Path, encoding: str, language: str):
    text = (samples / "notes" / "coffee.md").read_text() if language == "english" else _chinese_notes(samples)
    path = tmp_path / "notes.txt"
    path.write_bytes(text.encode(encoding))
    assert detect(path) == Detected("text", "txt", None)
    assert read_text(path, "txt").text == text.replace("\r\n", "\n")


@pytest.mark.parametrize("nuls", [1, 3])
def test_a_few_nul_bytes_do_not_make_text_binary(tmp_path: Path, samples: Path, nuls: int):
    text = (samples / "notes" / "coffee.md").read_text()
    path = tmp_path / "stray-nul.txt"
    cuts = [len(text) * (i + 1) // (nuls + 1) for i in range(nuls)]
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    path.write_bytes("\x00".join(pieces).encode())
    assert detect(path) == Detected("text", "txt", None)
    assert read_text(path, "txt").text == text


def test_bytes_invalid_in_the_chosen_encoding_are_replaced_and_said(tmp_path: Path):
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"plain ascii words " * 20_000 + b"then caf\xe9\n")  # the bad byte is past the sample
    document = read_text(path, "txt")
    assert document.text.endswith("then caf\ufffd\n")
    assert document.notes == ["some bytes are not valid utf-8: they were replaced by \ufffd"]


# --- 4. audio: absurd headers refused ------------------------------------------------------------------------


def _wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())
    return path


def test_one_hertz_wav_is_refused(tmp_path: Path):
    noise = np.random.default_rng(0).normal(0, 3000, 3500)
    path = _wav(tmp_path / "one-hertz.wav", noise, rate=1)  # 7 KB that would decode to an hour at 16 kHz
    assert detect(path) == Detected("audio", "wav", None)
    start = time.monotonic()
    with pytest.raises(MediaError, match="declares a sample rate of 1 Hz: not a plausible recording"):
        decode_audio(path, 16000, 4 * 3600)
    with pytest.raises(MediaError, match="sample rate of 1 Hz"):
        list(iter_audio(path, 30.0))
    assert time.monotonic() - start < 2.0


def test_too_many_channels_are_refused(tmp_path: Path):
    path = _wav(tmp_path / "many.wav", np.zeros(100 * 800), rate=8000, channels=100)
    with pytest.raises(MediaError, match="declares 100 audio channels, over the 64-channel limit"):
        decode_audio(path)


def test_a_tiny_file_that_decodes_to_half_an_hour_is_refused(tmp_path: Path):
    """Silent FLAC in 65535-sample blocks: 11 KB for 30 minutes (no real recording is under 16 bytes a second)."""
    import av

    path = tmp_path / "silence.flac"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=8000, options={"frame_size": "65535"})
        stream.layout = "mono"
        zeros = np.zeros((1, 65535), np.int16)
        for i in range(220):
            frame = av.AudioFrame.from_ndarray(zeros, format="s16", layout="mono")
            frame.rate, frame.pts, frame.time_base = 8000, i * 65535, Fraction(1, 8000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    assert path.stat().st_size < 20_000
    with pytest.raises(MediaError, match=r"file that decodes to over \d+ s of audio \(under 16 bytes a second"):
        decode_audio(path, 16000, 4 * 3600)


def encode_clip(samples: np.ndarray, path: Path, codec: str, rate: int, layout: str = "mono") -> Path:
    """``samples`` (mono float32 at ``rate``) written with PyAV's ``codec``."""
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
        frame.rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        for chunk in resampler.resample(frame) + resampler.resample(None):
            out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))
    return path


CLIPS = {"ogg": ("vorbis", 44100, "stereo"), "opus": ("libopus", 48000, "mono"), "flac": ("flac", 44100, "mono")}


@pytest.mark.parametrize("ext", sorted(CLIPS))
def test_truncated_audio_gives_what_it_holds_and_says_so(tmp_path: Path, samples: Path, ext: str):
    codec, rate, layout = CLIPS[ext]
    speech = decode_audio(samples / "recordings" / "two_cities.wav", rate)[: 4 * rate]
    whole = encode_clip(speech, tmp_path / f"whole.{ext}", codec, rate, layout).read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(whole[: len(whole) // 2])
    notes: list[str] = []
    audio = decode_audio(cut, 16000, None, notes)
    assert 0.5 < audio.size / 16000 < 3.5
    assert notes and notes[0].startswith("truncated or damaged") and "decoded" in notes[0], notes
    blocks: list[str] = []
    assert sum(b.size for b in iter_audio(cut, 1.0, 16000, None, blocks)) == audio.size
    assert blocks[0] == notes[0]
    whole_notes: list[str] = []
    decode_audio(tmp_path / f"whole.{ext}", 16000, None, whole_notes)
    assert whole_notes == []


def test_mp3_of_random_frames_is_decoded_as_far_as_it_goes_and_said(tmp_path: Path, samples: Path):
    from polymodal.media.detect import _mpeg_frame_length

    data = (samples / "sounds" / "dog.mp3").read_bytes()
    start = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(data[6:10])) if data[:3] == b"ID3" else 0
    rng = np.random.default_rng(0)
    out, at = bytearray(), start
    while (length := _mpeg_frame_length(data[at : at + 4])) is not None:  # real headers, random payloads
        out += data[at : at + 4] + rng.integers(0, 256, length - 4, dtype=np.uint8).tobytes()
        at += length
    path = tmp_path / "noise.mp3"
    path.write_bytes(bytes(out))
    assert detect(path) == Detected("audio", "mp3", None)
    notes: list[str] = []
    try:
        decode_audio(path, 16000, None, notes)
    except MediaError as exc:  # nothing decodable is also an answer in words
        assert "could not decode any audio" in str(exc)
    else:
        assert any("could not be decoded and were skipped" in note for note in notes), notes


# --- 5. PDFs -------------------------------------------------------------------------------------------------


def pdf_pages(contents: list[bytes], flate: bool = False) -> bytes:
    """A PDF with one page per content stream (Helvetica as F1), optionally Flate-compressed."""
    pages = [4 + 2 * i for i in range(len(contents))]
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % p for p in pages), len(pages)),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    for page, content in zip(pages, contents, strict=True):
        objects[page] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (page + 1)
        )
        stream = zlib.compress(content, 9) if flate else content
        extra = b" /Filter /FlateDecode" if flate else b""
        objects[page + 1] = b"<< /Length %d%s >>\nstream\n%s\nendstream" % (len(stream), extra, stream)
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, objects[number])
    xref, size = len(out), max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    out += b"".join(b"%010d 00000 n \n" % offsets[n] for n in range(1, size))
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)


def pdf_line(text: str) -> bytes:
    return b"BT /F1 12 Tf 72 720 Td (%s) Tj ET\n" % text.encode()


def _aes_pdf(tmp_path: Path, user_password: str) -> Path:
    from pypdf import PdfReader, PdfWriter

    plain = tmp_path / "plain.pdf"
    plain.write_bytes(pdf_pages([pdf_line("Private notes about coffee.")]))
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="AES-256")
    path = tmp_path / "aes.pdf"
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def test_aes_pdf_with_a_user_password_says_so(tmp_path: Path):
    with pytest.raises(MediaError, match="^encrypted PDF, password required$"):
        read_text(_aes_pdf(tmp_path, "secret"), "pdf")


def test_aes_pdf_with_an_empty_user_password_is_read(tmp_path: Path):
    assert "Private notes about coffee." in read_text(_aes_pdf(tmp_path, ""), "pdf").text  # needs cryptography


def test_pdf_over_the_decompression_limit_says_so(tmp_path: Path):
    bomb = pdf_line("Hello") + b" " * 80_000_000  # 78 KB compressed, past pypdf's 75 MB limit
    path = tmp_path / "bomb.pdf"
    path.write_bytes(pdf_pages([bomb], flate=True))
    with pytest.raises(MediaError, match="the page is over the PDF decompression size limit"):
        read_text(path, "pdf")
    second = tmp_path / "bomb-page2.pdf"
    second.write_bytes(pdf_pages([pdf_line("First page."), bomb], flate=True))
    document = read_text(second, "pdf")
    assert document.text == "First page."
    assert document.notes[0].startswith("page 2 is over the PDF decompression size limit")


def test_pdf_text_is_bounded_by_pages(tmp_path: Path):
    path = tmp_path / "pages.pdf"
    path.write_bytes(pdf_pages([pdf_line(f"Page {i} of many words here.") for i in range(1, 11)]))
    document = read_text(path, "pdf", max_bytes=60)
    assert document.text.startswith("Page 1 of") and "Page 4" not in document.text
    assert document.notes == ["only the first 3 of 10 pages were read and indexed (text size limit)"]


def test_pdf_without_pages(tmp_path: Path):
    path = tmp_path / "empty.pdf"
    path.write_bytes(pdf_pages([]))
    with pytest.raises(MediaError, match="the PDF has no pages"):
        read_text(path, "pdf")


# --- 6. through the indexer: each reason is given with its file ---------------------------------------------


def test_index_reports_each_bad_file_with_its_reason(tmp_path: Path, settings):
    from polymodal.collection import Collection

    folder = tmp_path / "bad"
    folder.mkdir()
    _wav(folder / "one-hertz.wav", np.zeros(3500), rate=1)
    (folder / "photo.jpg").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(512))
    (folder / "locked.pdf").write_bytes(_aes_pdf(tmp_path, "secret").read_bytes())
    report = Collection(settings=settings).index(folder)
    reasons = {Path(path).name: reason for path, reason in report.errors}
    assert reasons == {
        "one-hertz.wav": reasons["one-hertz.wav"],
        "photo.jpg": "HEIC/HEIF images are not supported (Pillow cannot decode them): convert it to JPEG or PNG",
        "locked.pdf": "encrypted PDF, password required",
    }
    assert "declares a sample rate of 1 Hz" in reasons["one-hertz.wav"]


def test_a_page_of_megabytes_of_drawing_instructions_is_skipped(tmp_path: Path):
    """4 MB of "Tj" compress to a few KB and took pypdf 80 s (its output grows by quadratic copying)."""
    heavy = b"BT /F1 12 Tf 72 720 Td " + b"(word) Tj " * 400_000 + b"ET\n"
    path = tmp_path / "heavy.pdf"
    path.write_bytes(pdf_pages([pdf_line("A normal first page."), heavy], flate=True))
    assert path.stat().st_size < 50_000
    start = time.monotonic()
    document = read_text(path, "pdf")
    assert time.monotonic() - start < 5.0
    assert document.text == "A normal first page."
    assert document.notes == [
        "page 2 is over the 1 MB limit of drawing instructions a page (3.81 MB): "
        "not read (a drawing, or a crafted file)"
    ]


def test_pdf_work_is_bounded_by_operators(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from polymodal.media import text as text_module

    monkeypatch.setattr(text_module, "MIN_PDF_OPERATORS", 2_000)  # the real one, 200,000, takes ~10 s to reach
    page = b"BT /F1 12 Tf 72 720 Td " + b"(word) Tj " * 900 + b"ET\n"
    path = tmp_path / "many.pdf"
    path.write_bytes(pdf_pages([page] * 10, flate=True))
    budget = max(2_000, path.stat().st_size)  # operators: the minimum, or one a byte of the file
    read = budget // 904  # BT, Tf, Td, 900 Tj, ET
    assert 1 <= read < 10
    document = read_text(path, "pdf")
    assert document.text.count("word") == read * 900
    assert document.notes == [
        f"only the first {read} of 10 pages were read: the PDF's drawing instructions are over the work limit "
        f"({budget:,} operators for a file of this size, a sign of a crafted file)"
    ]


def test_titles_are_bounded(tmp_path: Path):
    page = tmp_path / "unclosed-title.html"
    page.write_text("<html><head><title>" + "word " * 100_000)
    markdown = tmp_path / "one-heading.md"
    markdown.write_text("# " + "word " * 100_000)
    for path in (page, markdown):
        title = read_text(path, detect(path).format).title
        assert title is not None and len(title) == 300 and title.endswith("…")


def test_utf8_with_some_windows_1252_lines_reads_both(tmp_path: Path):
    lines = []
    for i in range(20):
        lines.append(f"Line {i}: the café serves crème brûlée.".encode())
        lines.append(f"Line {i}: a naïve façade.".encode("cp1252"))
    path = tmp_path / "joined.txt"
    path.write_bytes(b"\n".join(lines))
    assert detect(path) == Detected("text", "txt", None)
    document = read_text(path, "txt")
    assert document.text.startswith("Line 0: the café serves crème brûlée.\nLine 0: a naïve façade.\n")
    assert document.notes == [
        "some lines are not UTF-8: their bytes were read as Windows-1252 (a file joined from two encodings?)"
    ]


def test_only_a_transparent_border_makes_a_cut_out():
    """A sticker (transparent around the object) is shown whole to the classifier; an opaque RGBA screenshot and
    a photo are centre-cropped as before."""
    from PIL import Image

    from polymodal.media.image import classifier_input, open_image

    tall = Image.new("RGBA", (100, 300), (0, 0, 0, 0))
    tall.paste((255, 0, 0, 255), (20, 0, 80, 40))  # red at the very top: a centre crop cuts it off
    tall.paste((0, 0, 255, 255), (20, 40, 80, 300))
    opaque = Image.new("RGBA", (100, 300), (0, 0, 255, 255))
    opaque.paste((255, 0, 0, 255), (0, 0, 100, 40))
    sticker, screenshot = (open_image(_png(image), 10_000_000) for image in (tall, opaque))
    assert sticker.info["cutout"] and not screenshot.info["cutout"]
    reds = [(classifier_input(i)[0] > 0.9) & (classifier_input(i)[2] < -0.9) for i in (sticker, screenshot)]
    assert reds[0].sum() > 500 and reds[1].sum() == 0  # the crop keeps only the middle of the opaque one


def _png(image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
