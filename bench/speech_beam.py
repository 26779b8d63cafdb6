"""Whisper beam search (5, faster-whisper's default) against greedy decoding (beam 1): word error rate on real
speech with reference transcripts (every 4th Asterisk prompt) and real-time factor on a 3-minute recording.

    .venv/bin/python bench/speech_beam.py [--out bench/results/speech_beam.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_asterisk_wer as wer_eval  # noqa: E402
import perf_data  # noqa: E402
from perf_util import load_average  # noqa: E402

from polymodal.config import Settings  # noqa: E402
from polymodal.media.audio import decode_audio  # noqa: E402
from polymodal.models.base import get_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "speech_beam.json")
    args = parser.parse_args()
    settings = Settings.from_env()
    speech = get_model("speech", settings.speech, settings)
    items = wer_eval.utterances(None)[::4]
    audio = [decode_audio(path, 16000, 600) for _, path, _ in items]
    recording = decode_audio(sorted(perf_data.recordings(1, 3).iterdir())[0], 16000, 3600)
    speech.transcribe(audio[0], language="en")  # load and warm
    result: dict = {"prompts": len(items), "load_before": load_average()}
    transcripts = {}
    for beam in (5, 1):
        edits = words = 0
        for (_, _, reference), clip in zip(items, audio, strict=True):
            hypothesis = wer_eval.normalise(speech.transcribe(clip, language="en", beam_size=beam).text).split()
            truth = wer_eval.normalise(reference).split()
            edits, words = edits + wer_eval.edit_distance(truth, hypothesis), words + len(truth)
        started = time.perf_counter()
        transcripts[beam] = speech.transcribe(recording, beam_size=beam).text
        seconds = time.perf_counter() - started
        rtf = seconds / (len(recording) / 16000)
        result[f"beam{beam}"] = {"wer": round(edits / words, 4), "whisper_rtf": round(rtf, 4)}
    a, b = (wer_eval.normalise(transcripts[k]).split() for k in (5, 1))
    result["recording_beam1_vs_beam5_word_difference"] = round(wer_eval.edit_distance(a, b) / max(1, len(a)), 4)
    result["load_after"] = load_average()
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
