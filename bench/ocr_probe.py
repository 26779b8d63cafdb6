"""The OCR text-box probe: of the images the cheap priors send to OCR (text-like ImageNet labels, or "flat and
grey" like a scan), how many the probe lets through, how many of those the full reader finds text in, and
the OCR time saved. Images: the Tux Paint stamps, the sample collection's photos and scan, and, when
``apt-get download`` works, the OpenCV sample images and the GNOME help screenshots (opencv-doc,
gnome-user-docs). "Has text" = the full reader finds a line with 3 or more letters or digits.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/ocr_probe.py [--out bench/results/ocr_probe.json]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf_data  # noqa: E402

from polymodal.analysis import TEXT_LIKELY_CLASSES, TEXT_LIKELY_THRESHOLD  # noqa: E402
from polymodal.config import Settings  # noqa: E402
from polymodal.media.image import classifier_input, looks_like_document, open_image  # noqa: E402
from polymodal.models.base import get_model  # noqa: E402

DEB_IMAGES = {
    "opencv-doc": "./usr/share/doc/opencv-doc/examples/data/*.[jp][pn]g",
    "gnome-user-docs": "./usr/share/help/C/gnome-help/figures/*.png",
}


def debian_images() -> list[Path]:
    folder = perf_data.DATA / "ocr-images"
    if not folder.is_dir():
        with tempfile.TemporaryDirectory() as debs:
            subprocess.run(["apt-get", "download", *DEB_IMAGES], cwd=debs, capture_output=True)
            tmp = perf_data.fresh_part(folder)
            for deb in Path(debs).glob("*.deb"):
                pattern = next(p for name, p in DEB_IMAGES.items() if deb.name.startswith(name))
                tar = f"dpkg-deb --fsys-tarfile {deb} | tar -x -C {tmp} --wildcards --transform='s|.*/||' '{pattern}'"
                subprocess.run(tar, shell=True, capture_output=True)
            tmp.rename(folder)
    return sorted(folder.iterdir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ocr_probe.json")
    args = parser.parse_args()
    settings = Settings.from_env()
    classifier, ocr = get_model("image", "efficientnet-lite0", settings), get_model("ocr", "rapidocr", settings)
    images = perf_data.stamp_pngs() + sorted(perf_data.samples().glob("*/*.[jp][pn]g")) + debian_images()
    rows = []
    for path in images:
        try:
            image = open_image(path, settings.max_image_pixels)
        except Exception:  # a sample file Pillow cannot read is not what this measures
            continue
        probabilities = classifier.analyze(classifier_input(image)[None])[0].probabilities
        text_mass = float(probabilities[list(TEXT_LIKELY_CLASSES)].sum())
        if text_mass < TEXT_LIKELY_THRESHOLD and not looks_like_document(image):
            continue
        started = time.perf_counter()
        probed = ocr.sees_text(image)
        probe_s = time.perf_counter() - started
        started = time.perf_counter()
        lines = ocr.read(image)
        read_s = time.perf_counter() - started
        has_text = any(len(re.findall(r"\w", line.text)) >= 3 for line in lines)
        rows.append({"path": str(path), "probe": probed, "has_text": has_text, "probe_s": probe_s, "read_s": read_s})
    with_text = [r for r in rows if r["has_text"]]
    without = [r for r in rows if not r["has_text"]]
    result = {
        "images": len(images),
        "gated": len(rows),
        "gated_with_text": len(with_text),
        "with_text_kept_by_probe": sum(r["probe"] for r in with_text),
        "with_text_missed": [Path(r["path"]).name for r in with_text if not r["probe"]],
        "without_text": len(without),
        "without_text_skipped_by_probe": sum(not r["probe"] for r in without),
        "ocr_seconds_reading_all_gated": round(sum(r["read_s"] for r in rows), 1),
        "ocr_seconds_probe_then_read": round(sum(r["probe_s"] + r["read_s"] * r["probe"] for r in rows), 1),
        "probe_ms_median": round(1000 * sorted(r["probe_s"] for r in rows)[len(rows) // 2], 1) if rows else None,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
