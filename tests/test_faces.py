"""Faces as evidence (real dlib models, real photos): "a person" finds the astronaut portrait, photos without
faces get none, boxes and counts are stored, the face stage is re-run only when the face model changes, and a
collection can turn faces off (in the embedded store and in PostgreSQL)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from polymodal.collection import Collection
from polymodal.models import faces as face_models

pytestmark = pytest.mark.skipif(not face_models.installed(), reason="the faces extra (dlib) is not installed")

QUERIES = ["a person", "two people", "一个人", "a portrait"]


@pytest.fixture(scope="module")
def photos_and_notes(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Collection:
    """The sample collection's photos, scans and notes (its recordings and sounds are not about people)."""
    collection = Collection(tmp_path_factory.mktemp("faces-store"))
    report = collection.index(samples / "photos", samples / "scans", samples / "notes")
    assert not report.errors, report.errors
    return collection


def _rank(result, name: str) -> int:
    paths = [Path(h.path).name for h in [*result.hits, *result.weaker]]
    return paths.index(name) if name in paths else 10**6


@pytest.mark.parametrize("query", QUERIES)
def test_people_queries_find_the_astronaut_above_the_cat(photos_and_notes: Collection, query: str) -> None:
    result = photos_and_notes.search(query, k=10)
    assert _rank(result, "astronaut.jpg") < _rank(result, "chelsea_cat.jpg"), query
    if query != "two people":  # one person: a hit above the cut-off, first
        assert result.hits and Path(result.hits[0].path).name == "astronaut.jpg", query


def test_two_people_is_not_a_hit_for_one_person(photos_and_notes: Collection) -> None:
    result = photos_and_notes.search("two people", k=10)
    assert all(Path(h.path).name != "astronaut.jpg" for h in result.hits)


def test_faces_are_evidence_with_boxes_and_embeddings(photos_and_notes: Collection, samples: Path) -> None:
    item = photos_and_notes.item(str(samples / "photos" / "astronaut.jpg"))
    rows = [e for e in item.evidence if e.kind == "faces"]
    assert item.meta["faces"] == 1 and item.models["faces"].startswith("dlib-resnet-v1")
    assert {"a portrait" in e.text or "人像" in e.text for e in rows} == {True}
    ((x0, y0, x1, y1),) = rows[0].box
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 200  # her face, in the 512 x 512 picture
    embeddings = photos_and_notes.store.feature(item.sha256, "dlib-resnet-v1@1/faces")
    assert embeddings is not None and embeddings.shape == (128,) and np.linalg.norm(embeddings) > 0.5
    assert "features" not in item.to_dict()  # face embeddings never leave the store


@pytest.mark.parametrize("name", ["chelsea_cat.jpg", "coffee.jpg"])
def test_photos_without_faces_get_none(photos_and_notes: Collection, samples: Path, name: str) -> None:
    item = photos_and_notes.item(str(samples / "photos" / name))
    assert item.meta["faces"] == 0 and "faces" in item.models
    assert not [e for e in item.evidence if e.kind == "faces"]
    assert photos_and_notes.store.feature(item.sha256, "dlib-resnet-v1@1/faces") is None


