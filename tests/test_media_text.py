"""Content-based detection of every supported format, and reading text documents into passages.

Media are made from real material: scikit-image photos (re-encoded with Pillow) and a real speech
recording from the moonshine-voice wheel (re-encoded with PyAV).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from polymodal.media.detect import SUPPORTED_EXTENSIONS, Detected, detect
from polymodal.media.errors import MediaError
from polymodal.media.text import (
    Passage,
    decode_bytes,
    has_cjk,
    read_text,
    segment_for_search,
    split_passages,
)

# --- real material --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return data.chelsea()


@pytest.fixture(scope="module")
def speech() -> Path:
    from polymodal.samples import MOONSHINE, find_in_wheel

    return find_in_wheel(*MOONSHINE, "assets/two_cities.wav")


def _encode(dest: Path, container: str, speech: Path | None, acodec: str | None, vcodec: str | None) -> Path:
    """Write ``dest`` with PyAV: 2 s of real speech and/or 2 s of video made from a real photo."""
    import av

    with av.open(str(dest), "w", format=container) as out:
        video = _add_video(out, vcodec) if vcodec else None
        audio = out.add_stream(acodec, rate=48000 if "opus" in acodec else 44100) if acodec else None
        if audio is not None:
            audio.layout = "mono"
        if video is not None:
            _write_video(out, video)
        if audio is not None and speech is not None:
            _write_audio(out, audio, speech, seconds=2.0)
    return dest


def _add_video(out, codec: str):  # -> av.VideoStream
    video = out.add_stream(codec, rate=10)
    video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
    return video


def _write_video(out, video) -> None:
    import av
    from PIL import Image
    from skimage import data

    frame = np.asarray(Image.fromarray(data.coffee()).resize((320, 240)))
    for i in range(20):
        shifted = np.roll(frame, 4 * i, axis=1)
        out.mux(video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(shifted), format="rgb24")))
    out.mux(video.encode(None))


def _write_audio(out, audio, source: Path, seconds: float) -> None:
    import av

    context = audio.codec_context
    resampler = av.AudioResampler(format=context.format.name, layout="mono", rate=context.sample_rate)
    with av.open(str(source)) as clip:
        for frame in clip.decode(audio=0):
            if frame.time is not None and frame.time > seconds:
                break
            for piece in resampler.resample(frame):
                out.mux(audio.encode(piece))
    for piece in resampler.resample(None):
        out.mux(audio.encode(piece))
    out.mux(audio.encode(None))


# --- detection: images ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "pil_format", "expected"),
    [
        ("cat.jpg", "JPEG", "jpeg"),
        ("cat.png", "PNG", "png"),
        ("cat.gif", "GIF", "gif"),
        ("cat.bmp", "BMP", "bmp"),
        ("cat.tif", "TIFF", "tiff"),
        ("cat.webp", "WEBP", "webp"),
    ],
)
def test_detects_image_formats(tmp_path: Path, photo: np.ndarray, name: str, pil_format: str, expected: str):
    from PIL import Image

    path = tmp_path / name
    Image.fromarray(photo).save(path, pil_format)
    assert detect(path) == Detected("image", expected, None)


def test_detects_big_endian_tiff(tmp_path: Path, photo: np.ndarray):
    from PIL import Image

    path = tmp_path / "cat.tiff"
    Image.fromarray(photo[:, :, 0]).convert("I;16B").save(path, "TIFF")
    assert path.read_bytes()[:4] in (b"MM\x00*", b"II*\x00")
    assert detect(path).format == "tiff"


def test_mislabelled_png_named_jpg(tmp_path: Path, photo: np.ndarray):
    from PIL import Image

    path = tmp_path / "holiday.jpg"
    Image.fromarray(photo).save(path, "PNG")
    found = detect(path)
    assert (found.modality, found.format) == ("image", "png")
    assert found.note == "named .jpg but content is PNG"


def test_no_note_for_equivalent_names(tmp_path: Path, photo: np.ndarray):
    from PIL import Image

    jpeg = tmp_path / "cat.jpeg"
    Image.fromarray(photo).save(jpeg, "JPEG")
    notes = tmp_path / "notes.txt"
    notes.write_text("# Heading\n\nA markdown file named .txt.\n")
    unknown_ext = tmp_path / "photo.unknownext"
    Image.fromarray(photo).save(unknown_ext, "PNG")
    assert detect(jpeg).note is None
    assert detect(notes) == Detected("text", "txt", None)
    assert detect(unknown_ext) == Detected("image", "png", None)


def test_image_without_extension_is_found_by_content(tmp_path: Path, photo: np.ndarray):
    from PIL import Image

    path = tmp_path / "IMG0001"
    Image.fromarray(photo).save(path, "JPEG")
    assert detect(path) == Detected("image", "jpeg", None)


# --- detection: audio and video -------------------------------------------------------------------------

AUDIO_CASES = [
    ("speech.wav", "wav", "pcm_s16le", "wav"),
    ("speech.flac", "flac", "flac", "flac"),
    ("speech.opus", "ogg", "libopus", "ogg"),
    ("speech.oga", "ogg", "flac", "ogg"),
    ("speech.mp3", "mp3", "libmp3lame", "mp3"),
    ("speech.m4a", "ipod", "aac", "m4a"),
    ("speech.aac", "adts", "aac", "aac"),
    ("speech.webm", "webm", "libopus", "webm"),  # audio-only WebM is audio
    ("speech.mp4", "mp4", "aac", "m4a"),  # no M4A brand: found by probing the streams
]


@pytest.mark.parametrize(("name", "container", "codec", "expected"), AUDIO_CASES)
def test_detects_audio_formats(
    tmp_path: Path, speech: Path, name: str, container: str, codec: str, expected: str
):
    path = _encode(tmp_path / name, container, speech, codec, None)
    assert detect(path) == Detected("audio", expected, None)


def test_detects_real_wav_and_mp3_without_id3(tmp_path: Path, speech: Path):
    assert detect(speech) == Detected("audio", "wav", None)
    mp3 = _encode(tmp_path / "speech.mp3", "mp3", speech, "libmp3lame", None).read_bytes()
    assert mp3.startswith(b"ID3")
    size = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(mp3[6:10]))
    bare = tmp_path / "bare.mp3"
    bare.write_bytes(mp3[size:])  # frame sync only
    assert bare.read_bytes()[0] == 0xFF
    assert detect(bare) == Detected("audio", "mp3", None)


VIDEO_CASES = [
    ("clip.mp4", "mp4", "aac", "libx264", "mp4"),
    ("clip.mov", "mov", None, "mpeg4", "mov"),
    ("clip.webm", "webm", "libopus", "libvpx", "webm"),
    ("clip.mkv", "matroska", None, "mpeg4", "mkv"),
    ("clip.avi", "avi", None, "mpeg4", "avi"),
    ("clip.ogv", "ogg", None, "libvpx", "ogv"),  # VP8 in Ogg: video, not audio
]


@pytest.mark.parametrize(("name", "container", "acodec", "vcodec", "expected"), VIDEO_CASES)
def test_detects_video_formats(
    tmp_path: Path, speech: Path, name: str, container: str, acodec: str | None, vcodec: str, expected: str
):
    path = _encode(tmp_path / name, container, speech, acodec, vcodec)
    assert detect(path) == Detected("video", expected, None)


def test_m4a_named_mp4_gets_no_note_but_video_named_mp3_does(tmp_path: Path, speech: Path):
    audio = _encode(tmp_path / "song.mp4", "ipod", speech, "aac", None)
    assert detect(audio) == Detected("audio", "m4a", None)
    video = _encode(tmp_path / "song.mp3", "mp4", speech, "aac", "libx264")
    assert detect(video) == Detected("video", "mp4", "named .mp3 but content is MP4")


# --- detection: errors ----------------------------------------------------------------------------------


def test_empty_file(tmp_path: Path):
    path = tmp_path / "empty.txt"
    path.touch()
    with pytest.raises(MediaError, match="empty file"):
        detect(path)


def test_unknown_binary(tmp_path: Path):
    path = tmp_path / "python.jpg"
    path.write_bytes(Path(sys.executable).resolve().read_bytes()[:65536])  # an ELF/Mach-O program
    with pytest.raises(MediaError, match=r"unrecognised content \(not text, image, audio or video\)"):
        detect(path)


def test_zip_archive_is_not_media(tmp_path: Path):
    import zipfile

    path = tmp_path / "archive.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data.bin", os.urandom(5000))
    with pytest.raises(MediaError, match="unrecognised content"):
        detect(path)


def test_directory(tmp_path: Path):
    with pytest.raises(MediaError, match="directory"):
        detect(tmp_path)


def test_dangling_symlink(tmp_path: Path):
    link = tmp_path / "gone.jpg"
    link.symlink_to(tmp_path / "deleted.jpg")
    with pytest.raises(MediaError, match="broken symbolic link"):
        detect(link)


def test_missing_file(tmp_path: Path):
    with pytest.raises(MediaError, match="no such file"):
        detect(tmp_path / "nothing.png")


def test_fifo_is_refused_without_blocking(tmp_path: Path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    with pytest.raises(MediaError, match="not a regular file"):
        detect(fifo)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "secret.txt"
    path.write_text("secret")
    path.chmod(0)
    if os.geteuid() == 0:  # root reads anything: make the kernel's refusal happen in Python instead
        real_open = Path.open

        def refusing_open(self: Path, *args, **kwargs):
            if self == path:
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", refusing_open)
    try:
        with pytest.raises(MediaError, match="permission denied"):
            detect(path)
    finally:
        path.chmod(0o600)


def test_supported_extensions_cover_the_scan_list():
    for ext in ("txt", "md", "html", "pdf", "jpg", "png", "webp", "wav", "flac", "opus", "mp3", "m4a"):
        assert ext in SUPPORTED_EXTENSIONS
    assert {"mp4", "webm", "mkv", "mov", "avi", "ogv"} <= SUPPORTED_EXTENSIONS
    assert all(ext == ext.lower() and not ext.startswith(".") for ext in SUPPORTED_EXTENSIONS)


# --- detection and decoding: text -----------------------------------------------------------------------

CHINESE = "猫一天要睡十二到十六个小时。它们在清晨和黄昏最活跃！"


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        ((b"Espresso needs nine bars of pressure.\n"), "Espresso needs nine bars of pressure.\n"),
        ("\ufeffCafé crème\n".encode(), "Café crème\n"),
        ("\u3000\u3000" + CHINESE, "\u3000\u3000" + CHINESE),  # str: written as UTF-16 with a BOM
        (CHINESE.encode("gb18030"), CHINESE),
        (
            "Un café crème, s'il vous plaît. Très bien.\n".encode("cp1252"),
            "Un café crème, s'il vous plaît. Très bien.\n",
        ),
    ],
    ids=["utf8", "utf8-bom", "utf16-bom", "gb18030", "cp1252"],
)
def test_text_encodings_are_detected_and_decoded(tmp_path: Path, encoded: bytes | str, expected: str):
    raw = encoded.encode("utf-16") if isinstance(encoded, str) else encoded
    path = tmp_path / "note.txt"
    path.write_bytes(raw)
    assert detect(path) == Detected("text", "txt", None)
    assert read_text(path, "txt").text == expected.lstrip("\ufeff")


def test_markdown_extension_gives_md(tmp_path: Path):
    path = tmp_path / "coffee.markdown"
    path.write_text("# Coffee\n\nA short note.\n")
    assert detect(path) == Detected("text", "md", None)


def test_text_named_as_image_gets_a_note(tmp_path: Path):
    path = tmp_path / "photo.png"
    path.write_text("This is not a picture at all, just words.\n")
    assert detect(path) == Detected("text", "txt", "named .png but content is text")


def test_decode_bytes_strict_refuses_binary():
    assert decode_bytes(b"abc\x00def", strict=True) is None
    assert decode_bytes("咖啡".encode("gb18030") + b"\xd6", strict=True, partial=True) == "咖啡"


@pytest.mark.parametrize(
    "head",
    [
        "<!DOCTYPE html>\n<html><head><title>T</title></head><body><p>Hi.</p></body></html>",
        "\ufeff  \n\t<!doctype HTML><html><body>Hi.</body></html>",
        "<html lang='en'><body>Hi.</body></html>",
        "<!-- saved page -->\n<!DOCTYPE html><html><body>Hi.</body></html>",
        '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html><html><body>Hi.</body></html>',
    ],
)
def test_html_is_detected_by_content(tmp_path: Path, head: str):
    path = tmp_path / "page.txt"
    path.write_text(head, encoding="utf-8")
    found = detect(path)
    assert (found.modality, found.format) == ("text", "html")


def test_text_that_mentions_html_later_is_plain_text(tmp_path: Path):
    path = tmp_path / "notes.txt"
    path.write_text("Notes on markup.\nA page starts with <!doctype html> and then <html>.\n")
    assert detect(path).format == "txt"


def test_html_fragment_named_html(tmp_path: Path):
    path = tmp_path / "fragment.html"
    path.write_text("<div><p>Only a fragment, no html element.</p></div>\n")
    assert detect(path).format == "html"


# --- reading HTML ---------------------------------------------------------------------------------------


def test_read_html_drops_script_and_style_and_keeps_title(tmp_path: Path):
    path = tmp_path / "rocket.html"
    path.write_text(
        "<!DOCTYPE html><html><head><title>Falcon  9\n launch</title>"
        "<style>p { color: red }</style><script>var x = 'hidden';</script></head>"
        "<body><h1>Launch</h1><p>The rocket lifted off at dusk.</p><p>It carried&nbsp;DSCOVR &amp; more."
        "</p><ul><li>First stage</li><li>Second stage</li></ul><pre>  kept\n    indented</pre></body></html>",
        encoding="utf-8",
    )
    doc = read_text(path, "html")
    assert doc.title == "Falcon 9 launch"
    assert "hidden" not in doc.text and "color" not in doc.text
    assert "The rocket lifted off at dusk.\n\nIt carried DSCOVR & more." in doc.text
    assert "First stage\n\nSecond stage" in doc.text
    assert "  kept\n    indented" in doc.text
    assert doc.text.startswith("# Launch\n\n")
    assert all(doc.text[p.start : p.end] == p.text for p in doc.passages)


def test_read_html_declared_gbk_charset(tmp_path: Path):
    path = tmp_path / "cat.html"
    html = f'<html><head><meta charset="gbk"><title>猫</title></head><body><p>{CHINESE}</p></body></html>'
    path.write_bytes(html.encode("gbk"))
    doc = read_text(path, "html")
    assert doc.title == "猫"
    assert doc.text == CHINESE


# --- reading PDF ----------------------------------------------------------------------------------------


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF with one Helvetica text line per string, correct xref offsets."""
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % i for i in page_ids), len(pages)),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    }
    for page_id, lines in zip(page_ids, pages, strict=True):
        shown = " T* ".join(f"({line})Tj" for line in lines)
        stream = f"BT /F1 12 Tf 16 TL 72 720 Td {shown} ET".encode("latin-1")
        objects[page_id] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (page_id + 1)
        )
        objects[page_id + 1] = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, objects[number])
    xref, size = len(out), max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    out += b"".join(b"%010d 00000 n \n" % offsets[n] for n in range(1, size))
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)


