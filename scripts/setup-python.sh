#!/usr/bin/env bash
# Create the virtual environment and install polymodal with the exact, hash-checked set of packages in a lock
# file (requirements.lock: everything the tests need; requirements-demo.lock: the quick start). Nothing is
# compiled: every package, the local LLM's runtime (xllamacpp) included, is a prebuilt wheel.
#   scripts/setup-python.sh [python] [venv] [lock]     POLYMODAL_TORCH=0 leaves torch out (see below)
set -euo pipefail
python="${1:-python3.11}"
venv="${2:-.venv}"
lock="${3:-requirements.lock}"
uv_version=0.13.9
command -v "$python" >/dev/null || python=python3
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
# uv installs the lock: downloads in parallel, checks every file against its hash.
"$venv/bin/python" -m pip show uv 2>/dev/null | grep -qx "Version: $uv_version" || "${pip[@]}" "uv==$uv_version"
uv=("$venv/bin/uv" pip install --python "$venv/bin/python" --quiet)
# torch is not in the lock: its CPU build, exactly pinned, from the PyTorch CPU index (PyPI's Linux build pulls
# ~3 GB of CUDA libraries) or a local wheel folder pip is configured with. polymodal needs it once, to export
# the image model to ONNX into the cache, and for `polymodal train`. POLYMODAL_TORCH=0 skips it (CI's quick start
# on other Pythons, with the export already in the cache).
if [ "${POLYMODAL_TORCH:-1}" != 0 ]; then
  "$venv/bin/python" -c 'import torch' 2>/dev/null ||
    "${pip[@]}" --no-deps --retries 1 --extra-index-url https://download.pytorch.org/whl/cpu "torch==2.13.0+cpu"
fi
# --no-deps: the lock is complete (torch's own dependencies included); nothing outside it is resolved.
# --compile-bytecode, as pip does: first imports are not slowed (or warned about) by compiling.
"${uv[@]}" --require-hashes --no-deps --compile-bytecode -r "$lock"
"${uv[@]}" --no-deps -e .
echo "python environment ready in $venv ($lock)"
