#!/usr/bin/env bash
# Debian packages the tests and the evaluation use. Skips what is already there; needs root for apt-get.
set -euo pipefail
# the font: tests render Chinese text for OCR; chromium: the browser tests of the web page (driven by playwright)
want=(espeak-ng sox fonts-wqy-microhei chromium)
missing=()
for pkg in "${want[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "please install: ${missing[*]} (spoken queries need espeak-ng; OCR tests a CJK font; browser tests chromium)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
