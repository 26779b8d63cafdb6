"""Benchmark media made from real files only, built once into ``.cache/bench-data/`` (reused by later runs).

- photos: a realistic camera mix, one third 12 MP (4000x3000) and two thirds 1-2 MP JPEGs, made by upscaling and
  cropping the real sample photos (scikit-image / scikit-learn) and the Tux Paint PNG cut-out photos (composited on
  a real photo background), saved at JPEG quality 85-92. Upscaled pixels decode at the same cost as camera pixels
  (JPEG decoding cost follows the pixel count), but they are smoother than a real 12 MP photo;
- stamps: the Tux Paint PNG photos as they are (small cut-outs, 100-700 px);
- prompts: the Asterisk English prompts (8 kHz WAV, 1-5 s each);
- recordings: a few minutes of real speech, made by concatenating the Asterisk prompts and the sample collection's
  read-speech clips with PyAV into 16 kHz WAV files;
- texts: the sample collection's notes and the licence texts in /usr/share/common-licenses (real English prose).
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".cache" / "bench-data" / "v1"
TUXPAINT = Path("/usr/share/tuxpaint/stamps")
ASTERISK = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
LICENCES = Path("/usr/share/common-licenses")
SIZES_12MP = [(4000, 3000), (3000, 4000)]
SIZES_SMALL = [(1280, 960), (1600, 1200), (1440, 1080), (1920, 1080), (1080, 1440), (1200, 1200)]


def samples() -> Path:
    from polymodal.samples import build_sample_collection

    dest = REPO / ".cache" / "sample-collection"
    build_sample_collection(dest)
    return dest


def stamp_pngs(limit: int | None = None) -> list[Path]:
    """Tux Paint PNG photos with a caption file, no mirrored copies, no SVG renderings, no letters."""
    found = [
        p
        for p in sorted(TUXPAINT.rglob("*.png"))
        if not p.stem.endswith("_mirror")
        and not p.with_suffix(".svg").exists()
        and "alphabets" not in p.parts
        and p.with_suffix(".txt").exists()
    ]
    return found[:limit] if limit else found


def fresh_part(folder: Path) -> Path:
    """An empty ``<folder>.part`` to build ``folder`` in (renamed into place when complete), any leftovers gone."""
    tmp = folder.with_suffix(".part")
    for stale in (folder, tmp):
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def photo_mix(count: int, seed: int = 0) -> Path:
    """A folder of ``count`` JPEGs: one third 12 MP, two thirds 1-2 MP (made once, then reused)."""
    folder = DATA / f"photos-{count}-{seed}"
    if folder.is_dir() and len(list(folder.glob("*.jpg"))) == count:
        return folder
    tmp = fresh_part(folder)
    rng = random.Random(seed)
    photos = sorted((samples() / "photos").glob("*.jpg"))
    stamps = stamp_pngs()
    for i in range(count):
        size = rng.choice(SIZES_12MP if i % 3 == 0 else SIZES_SMALL)
        image = _one_photo(rng, photos, stamps, size)
        image.save(tmp / f"photo-{i:04d}.jpg", quality=rng.randint(85, 92))
    tmp.rename(folder)
    return folder


def _one_photo(rng: random.Random, photos: list[Path], stamps: list[Path], size: tuple[int, int]):
    from PIL import Image

    if rng.random() < 0.5:  # a real photo, cropped to a random region and upscaled
        with Image.open(rng.choice(photos)) as source:
            base = source.convert("RGB")
        return _crop_to(base, size, rng)
    with Image.open(rng.choice(photos)) as source:  # a Tux Paint cut-out on a real photo background
        background = _crop_to(source.convert("RGB"), size, rng)
    with Image.open(rng.choice(stamps)) as stamp:
        cutout = stamp.convert("RGBA")
    scale = min(size) * rng.uniform(0.5, 0.9) / max(cutout.size)
    cutout = cutout.resize((max(1, round(cutout.width * scale)), max(1, round(cutout.height * scale))), Image.BICUBIC)
    left = rng.randint(0, size[0] - cutout.width)
    top = rng.randint(0, size[1] - cutout.height)
    background.paste(cutout, (left, top), cutout)
    return background


def _crop_to(image, size: tuple[int, int], rng: random.Random):
    from PIL import Image

    target = size[0] / size[1]
    width, height = image.size
    crop_w = min(width, round(height * target))
    crop_h = min(height, round(crop_w / target))
    crop_w, crop_h = round(crop_w * rng.uniform(0.75, 1.0)), round(crop_h * rng.uniform(0.75, 1.0))
    left, top = rng.randint(0, width - crop_w), rng.randint(0, height - crop_h)
    return image.crop((left, top, left + crop_w, top + crop_h)).resize(size, Image.BICUBIC)


def stamp_folder(limit: int) -> Path:
    """Symlinks to ``limit`` Tux Paint PNGs (a folder the indexer can walk)."""
    return _link_folder(f"stamps-{limit}", stamp_pngs(limit))


def prompt_folder(limit: int) -> Path:
    """Symlinks to ``limit`` Asterisk prompts, spread over the whole set (top level and sub-folders)."""
    found = sorted(ASTERISK.rglob("*.wav"))
    step = max(1, len(found) // limit)
    return _link_folder(f"prompts-{limit}", found[::step][:limit])


def _link_folder(name: str, files: list[Path]) -> Path:
    folder = DATA / name
    if folder.is_dir() and len(list(folder.iterdir())) == len(files):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i, source in enumerate(files):
        (folder / f"{i:04d}-{source.name}").symlink_to(source)
    return folder


def text_folder() -> Path:
    """Real prose: the sample notes and the licence texts (copied, so each has its own path)."""
    folder = DATA / "texts"
    if folder.is_dir():
        return folder
    tmp = fresh_part(folder)
    for source in sorted((samples() / "notes").iterdir()):
        shutil.copy(source, tmp / source.name)
    for source in sorted(LICENCES.iterdir()):
        if source.is_file() and not source.is_symlink():
            shutil.copy(source, tmp / f"{source.name}.txt")
    tmp.rename(folder)
    return folder


def recordings(count: int, minutes: float) -> Path:
    """``count`` WAVs of ~``minutes`` of real speech each: prompts and read speech joined with 0.4 s pauses."""
    folder = DATA / f"recordings-{count}x{minutes:g}min"
    if folder.is_dir() and len(list(folder.glob("*.wav"))) == count:
        return folder
    from polymodal.media.audio import decode_audio

    tmp = fresh_part(folder)
    clips = sorted(ASTERISK.glob("*.wav")) + sorted((samples() / "recordings").glob("*.wav"))
    rng = random.Random(1)
    pause = np.zeros(int(0.4 * 16000), np.float32)
    for i in range(count):
        parts: list[np.ndarray] = []
        while sum(len(p) for p in parts) < minutes * 60 * 16000:
            parts += [decode_audio(rng.choice(clips), 16000, 600), pause]
        write_wav(tmp / f"recording-{i}.wav", np.concatenate(parts))
    tmp.rename(folder)
    return folder


def write_wav(path: Path, samples_16k: np.ndarray) -> None:
    """16 kHz mono 16-bit PCM, encoded with PyAV."""
    import av

    pcm = (np.clip(samples_16k, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def seconds_of_audio(folder: Path) -> float:
    from polymodal.media.audio import audio_duration

    return sum(audio_duration(p) for p in sorted(folder.iterdir()))
