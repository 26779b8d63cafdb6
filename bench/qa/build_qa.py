"""Assemble the question-answering collection from real third-party media, deterministically.

Every file a question of ``questions.json`` names is put under ``.cache/qa/collection/`` (never committed):

- ``samples/``: the sample collection (``polymodal samples``), built with :func:`build_sample_collection`;
- ``stamps/REL``: Tux Paint stamps copied from ``/usr/share/tuxpaint/stamps/REL`` (captions beside them);
- ``prompts/NAME.wav``: Asterisk prompts copied from ``/usr/share/asterisk/sounds/en_US_f_Allison/NAME.wav``;
- ``sequences/NAME.wav``: **arranged, not recorded**: real Asterisk prompts joined with silences, so that the
  time at which each one is said is known by construction (``SEQUENCES``; :func:`timeline` gives the times);
- ``charts/NAME.png``: **rendered here** with matplotlib from **real data** that ships in installed packages
  (scikit-learn's Iris, Wine and Linnerud data sets, Debian's ``distro-info-data``); ``CHARTS``.

    .venv/bin/python bench/qa/build_qa.py [DEST]      # prints the sequences' timelines
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent / "relevance"))
import build_collection  # noqa: E402

QUESTIONS = HERE / "questions.json"
CACHE = REPO / ".cache" / "qa"
COLLECTION = CACHE / "collection"
DEBIAN_CSV = Path("/usr/share/distro-info/debian.csv")
MissingData = build_collection.MissingData

# --- sequences: real prompts, arranged --------------------------------------------------------------------

LEAD_SECONDS = 1.0  # silence before the first prompt
GAP_SECONDS = 3.0  # silence between prompts
SEQUENCES: dict[str, list[str]] = {
    "call_a.wav": ["hello-world", "pls-hold-while-try", "number-not-answering", "vm-nobodyavail", "goodbye"],
    "conference_b.wav": [
        "conf-onlyperson", "conf-now-recording", "conf-muted", "conf-kicked", "tt-weasels",
        "something-terribly-wrong",
    ],
}  # fmt: skip


def _read_prompt(name: str) -> tuple[Any, int]:
    import soundfile

    samples, rate = soundfile.read(build_collection._need(build_collection.ASTERISK / f"{name}.wav", "asterisk"))
    return samples if samples.ndim == 1 else samples.mean(axis=1), rate


def speech_onset(samples: Any, rate: int, below_peak_db: float = 35.0) -> float:
    """Seconds to the first 20 ms frame within ``below_peak_db`` of the loudest one (the prompts are studio
    recordings with a little silence before the voice)."""
    import numpy as np

    hop = rate // 50
    frames = samples[: len(samples) // hop * hop].reshape(-1, hop)
    level = 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1e-9)
    return float(np.argmax(level > level.max() - below_peak_db)) * hop / rate


def timeline(name: str) -> list[dict[str, Any]]:
    """Where each prompt of sequence ``name`` is: its start in the sequence and when its voice starts."""
    rows, at = [], LEAD_SECONDS
    for prompt in SEQUENCES[name]:
        samples, rate = _read_prompt(prompt)
        duration = len(samples) / rate
        rows.append({"prompt": prompt, "start": round(at, 3), "speech": round(at + speech_onset(samples, rate), 2),
                     "end": round(at + duration, 3)})  # fmt: skip
        at += duration + GAP_SECONDS
    return rows


def make_sequence(name: str, target: Path) -> None:
    import numpy as np
    import soundfile

    parts, rate = [], 8000
    for i, prompt in enumerate(SEQUENCES[name]):
        samples, rate = _read_prompt(prompt)
        parts += [np.zeros(round((LEAD_SECONDS if i == 0 else GAP_SECONDS) * rate)), samples]
    parts.append(np.zeros(rate))
    _write_atomic(target, lambda path: soundfile.write(path, np.concatenate(parts), rate, subtype="PCM_16"))


# --- charts: real data, rendered here ---------------------------------------------------------------------


def _iris_petal_length() -> dict[str, Any]:
    from sklearn.datasets import load_iris

    iris = load_iris()
    means = [float(iris.data[iris.target == k, 2].mean()) for k in range(3)]
    return {"kind": "bar", "title": "Mean petal length by iris species", "labels": list(iris.target_names),
            "values": means, "ylabel": "Petal length (cm)", "colour": "tab:green", "fmt": "{:.2f}"}  # fmt: skip


def _wine_classes() -> dict[str, Any]:
    from sklearn.datasets import load_wine

    wine = load_wine()
    counts = [int((wine.target == k).sum()) for k in range(3)]
    return {"kind": "bar", "title": "Wine samples per cultivar", "labels": ["Cultivar 1", "Cultivar 2", "Cultivar 3"],
            "values": counts, "ylabel": "Number of samples", "colour": "tab:orange", "fmt": "{:d}"}  # fmt: skip


def _linnerud_exercise() -> dict[str, Any]:
    from sklearn.datasets import load_linnerud

    linnerud = load_linnerud()
    means = [float(v) for v in linnerud.data.mean(axis=0)]
    return {"kind": "bar", "title": "Linnerud exercise data: mean of 20 men", "labels": list(linnerud.feature_names),
            "values": means, "ylabel": "Repetitions", "colour": "tab:purple", "fmt": "{:.1f}"}  # fmt: skip


def _debian_releases() -> dict[str, Any]:
    """Cumulative count of Debian stable releases by year, from ``distro-info-data``'s release dates."""
    import csv

    with build_collection._need(DEBIAN_CSV, "distro-info-data").open(encoding="utf-8") as handle:
        years = sorted(date.fromisoformat(row["release"]).year for row in csv.DictReader(handle) if row["release"])
    span = list(range(years[0], years[-1] + 1))
    total = [sum(y <= year for y in years) for year in span]
    return {"kind": "line", "title": "Debian stable releases so far, by year", "labels": span, "values": total,
            "ylabel": "Releases", "colour": "tab:red", "fmt": "{:d}"}  # fmt: skip


