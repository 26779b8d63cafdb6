"""Faces and people, measured on real faces that install offline: detection, grouping into people, speed.

    .venv/bin/python bench/eval_faces.py [--photos 30] [--no-download]

Faces (all real photographs; transforms are labelled as such and count as the same person):
- scikit-image's astronaut (Eileen Collins, NASA, public domain) and five transforms of it: mirrored, half size,
  darkened (x0.45), rotated 10 and -15 degrees;
- the test photos of the ``face_recognition`` package (MIT; official portraits: Barack Obama in five photos, two of
  them partial faces, plus a 32-bit PNG copy of one; Joe Biden in one) and a mirrored, 0.6x copy of each; fetched
  once with ``pip download face_recognition==1.3.0`` into ``.cache/faces-eval`` (skipped with --no-download or
  without a network; the figures then say so);
- scikit-image's ``lfw_subset``: 100 face crops from Labeled Faces in the Wild and 100 crops without a face,
  25 x 25 px, upscaled 4x onto a grey 200 px canvas (detection only: their identities are not given).
Pictures without faces: the sample photos but the astronaut (cat, coffee, rocket, motorcycle, Summer Palace,
dahlia), scikit-image's brick, coins, grass, gravel, hubble, page, text and horse images, and the 100 LFW non-faces.

Detection: each face picture shows one face; a picture's first detection is a true positive, any other detection
in it (or in a picture without faces) a false positive. Grouping: the people module's incremental single-linkage
(polymodal.people) over the faces found, scored with pairwise precision / recall and B-cubed F1, and the distances
of same-person and different-person pairs, from which the threshold is chosen. Speed: detection ms per picture,
embedding ms per face, and the indexing time of the benchmark photo mix with faces on vs off (same run, same
photos). Writes bench/results/faces.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
CACHE = REPO / ".cache" / "faces-eval"
RESULTS = REPO / "bench" / "results" / "faces.json"
FACE_RECOGNITION = ("face_recognition", "1.3.0")
THRESHOLDS = [round(t, 2) for t in np.arange(0.3, 0.91, 0.05)]


def astronaut_set() -> list[tuple[str, str, object]]:
    """(name, person, PIL image): the astronaut and its labelled transforms."""
    from PIL import Image, ImageEnhance
    from skimage import data

    base = Image.fromarray(data.astronaut())
    return [
        ("astronaut", "collins", base),
        ("astronaut mirrored", "collins", base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
        ("astronaut half size", "collins", base.resize((256, 256), Image.Resampling.LANCZOS)),
        ("astronaut darkened x0.45", "collins", ImageEnhance.Brightness(base).enhance(0.45)),
        ("astronaut rotated 10", "collins", base.rotate(10, resample=Image.Resampling.BICUBIC)),
        ("astronaut rotated -15", "collins", base.rotate(-15, resample=Image.Resampling.BICUBIC)),
    ]


def face_recognition_set(download: bool) -> tuple[list[tuple[str, str, object]], str]:
    """The face_recognition package's test photos (and a mirrored 0.6x copy of each), with a note."""
    from PIL import Image

    folder = CACHE / "test_images"
    if not folder.is_dir() and download:
        _fetch_face_recognition(folder)
    if not folder.is_dir():
        return [], "face_recognition test photos not available (no download): Obama / Biden left out"
    out = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".jpg", ".png"):
            continue
        person = "biden" if "biden" in path.name else "obama"
        image = Image.open(path).convert("RGB")
        small = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        small = small.resize((round(image.width * 0.6), round(image.height * 0.6)), Image.Resampling.LANCZOS)
        out += [(path.name, person, image), (f"{path.name} mirrored 0.6x", person, small)]
    return out, f"face_recognition {FACE_RECOGNITION[1]} test photos ({len(out) // 2} + their mirrored 0.6x copies)"


