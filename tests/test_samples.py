"""The sample collection is built from real files that installed packages and two PyPI wheels ship."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

import polymodal.samples
from polymodal.media.detect import detect
from polymodal.media.text import has_cjk, read_text
from polymodal.samples import (
    ANIMALS,
    MOONSHINE,
    RECORDINGS,
    SOUND_LIKE,
    build_sample_collection,
    find_in_wheel,
    find_wheel,
)

PHOTOS = [
    "photos/chelsea_cat.jpg",
    "photos/coffee.jpg",
    "photos/astronaut.jpg",
    "photos/rocket.jpg",
    "photos/motorcycle.jpg",
    "photos/summer_palace_beijing.jpg",
    "photos/dahlia_flower.jpg",
]
NOTES = {
    "notes/coffee.md": "md",
    "notes/cats.md": "md",
    "notes/rockets.html": "html",
    "notes/dickens.txt": "txt",
    "notes/farm_animals.md": "md",
    "notes/猫.txt": "txt",
    "notes/咖啡.md": "md",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], list[str]]:
    dest = tmp_path_factory.mktemp("collection")
    messages: list[str] = []
    files = build_sample_collection(dest, messages.append)
    return dest, files, messages


def _wheels_fetched(messages: list[str]) -> bool:
    return not any(m.startswith("skipping") for m in messages)


def test_photos_and_scan_are_real_images(built):
    dest, files, _ = built
    for relative in [*PHOTOS, "scans/page.png"]:
        path = dest / relative
        assert path in files
        found = detect(path)
        assert found.modality == "image" and found.note is None
    from PIL import Image

    with Image.open(dest / "photos/chelsea_cat.jpg") as cat:
        assert cat.size == (451, 300)
    with Image.open(dest / "scans/page.png") as page:
        assert page.mode == "L" and page.size == (384, 191)


def test_notes_are_readable_in_english_and_chinese(built):
    dest, files, _ = built
    for relative, fmt in NOTES.items():
        path = dest / relative
        assert path in files
        assert detect(path).format == fmt
        doc = read_text(path, fmt)
        assert doc.passages and all(len(p.text) <= 600 for p in doc.passages)
        assert has_cjk(doc.text) == ("猫" in relative or "咖啡" in relative)
    rockets = read_text(dest / "notes/rockets.html", "html")
    assert rockets.title == "Falcon 9 and the DSCOVR launch"
    assert "console.log" not in rockets.text
    assert "espresso" in read_text(dest / "notes/coffee.md", "md").text.lower()
    assert "意式浓缩" in read_text(dest / "notes/咖啡.md", "md").text


def test_dickens_note_does_not_quote_the_first_line(built):
    dest, _, _ = built
    text = (dest / "notes/dickens.txt").read_text(encoding="utf-8").lower()
    assert "a tale of two cities" in text
    assert "it was the best of times" not in text


def test_recordings_and_sounds_come_from_the_wheels(built):
    dest, files, messages = built
    assert _wheels_fetched(messages), messages
    for name in RECORDINGS:
        path = dest / "recordings" / name
        assert path in files and detect(path).modality == "audio" and detect(path).format == "wav"
    for animal in ANIMALS:
        path = dest / "sounds" / f"{animal}.mp3"
        assert path in files and detect(path).format == "mp3"
    import av

    with av.open(str(dest / "recordings/two_cities.wav")) as clip:
        stream = clip.streams.audio[0]
        assert 40 < float(stream.duration * stream.time_base) < 50  # about 44 s of read speech


def test_attribution_names_every_file(built):
    dest, files, _ = built
    docs = Path(polymodal.samples.__file__).parent / "sample_docs"
    attribution = (docs / "ATTRIBUTION.md").read_text(encoding="utf-8")
    for path in files:
        relative = path.relative_to(dest).as_posix()
        if relative.startswith("sounds/"):
            assert path.stem in attribution
        else:
            assert f"`{relative}`" in attribution, relative
    for licence in ("CC0", "CC BY 2.0", "MIT", "public domain"):
        assert licence in attribution


def test_building_again_writes_nothing(built):
    dest, files, _ = built
    before = {path: path.stat().st_mtime_ns for path in files}
    messages: list[str] = []
    again = build_sample_collection(dest, messages.append)
    assert again == files
    assert not [m for m in messages if m.startswith("writing")]
    assert {path: path.stat().st_mtime_ns for path in again} == before


def test_sample_docs_ship_inside_the_package():
    root = Path(polymodal.samples.__file__).parent / "sample_docs"
    names = {entry.name for entry in (root / "notes").iterdir()}
    assert {Path(n).name for n in NOTES} <= names
    assert (root / "ATTRIBUTION.md").is_file()


def test_find_in_wheel_extracts_once(built):
    _, _, messages = built
    assert _wheels_fetched(messages), messages
    path = find_in_wheel(*MOONSHINE, "two_cities.wav")
    assert path.parts[-4:-1] == ("moonshine_voice-0.1.5", "moonshine_voice", "assets")
    with zipfile.ZipFile(find_wheel(*MOONSHINE)) as wheel:
        assert path.stat().st_size == wheel.getinfo("moonshine_voice/assets/two_cities.wav").file_size
    mtime = path.stat().st_mtime_ns
    assert find_in_wheel(*MOONSHINE, "two_cities.wav") == path
    assert path.stat().st_mtime_ns == mtime
    cat = find_in_wheel(*SOUND_LIKE, "animals/cat.mp3")
    assert cat.name == "cat.mp3" and detect(cat).format == "mp3"


def test_find_in_wheel_refuses_ambiguous_or_missing_members(built):
    _, _, messages = built
    assert _wheels_fetched(messages), messages
    with pytest.raises(LookupError, match="found moonshine_voice/assets/"):
        find_in_wheel(*MOONSHINE, ".wav")
    with pytest.raises(LookupError, match="found none"):
        find_in_wheel(*MOONSHINE, "no_such_file.flac")


def test_without_network_the_rest_is_still_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("POLYMODAL_WHEELS", str(tmp_path / "no-wheels"))
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens there
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no pip.conf with other indexes or find-links
    for name in ("PIP_NO_INDEX", "PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    messages: list[str] = []
    files = build_sample_collection(tmp_path / "collection", messages.append)
    skipped = [m for m in messages if m.startswith("skipping")]
    assert len(skipped) == 2
    assert "moonshine-voice" in skipped[0] and "could not download" in skipped[0]
    relative = {p.relative_to(tmp_path / "collection").as_posix() for p in files}
    assert set(PHOTOS) <= relative and set(NOTES) <= relative
    assert not any(r.startswith(("recordings/", "sounds/")) for r in relative)
