"""People (real dlib models, real faces): the astronaut photo and its mirrored, reduced copy are one person, a
different real face (Labeled Faces in the Wild, from scikit-image's ``lfw_subset``, 25 px upscaled 4x) another;
naming makes a name search find both photos; corrections survive re-indexing; ``forget`` removes the embeddings;
a query image's face finds the person; ``--person`` filters; the API never hands out an embedding. Each of these
runs on the embedded store and on PostgreSQL (a real server), which give the same people."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from polymodal.collection import Collection
from polymodal.models import faces as face_models

pytestmark = pytest.mark.skipif(not face_models.installed(), reason="the faces extra (dlib) is not installed")
FACES_KEY = "dlib-resnet-v1@1/faces"


def write_photos(folder: Path, samples: Path) -> Path:
    """astronaut.jpg, its mirrored half-size copy, another real face, and the cat (no face)."""
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(samples / "photos" / "astronaut.jpg", folder / "astronaut.jpg")
    shutil.copy(samples / "photos" / "chelsea_cat.jpg", folder / "chelsea_cat.jpg")
    astronaut = Image.open(samples / "photos" / "astronaut.jpg")
    astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((256, 256)).save(folder / "mirrored_small.jpg")
    face = Image.fromarray((data.lfw_subset()[0] * 255).astype(np.uint8)).resize((100, 100), Image.Resampling.BICUBIC)
    canvas = Image.new("L", (200, 200), 128)
    canvas.paste(face, (50, 50))
    canvas.convert("RGB").save(folder / "someone_else.png")
    return folder


def database(request: pytest.FixtureRequest) -> str:
    """A new database on the test PostgreSQL server, named after the test; its URL."""
    name = re.sub(r"\W+", "_", request.node.name.lower())[:40]
    return request.getfixturevalue("postgres")(f"{name}_{hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]}")


def indexed_photos(samples: Path, tmp_path: Path, store: str | Path) -> tuple[Collection, Path]:
    folder = write_photos(tmp_path / "photos", samples)
    collection = Collection(store)
    report = collection.index(folder)
    assert not report.errors, report.errors
    return collection, folder


@pytest.fixture(params=["sqlite", "postgres"])
def collection(request: pytest.FixtureRequest, samples: Path, tmp_path: Path):
    """The photos indexed into the embedded store, or into PostgreSQL."""
    store = tmp_path / "store" if request.param == "sqlite" else database(request)
    collection, folder = indexed_photos(samples, tmp_path, store)
    yield collection, folder
    collection.close()


def store_option(collection: Collection) -> str:
    """What ``--store`` names the collection's store by: its directory, or its URL."""
    return getattr(collection.store, "url", None) or str(collection.store.directory)


def people_of(collection: Collection):
    from polymodal.people import People

    return People(collection.store, collection.settings)


def by_file(collection: Collection, folder: Path) -> dict[str, int | None]:
    """File name -> the person its (only) face belongs to."""
    people = people_of(collection)
    out: dict[str, int | None] = {}
    for name in ("astronaut.jpg", "mirrored_small.jpg", "someone_else.png", "chelsea_cat.jpg"):
        faces = people.faces_of(collection.item(str(folder / name)).id)
        out[name] = faces[0]["person"] if faces else None
    return out


def test_same_face_is_one_person_and_another_face_another(collection) -> None:
    collection, folder = collection
    found = by_file(collection, folder)
    assert found["astronaut.jpg"] is not None and found["astronaut.jpg"] == found["mirrored_small.jpg"]
    assert found["someone_else.png"] not in (None, found["astronaut.jpg"])
    assert found["chelsea_cat.jpg"] is None
    listed = people_of(collection).list()
    assert [len(p.faces) for p in listed] == [2, 1]
    assert listed[0].crop and Path(listed[0].crop).is_file()  # a representative face crop


def test_naming_makes_a_name_search_find_both_photos(collection) -> None:
    collection, folder = collection
    person = by_file(collection, folder)["astronaut.jpg"]
    people_of(collection).name(person, "Anna")
    hits = {Path(h.path).name for h in collection.search("Anna", k=5).hits}
    assert {"astronaut.jpg", "mirrored_small.jpg"} <= hits and "someone_else.png" not in hits
    only = collection.search("a photo", k=10, person="anna")  # the filter, by name
    assert {Path(h.path).name for h in [*only.hits, *only.weaker]} == {"astronaut.jpg", "mirrored_small.jpg"}