def test_handmade_pdf_is_valid_for_pypdf(tmp_path: Path):
    from pypdf import PdfReader

    path = tmp_path / "hello.pdf"
    path.write_bytes(make_pdf([["Hello"]]))
    reader = PdfReader(path, strict=True)
    assert reader.pages[0].extract_text().strip() == "Hello"


def test_read_pdf_pages(tmp_path: Path):
    path = tmp_path / "notes.pdf"
    path.write_bytes(
        make_pdf([["Espresso is brewed under pressure.", "It has crema."], ["Page two: the cat."]])
    )
    assert detect(path) == Detected("text", "pdf", None)
    doc = read_text(path, "pdf")
    assert "Espresso is brewed under pressure." in doc.text
    assert [p.page for p in doc.passages] == [1, 2]
    assert doc.passages[1].text == "Page two: the cat."
    assert all(doc.text[p.start : p.end] == p.text for p in doc.passages)


def test_image_only_pdf_has_no_text_layer(tmp_path: Path):
    from PIL import Image
    from skimage import data

    path = tmp_path / "scan.pdf"
    Image.fromarray(data.page()).save(path, "PDF")
    assert detect(path) == Detected("text", "pdf", None)
    with pytest.raises(MediaError, match=re.escape("no text layer (scanned PDF?)")):
        read_text(path, "pdf")


