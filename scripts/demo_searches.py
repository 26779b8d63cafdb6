"""One search of each kind over the indexed sample collection, in one process (models load once).

    python scripts/demo_searches.py STORE [SAMPLES]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from polymodal import cli


def searches(samples: Path, spoken: Path | None) -> list[list[str]]:
    coffee = str(samples / "photos" / "coffee.jpg")
    found = [
        ["search", "a cat on a sofa"],
        ["search", "一只猫"],
        ["search", "--image", coffee],
        ["search", "--image", coffee, "a document about it"],
    ]
    if spoken is not None:
        found.append(["search", "--audio", str(spoken)])
    found += [["search", "--audio", str(dog)] for dog in sorted((samples / "sounds").glob("*dog*"))[:1]]
    return found


def spoken_query(directory: Path) -> Path | None:
    """"it was the best of times", said by espeak-ng (when installed)."""
    if shutil.which("espeak-ng") is None:
        return None
    path = directory / "spoken.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "it was the best of times"], check=True)
    return path


def main(argv: list[str]) -> int:
    store, samples = argv[0], Path(argv[1] if len(argv) > 1 else "sample-collection")
    with tempfile.TemporaryDirectory() as scratch:
        for arguments in searches(samples, spoken_query(Path(scratch))):
            print(f"\n$ polymodal {' '.join(arguments)}", flush=True)
            code = cli.main([*arguments, "--store", store, "-k", "5"])
            if code:
                return code
    print(flush=True)
    return cli.main(["status", "--store", store])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