def test_a_query_face_finds_the_person(collection, tmp_path: Path) -> None:
    from PIL import Image

    collection, folder = collection
    crop = tmp_path / "her_face.jpg"
    Image.open(folder / "astronaut.jpg").crop((150, 50, 300, 200)).save(crop)
    result = collection.search(image=crop, k=5)
    top = [Path(h.path).name for h in result.hits[:2]]
    assert sorted(top) == ["astronaut.jpg", "mirrored_small.jpg"]


def test_corrections_survive_reindexing(collection) -> None:
    collection, folder = collection
    people = people_of(collection)
    person = by_file(collection, folder)["astronaut.jpg"]
    people.name(person, "Anna")
    mirrored = collection.item(str(folder / "mirrored_small.jpg")).id
    people.not_this(person, people.face_keys(mirrored))
    assert by_file(collection, folder)["mirrored_small.jpg"] != person
    moved = folder.parent / "away.jpg"
    (folder / "mirrored_small.jpg").rename(moved)  # removed from the collection, then back
    collection.index(folder)
    moved.rename(folder / "mirrored_small.jpg")
    collection.index(folder)
    again = by_file(collection, folder)
    assert again["astronaut.jpg"] == person and again["mirrored_small.jpg"] not in (None, person)
    hits = {Path(h.path).name for h in collection.search("Anna", k=5).hits}
    assert "astronaut.jpg" in hits and "mirrored_small.jpg" not in hits


def test_merge_survives_another_face_model(collection, monkeypatch: pytest.MonkeyPatch) -> None:
    collection, folder = collection
    people = people_of(collection)
    found = by_file(collection, folder)
    people.merge(found["astronaut.jpg"], found["someone_else.png"])
    monkeypatch.setattr(face_models.DlibFaces, "version", "2")  # every face perceived again
    assert collection.index(folder).outcomes["faces updated"] == 4
    again = by_file(collection, folder)
    assert again["astronaut.jpg"] == again["someone_else.png"] == again["mirrored_small.jpg"]


def test_forget_removes_the_embeddings(collection, monkeypatch: pytest.MonkeyPatch) -> None:
    collection, folder = collection
    people = people_of(collection)
    person = people.person(by_file(collection, folder)["astronaut.jpg"])
    crop = Path(person.crop or "")
    assert people.forget(person.id) == 2
    for name in ("astronaut.jpg", "mirrored_small.jpg"):
        sha = collection.item(str(folder / name)).sha256
        assert not collection.store.feature(sha, FACES_KEY).any()  # zeros: no embedding left
    assert not crop.exists() and [len(p.faces) for p in people.list()] == [1]
    monkeypatch.setattr(face_models.DlibFaces, "version", "2")  # perceived again: still forgotten
    collection.index(folder)
    sha = collection.item(str(folder / "astronaut.jpg")).sha256
    assert not collection.store.feature(sha, "dlib-resnet-v1@2/faces").any()
    assert [len(p.faces) for p in people.list()] == [1]
    assert collection.item(str(folder / "astronaut.jpg")).meta["faces"] == 1  # the count stays: not biometric


