"""People: the faces of a collection grouped into persons, named and corrected by the user.

Grouping is incremental and greedy single-linkage: a face not yet placed joins the person owning the nearest
placed face when that face is within ``THRESHOLD`` (Euclidean distance of dlib's 128-d embeddings), else it
starts a new person. ``THRESHOLD`` is fitted on real faces (``bench/eval_faces.py``, bench/results/faces.json):
the same person under mirror, resize, darkening, rotation and in different photos was at most 0.443 apart, two
different people at least 0.799 (20 faces of 3 people: a small set); every threshold from 0.40 to 0.80 groups them
without a mistake, and 0.6 (dlib's own figure) sits in the middle of that range.

What a user says wins over the grouping and is kept across re-indexing (:mod:`polymodal.store.faces`):
naming, merging, splitting faces off, "not this person", and forgetting a person, which removes their faces'
embeddings from the store for good (their crops too). A person's name becomes evidence of their items, so
"Anna at the beach" is an ordinary search. Face embeddings never leave the store: what this module returns
carries ids, counts, boxes and crop files, never an embedding.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.errors import UsageError
from polymodal.perceivers.faces import features_key
from polymodal.store.faces import FORGOTTEN, IS, NOT, PERSON, FaceKey, FaceStore, NameRow, face_store

THRESHOLD = 0.6
CROP_SIDE = 160  # pixels a side of a face crop
CROP_MARGIN = 0.3  # share of the face's size added around it in a crop
MAX_NAME = 100


class PeopleError(UsageError):
    """Something the user asked of people that cannot be done (the message says why, in words)."""


class PersonNotFound(PeopleError):
    def __init__(self, ref: object):
        super().__init__(f"no person {str(ref)!r} in this collection (`polymodal people` lists them)")


@dataclass
class Person:
    id: int
    name: str | None
    faces: list[FaceKey]
    items: list[int] = field(default_factory=list)  # file ids showing this person
    face: FaceKey | None = None  # the representative face
    crop: str | None = None  # its crop, a JPEG in the store

    def to_dict(self) -> dict[str, Any]:
        return {
            "person": self.id,
            "name": self.name,
            "faces": len(self.faces),
            "items": self.items,
            "crop": self.crop,
        }


class People:
    def __init__(self, store: Any, settings: Any, fts_text: Callable[[str], str] | None = None):
        from polymodal.models.faces import face_model

        if fts_text is None:
            from polymodal.collection import fts_text
        self.store, self.settings, self.fts_text = store, settings, fts_text
        self.model_id = face_model(settings).model_id
        self.faces = face_store(store, features_key(self.model_id))

    # --- grouping ---------------------------------------------------------------------------------
    def update(self) -> None:
        """Place the faces stored since the last update, drop those of removed items, apply what the user said
        (forgotten faces stay without embeddings, pinned faces go to their person), write names as evidence."""
        if not self.store.writable:
            return
        with self.faces.transaction() as db:  # read inside: another process's update is done, or waits for this
            embeddings = self.faces.embeddings()
            if self.store.get_meta("faces") == "off":
                embeddings = {}
            said = self.faces.corrections()
            forgotten = {(sha, n) for sha, n, kind, _ in said if kind == FORGOTTEN}
            pinned = {(sha, n): person for sha, n, kind, person in said if kind == IS}
            refused: dict[FaceKey, set[int]] = {}
            for sha, n, kind, person in said:
                if kind == NOT:
                    refused.setdefault((sha, n), set()).add(person)
            live = {(sha, n) for sha, matrix in embeddings.items() for n in range(len(matrix)) if matrix[n].any()}
            self.faces.zero_embeddings(db, sorted(live & forgotten))
            live -= forgotten
            assigned = {key: person for key, person in self.faces.assignments().items() if key in live}
            gone = [key for key in self.faces.assignments() if key not in live]
            self.faces.unassign(db, gone)
            for key in gone:  # the item was removed (or its faces perceived again): its crop goes too
                self._crop_path(key).unlink(missing_ok=True)
            grouping = _Grouping(embeddings, assigned)
            for key in sorted(live - set(assigned)):
                person = pinned.get(key) or grouping.nearest(key, refused.get(key, set()))
                if person is None:
                    person = self.faces.new_person(db)
                else:
                    self.faces.ensure_person(db, person)
                self.faces.assign(db, key, person)
                grouping.add(key, person)
            self.faces.drop_unnamed_without_faces(db)
            self._write_names(db)

    def _write_names(self, db: Any) -> None:
        """Each named person's name as evidence of the items showing them (of each video shot showing them)."""
        names = self.faces.people()
        wanted: dict[str, list[NameRow]] = {}
        pictures: dict[str, list] = {}
        for (sha, n), person in sorted(self.faces.assignments().items()):
            name = names.get(person)
            if not name:
                continue
            if sha not in pictures:
                pictures[sha] = _boxes(self.faces.face_evidence(sha))
            page, start, end = pictures[sha][n][:3] if n < len(pictures[sha]) else (None, None, None)
            row = (name, page, start, end)
            if row not in wanted.setdefault(sha, []):
                wanted[sha].append(row)
        written = self.faces.name_evidence()
        for sha in set(wanted) | set(written):
            rows = sorted(wanted.get(sha, []), key=_order)
            if rows != sorted(written.get(sha, []), key=_order) and self.faces.has_content(db, sha):
                self.faces.write_names(db, sha, rows, self.fts_text, self._encode)

    def _encode(self, texts: list[str]) -> Any:
        """Name vectors, as :meth:`Analyzer.embed` would make them (when names are embedded evidence)."""
        from polymodal.analysis import EMBEDDED_KINDS
        from polymodal.models.base import get_model

        if PERSON not in EMBEDDED_KINDS:
            return [None] * len(texts)
        return get_model("text", self.settings.text_encoder, self.settings).encode(texts)

    # --- reading ----------------------------------------------------------------------------------
    def list(self, crops: bool = True) -> list[Person]:
        """Every person with faces, most faces first, each with a representative face crop."""
        by_person: dict[int, list[FaceKey]] = {}
        for key, person in sorted(self.faces.assignments().items()):
            by_person.setdefault(person, []).append(key)
        names = self.faces.people()
        files = self.store.files_for(sorted({sha for keys in by_person.values() for sha, _ in keys}))
        embeddings = self.faces.embeddings()
        people = []
        for person, keys in by_person.items():
            items = sorted({row.id for sha, _ in keys for row in files.get(sha, [])})
            face = _central(keys, embeddings)
            crop = self.crop(face) if crops and face else None
            people.append(Person(person, names.get(person), keys, items, face, None if crop is None else str(crop)))
        return sorted(people, key=lambda p: (-len(p.faces), p.id))

    def person(self, ref: int | str) -> Person:
        """A person by id or by name (case-insensitive)."""
        wanted = self.resolve(ref)
        found = next((p for p in self.list(crops=False) if p.id == wanted), None)
        if found is None:
            raise PersonNotFound(ref)
        if found.face is not None:
            crop = self.crop(found.face)
            found.crop = None if crop is None else str(crop)
        return found

    def resolve(self, ref: int | str) -> int:
        names = self.faces.people()
        text = str(ref).strip()
        if text.isdigit() and int(text) in names:
            return int(text)
        matching = [pid for pid, name in names.items() if name and name.casefold() == text.casefold()]
        if not matching:
            raise PersonNotFound(ref)
        return matching[0]

    def shas_of(self, ref: int | str) -> set[str]:
        person = self.resolve(ref)
        return {sha for (sha, _), p in self.faces.assignments().items() if p == person}

    def face_keys(self, item: int, n: int | None = None) -> list[FaceKey]:
        """The faces of item ``item`` (a file id), or its face number ``n``."""
        sha = self._sha(item)
        keys = [key for key in self.faces.assignments() if key[0] == sha and (n is None or key[1] == n)]
        if not keys:
            raise PeopleError(f"item {item} has no face {n}" if n is not None else f"item {item} has no faces")
        return keys

    def faces_of(self, item: int) -> list[dict[str, Any]]:
        """The faces of an item: number, box, shot and time, and the person (no embeddings)."""
        sha = self._sha(item)
        assigned = self.faces.assignments()
        names = self.faces.people()
        out = []
        for n, (page, start, end, box) in enumerate(_boxes(self.faces.face_evidence(sha))):
            person = assigned.get((sha, n))
            face = {"face": n, "box": box, "person": person, "name": names.get(person) if person else None}
            out.append(face | {k: v for k, v in (("shot", page), ("start", start), ("end", end)) if v is not None})
        return out

    # --- what the user says -----------------------------------------------------------------------
    def name(self, ref: int | str, name: str | None) -> Person:
        """Name a person ("" or None: remove the name); the name becomes evidence of their items."""
        person = self.resolve(ref)
        name = (name or "").strip() or None
        if name is not None and (len(name) > MAX_NAME or not name.isprintable()):
            raise PeopleError(f"a name is at most {MAX_NAME} printable characters")
        with self.faces.transaction() as db:
            self.faces.rename(db, person, name)
            self._write_names(db)
        return self.person(person)

    def merge(self, target_ref: int | str, *others: int | str) -> Person:
        """The faces of ``others`` become ``target``'s (kept across re-indexing)."""
        target = self.resolve(target_ref)
        sources = [self.resolve(o) for o in others if self.resolve(o) != target]
        names = self.faces.people()
        assigned = self.faces.assignments()
        with self.faces.transaction() as db:
            for source in sources:
                for key in [k for k, p in assigned.items() if p == source]:
                    self.faces.assign(db, key, target)
                    self.faces.correct(db, key, IS, target)
                self.faces.move_corrections(db, source, target)
                if names.get(target) is None and names.get(source):
                    self.faces.rename(db, target, names[source])
                    names[target] = names[source]
                self.faces.delete_person(db, source)
            self._write_names(db)
        return self.person(target)

    def split(self, ref: int | str, keys: list[FaceKey]) -> Person:
        """These faces of a person are someone else: a new person (kept across re-indexing)."""
        person = self.resolve(ref)
        keys = self._own(person, keys)
        with self.faces.transaction() as db:
            new = self.faces.new_person(db)
            for key in keys:
                self.faces.assign(db, key, new)
                self.faces.correct(db, key, IS, new)
                self.faces.correct(db, key, NOT, person)
            self._write_names(db)
        return self.person(new)

    def not_this(self, ref: int | str, keys: list[FaceKey]) -> None:
        """These faces are not this person: they are grouped again without them (kept across re-indexing)."""
        person = self.resolve(ref)
        keys = self._own(person, keys)
        with self.faces.transaction() as db:
            for key in keys:
                self.faces.uncorrect(db, key, IS)
                self.faces.correct(db, key, NOT, person)
            self.faces.unassign(db, keys)
        self.update()

    def forget(self, ref: int | str) -> int:
        """Remove a person: their faces' embeddings and crops are deleted from the store and stay deleted when
        their items are indexed again (the items keep their face counts). Returns how many faces."""
        person = self.resolve(ref)
        keys = [key for key, p in self.faces.assignments().items() if p == person]
        with self.faces.transaction() as db:
            self.faces.zero_embeddings(db, keys)
            for key in keys:
                self.faces.correct(db, key, FORGOTTEN, 0)
            self.faces.delete_person(db, person)
            self._write_names(db)
        for key in keys:
            self._crop_path(key).unlink(missing_ok=True)
        return len(keys)

    def set_enabled(self, on: bool) -> None:
        """Turn faces on (found in every image and video at the next indexing) or off (every face is removed from
        the store now, and none is looked for until they are on again); a collection setting."""
        from polymodal.perceivers.faces import META_KEY

        self.store.set_meta(META_KEY, None if on else "off")
        if not on:
            with self.faces.transaction() as db:
                self.faces.purge(db)
            self.remove_crops()

    def enabled(self) -> bool:
        from polymodal.perceivers.faces import META_KEY

        return self.store.get_meta(META_KEY) != "off"

    def _sha(self, item: int) -> str:
        row = self.store.file_by_id(int(item))
        if row is None:
            raise PeopleError(f"no item {item} in this collection")
        return row.sha

    def _own(self, person: int, keys: list[FaceKey]) -> list[FaceKey]:
        assigned = self.faces.assignments()
        wrong = [key for key in keys if assigned.get(key) != person]
        if wrong or not keys:
            raise PeopleError(f"those faces are not all person {person}'s (`polymodal people show {person}`)")
        return keys

    # --- faces of a query image -------------------------------------------------------------------
    def matches(self, image: Any) -> dict[str, float]:
        """Stored items showing someone whose face is in ``image`` (a path, bytes or PIL image): sha -> the
        smallest face distance, within THRESHOLD."""
        from polymodal.media.image import open_image
        from polymodal.models.faces import DETECT_SIDE, distances, face_model

        stored = self.faces.embeddings()
        if not stored:  # no faces in the collection: the query's are not looked for
            return {}
        if hasattr(image, "convert"):
            picture = image
        else:
            picture = open_image(image, self.settings.max_image_pixels, draft_to=DETECT_SIDE // 2)
        query = [f.embedding for f in face_model(self.settings).faces(picture)]
        found: dict[str, float] = {}
        if not query:
            return found
        for sha, matrix in stored.items():
            kept = matrix[matrix.any(axis=1)]
            if len(kept):
                best = min(float(distances(kept, q).min()) for q in query)
                if best < THRESHOLD:
                    found[sha] = best
        return found

    # --- crops ------------------------------------------------------------------------------------
    def crop(self, key: FaceKey) -> Path | None:
        """A JPEG of one face (made on first use, in the store's ``faces`` folder), or None when no file of the
        item can be read."""
        path = self._crop_path(key)
        if path.is_file():
            return path
        sha, n = key
        boxes = _boxes(self.faces.face_evidence(sha))
        files = self.store.files_for([sha]).get(sha, [])
        if n >= len(boxes) or not files:
            return None
        page, start, end, box = boxes[n]
        try:
            picture = _picture(files[0].path, start, end, self.settings)
        except Exception:  # the file moved or is unreadable now: no crop until it is indexed again
            return None
        x0, y0, x1, y1 = box
        margin = CROP_MARGIN * max(x1 - x0, y1 - y0)
        area = (max(0, x0 - margin), max(0, y0 - margin), min(picture.size[0], x1 + margin),
                min(picture.size[1], y1 + margin))  # fmt: skip
        face = picture.crop(tuple(round(v) for v in area))
        face.thumbnail((CROP_SIDE, CROP_SIDE))
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        face.convert("RGB").save(partial, "JPEG", quality=85)
        partial.replace(path)
        return path

    def _crop_path(self, key: FaceKey) -> Path:
        return Path(self.store.directory) / "faces" / f"{key[0]}_{int(key[1])}.jpg"

    def remove_crops(self) -> None:
        shutil.rmtree(Path(self.store.directory) / "faces", ignore_errors=True)


class _Grouping:
    """The placed faces' embeddings, for finding a new face's nearest person (grown by doubling: placing n faces
    one by one copies O(n) rows, not O(n^2))."""

    def __init__(self, embeddings: dict[str, np.ndarray], assigned: dict[FaceKey, int]):
        self.embeddings = embeddings
        keys = sorted(assigned)
        self.people = [assigned[k] for k in keys]
        self.rows = np.zeros((max(16, 2 * len(keys)), 128), np.float32)
        for i, (sha, n) in enumerate(keys):
            self.rows[i] = embeddings[sha][n]

    def nearest(self, key: FaceKey, refused: set[int]) -> int | None:
        """The person of the nearest placed face within THRESHOLD that is not refused, or None."""
        count = len(self.people)
        if not count:
            return None
        dist = np.linalg.norm(self.rows[:count] - self.embeddings[key[0]][key[1]][None, :], axis=1)
        for index in np.argsort(dist):
            if dist[index] >= THRESHOLD:
                return None
            if self.people[index] not in refused:
                return self.people[index]
        return None

    def add(self, key: FaceKey, person: int) -> None:
        if len(self.people) == len(self.rows):
            self.rows = np.vstack([self.rows, np.zeros_like(self.rows)])
        self.rows[len(self.people)] = self.embeddings[key[0]][key[1]]
        self.people.append(person)


def _boxes(pictures: list[tuple[Any, Any, Any, list]]) -> list[tuple[Any, Any, Any, list]]:
    """One (shot, start, end, box) per face, in face order."""
    return [(page, start, end, box) for page, start, end, boxes in pictures for box in boxes]


def _order(row: NameRow) -> tuple:
    name, page, start, _ = row
    return (start if start is not None else -1.0, page if page is not None else -1, name)


def _central(keys: list[FaceKey], embeddings: dict[str, np.ndarray]) -> FaceKey | None:
    """The face nearest the mean of a person's faces."""
    usable = [k for k in keys if k[0] in embeddings and k[1] < len(embeddings[k[0]])]
    if not usable:
        return keys[0] if keys else None
    matrix = np.stack([embeddings[s][n] for s, n in usable])
    return usable[int(np.argmin(np.linalg.norm(matrix - matrix.mean(axis=0), axis=1)))]


def _picture(path: str, start: float | None, end: float | None, settings: Any) -> Any:
    if start is not None and end is not None:
        from polymodal.media.video import frame_at

        return frame_at(path, (start + end) / 2, settings.threads)
    from polymodal.media.image import open_image

    return open_image(Path(path), settings.max_image_pixels)


def parse_faces(people: People, refs: list[str]) -> list[FaceKey]:
    """Faces from "ITEM" (all its faces) or "ITEM:N" (its face N), as `polymodal people show` prints them."""
    keys: list[FaceKey] = []
    for ref in refs:
        item, _, number = ref.partition(":")
        if not item.isdigit() or (number and not number.isdigit()):
            raise PeopleError(f"{ref!r} is not a face: give ITEM or ITEM:N (`polymodal people show ID` lists them)")
        keys += people.face_keys(int(item), int(number) if number else None)
    return list(dict.fromkeys(keys))


def refine_search(searcher: Any, query: Any, scored: list[Any], by_words: dict[str, Any]) -> list[Any]:
    """Faces in search: a query image's faces find the items showing the same people (their relevance from
    the face distance), and ``query.person`` keeps only the items showing that person."""
    from polymodal import ranking
    from polymodal.search import Scored, _WordMatch

    if not FaceStore.supported(searcher.store):  # a store of neither kind keeps no people
        if getattr(query, "person", None):
            raise PeopleError(f"people are not kept in the store {searcher.store.location}")
        return scored
    people = People(searcher.store, searcher.analyzer.settings, searcher.fts_text)
    if query.image is not None and searcher.store.get_meta("faces") != "off" and _installed():
        matched = people.matches(query.image)
        present = {s.sha for s in scored}
        threshold = searcher.model.threshold
        missing = [sha for sha in matched if sha not in present]
        files, info = searcher.store.files_for(missing), searcher.store.content_info(missing)
        for sha in missing:
            for row in files.get(sha, []):
                modality = info.get(sha, {}).get("modality", "")
                scored.append(Scored(0.0, sha, row, modality, ranking.Candidate(), "image"))
        for s in scored:
            if s.sha in matched:
                s.relevance = max(s.relevance, threshold + (1 - threshold) * (1 - matched[s.sha] / THRESHOLD))
                if s.sha not in by_words:
                    evidence = people.faces.person_evidence(s.sha)
                    if evidence is not None:
                        by_words[s.sha] = _WordMatch(0.0, False, evidence)
    if getattr(query, "person", None):
        allowed = people.shas_of(query.person)
        scored = [s for s in scored if s.sha in allowed]
    scored.sort(key=lambda s: -s.relevance)
    return scored


def _installed() -> bool:
    from polymodal.models.faces import installed

    return installed()


def describe_face(face: dict[str, Any]) -> str:
    """One line about a face of an item, for the CLI."""
    where = "" if face.get("start") is None else f" at {face['start']:.1f}s"
    who = face.get("name") or (f"person {face['person']}" if face.get("person") else "forgotten")
    return f"face {face['face']}{where}: {who}, box {json.dumps(face['box'])}"