def test_corrupt_pdf(tmp_path: Path):
    path = tmp_path / "broken.pdf"
    path.write_bytes(make_pdf([["Hello"]])[:60])
    assert detect(path).format == "pdf"
    with pytest.raises(MediaError, match="PDF"):
        read_text(path, "pdf")


def _encrypted_pdf(tmp_path: Path, user_password: str) -> Path:
    from pypdf import PdfReader, PdfWriter

    plain = tmp_path / "plain.pdf"
    plain.write_bytes(make_pdf([["Private notes about coffee."]]))
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    path = tmp_path / "locked.pdf"
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def test_password_protected_pdf(tmp_path: Path):
    with pytest.raises(MediaError, match="encrypted PDF, password required"):
        read_text(_encrypted_pdf(tmp_path, "secret"), "pdf")


def test_pdf_encrypted_with_empty_user_password_is_read(tmp_path: Path):
    assert "Private notes about coffee." in read_text(_encrypted_pdf(tmp_path, ""), "pdf").text


# --- passages -------------------------------------------------------------------------------------------

ENGLISH = (
    "A good espresso starts with fresh beans, ground fine just before brewing. Mr. Rossi uses about 18"
    " grams for a double shot! If the shot runs fast and tastes sour, grind finer? If it is slow, grind"
    " coarser.\n\n"
    "The machine pushes hot water through the tamped puck at about nine bars of pressure. That pressure is "
    "what makes the crema, the thin golden foam on top of the cup.\n\n"
    "Pour-over is gentler: medium-fine grind, water just off the boil, a slow spiral pour."
)


