"""Word error rate of the Whisper adapter on the Asterisk English prompts (en_US_f_Allison, 8 kHz WAV).

Every WAV under the prompt folder (recursively) that has a transcript line is used, except the five whose
transcript is only a ``[bracketed]`` tone description (563 files). Files whose reference is empty after
normalisation (the ten ``silence/N``, "(N seconds of silence)", and two ``<beep ...>``) are kept as
non-speech: whatever Whisper writes there counts as insertions (a hallucination check).

Text normalisation for scoring (both sides): lowercase; ``[...]``, ``<...>`` and ``(...)`` notes dropped;
``*`` -> star, ``#`` -> pound, ``%`` -> percent, ``&`` -> and; dotted abbreviations joined (a.m. -> am);
apostrophes dropped; other punctuation -> space; digits split from letters (3d -> 3 d) and integers written
as English words (1234 -> one thousand two hundred thirty four, 28.8 -> twenty eight point eight,
2nd -> second), because Whisper writes digits where the transcripts often write words. Contractions
(I am / I'm) and spelling variants (voicemail / voice mail, re-record / rerecord) are not merged and count
as errors.

Audio is decoded with ``decode_audio`` (16 kHz mono) and transcribed with the speech adapter
(``language="en"``, beam 5, VAD filter on). Corpus WER = sum of word edit distances / sum
of reference words. Real-time factor = (decode + transcribe seconds) / audio seconds, model load excluded.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/eval_asterisk_wer.py [--limit N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from polymodal.analysis import MIN_SPEECH_SECONDS, Analyzer
from polymodal.config import Settings
from polymodal.media.audio import decode_audio

PROMPTS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Utterance:
    name: str
    reference: str  # normalised
    hypothesis: str  # normalised
    raw_hypothesis: str
    errors: int
    audio_seconds: float
    seconds: float
    vad_speech_seconds: float


# --- data ---------------------------------------------------------------------------------------------


def read_transcripts(path: Path = TRANSCRIPTS) -> dict[str, str]:
    """``name: text`` lines (``;`` comments skipped), as written."""
    found: dict[str, str] = {}
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith(";") and ":" in line:
                name, text = line.split(":", 1)
                found[name.strip()] = text.strip()
    return found


def utterances(limit: int | None) -> list[tuple[str, Path, str]]:
    """(name, wav, transcript) for every WAV with a transcript that is not only a [tone] description."""
    transcripts = read_transcripts()
    found = []
    for wav in sorted(PROMPTS.rglob("*.wav")):
        name = wav.relative_to(PROMPTS).with_suffix("").as_posix()
        text = transcripts.get(name)
        if text is None or (re.fullmatch(r"\s*\[[^\]]*\]\s*", text)):
            continue
        found.append((name, wav, text))
    return found[:limit] if limit else found


# --- text normalisation -------------------------------------------------------------------------------

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
            "nine": "ninth", "twelve": "twelfth"}


def number_words(n: int) -> str:
    """English words for a non-negative integer ("twenty one", "one thousand two hundred")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for value, word in _SCALES:
        if n >= value:
            rest = n % value
            return f"{number_words(n // value)} {word}" + ("" if rest == 0 else " " + number_words(rest))
    raise AssertionError(n)


def ordinal_words(n: int) -> str:
    words = number_words(n).split()
    last = words[-1]
    words[-1] = _ORDINAL.get(last) or (last[:-1] + "ieth" if last.endswith("y") else last + "th")
    return " ".join(words)