CHARTS: dict[str, Callable[[], dict[str, Any]]] = {
    "iris_petal_length.png": _iris_petal_length,
    "wine_classes.png": _wine_classes,
    "linnerud_exercise.png": _linnerud_exercise,
    "debian_releases.png": _debian_releases,
}


def make_chart(name: str, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = CHARTS[name]()
    figure, axes = plt.subplots(figsize=(8, 5), dpi=100)
    if spec["kind"] == "bar":
        bars = axes.bar(spec["labels"], spec["values"], color=spec["colour"])
        axes.bar_label(bars, labels=[spec["fmt"].format(v) for v in spec["values"]], fontsize=12)
    else:
        axes.plot(spec["labels"], spec["values"], color=spec["colour"], marker="o")
        axes.annotate(spec["fmt"].format(spec["values"][-1]), (spec["labels"][-1], spec["values"][-1]),
                      textcoords="offset points", xytext=(-4, 8), fontsize=12)  # fmt: skip
        axes.grid(alpha=0.3)
    axes.set_title(spec["title"], fontsize=15)
    axes.set_ylabel(spec["ylabel"], fontsize=12)
    axes.tick_params(labelsize=11)
    figure.tight_layout()
    _write_atomic(target, lambda path: figure.savefig(path, format="png", metadata={"Software": None}))
    plt.close(figure)


# --- the collection ---------------------------------------------------------------------------------------


def _write_atomic(target: Path, write: Callable[[Path], None]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.stem + ".part" + target.suffix)
    write(partial)
    partial.replace(target)


def question_files(path: Path = QUESTIONS) -> list[str]:
    return sorted({q["file"] for q in json.loads(path.read_text(encoding="utf-8"))["questions"]})


def build(dest: Path = COLLECTION, say: Callable[[str], None] = print) -> list[Path]:
    """Make every file the questions name under ``dest`` (files already there are kept); returns them."""
    from polymodal.samples import build_sample_collection

    files = question_files()
    if any(f.startswith("samples/") for f in files):
        build_sample_collection(dest / "samples", say)
    made = []
    for relative in files:
        target = dest / relative
        folder, _, rest = relative.partition("/")
        if folder == "stamps":
            build_collection._copy(build_collection._need(build_collection.STAMPS / rest, "tuxpaint"), target, say)
        elif folder == "prompts":
            source = build_collection.ASTERISK / rest
            build_collection._copy(build_collection._need(source, "asterisk"), target, say)
        elif folder == "sequences" and not target.exists():
            say(f"arranging {relative}")
            make_sequence(rest, target)
        elif folder == "charts" and not target.exists():
            say(f"rendering {relative}")
            make_chart(rest, target)
        elif folder not in ("samples", "stamps", "prompts", "sequences", "charts"):
            raise ValueError(f"{QUESTIONS}: no source for {relative!r}")
        if not target.is_file():
            raise MissingData(f"{target} could not be made")
        made.append(target)
    return made


def main(argv: list[str]) -> int:
    dest = Path(argv[0]) if argv else COLLECTION
    try:
        files = build(dest)
    except MissingData as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name in SEQUENCES:
        print(name, json.dumps(timeline(name)))
    print(f"{len(files)} files in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
