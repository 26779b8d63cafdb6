"""Write a corpus of bad and tricky inputs, and a manifest of what indexing each one must give.

    python scripts/make_bad_inputs.py DIR [--heavy] [--samples DIR] [--only NAME,...]

Layout of DIR (made empty first):

    main/            the cases indexed together, in one run of ``polymodal index``
    alone/<case>/    a case indexed in a run of its own (a hang, a memory or time risk: attributed to it)
    outside/         targets of links that lead out of the indexed folders (an /etc/passwd look-alike)
    manifest.json    what each case must give

Each case in the manifest: ``name``; ``run`` (``main`` or the case's own name); ``path`` relative to DIR (text as
``os.fsdecode`` gives it, so a non-UTF-8 byte appears as ``\\udcXX`` in the JSON: ``os.fsencode`` gives the bytes
back); ``expect``, one of

    indexed   in the store, with no error
    partial   in the store, with a note containing ``note``
    skipped   not in the store; an error (or a note) for it contains ``reason``
    handled   either in the store or skipped with a reason (garbage in: anything but silence or a crash)
    ignored   not in the store and nothing said about it (a name the indexer does not take, by design)

and its bounds: ``seconds``, what it may add to its run's time, and ``rss_mb``, the peak RSS a run holding it may
reach (models included). A run's bounds (``runs``) are ``BASE_SECONDS`` plus its cases' seconds, and the largest of
their ``rss_mb``. ``why`` says what the case is about. Text matches are case-insensitive.

Everything is deterministic (fixed seeds, no clock) except the salts of the encrypted PDFs, and small: the corpus
is ~8 MB on disk (a 3 GB file is sparse). ``--heavy`` adds the big ones (a 17 MB Chinese text, a 55 MB line).
Run as root, the unreadable file and folder are readable after all: their expectation says so (``as_root``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import stat
import struct
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SAMPLES = REPO / ".cache" / "sample-collection"
BASE_SECONDS = 90  # starting Python, loading the models a run needs, on 2 busy cores
# Peak RSS bounds, measured with 1.4x slack or more (2 cores, Intel): a run with every model loaded (the main run:
# 0.83-0.89 GB); one image alone (0.13 GB); one text alone (0.2-0.6 GB).
BASE_RSS_MB = 1200
IMAGE_RSS_MB = 600
TEXT_RSS_MB = 900
NO_MODEL_RSS_MB = 300  # a run that must refuse its file before loading any model (measured 0.04 GB)
SECONDS_PER_CASE = 3
MB = 1024 * 1024


@dataclass
class Case:
    name: str
    file: str  # the file's name in its folder (may hold escapes and surrogates)
    make: Callable[[Path], None] | None  # writes the file at the path it is given (None: made by the layout)
    expect: str
    text: str = ""  # the reason (skipped) or note (partial) substring
    why: str = ""
    alone: bool = False
    heavy: bool = False
    seconds: float = SECONDS_PER_CASE
    rss_mb: int = BASE_RSS_MB


# --- content helpers --------------------------------------------------------------------------------------
WORDS = (
    "the a harbour coffee morning river bright quiet garden library window engine music letter station "
    "market winter summer forest bridge village story market paper light mountain teacher kitchen"
).split()
HAN = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种"
    "面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本"
    "去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比"
    "或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总"
    "次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做"
    "必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权"
    "收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信"
    "马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连"
)


def english(sentences: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(sentences):
        words = [WORDS[i] for i in rng.integers(0, len(WORDS), int(rng.integers(6, 14)))]
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


def chinese(chars: int, seed: int) -> str:
    """Chinese-looking text: sentences of ~25 characters, a paragraph every ~10 sentences."""
    rng = np.random.default_rng(seed)
    table = np.array(list(HAN))
    text = table[rng.integers(0, len(HAN), chars)]
    text[24::25] = "。"
    text[249::250] = "\n"
    return "".join(text.tolist())


def write(path: Path, data: bytes | str) -> None:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def text_file(content: str | bytes) -> Callable[[Path], None]:
    return lambda path: write(path, content)


# --- PDF ------------------------------------------------------------------------------------------------
def pdf_text_stream(lines: list[str]) -> bytes:
    body = "".join(f"({line.replace(chr(92), '').replace('(', '').replace(')', '')}) Tj T* " for line in lines)
    return f"BT /F1 12 Tf 14 TL 72 720 Td {body}ET".encode("latin-1")


def pdf(pages: list[bytes | tuple[str, bytes]], broken_xref: bool = False) -> bytes:
    """A PDF whose pages have these content streams (a ("flate", data) pair: already Flate-compressed)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for content in pages:
        page_number, content_number = len(objects) + 1, len(objects) + 2
        kids.append(f"{page_number} 0 R")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {content_number} 0 R >>".encode()
        )
        if isinstance(content, tuple):
            data = content[1]
            objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream")
        else:
            objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode()
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % (offset * 7 + 13 if broken_xref else offset)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref + 5 if broken_xref else xref,
    )
    return bytes(out)