def normalise(text: str) -> str:
    text = text.lower()
    text = re.sub(r"\[[^\]]*\]|<[^>]*>|\([^)]*\)", " ", text)
    for symbol, word in (("*", "star"), ("#", "pound"), ("%", "percent"), ("&", "and")):
        text = text.replace(symbol, f" {word} ")
    text = re.sub(r"\b(?:[a-z]\.){2,}", lambda m: m.group(0).replace(".", ""), text)  # a.m. -> am
    text = re.sub(r"(\d),(?=\d{3}\b)", r"\1", text)  # 1,000 -> 1000
    text = re.sub(r"(\d)\.(\d)", r"\1 point \2", text)
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: ordinal_words(int(m.group(1))), text)
    text = re.sub(r"['\u2019]", "", text)
    text = re.sub(r"[^a-z0-9]+", " ", text)
    text = re.sub(r"(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])", " ", text)
    text = re.sub(r"\d+", lambda m: f" {number_words(int(m.group(0)))} ", text)
    return " ".join(text.split())


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions + deletions + insertions)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp_word in enumerate(hypothesis, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
        previous = current
    return previous[-1]


# --- evaluation ---------------------------------------------------------------------------------------


def transcribe_all(analyzer: Analyzer, items: list[tuple[str, Path, str]]) -> list[Utterance]:
    speech, vad = analyzer.model("speech"), analyzer.model("vad")
    _ = speech.runtime, vad.runtime  # load before timing
    results = []
    for i, (name, wav, text) in enumerate(items):
        started = time.perf_counter()
        audio = decode_audio(wav)
        raw = speech.transcribe(audio, language="en", beam_size=5).text
        seconds = time.perf_counter() - started
        reference, hypothesis = normalise(text), normalise(raw)
        errors = edit_distance(reference.split(), hypothesis.split())
        results.append(Utterance(name, reference, hypothesis, raw, errors, len(audio) / 16000, seconds,
                                 vad.speech_seconds(audio)))
        if (i + 1) % 50 == 0 or i + 1 == len(items):
            print(f"  transcribed {i + 1}/{len(items)}", file=sys.stderr)
    return results


def _words(rows: list[Utterance], side: str = "reference") -> int:
    return sum(len(getattr(r, side).split()) for r in rows)


def wer(rows: list[Utterance]) -> dict:
    words = _words(rows)
    errors = sum(r.errors for r in rows)
    rate = round(100 * errors / max(words, 1), 2)
    return {"n": len(rows), "ref_words": words, "errors": errors, "wer": rate}


def summarise(rows: list[Utterance]) -> dict:
    spoken = [r for r in rows if r.reference]
    silent = [r for r in rows if not r.reference]
    groups: dict[str, list[Utterance]] = defaultdict(list)
    for r in spoken:
        groups[r.name.split("/")[0] if "/" in r.name else "(top level)"].append(r)
    gated = [r for r in spoken if r.vad_speech_seconds < MIN_SPEECH_SECONDS]
    gated_errors = sum(len(r.reference.split()) - r.errors for r in gated)  # every word becomes a deletion
    corpus = wer(rows)
    return {
        "corpus": corpus,
        "speech_only": wer(spoken),
        "non_speech_files": {"n": len(silent), "inserted_words": _words(silent, "hypothesis")},
        "by_folder": {g: wer(rs) for g, rs in sorted(groups.items())},
        "sentence_error_rate": round(100 * sum(r.errors > 0 for r in spoken) / max(len(spoken), 1), 1),
        "rtf": round(sum(r.seconds for r in rows) / sum(r.audio_seconds for r in rows), 3),
        "audio_seconds": round(sum(r.audio_seconds for r in rows), 1),
        "perceive_audio_gate": {
            "note": f"Analyzer.perceive_audio transcribes only with >= {MIN_SPEECH_SECONDS} s of VAD speech",
            "skipped": len(gated),
            "wer_if_skipped": round(100 * (corpus["errors"] + gated_errors) / max(corpus["ref_words"], 1), 2),
        },
    }


def print_table(summary: dict) -> None:
    c, s = summary["corpus"], summary["speech_only"]
    print(f"\nAsterisk en_US_f_Allison prompts, Whisper base int8, language=en (n={c['n']} files)")
    print(f"{'subset':<24} {'n':>5} {'ref words':>10} {'errors':>7} {'WER %':>7}")
    print(f"{'corpus (all files)':<24} {c['n']:>5} {c['ref_words']:>10} {c['errors']:>7} {c['wer']:>7.2f}")
    print(f"{'speech files only':<24} {s['n']:>5} {s['ref_words']:>10} {s['errors']:>7} {s['wer']:>7.2f}")
    for group, g in summary["by_folder"].items():
        print(f"  {group:<22} {g['n']:>5} {g['ref_words']:>10} {g['errors']:>7} {g['wer']:>7.2f}")
    silence, gate = summary["non_speech_files"], summary["perceive_audio_gate"]
    print(f"\nnon-speech files: {silence['n']}, words hallucinated on them: {silence['inserted_words']}")
    print(f"sentence error rate (speech files): {summary['sentence_error_rate']} %")
    print(f"real-time factor: {summary['rtf']} over {summary['audio_seconds']} s of audio")
    print(f"perceive_audio gate: {gate['skipped']} prompts have < {MIN_SPEECH_SECONDS} s of VAD speech and "
          f"would not be transcribed by indexing (WER {gate['wer_if_skipped']} % counting them as deleted)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="only the first N files (sorted by path)")
    args = parser.parse_args()
    analyzer = Analyzer(Settings.from_env())
    rows = transcribe_all(analyzer, utterances(args.limit))
    summary = summarise(rows)
    print_table(summary)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / ("asterisk_wer.json" if not args.limit else f"asterisk_wer-limit{args.limit}.json")

    report = {
        "benchmark": "asterisk en prompts WER", "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, no GPU",
        "command": "bench/eval_asterisk_wer.py " + " ".join(sys.argv[1:]),
        "speech_model": analyzer.model("speech").model_id, **summary,
        "utterances": [asdict(r) for r in sorted(rows, key=lambda r: -r.errors)],
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