def _check_passages(text: str, passages: list[Passage], max_chars: int) -> None:
    assert passages
    for p in passages:
        assert p.text and p.text == text[p.start : p.end] and p.text == p.text.strip()
        assert len(p.text) <= max_chars
        for edge in (p.start, p.end):
            if 0 < edge < len(text) and not has_cjk(text[edge - 1 : edge + 1]):
                assert not (text[edge - 1].isalnum() and text[edge].isalnum()), f"cut inside a word at {edge}"


@pytest.mark.parametrize("max_chars", [60, 120, 200, 600])
def test_english_passages(max_chars: int):
    passages = split_passages(ENGLISH, max_chars)
    _check_passages(ENGLISH, passages, max_chars)
    covered = " ".join(p.text for p in passages).split()
    assert covered == ENGLISH.split()  # nothing lost, nothing repeated


def test_short_paragraphs_are_packed_and_long_ones_split_at_sentences():
    assert len(split_passages(ENGLISH, 600)) == 1
    passages = split_passages(ENGLISH, 200)
    assert all(p.text.endswith((".", "!", "?")) for p in passages)
    assert not any(p.text.startswith("Rossi") for p in passages)  # "Mr." does not end a sentence


def test_paragraph_boundaries_are_preferred():
    passages = split_passages(ENGLISH, 260)
    assert any(p.text.startswith("The machine pushes") for p in passages)


