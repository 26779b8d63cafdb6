"""Short clips one Whisper window each against packed into shared windows (``WhisperBase.transcribe_many``):
word error rate and real-time factor on every 4th Asterisk prompt (1-5 s, real speech, reference transcripts).
Both sides detect the language and decode greedily, as indexing does. Also Whisper's language probability of
each shared window: of the Asterisk windows, of windows of one language and of windows mixing languages
(pytest-audioeval's clips in 9 languages), which sets ``PACK_MIN_LANGUAGE_PROBABILITY``.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/speech_packing.py [--out bench/results/speech_packing.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_asterisk_wer as wer_eval  # noqa: E402
from perf_util import load_average  # noqa: E402

from polymodal.config import Settings  # noqa: E402
from polymodal.media.audio import decode_audio  # noqa: E402
from polymodal.models.base import get_model  # noqa: E402
from polymodal.samples import find_wheel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "speech_packing.json")
    args = parser.parse_args()
    speech = get_model("speech", "whisper-base", Settings.from_env())
    items = wer_eval.utterances(None)[::4]
    clips = [decode_audio(path, 16000, 600) for _, path, _ in items]
    speech.transcribe(clips[0], beam_size=1)  # load and warm
    windows: list[float] = []  # the language probability of each shared window, as transcribe_many meets it
    transcribe = speech.transcribe

    def recording(audio, language=None, **options):
        transcript = transcribe(audio, language, **options)
        if options.get("word_timestamps"):  # only a shared window asks for word times here
            windows.append(round(transcript.language_probability, 3))
        return transcript

    speech.transcribe = recording
    audio_seconds = sum(len(clip) for clip in clips) / 16000
    result: dict = {"prompts": len(items), "audio_seconds": round(audio_seconds, 1), "load_before": load_average()}
    runs = {
        "alone": lambda: [speech.transcribe(clip, beam_size=1).text for clip in clips],
        "packed": lambda: [t.text for t in speech.transcribe_many(clips)],
    }
    for name, run in runs.items():
        started = time.perf_counter()
        texts = run()
        seconds = time.perf_counter() - started
        edits = words = 0
        for (_, _, reference), text in zip(items, texts, strict=True):
            truth = wer_eval.normalise(reference).split()
            edits += wer_eval.edit_distance(truth, wer_eval.normalise(text).split())
            words += len(truth)
        result[name] = {"wer": round(edits / words, 4), "rtf": round(seconds / audio_seconds, 4)}
    result["packed"]["window_language_probabilities"] = sorted(windows)
    result["language_probability_of_windows"] = language_of_windows(speech, windows)
    result["load_after"] = load_average()
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def language_of_windows(speech, windows: list[float]) -> dict[str, list[float]]:
    """Windows of pytest-audioeval clips (1-5 s, 9 languages): each language alone, and 6 random mixes."""
    import zipfile

    with zipfile.ZipFile(find_wheel("pytest-audioeval", "0.1.3")) as wheel:
        names = [n for n in wheel.namelist() if n.endswith(".wav") and "/audio/" in n]
        clips = {n.split("/audio/")[1]: decode_audio(wheel.read(n), 16000, 60) for n in names}
    out: dict[str, list[float]] = {"one_language": [], "mixed": []}
    for language in sorted({name.split("/")[0] for name in clips}):
        windows.clear()
        speech.transcribe_many([c for name, c in clips.items() if name.startswith(f"{language}/")])
        out["one_language"] += windows
    for seed in range(6):
        windows.clear()
        speech.transcribe_many(random.Random(seed).sample(list(clips.values()), 6))
        out["mixed"] += windows
    return {kind: sorted(values) for kind, values in out.items()}


if __name__ == "__main__":
    main()