def _fetch_face_recognition(folder: Path) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", tmp,
                   f"{FACE_RECOGNITION[0]}=={FACE_RECOGNITION[1]}"]  # fmt: skip
        if subprocess.run(command, capture_output=True, timeout=300).returncode != 0:
            return
        archive = next(Path(tmp).glob("*.tar.gz"), None)
        if archive is None:
            return
        part = folder.with_suffix(".part")
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir()
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if "/tests/test_images/" in member.name and member.isfile():
                    (part / Path(member.name).name).write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]
        part.rename(folder)


def lfw_crops() -> tuple[list[object], list[object]]:
    """(100 face crops, 100 crops without a face), each 25 px upscaled 4x on a 200 px grey canvas."""
    from PIL import Image
    from skimage import data

    def canvas(array: np.ndarray) -> object:
        face = Image.fromarray((array * 255).astype(np.uint8)).resize((100, 100), Image.Resampling.BICUBIC)
        out = Image.new("L", (200, 200), 128)
        out.paste(face, (50, 50))
        return out.convert("RGB")

    crops = data.lfw_subset()
    return [canvas(a) for a in crops[:100]], [canvas(a) for a in crops[100:]]


def no_face_set() -> list[tuple[str, object]]:
    from PIL import Image
    from skimage import data

    out = []
    for path in sorted((REPO / ".cache" / "sample-collection" / "photos").glob("*.jpg")):
        if "astronaut" not in path.name:
            out.append((path.name, Image.open(path).convert("RGB")))
    for name in ("brick", "coins", "grass", "gravel", "hubble_deep_field", "page", "text", "horse"):
        array = getattr(data, name)()
        array = (array * 255).astype(np.uint8) if array.dtype == bool else array
        out.append((f"skimage {name}", Image.fromarray(array).convert("RGB")))
    return out


def detection(model, pictures_with_face: list, pictures_without: list) -> dict:
    tp = fn = fp = 0
    seconds = []
    for picture in pictures_with_face:
        started = time.perf_counter()
        found = model.faces(picture)
        seconds.append(time.perf_counter() - started)
        tp, fn, fp = tp + bool(found), fn + (not found), fp + max(0, len(found) - 1)
    for picture in pictures_without:
        started = time.perf_counter()
        fp += len(model.faces(picture))
        seconds.append(time.perf_counter() - started)
    return {
        "faces": tp + fn, "pictures_without_faces": len(pictures_without), "found": tp, "missed": fn,
        "false_detections": fp, "recall": round(tp / max(tp + fn, 1), 3), "precision": round(tp / max(tp + fp, 1), 3),
        "ms_per_picture_with_embeddings": round(1000 * float(np.mean(seconds)), 1),
    }  # fmt: skip


def grouping(embeddings: list[np.ndarray], people: list[str], threshold: float) -> dict:
    """The people module's grouping at ``threshold``, scored against the true people."""
    import polymodal.people as people_module

    kept, people_module.THRESHOLD = people_module.THRESHOLD, threshold
    try:
        return _grouping(embeddings, people, threshold)
    finally:
        people_module.THRESHOLD = kept


def _grouping(embeddings: list[np.ndarray], people: list[str], threshold: float) -> dict:
    from polymodal.people import _Grouping

    keys = [(f"face{i}", 0) for i in range(len(embeddings))]
    by_key = {key[0]: e[None, :] for key, e in zip(keys, embeddings, strict=True)}
    group = _Grouping(by_key, {})
    clusters: list[int] = []
    for key in keys:
        found = group.nearest(key, set())
        cluster = found if found is not None else max(clusters, default=-1) + 1
        group.add(key, cluster)
        clusters.append(cluster)
    return _scores(clusters, people) | {"threshold": threshold, "clusters": len(set(clusters))}