def test_api_people_without_embeddings(collection) -> None:
    from fastapi.testclient import TestClient

    from polymodal.api.app import create_app
    from polymodal.api.config import ServeConfig

    collection, folder = collection
    config = ServeConfig(warm=False, allowed_hosts=("testserver",))
    with TestClient(create_app(collection, config), raise_server_exceptions=False) as client:
        listed = client.get("/api/people").json()
        assert listed["enabled"] and [p["faces"] for p in listed["people"]] == [2, 1]
        first = listed["people"][0]
        face = client.get(first["face_url"])
        assert face.status_code == 200 and face.headers["content-type"] == "image/jpeg"
        named = client.post(f"/api/people/{first['person']}/name", json={"name": "Anna"}).json()
        assert named["name"] == "Anna"
        item = collection.item(str(folder / "astronaut.jpg")).id
        faces = client.get(f"/api/items/{item}/faces").json()["faces"]
        assert faces[0]["name"] == "Anna" and len(faces[0]["box"]) == 4
        body = json.dumps([listed, client.get(f"/api/people/{first['person']}").json(), faces])
        assert "embedding" not in body and all(len(v) < 20 for v in _number_lists(json.loads(body)))
        assert client.get("/api/people/999").status_code == 404
        assert client.post("/api/people/1/not", json={"faces": ["x"]}).status_code == 422
        found = client.post("/api/search", json={"text": "a person", "person": "Anna", "k": 10}).json()
        names = {h["name"] for h in found["hits"] + found["weaker"]}
        assert names and names <= {"astronaut.jpg", "mirrored_small.jpg"}, names  # only the person's photos
        chips = [h["people"] for h in found["hits"]]
        assert chips and all({"person": first["person"], "name": "Anna"} in c for c in chips), chips
        assert client.post("/api/search", json={"text": "a person", "person": "Nobody"}).status_code == 400
        gone = client.delete(f"/api/people/{first['person']}").json()
        assert gone["faces"] == 2 and len(client.get("/api/people").json()["people"]) == 1


def _number_lists(value) -> list[list]:
    """Every list of numbers inside a JSON value (an embedding would be one of 128)."""
    if isinstance(value, list):
        own = [value] if value and all(isinstance(v, int | float) for v in value) else []
        return own + [x for v in value for x in _number_lists(v)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _number_lists(v)]
    return []


