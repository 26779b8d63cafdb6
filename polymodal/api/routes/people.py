"""People: list them, one person's faces, name, merge, "not this person", forget, and a face crop; an item's faces.

Face embeddings never leave the store: these answers carry ids, names, counts, boxes and crop images only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from polymodal.api.deps import Svc, caller
from polymodal.api.errors import ApiError

router = APIRouter(tags=["people"], dependencies=[Depends(caller)])
MAX_ID = 2**63 - 1
PersonId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="a person's id", examples=[1])]
ItemId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="an item's id", examples=[1])]
FaceRef = Annotated[str, Field(pattern=r"^\d{1,18}(:\d{1,6})?$", description="ITEM or ITEM:N")]


class NameRequest(BaseModel):
    name: str = Field("", max_length=100, description='the name ("" removes it)')


class MergeRequest(BaseModel):
    others: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(min_length=1, max_length=100)


class FacesRequest(BaseModel):
    faces: list[FaceRef] = Field(min_length=1, max_length=500)


@router.get("/api/people", summary="Everyone whose face the collection shows, most faces first")
def list_people(svc: Svc) -> dict[str, Any]:
    with _people(svc) as people:
        if people.store.writable:
            people.update()
        return {"enabled": people.enabled(), "people": [_person(p) for p in people.list()]}


@router.get("/api/people/{person_id}", summary="One person: name, items, and each face's item, number and box")
def get_person(person_id: PersonId, svc: Svc) -> dict[str, Any]:
    with _people(svc) as people:
        person = people.person(person_id)
        faces = [dict(face, item=item) for item in person.items for face in people.faces_of(item)
                 if face["person"] == person.id]  # fmt: skip
        return _person(person) | {"face_list": faces}


@router.post("/api/people/{person_id}/name", summary="Name a person (the name becomes searchable)")
def name_person(person_id: PersonId, body: NameRequest, svc: Svc) -> dict[str, Any]:
    with _people(svc) as people:
        return _person(people.name(person_id, body.name))


@router.post("/api/people/{person_id}/merge", summary="The others are this person")
def merge_people(person_id: PersonId, body: MergeRequest, svc: Svc) -> dict[str, Any]:
    with _people(svc) as people:
        return _person(people.merge(person_id, *body.others))


@router.post("/api/people/{person_id}/not", summary="These faces are not this person (grouped again)")
def not_this_person(person_id: PersonId, body: FacesRequest, svc: Svc) -> dict[str, Any]:
    from polymodal.people import parse_faces

    with _people(svc) as people:
        keys = parse_faces(people, list(body.faces))
        people.not_this(person_id, keys)
        return {"person": person_id, "faces": len(keys)}


@router.delete("/api/people/{person_id}", summary="Forget a person: their face embeddings and crops are deleted")
def forget_person(person_id: PersonId, svc: Svc) -> dict[str, Any]:
    with _people(svc) as people:
        return {"forgotten": person_id, "faces": people.forget(person_id)}


@router.get("/api/people/{person_id}/face", summary="A crop of the person's representative face (JPEG)",
            response_class=FileResponse)  # fmt: skip
def person_face(person_id: PersonId, svc: Svc) -> FileResponse:
    with _people(svc) as people:
        person = people.person(person_id)
        if person.crop is None:
            raise ApiError(404, f"no face crop of person {person_id}: the file showing it cannot be read")
        return FileResponse(person.crop, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/api/items/{item_id}/faces", summary="An item's faces: number, box, shot and person")
def item_faces(item_id: ItemId, svc: Svc) -> dict[str, Any]:
    with _people(svc) as people:
        return {"item": item_id, "faces": people.faces_of(item_id)}


def _person(person: Any) -> dict[str, Any]:
    data = person.to_dict()
    data.pop("crop", None)  # a path in the store: the route below serves it
    data["face_url"] = f"/api/people/{person.id}/face"
    return data


@contextmanager
def _people(svc: Any) -> Iterator[Any]:
    from polymodal.people import People, PeopleError, PersonNotFound

    try:
        yield People(svc.collection.store, svc.collection.settings)
    except PersonNotFound as exc:
        raise ApiError(404, str(exc)) from exc
    except PeopleError as exc:
        raise ApiError(404 if "no item" in str(exc) else 400, str(exc)) from exc


def people_in(svc: Any, items: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The people each of ``items`` shows, as search results' person chips: ``{"person": id, "name": name or
    None}``, named people first (no faces, no embeddings)."""
    from polymodal.models.faces import installed
    from polymodal.people import People
    from polymodal.store.faces import FaceStore

    store = svc.collection.store
    if not installed() or not FaceStore.supported(store) or store.get_meta("faces") == "off":
        return {}
    people = People(store, svc.collection.settings)
    out: dict[int, list[dict[str, Any]]] = {}
    for item in items:
        shown = {f["person"]: f["name"] for f in people.faces_of(item) if f["person"]}
        if shown:
            ordered = sorted(shown.items(), key=lambda pair: (pair[1] is None, pair[0]))
            out[item] = [{"person": person, "name": name} for person, name in ordered]
    return out