def test_chinese_passages_split_at_chinese_punctuation():
    text = (
        "猫一天要睡十二到十六个小时。它们在清晨和黄昏最活跃！为什么？因为它们是猎手；夜里也会出来活动。"
    ) * 4
    passages = split_passages(text, 60)
    _check_passages(text, passages, 60)
    assert all(p.text[-1] in "。！？；" for p in passages)
    assert "".join(p.text for p in passages) == text


def test_chinese_text_counts_more_per_character():
    text = "我家的猫叫切尔西，是一只虎斑猫。" * 30  # 480 characters
    passages = split_passages(text, 600)
    assert len(passages) >= 3
    assert all(len(p.text) <= 600 // 3 + 30 for p in passages)  # punctuation counts as one


def test_long_chinese_sentence_without_stops_is_cut_after_commas():
    text = "这是一个很长的句子，没有句号，" * 20
    passages = split_passages(text, 90)
    _check_passages(text, passages, 90)
    assert all(p.text.endswith("，") for p in passages[:-1])


def test_long_sentence_is_cut_between_words():
    text = " ".join(["extraordinarily", "long", "sentence", "without", "any", "stop"] * 30)
    passages = split_passages(text, 70)
    _check_passages(text, passages, 70)
    assert " ".join(p.text for p in passages) == text


def test_mixed_chinese_and_english():
    text = "I drink espresso every morning. 我每天早上喝一杯意式浓缩咖啡。Then I feed the cat. 然后喂猫。"
    passages = split_passages(text, 60)
    _check_passages(text, passages, 60)
    assert [p.text for p in passages] == [
        "I drink espresso every morning.",
        "我每天早上喝一杯意式浓缩咖啡。",
        "Then I feed the cat. 然后喂猫。",
    ]


def test_markdown_headings_start_passages():
    text = "# Coffee\n\nEspresso is strong.\n\n## Tea\n\nGreen tea is light.\n\n## 猫\n\n猫喜欢睡觉。"
    passages = split_passages(text, 600)
    assert [p.text for p in passages] == [
        "# Coffee\n\nEspresso is strong.",
        "## Tea\n\nGreen tea is light.",
        "## 猫\n\n猫喜欢睡觉。",
    ]


def test_heading_alone_joins_the_next_section():
    passages = split_passages("# Notes\n\n## Espresso\n\nNine bars.", 600)
    assert [p.text for p in passages] == ["# Notes\n\n## Espresso\n\nNine bars."]


def test_overlap_repeats_sentences():
    text = "One is here. Two is here. Three is here. Four is here. Five is here."
    plain = split_passages(text, 30)
    overlapping = split_passages(text, 30, overlap_sentences=1)
    assert len(overlapping) > len(plain) or overlapping != plain
    for before, after in zip(overlapping, overlapping[1:], strict=False):
        assert after.start < before.end  # each passage begins inside the previous one
        assert after.end > before.end  # and still moves on


def test_no_empty_passages():
    assert split_passages("") == []
    assert split_passages("   \n\n \t\n") == []
    assert [p.text for p in split_passages("\n\nword\n\n")] == ["word"]


def test_unbreakable_word_is_cut_as_a_last_resort():
    text = "x" * 250
    passages = split_passages(text, 100)
    assert [len(p.text) for p in passages] == [100, 100, 50]


def test_read_markdown_title_and_passages(tmp_path: Path):
    path = tmp_path / "咖啡.md"
    body = "做一杯好的意式浓缩咖啡，需要新鲜的咖啡豆。"
    path.write_text(f"# 咖啡笔记\n\n## 意式浓缩\n\n{body}\n", encoding="utf-8")
    doc = read_text(path, "md")
    assert doc.title == "咖啡笔记"
    assert doc.passages[0].text.endswith("需要新鲜的咖啡豆。")
    assert doc.passages[0].page is None


def test_crlf_is_normalised(tmp_path: Path):
    path = tmp_path / "windows.txt"
    path.write_bytes(b"First line.\r\n\r\nSecond paragraph.\r\n")
    doc = read_text(path, "txt")
    assert doc.text == "First line.\n\nSecond paragraph.\n"
    assert [p.text for p in doc.passages] == ["First line.\n\nSecond paragraph."]


# --- CJK and search segmentation ------------------------------------------------------------------------


def test_has_cjk():
    assert has_cjk("我喜欢猫")
    assert has_cjk("ねこ") and has_cjk("고양이")
    assert not has_cjk("A cat, un chat, café.")


def test_segment_for_search_splits_chinese_words():
    segmented = segment_for_search("我喜欢喝咖啡和猫咪")
    words = segmented.split()
    assert "咖啡" in words and "猫咪" in words and "喜欢" in words
    assert segmented.replace(" ", "").startswith("我喜欢")


def test_segment_for_search_leaves_english_alone():
    text = "Espresso: 9 bars, 93 °C — e-mail me at a@b.com!\n\nNew paragraph."
    assert segment_for_search(text) == text


def test_segment_for_search_mixed_text_keeps_english_words():
    out = segment_for_search("The e-mail about 咖啡豆 arrived.")
    assert out.startswith("The e-mail about ") and out.endswith(" arrived.")
    assert "咖啡" in out.split()


def test_segment_for_search_with_chars_lets_one_character_match():
    assert "猫" not in segment_for_search("小猫在睡觉").split()
    assert "猫" in segment_for_search("小猫在睡觉", with_chars=True).split()


def test_jieba_is_quiet():
    code = "from polymodal.media.text import segment_for_search; print(segment_for_search('我喜欢猫'))"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stderr == ""
    assert "喜欢" in done.stdout.split()


def test_importing_text_does_not_import_jieba_or_pypdf():
    code = (
        "import sys, polymodal.media.text, polymodal.media.detect;"
        "print('jieba' in sys.modules, 'pypdf' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
