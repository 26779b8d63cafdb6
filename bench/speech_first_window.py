"""Whisper with the language detected: our adapter (first window encoded once) against faster-whisper as shipped
(encoded twice: once to detect the language, once to transcribe), on every 4th Asterisk prompt (1-5 s, real
speech). Same settings on both sides (greedy, VAD, no fallback); reports the time per clip and whether the
texts are identical.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/speech_first_window.py [--out bench/results/speech_first_window.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

ASTERISK = Path("/usr/share/asterisk/sounds/en_US_f_Allison")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "speech_first_window.json")
    args = parser.parse_args()

    from faster_whisper import WhisperModel

    from polymodal.config import Settings
    from polymodal.media.audio import decode_audio
    from polymodal.models.base import get_model

    ours = get_model("speech", "whisper-base", Settings.from_env())
    shipped = WhisperModel(str(ours._model_dir()), device="cpu", compute_type="int8", cpu_threads=2)
    clips = [decode_audio(path) for path in sorted(ASTERISK.glob("*.wav"))[::4]]
    ours.transcribe(clips[0], beam_size=1)  # load and warm

    def theirs(clip) -> str:
        segments, _ = shipped.transcribe(
            clip, beam_size=1, vad_filter=True, condition_on_previous_text=False, temperature=0.0
        )
        return " ".join(s.text.strip() for s in segments if s.text.strip())

    seconds: dict[str, list[float]] = {"ours": [], "shipped": []}
    same = 0
    for clip in clips:
        started = time.perf_counter()
        a = ours.transcribe(clip, beam_size=1, temperature=0.0).text
        seconds["ours"].append(time.perf_counter() - started)
        started = time.perf_counter()
        b = theirs(clip)
        seconds["shipped"].append(time.perf_counter() - started)
        same += a == b
    audio = sum(len(c) for c in clips) / 16000
    result = {
        "clips": len(clips),
        "audio_seconds": round(audio, 1),
        "same_text": same,
        **{f"median_s_per_clip_{k}": round(statistics.median(v), 3) for k, v in seconds.items()},
        **{f"rtf_{k}": round(sum(v) / audio, 3) for k, v in seconds.items()},
    }
    print(json.dumps(result, indent=2))
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