def _scores(clusters: list[int], people: list[str]) -> dict:
    n = len(people)
    same_truth = np.array([[people[i] == people[j] for j in range(n)] for i in range(n)])
    same_found = np.array([[clusters[i] == clusters[j] for j in range(n)] for i in range(n)])
    upper = np.triu(np.ones((n, n), bool), 1)
    tp = int((same_truth & same_found & upper).sum())
    precision = tp / max(int((same_found & upper).sum()), 1)
    recall = tp / max(int((same_truth & upper).sum()), 1)
    both = same_truth & same_found
    b_precision = float(np.mean(both.sum(1) / same_found.sum(1)))
    b_recall = float(np.mean(both.sum(1) / same_truth.sum(1)))
    b_f1 = 2 * b_precision * b_recall / max(b_precision + b_recall, 1e-9)
    return {"pairwise_precision": round(precision, 3), "pairwise_recall": round(recall, 3),
            "bcubed_precision": round(b_precision, 3), "bcubed_recall": round(b_recall, 3),
            "bcubed_f1": round(b_f1, 3)}  # fmt: skip


def embedding_speed(model, pictures: list) -> dict:
    """Milliseconds per face for landmarks + embedding alone (detection timed apart), over the portraits."""
    from polymodal.models.faces import _detect, _reduced

    detector, landmarks, embedder = model.runtime
    found = [(rgb, _detect(detector, rgb, 0)) for rgb, _ in (_reduced(p) for p in pictures)]
    faces = sum(len(rects) for _, rects in found)
    started = time.perf_counter()
    for rgb, rects in found:
        for rect, _ in rects:
            embedder.compute_face_descriptor(rgb, landmarks(rgb, rect))
    ms = 1000 * (time.perf_counter() - started) / max(faces, 1)
    return {"faces": faces, "embedding_ms_per_face": round(ms, 1), "faces_per_second": round(1000 / max(ms, 1e-9), 1)}


def distances(embeddings: list[np.ndarray], people: list[str]) -> dict:
    same, different = [], []
    for i in range(len(people)):
        for j in range(i + 1, len(people)):
            d = float(np.linalg.norm(embeddings[i] - embeddings[j]))
            (same if people[i] == people[j] else different).append(d)
    return {"same_pairs": len(same), "different_pairs": len(different),
            "same_max": round(max(same, default=0), 3), "same_mean": round(float(np.mean(same or [0])), 3),
            "different_min": round(min(different, default=0), 3),
            "different_mean": round(float(np.mean(different or [0])), 3)}  # fmt: skip


