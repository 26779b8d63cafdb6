"""``polymodal people``: the people whose faces the collection shows; name, merge, split, correct, forget them.

    polymodal people                      # everyone, most faces first, with a face crop
    polymodal people show 3               # person 3's faces (ITEM:N) and items
    polymodal people name 3 "Anna"        # "Anna" is now searchable: polymodal search "Anna at the beach"
    polymodal people merge 3 7 9          # 7 and 9 are 3
    polymodal people split 3 12:0         # face 0 of item 12 is someone else
    polymodal people not 3 12             # the faces of item 12 are not person 3 (grouped again)
    polymodal people forget 3             # delete person 3's face embeddings and crops
    polymodal people off | on             # faces for this collection (on by default)

Parsing and display only; the work is in :mod:`polymodal.people`. Corrections are kept across re-indexing.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_OK, EXIT_USAGE = 0, 2


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``people`` command and its subcommands."""
    from polymodal import cli

    people = sub.add_parser("people", parents=[common], help="people found by their faces: list, name, merge, forget")
    actions = people.add_subparsers(dest="people_command")
    after = cli._options_after_subcommand()
    actions.add_parser("list", parents=[after], help="everyone, most faces first (the default)")
    actions.add_parser("show", parents=[after], help="one person's faces and items").add_argument("person")
    name = actions.add_parser("name", parents=[after], help="name a person (their name becomes searchable)")
    name.add_argument("person", help="id or current name")
    name.add_argument("name", help='the name ("" removes it)')
    merge = actions.add_parser("merge", parents=[after], help="the others are this person")
    merge.add_argument("person")
    merge.add_argument("others", nargs="+")
    for command, text in (("split", "these faces are someone else (a new person)"),
                          ("not", "these faces are not this person (grouped again without it)")):  # fmt: skip
        action = actions.add_parser(command, parents=[after], help=text)
        action.add_argument("person")
        action.add_argument("faces", nargs="+", help="ITEM (all its faces of this person) or ITEM:N")
    forget = actions.add_parser("forget", parents=[after], help="delete a person's face embeddings and crops")
    forget.add_argument("person")
    actions.add_parser("off", parents=[after], help="no faces in this collection: every face is deleted now")
    actions.add_parser("on", parents=[after], help="faces again (found at the next `polymodal index`)")
    people.set_defaults(handler=cmd_people)


def cmd_people(args: argparse.Namespace) -> int:
    from polymodal.cli import _collection, _fail
    from polymodal.people import People, PeopleError

    collection = _collection(args, create=False)
    people = People(collection.store, collection.settings)
    command = args.people_command or "list"
    try:
        return HANDLERS[command](people, args)
    except PeopleError as exc:
        return _fail(args, str(exc), EXIT_USAGE)


def _list(people: Any, args: argparse.Namespace) -> int:
    from polymodal.cli import _dumps, _table, printable

    if people.store.writable:
        people.update()
    everyone = people.list()
    if args.json:
        print(_dumps({"enabled": people.enabled(), "people": [p.to_dict() for p in everyone]}))
        return EXIT_OK
    if not people.enabled():
        print("faces are off for this collection (`polymodal people on`, then index)")
        return EXIT_OK
    if not everyone:
        from polymodal.models.faces import installed

        print("no faces found yet (index images or videos with people in them)" if installed() else
              "faces need the faces extra: `pip install polymodal[faces]`, then index again")  # fmt: skip
        return EXIT_OK
    rows = [(str(p.id), printable(p.name or "-"), str(len(p.faces)), str(len(p.items)), printable(p.crop or "-"))
            for p in everyone]  # fmt: skip
    _table(["person", "name", "faces", "items", "face crop"], rows)
    return EXIT_OK


def _show(people: Any, args: argparse.Namespace) -> int:
    from polymodal.cli import _dumps, printable

    person = people.person(args.person)
    faces = []
    for item in person.items:
        faces += [dict(face, item=item) for face in people.faces_of(item) if face["person"] == person.id]
    if args.json:
        print(_dumps(person.to_dict() | {"face_list": faces}))
        return EXIT_OK
    print(f"person {person.id}: {printable(person.name or 'unnamed')}, {len(person.faces)} faces in "
          f"{len(person.items)} items; face crop {printable(person.crop or '-')}")  # fmt: skip
    paths = {row.id: row.path for row in _rows(people, person.items)}
    for face in faces:
        where = "" if face.get("start") is None else f" at {face['start']:.1f}s"
        print(f"  {face['item']}:{face['face']}{where}  {printable(paths.get(face['item'], '?'))}  box {face['box']}")
    return EXIT_OK


def _rows(people: Any, items: list[int]) -> list[Any]:
    return [row for row in (people.store.file_by_id(i) for i in items) if row is not None]


def _name(people: Any, args: argparse.Namespace) -> int:
    person = people.name(args.person, args.name)
    return _said(args, person.to_dict(), f"person {person.id} is now {person.name or 'unnamed'}")


def _merge(people: Any, args: argparse.Namespace) -> int:
    person = people.merge(args.person, *args.others)
    return _said(args, person.to_dict(), f"merged into person {person.id}: {len(person.faces)} faces")


def _split(people: Any, args: argparse.Namespace) -> int:
    from polymodal.people import parse_faces

    person = people.split(args.person, parse_faces(people, args.faces))
    return _said(args, person.to_dict(), f"split off as person {person.id}: {len(person.faces)} faces")


def _not(people: Any, args: argparse.Namespace) -> int:
    from polymodal.people import parse_faces

    keys = parse_faces(people, args.faces)
    people.not_this(args.person, keys)
    return _said(args, {"person": people.resolve(args.person), "faces": len(keys)},
                 f"{len(keys)} faces are no longer person {args.person} (grouped again)")  # fmt: skip


def _forget(people: Any, args: argparse.Namespace) -> int:
    count = people.forget(args.person)
    return _said(args, {"forgotten": args.person, "faces": count}, f"forgot person {args.person}: {count} faces' "
                 "embeddings and crops deleted")  # fmt: skip


def _switch(people: Any, args: argparse.Namespace) -> int:
    on = args.people_command == "on"
    people.set_enabled(on)
    text = "faces are on: `polymodal index` finds them" if on else "faces are off: every face was deleted"
    return _said(args, {"enabled": on}, text)


def _said(args: argparse.Namespace, data: dict[str, Any], text: str) -> int:
    from polymodal.cli import _dumps, printable

    print(_dumps(data) if args.json else printable(text), file=sys.stdout)
    return EXIT_OK


HANDLERS = {
    "list": _list,
    "show": _show,
    "name": _name,
    "merge": _merge,
    "split": _split,
    "not": _not,
    "forget": _forget,
    "off": _switch,
    "on": _switch,
}
