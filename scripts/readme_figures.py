"""Write the README's figure tables from the measurements in ``bench/results/*.json``, so they cannot drift.

Each table sits between ``<!-- figures:NAME -->`` and ``<!-- /figures:NAME -->`` in README.md; this script
rewrites what is between them from the JSON the benchmark wrote. ``--check`` changes nothing and fails (exit 1,
naming the tables) when the README says something else: CI runs it (``tests/test_readme_figures.py``).

    python scripts/readme_figures.py            # rewrite the tables
    python scripts/readme_figures.py --check    # exit 1 when the README disagrees with the JSON
    python scripts/readme_figures.py --list     # the tables this script knows and the JSON each reads

Text in the tables that no JSON holds (what a figure was before a change, the FINDINGS.md baselines, why a
result is what it is) is written here beside the figure it explains.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"(<!-- figures:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /figures:(?P=name) -->)", re.S)


class FiguresError(Exception):
    """A results file is missing or lacks a figure a table needs; the message names the file."""


@dataclass(frozen=True)
class Table:
    sources: tuple[str, ...]  # JSON files under bench/results
    render: Callable[[dict[str, Any]], list[str]]  # the JSON (by file stem) -> the table's lines


# --- number formats ----------------------------------------------------------------------------------------
def pct(fraction: float, digits: int = 1) -> str:
    return f"{fraction * 100:.{digits}f}"


def one(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}"


def thousands(n: int) -> str:
    return f"{n:,}"


def recalls(r: dict[str, float]) -> str:
    return " / ".join(one(r[k]) for k in ("R@1", "R@5", "R@10"))


def row(*cells: object) -> str:
    line = "| " + " | ".join(str(c) for c in cells) + " |"
    while "|  |" in line:  # an empty cell is written "| |"
        line = line.replace("|  |", "| |")
    return line


def header(*names: str) -> list[str]:
    return [row(*names), "|" + "---|" * len(names)]


# --- the tables ----------------------------------------------------------------------------------------------
def foundation(data: dict[str, Any]) -> list[str]:
    fashion, tux, wer, sounds = data["fashion_mnist"], data["tuxpaint"], data["asterisk_wer"], data["sounds"]
    best = fashion["best"]
    bare = next(r for r in fashion["rows"] if r["input"] == best["input"] and r["prompts"] == "bare class names"
                and r["bridge_top_k"] == best["bridge_top_k"])  # fmt: skip
    results = tux["results"]
    bridge = next(v for k, v in results.items() if k.startswith("bridge vector"))
    full = results["full search (Collection.search, fused)"]
    unnamed = results["full search, names hidden (+ weaker matches)"]
    by_class = results["bridge in class space (class match only)"]
    findings = next(v for k, v in results.items() if k.startswith("FINDINGS.md"))
    folders = wer["by_folder"]
    silent = wer["non_speech_files"]
    invented = "no words invented" if silent["inserted_words"] == 0 else f"{silent['inserted_words']} words invented"
    right = round(sounds["accuracy"][sounds["main_prompt"]] * sounds["n"])
    return [
        *header("what", "n", "result", "command"),
        row("Fashion-MNIST zero-shot top-1 through the label bridge (test set; chance 10 %)", thousands(fashion["n"]),
            f"**{pct(best['accuracy'])} %** (descriptive prompts averaged; bare class names {pct(bare['accuracy'])} %; "
            "FINDINGS.md had 19 %)", "`python bench/eval_fashion_mnist.py`"),
        row("Tux Paint text→image R@1 / R@5 / R@10, English captions as queries, identical captions grouped",
            f"{tux['n_queries']} captions × {tux['n_images']} photos",
            f"bridge vector **{recalls(bridge)}** (before cut-outs were shown whole 18.9 / 32.9 / 38.0; before the "
            f"WordNet phrasings 18.7 / 29.7 / 36.5); the bridge in class space **{recalls(by_class)}**; "
            f"full search with the file names hidden (hits, then weaker "
            f"matches) **{recalls(unnamed)}**; full search **{recalls(full)}** — inflated: Tux Paint file names "
            f"often are the caption's word, and names are searchable (before: 17.5 / 31.3 / 38.0) "
            f"(FINDINGS.md: {recalls(findings)})",
            "`python bench/eval_tuxpaint.py`"),
        row("Asterisk English prompts, word error rate (Whisper base int8)",
            f"{wer['corpus']['n']} utterances, {thousands(wer['corpus']['ref_words'])} words",
            f"**{wer['corpus']['wer']:.2f} %** corpus WER (full sentences {one(folders['(top level)']['wer'])} %, "
            f"single digits {folders['digits']['wer']:.0f} %, letters {folders['letters']['wer']:.0f} %); {invented} "
            f"on the {silent['n']} silence/beep files", "`python bench/eval_asterisk_wer.py`"),
        row("ovos animal sounds, zero-shot animal through the sound bridge", sounds["n"],
            f"**{right}/{sounds['n']}** (`cat.mp3` sounds like a rooster to every model: likely mislabelled)",
            "`python bench/eval_sounds.py`"),
    ]  # fmt: skip


def understanding(data: dict[str, Any]) -> list[str]:
    calibration, wer, packing = data["calibration"], data["asterisk_wer"], data["speech_packing"]
    image, audio, text = (calibration["modalities"][m] for m in ("image", "audio", "text"))
    ovos = {key: round(s["accuracy"] * s["n"]) for key, s in audio["sets"].items() if key.startswith("ovos")}
    english = max(ovos["ovos-en-names"], ovos["ovos-en-actions"])
    chinese = max(ovos["ovos-zh-names"], ovos["ovos-zh-actions"])
    return [
        *header("what", "n", "result", "command"),
        row("zero-shot sound labels (`classify`) on the ovos animal sounds", audio["sets"]["ovos-en-names"]["n"],
            f"{english}/10 with English labels (names or \"dog barking\"), {chinese}/10 Chinese",
            "`pytest tests/test_understand_perception.py`, `bench/calibrate_temperature.py`"),
        row("calibrated softmax temperatures (min NLL)",
            f"{thousands(image['sets']['en']['n'])} Fashion-MNIST train images; 95 Tux Paint sound effects + 10 "
            f"animals; {thousands(sum(s['n'] for s in text['sets'].values()))} Tux Paint captions",
            f"image {image['temperature']:.3f}, audio {audio['temperature']:.3f}, text {text['temperature']:.3f}",
            "`python bench/calibrate_temperature.py`"),
        row("Asterisk real-time factor of transcription", f"{thousands(round(wer['audio_seconds']))} s of audio",
            f"{wer['rtf']:.2f} on a loaded machine (short prompts pay Whisper's 30 s window); 0.13 on the 44 s "
            "`two_cities.wav` with beam 5, 0.06 with beam 1", "`python bench/eval_asterisk_wer.py`"),
        row("short clips packed into shared Whisper windows (as indexing does) vs one window each",
            f"{packing['prompts']} Asterisk prompts, {packing['audio_seconds']:.0f} s",
            f"WER {pct(packing['packed']['wer'])} % vs {pct(packing['alone']['wer'])} %, RTF "
            f"{packing['packed']['rtf']:.2f} vs {packing['alone']['rtf']:.2f} (greedy, language detected)",
            "`python bench/speech_packing.py`"),
        row("`analyze` on the test bundle (document + photo with text + 44 s speech)", 1,
            "13–15 s extractive (`--llm none`); 67–96 s with the 0.5B LLM on the loaded machine",
            "`pytest tests/test_understand_language.py`"),
    ]  # fmt: skip


FUSIONS = ("early", "late", "hybrid")


def fusion(data: dict[str, Any]) -> list[str]:
    results = data["fusion_tuxpaint"]["results"]

    def cell(fusion_kind: str, entry: str) -> str:
        r = results[fusion_kind][entry]
        return f"{pct(r['accuracy'])} / {pct(r['macro_f1'])}"

    best = max(FUSIONS, key=lambda f: (results[f]["fusion"]["accuracy"], results[f]["fusion"]["macro_f1"]))
    rows = [
        ("all", "fusion", "text only", "image only"),
        ("no sound (text + image)", "fusion, rows with exactly text+image"),
        ("with sound", "fusion, rows with audio", "audio only"),
        ("caption removed at test time", "fusion without text"),
    ]
    lines = header("rows", "n", "early", "late", "hybrid", "single modality")
    for name, entry, *alone in rows:
        cells = [cell(f, entry) for f in FUSIONS]
        if entry == "fusion":
            cells[FUSIONS.index(best)] = f"**{cells[FUSIONS.index(best)]}**"
        singles = ", ".join(f"{a.split()[0]} {cell('early', a)}" for a in alone)
        lines.append(row(name, results["early"][entry]["n"], *cells, singles))
    return lines


def aligner(data: dict[str, Any]) -> list[str]:
    result = data["aligner_tuxpaint"]
    mean, findings = result["mean"], result["findings"]
    averaged = next(k for k in mean if k.startswith("aligner + bridge"))

    def listed(values: list[float]) -> str:
        return " / ".join(one(v) for v in values)

    return [
        *header("", "ours", "FINDINGS.md"),
        row("label bridge", recalls(mean["label bridge"]), listed(findings["label bridge"])),
        row("aligner alone", recalls(mean["aligner alone"]), listed(findings["aligner alone"])),
        row("aligner + bridge averaged", f"**{recalls(mean[averaged])}**", listed(findings["average"])),
    ]


INDEXING_ROWS = {
    "audio": "audio (3 read-speech recordings, 10 animal clips: tagging, VAD, Whisper where speech)",
    "image": "image (incl. the probe and OCR of the scanned page)",
    "text": "text (md, txt, html; EN + ZH)",
}
SEARCH_ROWS = {"voice question": "voice question (Whisper on the query)"}


def index_and_search(data: dict[str, Any]) -> list[str]:
    result = data["index_and_search"]
    lines = header("indexing", "items", "items/s")
    for kind, measured in result["indexing"].items():
        lines.append(row(INDEXING_ROWS.get(kind, kind), measured["items"], one(measured["items_per_s"])))
    lines += ["", *header("search (one process, warm; includes reading the query media)", "p50 ms", "p95 ms")]
    for kind, ms in result["search_ms"].items():
        lines.append(row(SEARCH_ROWS.get(kind, kind), _ms(ms["p50"]), _ms(ms["p95"])))
    return lines


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else one(value)


def performance(data: dict[str, Any]) -> list[str]:
    perf, packing = data["perf"], data["speech_packing"]
    summary = {entry["measure"]: entry for entry in perf["summary"]}

    def noted(measure: str, pattern: str) -> float:
        found = re.search(pattern, summary[measure]["note"])
        if not found:
            raise KeyError(f"{measure!r}: no {pattern!r} in its note")
        return float(found.group(1))

    times = r"([\d.]+)x"
    plain = summary["photos indexed /s end-to-end (photos without text)"]
    plain_cpu = summary["photos: CPU ms per photo, all threads (photos without text)"]
    mixed = summary["photos indexed /s end-to-end (the mix, OCR gate on)"]
    gate = re.search(r"opened on (\d+) of (\d+), text found on (\d+)", mixed["note"])
    if not gate:
        raise KeyError("the OCR gate counts in the mix's note")
    classifier = summary["classifier path alone /s"]
    classifier_cpu = noted(classifier["measure"], r"([\d.]+) CPU ms")
    embed = summary["text passages embedded /s"]
    passages = noted("text files indexed /s", r"([\d.]+) passages/s")
    shipped = noted("text passages embedded /s", r"([\d.]+) /s")
    scale = perf["search"]["sizes"]["1000000"]
    queries = [scale["per_query_modality"][m] for m in ("text", "image", "audio")]
    index_ms = ", ".join(f"{one(q['index_ms']['p50'])} / {one(q['index_ms']['p99'])}" for q in queries)
    numpy_p50 = "-".join(sorted({f"{q['numpy_ms']['p50']:.0f}" for q in queries}, key=float))
    numpy_p99 = [q["numpy_ms"]["p99"] for q in queries]
    speedups = [q["speedup_p50"] for q in queries]
    recall = " / ".join("1.0" if q["recall_at_10"] == 1 else f"{q['recall_at_10']:.3f}" for q in queries)
    e2e = scale["end_to_end_ms"]["text"]["ms"]
    memory = perf["service"]["service_memory_mb"]
    after, unloaded = "after first audio query", "idle 10 s later (models unloaded)"
    cold, help_s = perf["service"]["cold_start"], perf["service"]["help"]
    return [
        *header("measure", "result", "target", "baseline (same run)"),
        row("photos indexed end-to-end (decode + classifier + label-bridge vector + store), photos without text",
            f"**{plain['value']:.0f} /s** ({one(plain_cpu['value'])} CPU ms each)", "≥ 80 /s, ≥ 5x",
            f"naive {plain['baseline']:.0f} /s ({plain_cpu['baseline']:.0f} CPU ms): "
            f"**{noted(plain['measure'], times):g}x**"),
        row(f"same mix with the OCR gate on (it opened on {gate[1]} of {gate[2]}: traffic-sign labels; text on "
            f"{gate[3]})", f"{mixed['value']:.0f} /s", "", f"{noted(mixed['measure'], times):g}x naive (which never "
            "reads text)"),
        row("classifier path alone (draft decode in 2 threads → ONNX batches of 8)",
            f"**{classifier['value']:.0f} /s** ({one(classifier_cpu)} CPU ms)",
            "≥ 100 /s", ""),
        row("speech, 3-minute recordings (decode + YAMNet + VAD + Whisper base int8)",
            f"**RTF {summary['speech RTF, long recordings']['value']:.3f}**", "≤ 0.1", ""),
        row("speech, 1-5 s prompts (short clips share Whisper windows)",
            f"RTF {summary['speech RTF, 1-5 s prompts']['value']:.2f}", "",
            f"one window per clip: RTF {packing['alone']['rtf']:.2f} (`bench/speech_packing.py`)"),
        row("text passages embedded (real prose, median 435 characters)",
            f"**{embed['value']:,.0f} /s** ({passages:,.0f} /s end-to-end into the store)", "≥ 1,000 /s",
            f"one call per passage {embed['baseline']:.0f} /s: **{noted(embed['measure'], times):g}x**; the shipped "
            f"graph in 2-thread calls of 32 (our way before): {shipped:.0f} /s"),
        row("search, 1M vectors, p50 / p99, index alone (text / image / audio queries)", f"**{index_ms} ms**",
            "≤ 20 / ≤ 100 ms", f"numpy brute force {numpy_p50} / {min(numpy_p99):.0f}-{max(numpy_p99):.0f} ms: "
            f"**{min(speedups):.0f}-{max(speedups):.0f}x**"),
        row("recall@10 against exact float32 search, 1M vectors (text / image / audio)", f"**{recall}**", "≥ 0.95", ""),
        row("search, 1M vectors, end to end, text query (encode + vectors + BM25 + fusion)",
            f"p50 {e2e['p50']:.0f} ms, p95 {e2e['p95']:.0f}, p99 {e2e['p99']:.0f}", "", ""),
        row("idle service, store open (models load on first use)",
            f"**{memory['store']['idle, store open']['rss']:.0f} MB**", "≤ 1 GB", ""),
        row("service after a text, an image and an audio query → 10 s idle (models unloaded)",
            f"{memory['store'][after]['rss']:.0f} → {memory['store'][unloaded]['rss']:.0f} MB (1M store: "
            f"{memory['big_store'][after]['rss']:.0f} → {memory['big_store'][unloaded]['rss']:.0f})", "≤ 1 GB", ""),
        row("cold start to the first text result (`polymodal search`, a new process)",
            f"**{one(cold['store']['median_s'])} s** (1M-vector store: {one(cold['big_store']['median_s'])} s)",
            "≤ 3 s", ""),
        row("`polymodal --help`", f"{help_s['median_s']:.3f} s", "instant",
            f"`python -c pass` {help_s['python_alone_s']:.3f} s"),
    ]  # fmt: skip


def whole(value: float) -> str:
    """Rounded half up, with thousands separators, as the figures were written by hand (1026.5 -> "1,027")."""
    return f"{int(Decimal(str(value)).quantize(Decimal(1), ROUND_HALF_UP)):,}"


def indexing(data: dict[str, Any]) -> list[str]:
    runs = data["perf"]["indexing"]
    plain, gated, naive = runs["photos-no-ocr"], runs["photos"], runs["naive-photos"]
    stamps, texts, speech, prompts = runs["stamps"], runs["texts"], runs["recordings"], runs["prompts"]
    return [
        *header("folder", "items/s", "CPU ms per item", "peak RSS", "notes"),
        row(f"{plain['items']} photos: ⅓ 12 MP, ⅔ 1-2 MP JPEG, no text", whole(plain["items_per_s"]),
            one(plain["cpu_ms_per_item"]), f"{whole(plain['peak_rss_mb'])} MB",
            f"naive: {whole(naive['items_per_s'])} /s, {whole(naive['cpu_ms_per_item'])} CPU ms, "
            f"{whole(naive['peak_rss_mb'])} MB"),
        row(f"the same {gated['items']}, OCR gate on", whole(gated["items_per_s"]), whole(gated["cpu_ms_per_item"]),
            f"{whole(gated['peak_rss_mb'])} MB", f"{gated['text_found_on']} reads (RapidOCR on a 2000 px copy, "
            f"~1.8 s each) are most of the {one(gated['seconds'])} s"),
        row(f"{stamps['items']} Tux Paint PNG stamps", whole(stamps["items_per_s"]), whole(stamps["cpu_ms_per_item"]),
            f"{whole(stamps['peak_rss_mb'])} MB", f"the priors send {stamps['ocr_ran_on']} cut-outs on white to OCR; "
            f"the text-box probe lets {stamps['text_found_on']} be read (was 5.1 /s reading all 205)"),
        row(f"{texts['items']} text files ({texts['passages']} passages)",
            f"{whole(texts['items_per_s'])} files, {whole(texts['passages_per_s'])} passages",
            f"{whole(texts['cpu_ms_per_item'])} per file", f"{whole(texts['peak_rss_mb'])} MB", ""),
        row(f"{speech['items']} recordings, {one(speech['audio_seconds'] / 60)} min of speech",
            f"RTF {speech['rtf']:.3f}", f"{one(speech['cpu_ms_per_item'] / 1000)} s per 3-min file",
            f"{whole(speech['peak_rss_mb'])} MB", ""),
        row(f"{prompts['items']} Asterisk prompts (1-5 s, 8 kHz)",
            f"{one(prompts['items_per_s'])} files/s, RTF {prompts['rtf']:.2f}", whole(prompts["cpu_ms_per_item"]),
            f"{whole(prompts['peak_rss_mb'])} MB", "packed into shared Whisper windows (one window per clip: RTF 0.29; "
            "before the first window was encoded once: 0.48)"),
    ]  # fmt: skip


def relevance(data: dict[str, Any]) -> list[str]:
    """The held-out split's figures now and for the stored baseline, its hits re-scored against the current
    judgements by bench/eval_relevance.py (as that script's own table does)."""
    sys.path.insert(0, str(REPO / "bench"))
    import eval_relevance

    now, base = data["relevance"], data["relevance_baseline"]
    queries = [q for q in eval_relevance.load_queries() if eval_relevance.in_split(q, now["split"])]
    before = eval_relevance.rescored_baseline(base, queries)
    judged, every = "judged queries", "all queries (cut-off)"

    def pair(group: str, key: str, percent: bool = False, bold: bool = False) -> tuple[str, str]:
        old, new = before[group][key], now["summary"][group][key]
        shown = (f"{pct(old)} %", f"{pct(new)} %") if percent else (f"{old:.3f}", f"{new:.3f}")
        return shown[0], f"**{shown[1]}**" if bold else shown[1]

    floor_before = base["floor"]["summary"]["ndcg@10"]
    floor_now = f"{now['floor']['summary']['ndcg@10']:.3f}" if "floor" in now else "not in this run"
    n_judged, n_all = now["summary"][judged]["n"], now["summary"][judged]["n"] + now["summary"][every]["n_no_match"]
    return [
        *header(f"held-out {now['split']} split", "n", "before", "now"),
        row("nDCG@10 (the order: hits, then weaker matches)", n_judged, *pair(judged, "ndcg@10", bold=True)),
        row("MRR", n_judged, *pair(judged, "mrr")),
        row("recall@10", n_judged, *pair(judged, "recall@10")),
        row("precision of the returned set", n_all, *pair(every, "cutoff_precision", percent=True, bold=True)),
        row("recall of the returned set", n_judged, *pair(every, "cutoff_recall", percent=True)),
        row("no-match queries answered with nothing", now["summary"][every]["n_no_match"],
            *pair(every, "no_match_empty", percent=True, bold=True)),
        row("floor: 32 text queries on the sample collection alone (`tests/test_relevance_floor.py`)",
            base["floor"]["summary"]["n"], f"{floor_before:.3f}", floor_now),
    ]  # fmt: skip


def ratio(value: float) -> str:
    """A score or distance in 0-1 with two decimals, three when the third is not 0 (1.0 -> "1.00", 0.883)."""
    text = f"{value:.3f}"
    return text[:-1] if text.endswith("0") else text


def seconds(value: float) -> str:
    """Rounded half up: one decimal from a second up, two below (3.083 -> "3.1", 0.035 -> "0.04")."""
    digits = Decimal("0.1") if value >= 1 else Decimal("0.01")
    return str(Decimal(str(value)).quantize(digits, ROUND_HALF_UP))


def _same_grouping(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("clusters", "pairwise_precision", "pairwise_recall", "bcubed_f1")
    return all(a[k] == b[k] for k in keys)


def _thresholds_grouping_alike(sweep: list[dict[str, Any]], chosen: dict[str, Any]) -> tuple[float, float]:
    """The unbroken run of swept thresholds around the chosen one that group the faces exactly as it does."""
    ordered = sorted(sweep, key=lambda g: g["threshold"])
    at = next(i for i, g in enumerate(ordered) if g["threshold"] == chosen["threshold"])
    low = high = at
    while low > 0 and _same_grouping(ordered[low - 1], chosen):
        low -= 1
    while high < len(ordered) - 1 and _same_grouping(ordered[high + 1], chosen):
        high += 1
    return ordered[low]["threshold"], ordered[high]["threshold"]


def faces(data: dict[str, Any]) -> list[str]:
    result = data["faces"]
    portraits, every = result["detection_portraits"], result["detection_all"]
    apart, chosen, speed, cost = result["distances"], result["grouping"], result["speed"], result["indexing"]
    grouped = result["sets"]["portraits"]
    crop = re.search(r"(\d+) px", result["sets"]["lfw_subset"])
    if not crop:
        raise KeyError("the LFW crops' size in sets.lfw_subset")
    low, high = _thresholds_grouping_alike(result["threshold_sweep"], chosen)
    people = len({g["person"] for g in grouped})
    off, on = cost["without_faces"], cost["with_faces"]
    return [
        *header("", "n", "result"),
        row("detection, full portraits", f"{portraits['faces']} faces, {portraits['pictures_without_faces']} pictures "
            "without", f"recall {ratio(portraits['recall'])}, precision {ratio(portraits['precision'])}"),
        row(f"detection, all (incl. {crop[1]} px LFW crops)", f"{every['faces']} faces, "
            f"{every['pictures_without_faces']} without", f"recall {ratio(every['recall'])}, precision "
            f"{ratio(every['precision'])} ({every['false_detections']} false detections)"),
        row("same person, distance", f"{apart['same_pairs']} pairs",
            f"max {ratio(apart['same_max'])}, mean {ratio(apart['same_mean'])}"),
        row("different people, distance", f"{apart['different_pairs']} pairs",
            f"min {ratio(apart['different_min'])}, mean {ratio(apart['different_mean'])}"),
        row(f"grouping at {chosen['threshold']:g}", f"{len(grouped)} faces, {people} people",
            f"B-cubed F1 {ratio(chosen['bcubed_f1'])}, pairwise P/R {ratio(chosen['pairwise_precision'])} / "
            f"{ratio(chosen['pairwise_recall'])} (any threshold {low:.2f}–{high:.2f} gives the same)"),
        row("speed (this shared machine)", f"{speed['faces']} faces",
            f"{whole(speed['embedding_ms_per_face'])} ms per face embedding ({one(speed['faces_per_second'])} "
            "faces/s); "
            f"detection + embedding {whole(portraits['ms_per_picture_with_embeddings'])} ms per portrait"),
        row("indexing cost, same run", f"{cost['photos']} photos of the benchmark mix, faces off / on in "
            f"{cost['rounds']} alternating rounds, fastest kept",
            f"{off['seconds_per_photo']:.3f} s/photo without faces, {on['seconds_per_photo']:.3f} with: "
            f"+{cost['added_seconds_per_photo']:.3f} s a photo (x{one(cost['ratio'])})"),
    ]  # fmt: skip


OWN_PROCESS_VOICES = {"espeak-ng"}  # a program of its own: the peak RSS is only the Python side's (footnote "*")
NOT_UNDERSTOOD = 0.5  # toneless syllable error from which Whisper is said not to understand the voice


def _round_trip(heard: dict[str, Any]) -> str:
    if "wer" in heard:
        return f"WER {pct(heard['wer'])} %"
    toneless = heard["syllable_error_toneless"]
    if toneless >= NOT_UNDERSTOOD:
        return f"syllable error {pct(toneless, 0)} % without tones: not understood"
    return (
        f"syllable error {pct(heard['syllable_error'])} % tone-aware, {pct(toneless)} % toneless (character "
        f"error {pct(heard['cer_upper_bound'], 0)} %, an upper bound: Whisper writes traditional characters)"
    )


def tts(data: dict[str, Any]) -> list[str]:
    result = data["tts"]
    heard = {(r["voice"], r["language"]): r for r in result["round_trip"]}
    lines = header("voice", "x real time", "load", "first audio, cold / warm", "peak RSS", "round trip through Whisper")
    for voice in result["speed"]:
        name, language = voice["voice"], voice["language"]
        star = "*" if name in OWN_PROCESS_VOICES else ""
        lines.append(
            row(
                f"{name} ({language})",
                f"{one(voice['x_real_time'])}x",
                f"{one(voice['load_s'])} s",
                f"{seconds(voice['first_audio_cold_s'])} s / {seconds(voice['first_audio_warm_s'])} s",
                f"{whole(voice['peak_rss_mb'])} MB{star}",
                _round_trip(heard[name, language]),
            )
        )
    return lines


def open_vocab(data: dict[str, Any]) -> list[str]:
    result = data["open_vocab"]
    torch, onnx, before = result["transformers"], result["onnx"], result["search_without_space"]
    torch_search, onnx_search = torch["search_with_space"], onnx["search_with_space"]
    return [
        *header("", "today's pipeline", "+ image tower (transformers)", "+ image tower (ONNX)"),
        row("indexing", f"{result['pipeline']['photos_per_s']:.2f} photos/s",
            f"{one(torch['photos_per_s'])} photos/s for the tower: **+{pct(torch['added_cost_ratio'], 0)} %** time "
            f"per photo", f"{one(onnx['photos_per_s'])} photos/s: **+{pct(onnx['added_cost_ratio'], 0)} %**"),
        row("text search, median", f"{whole(before['median_ms'])} ms",
            f"{whole(torch_search['median_ms'])} ms ({whole(torch_search['repeated_query_ms'])} ms for a repeated "
            "query)", f"{whole(onnx_search['median_ms'])} ms ({whole(onnx_search['repeated_query_ms'])} ms repeated)"),
        row("memory added by the model", "", f"+{whole(torch['rss_added_by_loading_mb'])} MB",
            f"+{whole(onnx['rss_added_by_loading_mb'])} MB"),
    ]  # fmt: skip


SCALE_ENGINES = {
    "local": "local engine (one process)",
    "ray_1_worker": "Ray, 1 actor (one-node cluster)",
    "ray_2_workers": "Ray, 2 actors",
}


def scale_ingest(data: dict[str, Any]) -> list[str]:
    ingestion = data["scale"]["ingestion"]
    runs, ratios = ingestion["images"], ingestion["ratio_to_local"]
    lines = header(f"ingestion, {runs['local']['files']} Tux Paint PNG photos from scratch (the best run of each)",
                   "wall s", "photos/s", "vs local", "CPU ms / photo")  # fmt: skip
    for engine, run in runs.items():
        lines.append(row(SCALE_ENGINES.get(engine, engine), one(run["seconds"]), one(run["files_per_s"]),
                         f"{ratios[engine]}x", whole(run["cpu_ms_per_file"])))  # fmt: skip
    return lines


def recall(value: float) -> str:
    """Up to four decimals, as measured (0.9965, 0.995, 1.0)."""
    text = f"{value:.4f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def milliseconds(value: float) -> str:
    """Rounded half up: whole from 100 ms up, one decimal below (3.25 -> "3.3", 322.75 -> "323")."""
    return whole(value) if value >= 100 else str(Decimal(str(value)).quantize(Decimal("0.1"), ROUND_HALF_UP))


def _latency(measured: dict[str, Any], queries: int) -> tuple[str, str, str, str]:
    """p50, p95, recall@10, and how many queries when fewer than the table's."""
    ms = measured["ms"]
    fewer = f" ({ms['n']} queries)" if ms["n"] != queries else ""
    return milliseconds(ms["p50"]), milliseconds(ms["p95"]), recall(measured["recall_at_10"]), fewer


def scale_search(data: dict[str, Any]) -> list[str]:
    search, smaller = data["scale"]["search"], data["scale"].get("search_200k")
    queries, postgres = search["queries"], search["postgres_hnsw"]
    default, low, high = (postgres[f"ef_search_{ef}"] for ef in (100, 40, 200))
    what = (f"search, {_count(search['vectors'])} vectors ({search['dim']}-d, real vectors + synthetic ones "
            f"clustered like them; {queries} queries, one at a time)")  # fmt: skip
    lines = header(what, "p50 ms", "p95 ms", "recall@10")
    named = [
        ("embedded store: IVF-SQ8 + float16 re-rank", search["embedded_ivf_sq8"]),
        ("Postgres: pgvector HNSW over halfvec copies + float32 re-rank, ef_search 100 (the store's search)", default),
        ("Postgres: exact scan", postgres["exact_scan"]),
    ]
    for name, measured in named:
        p50, p95, found, fewer = _latency(measured, queries)
        lines.append(row(name + fewer, p50, p95, found))
        if measured is default:
            (p50_low, p95_low, found_low, _), (p50_high, p95_high, found_high, _) = (
                _latency(m, queries) for m in (low, high)
            )
            lines.append(row("same, ef_search 40 / 200", f"{p50_low} / {p50_high}", f"{p95_low} / {p95_high}",
                             f"{found_low} / {found_high}"))  # fmt: skip
    if smaller:
        at = f"at {_count(smaller['vectors'])}"
        for name, measured in (
            (f"{at}: embedded store", smaller["embedded_ivf_sq8"]),
            (f"{at}: Postgres, the store's search", smaller["postgres_hnsw"]["ef_search_100"]),
            (f"{at}: Postgres, HNSW over the float32 vectors (not used)", smaller["postgres_hnsw"]["float32_index"]
             ["ef_search_100"]),
        ):  # fmt: skip
            p50, p95, found, _ = _latency(measured, smaller["queries"])
            lines.append(row(name, p50, p95, found))
    return lines


def _count(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


HOW_BUILT = {"llama-cpp-python": "compiled", "xllamacpp": "prebuilt"}


def llm_runtime(data: dict[str, Any]) -> list[str]:
    result = data["llm_runtime"]
    versions, named = result["versions"], set()
    lines = header("model", "runtime", "load", "first piece", "pieces/s", "resident", "stop → generation ended")
    for model, runtimes in result["results"].items():
        for runtime, m in runtimes.items():
            name = runtime
            if runtime not in named:  # the version once, at the runtime's first row
                name = f"{runtime} {versions[runtime]} ({HOW_BUILT[runtime]})" if runtime in HOW_BUILT else runtime
                named.add(runtime)
            stop = "–"  # the old runtime has no stop to measure
            if "stop_s_median" in m:
                stop = f"{seconds(m['stop_s_median'])} s median, {seconds(m['stop_s_max'])} s max"
            lines.append(row(model.rsplit("-", 1)[-1].upper(), name, f"{seconds(m['load_s_median'])} s",
                             f"{seconds(m['first_piece_s_median'])} s", one(m["pieces_per_s_median"]),
                             f"{whole(m['resident_mb_median'])} MB", stop))  # fmt: skip
    return lines



def qa(data: dict[str, Any]) -> list[str]:
    """The question-answering set: this run against the stored baseline run of the same LLM, both scored by
    bench/eval_qa.py's current rules (as that script's own table does)."""
    sys.path.insert(0, str(REPO / "bench"))
    import eval_qa

    now = data["qa"]
    before = eval_qa.baseline_run(data["qa_baseline"], now["llm"])
    if before is None:
        raise FiguresError(f"qa_baseline.json has no run of {now['llm']}")
    questions = eval_qa.load_questions()
    old, new = eval_qa.summary_of(questions, before), eval_qa.summary_of(questions, now)

    def cell(group: str, key: str) -> str:
        return f"{pct(old[group][key])} % → {pct(new[group][key])} %"

    groups = [g for g in new if g.startswith("kind: ")] + [eval_qa.ANSWERABLE, eval_qa.ALL]
    return [
        *header(f"questions ({now['llm']})", "n", "correct", "refusal", "hallucination"),
        *(row(g.removeprefix("kind: "), new[g]["n"], cell(g, "correct"), cell(g, "refusal"), cell(g, "hallucination"))
          for g in groups),
    ]  # fmt: skip


TABLES: dict[str, Table] = {
    "foundation": Table(("fashion_mnist", "tuxpaint", "asterisk_wer", "sounds"), foundation),
    "understanding": Table(("calibration", "asterisk_wer", "speech_packing"), understanding),
    "fusion": Table(("fusion_tuxpaint",), fusion),
    "aligner": Table(("aligner_tuxpaint",), aligner),
    "index-and-search": Table(("index_and_search",), index_and_search),
    "performance": Table(("perf", "speech_packing"), performance),
    "indexing": Table(("perf",), indexing),
    "relevance": Table(("relevance", "relevance_baseline"), relevance),
    "faces": Table(("faces",), faces),
    "tts": Table(("tts",), tts),
    "open-vocab": Table(("open_vocab",), open_vocab),
    "scale-ingest": Table(("scale",), scale_ingest),
    "scale-search": Table(("scale",), scale_search),
    "llm-runtime": Table(("llm_runtime",), llm_runtime),
    "qa": Table(("qa", "qa_baseline"), qa),
}


# --- reading, writing, checking --------------------------------------------------------------------------------
def load(stem: str, results: Path) -> dict[str, Any]:
    path = results / f"{stem}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FiguresError(f"{path} is missing: run the benchmark that writes it") from None
    except json.JSONDecodeError as exc:
        raise FiguresError(f"{path} is not valid JSON: {exc}") from None


def render(name: str, results: Path) -> str:
    table = TABLES[name]
    data = {stem: load(stem, results) for stem in table.sources}
    try:
        return "\n".join(table.render(data)) + "\n"
    except (KeyError, StopIteration, TypeError) as exc:
        files = ", ".join(f"{s}.json" for s in table.sources)
        raise FiguresError(f"table {name}: {files} lacks a figure it needs ({type(exc).__name__}: {exc})") from None


def regenerate(readme: str, results: Path) -> tuple[str, list[str]]:
    """The README with every marked table rewritten, and the names of those that changed."""
    changed: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in TABLES:
            raise FiguresError(f"README.md marks a table {name!r} this script does not know: {', '.join(TABLES)}")
        body = render(name, results)
        if body != match["body"]:
            changed.append(name)
        return match.group(1) + body + match.group(4)

    return MARKER.sub(replace, readme), changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when the README disagrees")
    parser.add_argument("--list", action="store_true", help="the tables and the JSON each is made from")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    if args.list:
        for name, table in TABLES.items():
            print(f"{name}: {', '.join(f'bench/results/{s}.json' for s in table.sources)}")
        return 0
    try:
        text = args.readme.read_text(encoding="utf-8")
        updated, changed = regenerate(text, args.results)
    except FiguresError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    marked = [m["name"] for m in MARKER.finditer(text)]
    if args.check:
        if changed:
            print(f"README.md disagrees with bench/results for: {', '.join(changed)}; "
                  "run: python scripts/readme_figures.py", file=sys.stderr)  # fmt: skip
            return 1
        print(f"README.md figures agree with bench/results ({len(marked)} tables: {', '.join(marked)})")
        return 0
    if changed:
        args.readme.write_text(updated, encoding="utf-8")
    print(f"rewrote {', '.join(changed) or 'nothing'} ({len(marked)} tables marked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