def indexing_cost(count: int, rounds: int = 2) -> dict:
    """Index the benchmark photo mix into fresh stores, faces off and on in turn, ``rounds`` times each (the
    machine is shared: each condition's fastest round is kept); seconds per photo each."""
    from perf_data import photo_mix

    from polymodal.collection import Collection
    from polymodal.people import People

    folder = photo_mix(count)
    out: dict = {"photos": count, "folder": str(folder.relative_to(REPO)), "rounds": rounds}
    times: dict[str, list[float]] = {"without_faces": [], "with_faces": []}
    for _ in range(rounds):
        for label, on in (("without_faces", False), ("with_faces", True)):
            with tempfile.TemporaryDirectory() as tmp:
                collection = Collection(Path(tmp) / "store")
                if not on:
                    collection.store.set_meta("faces", "off")
                started = time.perf_counter()
                report = collection.index(folder)
                times[label].append(time.perf_counter() - started)
                found = sum(len(p.faces) for p in People(collection.store, collection.settings).list(crops=False))
                out[label] = {"errors": len(report.errors), "faces": found if on else None}
    for label, seconds in times.items():
        out[label] |= {"seconds": [round(s, 2) for s in seconds], "seconds_per_photo": round(min(seconds) / count, 3)}
    with_faces, without = out["with_faces"]["seconds_per_photo"], out["without_faces"]["seconds_per_photo"]
    out["added_seconds_per_photo"] = round(with_faces - without, 3)
    out["ratio"] = round(with_faces / without, 2)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=30, help="photos of the benchmark mix to index (0: skip)")
    parser.add_argument("--rounds", type=int, default=2, help="indexing runs per condition (the fastest is kept)")
    parser.add_argument("--no-download", action="store_true", help="leave out the face_recognition test photos")
    args = parser.parse_args()

    from polymodal.config import Settings
    from polymodal.models.faces import face_model
    from polymodal.people import THRESHOLD

    settings = Settings.from_env()
    model = face_model(settings)
    model.runtime  # noqa: B018 (load before timing)
    named, note = face_recognition_set(not args.no_download)
    portraits = astronaut_set() + named
    lfw_faces, lfw_other = lfw_crops()
    without = no_face_set()
    detected = detection(model, [p for _, _, p in portraits] + lfw_faces, [p for _, p in without] + lfw_other)
    portrait_detection = detection(model, [p for _, _, p in portraits], [p for _, p in without])

    embeddings, people, names = [], [], []
    for name, person, picture in portraits:
        faces = model.faces(picture)
        if faces:
            embeddings.append(max(faces, key=lambda f: f.score).embedding)
            people.append(person)
            names.append(name)
    sweep = [grouping(embeddings, people, t) for t in THRESHOLDS] if embeddings else []
    chosen = grouping(embeddings, people, THRESHOLD) if embeddings else {}

    results = {
        "command": "bench/eval_faces.py " + " ".join(sys.argv[1:]),
        "model": model.model_id,
        "sets": {
            "portraits": [{"name": n, "person": p} for n, p in zip(names, people, strict=True)],
            "portrait_pictures": len(portraits),
            "face_recognition": note,
            "lfw_subset": "100 face crops + 100 non-face crops, 25 px upscaled 4x on a 200 px canvas",
            "without_faces": [n for n, _ in without],
        },
        "detection_all": detected,
        "detection_portraits": portrait_detection,
        "distances": distances(embeddings, people),
        "grouping": chosen,
        "threshold_sweep": sweep,
        "speed": embedding_speed(model, [p for _, _, p in portraits]),
        "indexing": indexing_cost(args.photos, args.rounds) if args.photos else None,
        "note": "a small set: say so wherever these figures are quoted",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    _print(results)
    return 0


def _print(r: dict) -> None:
    d, p = r["detection_all"], r["detection_portraits"]
    print(f"detection, all (n={d['faces']} faces, {d['pictures_without_faces']} pictures without): "
          f"recall {d['recall']:.3f}, precision {d['precision']:.3f}, {d['false_detections']} false detections")
    print(f"detection, full portraits (n={p['faces']}, {p['pictures_without_faces']} without): recall "
          f"{p['recall']:.3f}, precision {p['precision']:.3f}; {p['ms_per_picture_with_embeddings']} ms per picture")
    s = r["distances"]
    print(f"distances: same person max {s['same_max']} (mean {s['same_mean']}, {s['same_pairs']} pairs), different "
          f"min {s['different_min']} (mean {s['different_mean']}, {s['different_pairs']} pairs)")
    print("threshold  clusters  pair P  pair R  B3 F1")
    for row in r["threshold_sweep"]:
        print(f"  {row['threshold']:.2f}     {row['clusters']:>3}     {row['pairwise_precision']:.3f}   "
              f"{row['pairwise_recall']:.3f}   {row['bcubed_f1']:.3f}")
    g = r["grouping"]
    print(f"chosen threshold {g.get('threshold')}: {g.get('clusters')} people for {len(r['sets']['portraits'])} faces, "
          f"B-cubed F1 {g.get('bcubed_f1')}, pairwise P/R {g.get('pairwise_precision')}/{g.get('pairwise_recall')}")
    speed = r["speed"]
    print(f"speed: {speed['embedding_ms_per_face']} ms per face embedding ({speed['faces_per_second']} faces/s)")
    i = r["indexing"]
    if i:
        off, on = i["without_faces"]["seconds_per_photo"], i["with_faces"]["seconds_per_photo"]
        print(f"indexing {i['photos']} benchmark photos (fastest of {i['rounds']} rounds): {off} s/photo without "
              f"faces, {on} with (+{i['added_seconds_per_photo']} s, x{i['ratio']}); "
              f"{i['with_faces']['faces']} faces found")
    print(f"results: {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    raise SystemExit(main())