def flate_of_spaces(megabytes: int) -> bytes:
    """A Flate stream that inflates to ``megabytes`` MB of spaces (~1000:1)."""
    compressor = zlib.compressobj(9)
    block = b" " * MB
    return b"".join(compressor.compress(block) for _ in range(megabytes)) + compressor.flush()


def encrypted_pdf(user_password: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        from pypdf import PdfReader, PdfWriter

        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf([pdf_text_stream(english(6, 7).split(". "))]))))
        writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-256")
        with path.open("wb") as handle:
            writer.write(handle)

    return make


# --- images -----------------------------------------------------------------------------------------------
def picture(width: int, height: int, seed: int = 0) -> np.ndarray:
    """An RGB picture with gradients and a little noise (so that encoders have something to encode)."""
    y, x = np.mgrid[0:height, 0:width]
    noise = np.random.default_rng(seed).integers(0, 24, (height, width))
    red = (x * 255 // max(1, width - 1) + noise) % 256
    green = (y * 255 // max(1, height - 1) + noise) % 256
    blue = ((x + y) * 3 + noise) % 256
    return np.stack([red, green, blue], axis=2).astype(np.uint8)


def image_bytes(array: np.ndarray, fmt: str, mode: str | None = None, **options) -> bytes:
    from PIL import Image

    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def blank_png(width: int, height: int) -> bytes:
    """A 1-bit black PNG of any size, written row by row: a 20000x20000 one is 50 KB."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)
    rows_per_block = max(1, MB // len(row))
    block = row * rows_per_block
    parts, left = [], height
    while left > 0:
        take = min(left, rows_per_block)
        parts.append(compressor.compress(block if take == rows_per_block else row * take))
        left -= take
    parts.append(compressor.flush())
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(
        b"IEND", b""
    )


def strip_png(width: int, height: int) -> Callable[[Path], None]:
    return lambda path: write(path, image_bytes(picture(width, height), "PNG"))


def jpeg_with_size(width: int, height: int) -> bytes:
    """A real small JPEG whose frame header claims ``width`` x ``height``."""
    data = bytearray(image_bytes(picture(64, 48), "JPEG", quality=80))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_with_screen(width: int, height: int) -> bytes:
    data = bytearray(image_bytes(picture(8, 8), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def bmp_header_only(width: int, height: int) -> bytes:
    pixels = width * height * 3
    header = b"BM" + struct.pack("<IHHI", 54 + pixels & 0xFFFFFFFF, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, pixels & 0xFFFFFFFF, 2835, 2835, 0, 0)
    return header + info + bytes(1024)


def heic_like() -> bytes:
    """An ISO-BMFF file with a HEIC brand (what phones write), its boxes not decodable here."""
    ftyp = struct.pack(">I", 24) + b"ftypheic" + struct.pack(">I", 0) + b"mif1heic"
    meta = struct.pack(">I", 40) + b"meta" + bytes(4) + struct.pack(">I", 28) + b"hdlr" + bytes(8) + b"pict" + bytes(8)
    return ftyp + meta + np.random.default_rng(5).integers(0, 256, 4000, dtype=np.uint8).tobytes()


def animated_gif(frames: int) -> bytes:
    """An 8x8 GIF of ``frames`` frames, two colours alternating (written by hand: PIL takes a minute for 10,000)."""
    header = b"GIF89a" + struct.pack("<HHBBB", 8, 8, 0xF0, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    frame_parts = []
    for colour in (0, 1):
        control = b"\x21\xf9\x04\x00\x02\x00\x00\x00"  # 20 ms per frame
        descriptor = b"\x2c" + struct.pack("<HHHHB", 0, 0, 8, 8, 0)
        frame_parts.append(control + descriptor + b"\x02" + _gif_lzw([colour] * 64) + b"\x00")
    body = b"".join(frame_parts[i % 2] for i in range(frames))
    return header + loop + body + b"\x3b"


def _gif_lzw(indices: list[int]) -> bytes:
    """LZW data of a 1-bit GIF frame (minimum code size 2), a clear code before every pixel: simple, and valid."""
    bits, nbits = 0, 0
    out = bytearray()
    codes = []
    for index in indices:
        codes += [4, index]  # clear, pixel: the table never grows past its first code size of 3 bits
    codes.append(5)  # end of information
    for code in codes:
        bits |= code << nbits
        nbits += 3
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            nbits -= 8
    if nbits:
        out.append(bits & 0xFF)
    blocks = b"".join(bytes([len(out[i : i + 255])]) + out[i : i + 255] for i in range(0, len(out), 255))
    return blocks


def many_page_tiff(pages: int) -> bytes:
    from PIL import Image

    frames = [Image.fromarray(picture(16, 16, seed=i)) for i in range(pages)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "TIFF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def jpeg_rotated_by_exif() -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    return image_bytes(picture(96, 48), "JPEG", quality=85, exif=exif.tobytes())


def jpeg_with_broken_exif() -> bytes:
    data = image_bytes(picture(96, 64), "JPEG", quality=85)
    # An Exif block whose first directory claims 65535 entries and points past the end of the block.
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\xff\xff" + b"\x01\x12\x00\x03\x00\x00\x00\x01\xff\xff\x00\x00" * 3
    block = b"Exif\x00\x00" + tiff + b"\x00\x00\xff\xff\xff\xf0"
    segment = b"\xff\xe1" + struct.pack(">H", len(block) + 2) + block
    return data[:2] + segment + data[2:]


def png_16bit_grey() -> bytes:
    from PIL import Image

    ramp = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, "PNG")
    return buffer.getvalue()


def png_palette_with_alpha() -> bytes:
    from PIL import Image

    image = Image.fromarray(picture(64, 48)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=bytes([0, 128] + [255] * 14))
    return buffer.getvalue()


def tiff_float() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.linspace(-5.0, 5.0, 48 * 64, dtype=np.float32).reshape(48, 64), "F").save(buffer, "TIFF")
    return buffer.getvalue()


def png_with_bad_crc() -> bytes:
    data = bytearray(image_bytes(picture(32, 32), "PNG"))
    data[29] ^= 0xFF  # inside the IHDR chunk's CRC
    return bytes(data)


def gif_html_polyglot() -> bytes:
    return image_bytes(picture(16, 16), "GIF") + b"<html><body><p>A page hidden after a picture.</p></body></html>\n"


def pdf_zip_polyglot() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("inside.txt", "a file inside the zip part")
    return pdf([pdf_text_stream(english(5, 11).split(". "))]) + buffer.getvalue()


def svgz() -> bytes:
    import gzip

    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">' + b"<g>" * 2000 + b"</g>" * 2000
    svg += b"</svg>"
    return gzip.compress(svg, mtime=0)


# --- audio and video --------------------------------------------------------------------------------------
RATE = 16000


def tone(seconds: float, rate: int = RATE) -> np.ndarray:
    """A chirp with a little noise: something for the sound tagger, no speech."""
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(3).normal(0, 0.01, t.size)
    return (0.3 * np.sin(2 * np.pi * (300 + 200 * t) * t) + noise).astype(np.float32)


def wav_bytes(samples: np.ndarray, rate: int = RATE, channels: int = 1, data_size: int | None = None) -> bytes:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    size = len(pcm) if data_size is None else data_size
    block = max(1, channels) * 2
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, 16)
    riff_size = min(0xFFFFFFFF, 4 + 8 + len(fmt) + 8 + size)
    return b"RIFF" + struct.pack("<I", riff_size) + b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + (
        struct.pack("<I", size) + pcm
    )


def encoded_audio(fmt: str, codec: str, seconds: float, rate: int, layout: str = "mono") -> bytes:
    import av

    buffer = io.BytesIO()
    options = {"strict": "experimental"} if codec == "vorbis" else {}
    with av.open(buffer, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, options=options)
        stream.layout = layout
        context = stream.codec_context
        resampler = av.AudioResampler(format=context.format.name, layout=layout, rate=rate,
                                      frame_size=context.frame_size or None)  # fmt: skip
        frame = av.AudioFrame.from_ndarray(tone(seconds, rate)[None, :], format="flt", layout="mono")
        frame.rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        for chunk in resampler.resample(frame) + resampler.resample(None):
            out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def truncated(make: Callable[[], bytes], keep: float) -> Callable[[Path], None]:
    def cut(path: Path) -> None:
        data = make()
        write(path, data[: int(len(data) * keep)])

    return cut


def random_mp3_frames(frames: int) -> bytes:
    """MPEG-1 Layer III frame headers (128 kbit/s, 44.1 kHz) with random bytes for their contents."""
    rng = np.random.default_rng(9)
    out = bytearray()
    for i in range(frames):
        padding = i % 3 == 0
        header = bytes([0xFF, 0xFB, 0x90 | (0x02 if padding else 0), 0x64])
        out += header + rng.integers(0, 256, 417 + padding - 4, dtype=np.uint8).tobytes()
    return bytes(out)


def video(seconds: float, with_audio: bool = True, faststart: bool = False, fmt: str = "mp4") -> bytes:
    import av

    fps = 10
    options = {"movflags": "faststart"} if faststart else {}
    folder = tempfile.mkdtemp()  # faststart rewrites the file by name: not in memory
    target = Path(folder, f"video.{fmt}")
    with av.open(str(target), "w", format=fmt, options=options) as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        sound = out.add_stream("aac", rate=RATE, layout="mono") if with_audio else None
        for index in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(picture(96, 64, seed=index // fps), format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if sound is not None:
            track = tone(seconds)
            for start in range(0, track.size, 1024):
                chunk = av.AudioFrame.from_ndarray(track[None, start : start + 1024], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = RATE, start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    data = target.read_bytes()
    shutil.rmtree(folder)
    return data


def matroska_without_streams() -> bytes:
    """An EBML header and a segment with only its Info (no Tracks): a container holding nothing."""

    def element(ident: bytes, payload: bytes) -> bytes:
        return ident + bytes([0x80 | len(payload)]) + payload  # sizes under 127 bytes

    ebml = element(
        b"\x1a\x45\xdf\xa3",
        element(b"\x42\x86", b"\x01") + element(b"\x42\xf7", b"\x01") + element(b"\x42\xf2", b"\x04")
        + element(b"\x42\xf3", b"\x08") + element(b"\x42\x82", b"matroska") + element(b"\x42\x87", b"\x04")
        + element(b"\x42\x85", b"\x02"),
    )  # fmt: skip
    info = element(b"\x15\x49\xa9\x66", element(b"\x2a\xd7\xb1", b"\x0f\x42\x40") + element(b"\x4d\x80", b"hand"))
    return ebml + b"\x18\x53\x80\x67" + bytes([0x80 | len(info)]) + info


def matroska_audio_only() -> bytes:
    return encoded_audio("matroska", "flac", 2.0, 44100)


# --- special files ----------------------------------------------------------------------------------------
def fifo(path: Path) -> None:
    os.mkfifo(path)


def link_to(target: str) -> Callable[[Path], None]:
    return lambda path: os.symlink(target, path)


def sparse(size: int) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        with path.open("wb") as handle:
            handle.write(b"starts like text\n")
            handle.truncate(size)

    return make


def unreadable_file(path: Path) -> None:
    write(path, english(8, 21))
    path.chmod(0)


def copy_sample(relative: str, samples: Path) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        source = samples / relative
        if not source.is_file():
            raise SystemExit(f"sample file {source} is missing: run `polymodal samples {samples}` first")
        shutil.copyfile(source, path)

    return make


# --- the cases --------------------------------------------------------------------------------------------
def cases(samples: Path) -> list[Case]:
    found = [
        # Good files that must be indexed, whatever else is in the folder.
        Case("good_photo", "coffee.jpg", copy_sample("photos/coffee.jpg", samples), "indexed", why="a real photo"),
        Case("good_markdown", "coffee.md", copy_sample("notes/coffee.md", samples), "indexed", why="a real note"),
        Case("good_chinese_text", "猫.txt", copy_sample("notes/猫.txt", samples), "indexed",
             why="Chinese, named in Chinese"),
        Case("good_html", "rockets.html", copy_sample("notes/rockets.html", samples), "indexed", why="a real page"),
        Case("good_sound", "dog.mp3", copy_sample("sounds/dog.mp3", samples), "indexed", why="a real recording"),
        Case("good_wav", "chirp.wav", lambda p: write(p, wav_bytes(tone(2.0))), "indexed", why="a plain WAV"),
        Case("good_video", "clip.mp4", lambda p: write(p, video(2.0)), "indexed", seconds=8, why="a small video"),
        # Special files and names.
        Case("fifo", "pipe.txt", fifo, "skipped", "pipe", alone=True, seconds=30, rss_mb=NO_MODEL_RSS_MB,
             why="a named pipe: opening it for reading blocks forever"),
        Case("dangling_symlink", "dangling.txt", link_to("no-such-target.txt"), "skipped", "broken link",
             why="a link to nothing"),
        Case("symlink_loop", "loop.txt", link_to("loop.txt"), "skipped", "loop", why="a link to itself"),
        Case("symlink_outside", "passwd.txt", link_to("../outside/passwd"), "skipped", "outside",
             why="a link out of the indexed folder, to a password-file look-alike: not read unless asked"),
        Case("symlink_inside", "link-to-coffee.md", link_to("coffee.md"), "indexed",
             why="a link to a file of the same folder: the file is indexed (once)"),
        Case("dir_symlink_loop", "dirloop", link_to("."), "ignored",
             why="a folder link to its own folder: walked once, never in a loop"),
        Case("unreadable_folder", "locked", None, "skipped", "permission denied",
             why="a folder that cannot be listed (chmod 000)"),
        Case("unreadable_file", "secret.txt", unreadable_file, "skipped", "permission denied",
             why="a file that cannot be read (chmod 000)"),
        Case("non_utf8_name", os.fsdecode(b"caf\xe9-latin1.txt"), text_file(english(6, 1)), "skipped", "UTF-8",
             why="a Latin-1 file name: the store keeps text; the reason tells to rename it"),
        Case("escape_name", "\x1b[31mred\x1b[0m.txt", text_file(english(6, 2)), "indexed",
             why="terminal escape sequences in the name (the CLI must print them escaped)"),
        Case("newline_name", "two\nlines.txt", text_file(english(6, 3)), "indexed", why="a newline in the name"),
        Case("bidi_name", "\u202etxt.exe.txt", text_file(english(6, 4)), "indexed",
             why="a right-to-left override in the name"),
        Case("long_name", "n" * 240 + ".txt", text_file(english(6, 5)), "indexed", why="a 244-byte name"),
        Case("sparse_over_limit", "huge-sparse.txt", sparse(3 * 1024**3), "skipped", "size limit",
             why="a 3 GB file (sparse: no disk used), over the 2 GB file size limit"),
        # Text.
        Case("quadratic_markdown", "headings.md", text_file(quadratic_markdown()), "indexed", alone=True, seconds=30,
             rss_mb=TEXT_RSS_MB,
             why="100 KB of '#' patterns that make a backtracking heading regex quadratic"),
        Case("long_line", "one-line.txt", text_file(one_line(2 * MB, 6)), "indexed",
             seconds=20, why="2 MB on a single line"),
        Case("html_rot13", "rot13.html", text_file(html_rot13()), "indexed",
             why="HTML declaring charset=rot13 (a str-to-str codec) with a non-UTF-8 byte"),
        Case("utf16le_no_bom", "utf16le.txt", text_file(english(30, 8).encode("utf-16-le")), "indexed",
             why="UTF-16 (little-endian) without a byte order mark"),
        Case("utf16be_no_bom", "utf16be.txt", text_file(english(30, 9).encode("utf-16-be")), "indexed",
             why="UTF-16 (big-endian) without a byte order mark"),
        Case("one_nul_byte", "nul.txt", text_file(english(20, 10)[:500] + "\x00" + english(20, 11)), "indexed",
             why="a text with one NUL byte"),
        Case("binary_named_txt", "random.txt", text_file(random_bytes(64 * 1024, 12)), "skipped", "unrecognised",
             why="random bytes named .txt"),
        Case("only_whitespace", "blank.txt", text_file(" \n\t\n   \r\n" * 200), "skipped", "no text",
             why="a file of whitespace only"),
        Case("mixed_encodings", "mixed.txt", text_file(mixed_encodings()), "indexed",
             why="UTF-8 and Latin-1 lines in one file"),
        Case("gb18030_text", "gbk.txt", text_file(chinese(3000, 13).encode("gb18030")), "indexed",
             why="Chinese in GB18030, not UTF-8"),
        Case("wide_tsv", "wide.txt", text_file(wide_tsv(100_000)), "indexed", seconds=10,
             why="a 100,000-column table (tab-separated) named .txt"),
        Case("md_huge_table", "table.md", text_file(markdown_table(2000, 10)), "indexed", seconds=10,
             why="a Markdown table of 2,000 rows"),
        Case("deep_html", "deep.html", text_file(deep_html(50_000)), "indexed", seconds=10,
             why="HTML nested 50,000 deep"),
        Case("html_only_script", "script.html", text_file(html_only_script()), "skipped", "no text",
             why="a page with a script and no text"),
        Case("huge_chinese", "chinese-17mb.txt", text_file(chinese(17 * MB // 3, 14)), "indexed", alone=True,
             heavy=True, seconds=600, rss_mb=TEXT_RSS_MB + 600, why="17 MB of Chinese text"),
        Case("huge_one_line", "line-55mb.txt", lambda p: write(p, one_line(55 * MB, 15)), "indexed",
             alone=True, heavy=True, seconds=900, rss_mb=TEXT_RSS_MB + 600, why="a 55 MB single line"),
        # PDF.
        Case("pdf_password", "locked.pdf", encrypted_pdf("secret"), "skipped", "password",
             why="AES-256 encrypted with a user password"),
        Case("pdf_empty_password", "open-encrypted.pdf", encrypted_pdf(""), "indexed",
             why="AES-256 encrypted with an empty user password: anyone may read it"),
        Case("pdf_bomb", "bomb.pdf", lambda p: write(p, pdf([("flate", flate_of_spaces(100))])), "skipped",
             "limit", alone=True, seconds=30, rss_mb=TEXT_RSS_MB,
             why="a page stream inflating to 100 MB (100 KB on disk)"),
        Case("pdf_bomb_page2", "bomb-page2.pdf",
             lambda p: write(p, pdf([pdf_text_stream(english(8, 16).split(". ")), ("flate", flate_of_spaces(100))])),
             "partial", "page 2", alone=True, seconds=30, rss_mb=TEXT_RSS_MB,
             why="a good first page and a second inflating to 100 MB: page 1 indexed, page 2 said"),
        Case("pdf_no_text_layer", "drawing.pdf", lambda p: write(p, pdf([b"0 0 1 rg 100 100 300 300 re f"])),
             "skipped", "no text layer", why="a PDF with a drawing and no text"),
        Case("pdf_broken_xref", "broken-xref.pdf",
             lambda p: write(p, pdf([pdf_text_stream(english(8, 17).split(". "))], broken_xref=True)), "indexed",
             why="a PDF whose cross-reference table points to the wrong places"),
        Case("pdf_header_only", "cut.pdf", text_file(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Cata"),
             "skipped", "PDF", why="a PDF cut after its first bytes"),
        Case("pdf_zero_pages", "no-pages.pdf", lambda p: write(p, pdf([])), "skipped", "no text",
             why="a PDF with no pages"),
        Case("polyglot_pdf_zip", "polyglot.pdf", lambda p: write(p, pdf_zip_polyglot()), "indexed",
             why="a PDF with a ZIP archive appended"),
        # Images.
        Case("png_1x8000", "strip-1x8000.png", strip_png(1, 8000), "indexed", alone=True, seconds=20,
             rss_mb=IMAGE_RSS_MB, why="a 1x8000 picture: resizing its short side to 256 px naively makes 2 GP"),
        Case("png_1x20000", "strip-1x20000.png", strip_png(1, 20000), "indexed", alone=True, seconds=20,
             rss_mb=IMAGE_RSS_MB, why="a 1x20000 picture (a naive resize makes 5 GP)"),
        Case("png_bomb", "bomb.png", lambda p: write(p, blank_png(20000, 20000)), "skipped", "limit", alone=True,
             seconds=20, rss_mb=NO_MODEL_RSS_MB, why="a PNG decompression bomb: 400 MP in 50 KB, refused unread"),
        Case("png_100mp", "big-blank.png", lambda p: write(p, blank_png(10000, 10000)), "indexed", alone=True,
             seconds=60, rss_mb=900, why="a 100 MP PNG, just under the 120 MP limit, in 12 KB (0.61 GB measured)"),
        Case("jpeg_bomb_header", "huge.jpg", lambda p: write(p, jpeg_with_size(65000, 65000)), "skipped", "limit",
             why="a JPEG claiming 65000x65000 pixels"),
        Case("gif_huge_screen", "huge.gif", lambda p: write(p, gif_with_screen(65535, 65535)), "skipped", "limit",
             why="a GIF whose screen is 65535x65535"),
        Case("bmp_huge_header", "huge.bmp", lambda p: write(p, bmp_header_only(100_000, 100_000)), "skipped",
             "limit", why="a BMP claiming 100000x100000 pixels"),
        Case("heic_named_jpg", "IMG_0001.jpg", lambda p: write(p, heic_like()), "skipped", "HEI",
             why="a HEIC photo named .jpg (as phones export): the reason names HEIC/HEIF as unsupported"),
        Case("heic_file", "photo.heic", lambda p: write(p, heic_like()), "ignored",
             why=".heic is not an extension the indexer takes"),
        Case("png_named_mp3", "song.mp3", lambda p: write(p, image_bytes(picture(64, 48), "PNG")), "partial",
             "named .mp3", why="a PNG named .mp3"),
        Case("polyglot_gif_html", "page.html", lambda p: write(p, gif_html_polyglot()), "partial", "named .html",
             why="a GIF with an HTML page after it, named .html"),
        Case("jpeg_truncated_half", "half.jpg", truncated(lambda: image_bytes(picture(320, 240), "JPEG"), 0.5),
             "skipped", "truncated", why="a JPEG cut half-way"),
        Case("gif_10000_frames", "frames.gif", lambda p: write(p, animated_gif(10_000)), "indexed", seconds=10,
             why="an 8x8 GIF of 10,000 frames"),
        Case("tiff_many_pages", "pages.tiff", lambda p: write(p, many_page_tiff(300)), "indexed",
             why="a TIFF of 300 pages"),
        Case("jpeg_exif_rotated", "rotated.jpg", lambda p: write(p, jpeg_rotated_by_exif()), "indexed",
             why="EXIF orientation 6"),
        Case("jpeg_broken_exif", "broken-exif.jpg", lambda p: write(p, jpeg_with_broken_exif()), "indexed",
             why="an Exif block whose directory claims 65535 entries"),
        Case("png_16bit_grey", "grey16.png", lambda p: write(p, png_16bit_grey()), "indexed", why="16-bit grey"),
        Case("jpeg_cmyk", "cmyk.jpg", lambda p: write(p, image_bytes(picture(64, 48), "JPEG", mode="CMYK")),
             "indexed", why="a CMYK JPEG"),
        Case("png_palette_alpha", "palette.png", lambda p: write(p, png_palette_with_alpha()), "indexed",
             why="a palette PNG with transparency"),
        Case("png_grey_alpha", "grey-alpha.png", lambda p: write(p, image_bytes(picture(64, 48), "PNG", mode="LA")),
             "indexed", why="grey with alpha"),
        Case("tiff_float", "float.tif", lambda p: write(p, tiff_float()), "indexed", why="32-bit float pixels"),
        Case("png_bad_crc", "bad-crc.png", lambda p: write(p, png_with_bad_crc()), "skipped", "corrupt",
             why="a PNG whose header checksum is wrong"),
        Case("svgz", "drawing.svgz", lambda p: write(p, svgz()), "ignored", why="gzip'ed SVG: not a taken extension"),
        Case("hidden_file", ".hidden.txt", text_file(english(5, 18)), "ignored", why="hidden files are left alone"),
        # Audio.
        Case("wav_1hz", "one-hertz.wav", lambda p: write(p, wav_bytes(np.zeros(10, np.float32), rate=1)),
             "skipped", "sample rate", why="a WAV at 1 Hz"),
        Case("wav_huge_declared", "liar.wav", lambda p: write(p, wav_bytes(tone(1.0), data_size=0xFFFFFFF0)),
             "indexed", why="a WAV declaring 4 GB of data, holding 1 s"),
        Case("wav_zero_channels", "no-channels.wav", lambda p: write(p, wav_bytes(tone(1.0), channels=0)),
             "skipped", "channel", why="a WAV with 0 channels"),
        Case("wav_absurd_channels", "many-channels.wav", lambda p: write(p, wav_bytes(tone(1.0), channels=4096)),
             "skipped", "channel", why="a WAV with 4096 channels"),
        Case("ogg_truncated", "cut.ogg", truncated(lambda: encoded_audio("ogg", "vorbis", 4, 44100, "stereo"), 0.5),
             "partial", "truncated", why="Ogg Vorbis cut half-way: what was read is indexed, and the cut said"),
        Case("flac_truncated", "cut.flac", truncated(lambda: encoded_audio("flac", "flac", 4, 44100), 0.5),
             "partial", "truncated", why="FLAC cut half-way (its header gives the full length): indexed, said"),
        Case("mp3_random_frames", "noise.mp3", lambda p: write(p, random_mp3_frames(100)), "handled",
             why="MPEG frame headers around random bytes"),
        # Video.
        Case("video_no_streams", "empty-container.mkv", lambda p: write(p, matroska_without_streams()), "skipped",
             "stream", why="a Matroska container with no streams"),
        Case("mp4_truncated", "cut.mp4", truncated(lambda: video(3.0), 0.6), "skipped", "truncated",
             why="an MP4 cut before its index (moov at the end): nothing can be read"),
        Case("mp4_truncated_faststart", "cut-faststart.mp4", truncated(lambda: video(3.0, faststart=True), 0.6),
             "partial", "truncated", seconds=8, why="an MP4 with its index first, cut: what was read, said"),
        Case("mkv_audio_only", "sound.mkv", lambda p: write(p, matroska_audio_only()), "indexed",
             why="a Matroska file with only a sound track"),
    ]  # fmt: skip
    for ext in ("txt", "md", "html", "pdf", "jpg", "png", "gif", "wav", "mp3", "flac", "ogg", "mp4", "mkv"):
        found.append(Case(f"empty_{ext}", f"empty.{ext}", text_file(b""), "skipped", "empty file",
                          why=f"a 0-byte .{ext}"))  # fmt: skip
    return found


def random_bytes(size: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def one_line(size: int, seed: int) -> str:
    block = english(20_000, seed) + " "
    return (block * (size // len(block) + 1))[:size]


def quadratic_markdown() -> str:
    """Heading lines that a lazy ``(\\S.*?)[ \\t#]*$`` heading regex backtracks over quadratically."""
    lines = [
        "# Notes on headings",
        "",
        "# x" + " #" * 25_000 + " y",  # 50 KB: the trailing run of ' #' ends in a letter
        "## a" + "\t#" * 20_000 + "\tb",  # 40 KB
        "#" * 10_000,  # 10 KB: more '#' than a heading takes
        "",
        "The end.",
    ]
    return "\n".join(lines) + "\n"


def html_rot13() -> bytes:
    return (
        b'<!DOCTYPE html>\n<html><head><meta charset="rot13"><title>Caf\xe9 notes</title></head>\n<body>'
        b"<p>The caf\xe9 on the harbour serves espresso every morning. " + english(10, 19).encode() + b"</p>"
        b"</body></html>\n"
    )


def mixed_encodings() -> bytes:
    lines = []
    for i in range(20):
        lines.append(f"Line {i} in UTF-8: the café serves crème brûlée.".encode())
        lines.append(f"Line {i} in Latin-1: a naïve façade.".encode("latin-1"))
    return b"\n".join(lines) + b"\n"


def wide_tsv(columns: int) -> str:
    header = "\t".join(f"c{i}" for i in range(columns))
    row = "\t".join(str(i % 10) for i in range(columns))
    return header + "\n" + row + "\n"


def markdown_table(rows: int, columns: int) -> str:
    out = ["# A big table", "", "| " + " | ".join(f"col {j}" for j in range(columns)) + " |"]
    out.append("|" + "---|" * columns)
    for i in range(rows):
        out.append("| " + " | ".join(f"r{i} {WORDS[(i + j) % len(WORDS)]}" for j in range(columns)) + " |")
    return "\n".join(out) + "\n"


def deep_html(depth: int) -> str:
    return "<!DOCTYPE html><html><body>" + "<div>" * depth + "Deep inside, a sentence." + "</div>" * depth + (
        "</body></html>\n"
    )


def html_only_script() -> str:
    return "<!DOCTYPE html><html><head><script>" + "var x = 1;\n" * 500 + "</script></head><body></body></html>\n"


# --- layout -----------------------------------------------------------------------------------------------
def build(root: Path, heavy: bool, samples: Path, only: set[str] | None = None) -> dict:
    _clear(root)
    (root / "main").mkdir(parents=True)
    outside = root / "outside"
    outside.mkdir()
    write(outside / "passwd", "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    selected = [c for c in cases(samples) if (heavy or not c.heavy) and (only is None or c.name in only)]
    entries = []
    for case in selected:
        folder = root / "alone" / case.name if case.alone else root / "main"
        folder.mkdir(parents=True, exist_ok=True)
        if case.name == "unreadable_folder":
            entries.append(_unreadable_folder(root, folder, case))
            continue
        path = folder / case.file
        assert case.make is not None
        case.make(path)
        if case.name == "symlink_inside" and not (folder / "coffee.md").exists():
            copy_sample("notes/coffee.md", samples)(folder / "coffee.md")
        entries.append(_entry(root, path, case))
    for entry in entries:
        if entry["name"] == "unreadable_file" and _readable(root / entry["path"]):
            entry.update(expect="indexed", text="", as_root=True)
    runs = _runs(entries)
    manifest = {"version": 1, "heavy": heavy, "base_seconds": BASE_SECONDS, "runs": runs, "cases": entries}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def _unreadable_folder(root: Path, folder: Path, case: Case) -> dict:
    locked = folder / case.file
    locked.mkdir()
    write(locked / "inside.txt", english(6, 20))
    locked.chmod(0)
    if _readable(locked / "inside.txt"):  # root reads it anyway: then its file is indexed
        entry = _entry(root, locked / "inside.txt", case)
        entry.update(expect="indexed", text="", as_root=True)
        return entry
    return _entry(root, locked, case)


def _readable(path: Path) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False


def _entry(root: Path, path: Path, case: Case) -> dict:
    data = asdict(case)
    for key in ("make", "file", "alone"):
        data.pop(key)
    data["run"] = case.name if case.alone else "main"
    data["path"] = os.fsdecode(path.relative_to(root))
    return data


def _runs(entries: list[dict]) -> list[dict]:
    runs: dict[str, dict] = {}
    for entry in entries:
        root = "main" if entry["run"] == "main" else f"alone/{entry['run']}"
        run = runs.setdefault(entry["run"], {"name": entry["run"], "root": root, "seconds": BASE_SECONDS, "rss_mb": 0})
        run["seconds"] += entry["seconds"]
        run["rss_mb"] = max(run["rss_mb"], entry["rss_mb"])
    return list(runs.values())


def _clear(root: Path) -> None:
    """Empty ``root``, first giving back the permissions the last corpus took away."""
    if not root.exists():
        return
    for folder, subfolders, _ in os.walk(root):
        for name in subfolders:
            path = Path(folder, name)
            if not path.is_symlink():
                path.chmod(stat.S_IRWXU)
    shutil.rmtree(root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="folder to write the corpus into (emptied first)")
    parser.add_argument("--heavy", action="store_true", help="also the big cases (17 MB and 55 MB texts)")
    parser.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES, help="the sample collection (good files)")
    parser.add_argument("--only", help="comma-separated case names")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    manifest = build(args.dir.absolute(), args.heavy, args.samples, only)
    print(f"{len(manifest['cases'])} cases in {len(manifest['runs'])} runs written to {args.dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
