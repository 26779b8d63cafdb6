"""How fast a video is indexed (x real time on this machine), and that memory stays flat on long videos.

    .venv/bin/python bench/video_throughput.py [--long-minutes 10] [--skip-long]

Real videos (``make setup`` / ``make testdata``): Megamind.avi (speech over music), bikes.mp4 (5 hard cuts),
tree.avi, vtest.avi (80 s street scene), GNOME's display-dual-monitors.webm (a UI screencast: OCR) and a
composite talk muxed here from the sample collection's photos over pyannote's sample.wav (30 s of speech).
Models are warmed first; each video goes through ``Analyzer.analyze_file`` (decode, shots, keyframe labels and
OCR, sound tags, speech, embedding). Reported: wall time and x real time, CPU seconds (all threads) and the
x real time that CPU time allows on 2 idle cores (duration / (CPU / 2)), and the decode + shot detection rate
alone. ``--long-minutes``: vtest.avi and Megamind.avi are each looped (stream copy, no re-encoding) to that
length, and a long talk is muxed from distinct real speech (pyannote's sample, the sample collection's
recordings, then Asterisk's English prompts if installed) under the photos; each is indexed in a fresh process
whose peak RSS is compared with a short file's: the video pass and the audio blocks keep memory flat. Writes
bench/results/video_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def videos(folder: Path) -> dict[str, Path]:
    from test_video import mux_composite, opencv_video, wheel_file

    from polymodal.samples import build_sample_collection

    samples = REPO / ".cache" / "sample-collection"
    build_sample_collection(samples)
    composite = folder / "composite_talk.mp4"
    mux_composite(sorted((samples / "photos").glob("*.jpg")), wheel_file("sample.wav"), samples / "sounds" / "dog.mp3",
                  composite)  # fmt: skip
    names = ("Megamind.avi", "tree.avi", "vtest.avi", "display-dual-monitors.webm")
    found = {name: opencv_video(name) for name in names}
    return {**found, "bikes.mp4": wheel_file("bikes.mp4"), composite.name: composite}


def measure(path: Path) -> dict:
    from polymodal.analysis import Analyzer
    from polymodal.config import Settings
    from polymodal.media.video import VideoReader

    analyzer = _analyzer(Analyzer, Settings)
    started = time.perf_counter()
    reader = VideoReader(path, analyzer.settings.threads)
    shots = sum(1 for _ in reader.shots())
    decode_s = time.perf_counter() - started
    started, cpu = time.perf_counter(), time.process_time()
    analysis = analyzer.analyze_file(path)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    duration = analysis.meta["duration"]
    return {
        "video": path.name,
        "seconds": round(duration, 1),
        "shots": shots,
        "ocr_shots": len({e.page for e in analysis.evidence if e.kind == "ocr"}),
        "speech_s": analysis.meta.get("speech_seconds", 0.0),
        "wall_s": round(wall, 2),
        "x_realtime": round(duration / wall, 1),
        "cpu_s": round(cpu, 2),
        "x_realtime_2_idle_cores": round(duration / (cpu / 2), 1),
        "decode_shots_fps": round(reader.frames / decode_s),
        "notes": analysis.notes,
    }


_ANALYZER = None


def _analyzer(analyzer_class, settings_class):
    global _ANALYZER
    if _ANALYZER is None:
        _ANALYZER = analyzer_class(settings_class.from_env())
    return _ANALYZER


def loop_video(source: Path, target: Path, minutes: float) -> Path:
    """``source`` repeated (packets copied, timestamps shifted) until it lasts ``minutes``, as Matroska."""
    import av

    with av.open(str(source)) as probe:
        duration = probe.duration / 1e6
    loops = max(1, round(minutes * 60 / duration))
    with av.open(str(target), "w", format="matroska") as out:
        mapping = {}
        with av.open(str(source)) as first:
            for stream in first.streams:
                if stream.type in ("video", "audio"):
                    mapping[stream.index] = out.add_stream_from_template(stream)
        for loop in range(loops):
            with av.open(str(source)) as inp:
                for packet in inp.demux():
                    if packet.stream.index not in mapping or packet.dts is None:
                        continue
                    shift = int(loop * duration / packet.time_base)
                    packet.dts += shift
                    packet.pts = packet.dts if packet.pts is None else packet.pts + shift
                    packet.stream = mapping[packet.stream.index]
                    out.mux(packet)
    return target


def long_talk(folder: Path, minutes: float) -> Path:
    """Photos over ``minutes`` of distinct real speech (no text repeats, unlike a looped clip)."""
    import wave

    import numpy as np
    from test_video import mux_composite, wheel_file

    from polymodal.media.audio import decode_audio

    samples = REPO / ".cache" / "sample-collection"
    sources = [wheel_file("sample.wav"), *sorted((samples / "recordings").glob("*.wav"))]
    sources += sorted(Path("/usr/share/asterisk/sounds/en_US_f_Allison").glob("**/*.wav"))
    parts, total = [], 0
    for source in sources:
        audio = decode_audio(source)
        parts += [audio, np.zeros(8000, np.float32)]
        total += audio.size + 8000
        if total >= minutes * 60 * 16000:
            break
    speech = folder / "talk.wav"
    with wave.open(str(speech), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((np.clip(np.concatenate(parts), -1, 1) * 32767).astype("<i2").tobytes())
    target = folder / "long_talk.mp4"
    mux_composite(sorted((samples / "photos").glob("*.jpg")), speech, samples / "sounds" / "dog.mp3", target)
    return target


def peak_rss(path: Path) -> dict:
    """Index ``path`` in a fresh process; its peak resident memory and timings."""
    code = (
        "import json, resource, sys; sys.path.insert(0, sys.argv[2]); import video_throughput as v; "
        "r = v.measure(__import__('pathlib').Path(sys.argv[1])); "
        "r['peak_rss_mb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024); print(json.dumps(r))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path), str(REPO / "bench")], capture_output=True,
                          text=True, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long-minutes", type=float, default=10.0)
    parser.add_argument("--skip-long", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        found = videos(Path(tmp))
        measure(found["Megamind.avi"])  # loads every model once
        measure(found["display-dual-monitors.webm"])
        load = os.getloadavg()[0]
        rows = [measure(path) for path in found.values()]
        long_rows = []
        if not args.skip_long:
            for name in ("vtest.avi", "Megamind.avi"):
                short = peak_rss(found[name])
                long = peak_rss(loop_video(found[name], Path(tmp) / f"long_{Path(name).stem}.mkv", args.long_minutes))
                long_rows += [short, long]
            long_rows += [peak_rss(found["composite_talk.mp4"]), peak_rss(long_talk(Path(tmp), args.long_minutes))]
    print_table(rows, long_rows, load)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_1min": round(load, 2),
        "command": " ".join(sys.argv),
        "n_videos": len(rows),
        "videos": rows,
        "long": long_rows,
    }
    out = REPO / "bench" / "results" / "video_throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(REPO)}")


def print_table(rows: list[dict], long_rows: list[dict], load: float) -> None:
    columns = ("s", "shots", "ocr", "speech", "wall", "xRT", "cpu", "xRT@2", "fps")
    head = f"{'video':28} " + " ".join(f"{c:>{5 if c == 'shots' else 4 if c == 'ocr' else 6}}" for c in columns)
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs (other work shares them: wall times are pessimistic)")
    for table in (rows, long_rows):
        if not table:
            continue
        print(head + ("  peak RSS" if table is long_rows else ""))
        for r in table:
            line = (f"{r['video']:28} {r['seconds']:6.1f} {r['shots']:5d} {r['ocr_shots']:4d} {r['speech_s']:6.1f} "
                    f"{r['wall_s']:6.1f} {r['x_realtime']:6.1f} {r['cpu_s']:6.1f} {r['x_realtime_2_idle_cores']:6.1f} "
                    f"{r['decode_shots_fps']:6d}")  # fmt: skip
            print(line + (f"  {r['peak_rss_mb']:5d} MB" if "peak_rss_mb" in r else ""))


if __name__ == "__main__":
    main()