def test_face_stage_is_rerun_only_when_the_face_model_changes(
    samples: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("astronaut.jpg", "coffee.jpg"):
        shutil.copy(samples / "photos" / name, folder / name)
    collection = Collection(tmp_path / "store")
    assert collection.index(folder).outcomes["analyzed"] == 2
    assert collection.index(folder).outcomes == {"unchanged": 2}
    monkeypatch.setattr(face_models.DlibFaces, "version", "2")  # another face model: faces again, nothing else
    again = collection.index(folder)
    assert again.outcomes == {"faces updated": 2}, again.outcomes
    item = collection.item(str(folder / "astronaut.jpg"))
    assert item.models["faces"].startswith("dlib-resnet-v1@2") and item.meta["faces"] == 1
    assert [e.kind for e in item.evidence].count("label") >= 1  # the rest of the analysis kept


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_faces_can_be_turned_off_per_collection(
    samples: Path, tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    from test_people import database

    from polymodal.people import People

    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(samples / "photos" / "astronaut.jpg", folder / "astronaut.jpg")
    collection = Collection(tmp_path / "store" if kind == "sqlite" else database(request))
    collection.index(folder)
    people = People(collection.store, collection.settings)
    assert len(people.list(crops=False)) == 1
    people.set_enabled(False)
    item = collection.item(str(folder / "astronaut.jpg"))
    assert not [e for e in item.evidence if e.kind == "faces"] and "faces" not in item.models
    assert collection.store.feature(item.sha256, "dlib-resnet-v1@1/faces") is None
    assert collection.index(folder).outcomes == {"unchanged": 1}  # stays off
    assert people.list() == []
    people.set_enabled(True)
    assert collection.index(folder).outcomes == {"faces updated": 1}
    assert len(people.list(crops=False)) == 1


def test_phrases_by_count_and_size() -> None:
    from polymodal.perceivers.faces import count_texts

    assert "a portrait" in count_texts([100], 500)[0] and "人像" in count_texts([100], 500)[1]
    assert "portrait" not in count_texts([20], 500)[0]
    assert count_texts([50, 60], 500) == ("two people, two persons, two faces", "两个人，两张人脸")
    assert "a group of people" in count_texts([30] * 4, 500)[0] and "一群人" in count_texts([30] * 4, 500)[1]


def test_faces_in_video_shots_and_when_a_named_person_appears(samples: Path, tmp_path: Path) -> None:
    """A video showing the cat, the astronaut, then the coffee (3 s each): her face is evidence of the second shot,
    and once she is named, a search for her name plays from that shot."""
    import av
    from PIL import Image

    from polymodal.people import People

    folder = tmp_path / "videos"
    folder.mkdir()
    pictures = []
    for name in ("chelsea_cat.jpg", "astronaut.jpg", "coffee.jpg"):
        photo = Image.open(samples / "photos" / name).convert("RGB")
        photo.thumbnail((640, 480))  # kept in proportion, on black
        frame = Image.new("RGB", (640, 480))
        frame.paste(photo, ((640 - photo.width) // 2, (480 - photo.height) // 2))
        pictures.append(frame)
    with av.open(str(folder / "three_shots.mp4"), "w") as out:
        video = out.add_stream("mpeg4", rate=5, options={"qscale": "3"})
        video.width, video.height, video.pix_fmt = 640, 480, "yuv420p"
        for index in range(45):
            frame = av.VideoFrame.from_image(pictures[index // 15])
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    collection = Collection(tmp_path / "store")
    assert not collection.index(folder).errors
    item = collection.item(str(folder / "three_shots.mp4"))
    rows = [e for e in item.evidence if e.kind == "faces"]
    assert item.meta["faces"] == 1 and rows and all(2.5 <= e.start < 3.5 and e.end > 5.5 for e in rows)
    people = People(collection.store, collection.settings)
    (person,) = people.list(crops=False)
    people.name(person.id, "Anna")
    hit = collection.search("Anna", k=3).hits[0]
    assert Path(hit.path).name == "three_shots.mp4" and 2.5 <= (hit.start or 0) < 3.5
    assert people.crop(person.faces[0]) is not None  # the crop comes from the shot's frame


def test_a_face_model_failure_keeps_the_file_and_is_retried(
    samples: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(samples / "photos" / "astronaut.jpg", folder / "astronaut.jpg")

    def broken(self, image):
        raise RuntimeError("simulated face model failure")

    collection = Collection(tmp_path / "store")
    with monkeypatch.context() as patch:
        patch.setattr(face_models.DlibFaces, "faces", broken)
        report = collection.index(folder)
        assert report.outcomes == {"analyzed": 1} and "simulated" in report.notes[0][1]
        item = collection.item(str(folder / "astronaut.jpg"))
        assert "faces" not in item.models and item.evidence  # indexed, without faces
        assert collection.index(folder).outcomes == {"unchanged": 1}  # a failing retry writes nothing
    assert collection.index(folder).outcomes == {"faces updated": 1}
    assert collection.item(str(folder / "astronaut.jpg")).meta["faces"] == 1


def test_grouping_many_faces_is_linear_in_copies() -> None:
    """Placing thousands of faces one by one stays fast (the matrix grows by doubling)."""
    import time

    from polymodal.people import _Grouping

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(50, 128)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    faces = centres[rng.integers(0, 50, 3000)] + rng.normal(scale=0.01, size=(3000, 128)).astype(np.float32)
    embeddings = {f"s{i}": faces[i][None, :] for i in range(len(faces))}
    grouping, people = _Grouping(embeddings, {}), []
    started = time.perf_counter()
    for i in range(len(faces)):
        found = grouping.nearest((f"s{i}", 0), set())
        person = found if found is not None else len(set(people))
        grouping.add((f"s{i}", 0), person)
        people.append(person)
    assert len(set(people)) == 50 and time.perf_counter() - started < 30