def test_cli_people(collection, capsys: pytest.CaptureFixture) -> None:
    from polymodal.cli import main

    collection, folder = collection
    store = store_option(collection)
    assert main(["people", "--store", store, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["people"]
    first = str(listed[0]["person"])
    assert main(["people", "name", first, "Anna", "--store", store]) == 0
    assert main(["people", "show", "anna", "--store", store]) == 0
    shown = capsys.readouterr().out
    assert "Anna" in shown and "astronaut.jpg" in shown and "mirrored_small.jpg" in shown
    assert main(["people", "name", "nobody", "X", "--store", store]) == 2
    assert "no person 'nobody'" in capsys.readouterr().err
    assert main(["search", "Anna", "--person", "nobody", "--store", store]) == 2  # the user's to fix: exit 2
    assert "no person 'nobody'" in capsys.readouterr().err
    assert main(["search", "Anna", "--person", "Anna", "--store", store, "--json"]) == 0
    hits = {Path(h["path"]).name for h in json.loads(capsys.readouterr().out)["hits"]}
    assert hits == {"astronaut.jpg", "mirrored_small.jpg"}


def test_postgres_gives_the_same_people_as_sqlite(request: pytest.FixtureRequest, samples: Path, tmp_path) -> None:
    """The same photos in both stores: the same people (faces and items), and after naming the same person in
    both, the same name search and the same search with a person filter."""
    embedded, folder = indexed_photos(samples, tmp_path / "embedded", tmp_path / "store")
    server, other = indexed_photos(samples, tmp_path / "server", database(request))

    def grouped(collection: Collection, photos: Path) -> list[tuple[int, list[str]]]:
        files = {collection.item(str(photos / name)).id: name for name in sorted(p.name for p in photos.iterdir())}
        return sorted((len(p.faces), sorted(files[i] for i in p.items)) for p in people_of(collection).list())

    expected = [(1, ["someone_else.png"]), (2, ["astronaut.jpg", "mirrored_small.jpg"])]
    assert grouped(embedded, folder) == grouped(server, other) == expected
    found, scores = [], []
    for collection, photos in ((embedded, folder), (server, other)):
        people = people_of(collection)
        people.name(by_file(collection, photos)["astronaut.jpg"], "Anna")
        named = [(p.name, len(p.faces)) for p in people.list(crops=False)]
        hits = collection.search("Anna", k=5).hits
        only = collection.search("a photo", k=10, person="anna")
        shown = sorted(Path(h.path).name for h in [*only.hits, *only.weaker])
        found.append((named, [Path(h.path).name for h in hits], shown))
        scores.append([h.score for h in hits])
    assert found[0] == found[1], found
    assert found[0][0] == [("Anna", 2), (None, 1)] and found[0][2] == ["astronaut.jpg", "mirrored_small.jpg"]
    assert all(abs(a - b) < 0.01 for a, b in zip(*scores, strict=True)), scores
    server.close()


@pytest.fixture()
def sqlite_collection(samples: Path, tmp_path: Path) -> tuple[Collection, Path]:
    return indexed_photos(samples, tmp_path, tmp_path / "store")


def test_web_people_view_and_face_boxes(sqlite_collection) -> None:
    """The People page lists the faces, renames a person, an image's item page shows its face box, and search
    results show person chips."""
    import os
    import subprocess
    import sys

    from test_browser import ARGS, CHROMIUM, free_port, wait_until_up

    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run `make setup` (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    collection, folder = sqlite_collection
    store = collection.store.directory
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "POLYMODAL_CACHE": str(collection.settings.cache)}
    log = open(store / "server.log", "w")  # noqa: SIM115 (closed below)
    command = [sys.executable, "-m", "polymodal.cli", "serve", "--store", str(store), "--port", str(port), "--no-warm"]
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, server, store / "server.log")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            page = browser.new_page()
            page.goto(f"{base}/#/people")
            page.wait_for_selector(".person-card img", timeout=60_000)
            assert page.locator(".person-card").count() == 2
            assert page.locator("nav a[data-nav=people]").get_attribute("aria-current") == "page"
            assert page.locator("#view-search").is_hidden()
            name = page.locator(".person-card input[type=text]").first
            name.fill("Anna")
            with page.expect_response(lambda r: r.url.endswith("/name") and r.ok):
                name.dispatch_event("change")
            item = collection.item(str(folder / "astronaut.jpg")).id
            page.goto(f"{base}/#/item/{item}")
            page.wait_for_selector(".face-box span", timeout=60_000)
            assert page.locator(".face-box span").first.inner_text() == "Anna"
            page.goto(f"{base}/#/?q=Anna")  # search results carry the people they show
            page.wait_for_selector(".card .person-chip", timeout=60_000)
            assert "Anna" in page.locator(".card .person-chip").all_inner_texts()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()
    assert people_of(collection).person("anna").faces


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_an_id_given_back_is_never_given_again(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> None:
    """A person pinned by a correction comes back with their old id (ensure_person): a new person gets a higher
    one, never a deleted person's (their corrections would apply to a stranger)."""
    from polymodal.store.base import open_store
    from polymodal.store.faces import face_store

    store = open_store(tmp_path / "store" if kind == "sqlite" else database(request))
    faces = face_store(store, FACES_KEY)
    with faces.transaction() as db:
        first = faces.new_person(db, "A")
        faces.ensure_person(db, first + 5)
        faces.ensure_person(db, first)  # there already: unchanged
        after = faces.new_person(db)
        faces.delete_person(db, after)
    with faces.transaction() as db:
        last = faces.new_person(db)
    assert faces.people() == {first: "A", first + 5: None, last: None} and last > after > first + 5
    store.close()


def test_two_indexers_on_postgres_make_one_set_of_people(request: pytest.FixtureRequest, samples, tmp_path) -> None:
    """Two processes index the same photos into one PostgreSQL store at once, each updating the people at its end
    (one at a time, under the store's people lock): the same people as one indexer makes, none twice."""
    import os
    import subprocess
    import sys

    folder = write_photos(tmp_path / "photos", samples)
    url = database(request)
    Collection(url).close()  # the schema first: the two then race only on the data
    code = "import sys; from polymodal.collection import Collection; " \
           "print(Collection(sys.argv[1]).index(sys.argv[2]).errors)"  # fmt: skip
    env = {**os.environ, "POLYMODAL_THREADS": "1"}
    children = [subprocess.Popen([sys.executable, "-c", code, url, str(folder)], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
    for child in children:
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0 and out.strip() == "[]", (out, err[-2000:])
    shared = Collection(url)
    people = people_of(shared)
    assert sorted(len(p.faces) for p in people.list(crops=False)) == [1, 2]
    assert len(people.faces.people()) == 2  # no one left over from the other indexer's grouping
    assert len(set(people.faces.assignments())) == 3
    shared.close()
