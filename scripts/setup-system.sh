#!/usr/bin/env bash
# Debian packages the tests and the evaluation use. Skips what is already there; needs root for apt-get.
set -euo pipefail
# the font: tests render Chinese text for OCR; chromium: the browser tests of the web page (driven by playwright)
# Sample videos for the video tests: only those files are taken out of the .deb files (opencv-doc alone would
# install 274 MB), into .cache/video-data; `apt-get download` needs no root.
videos=.cache/video-data
video_files=(Megamind.avi vtest.avi tree.avi display-dual-monitors.webm)
fetch_videos() {
  local debs
  debs=$(mktemp -d)
  if ! (cd "$debs" && apt-get download opencv-doc gnome-user-docs >/dev/null 2>&1); then
    [ "$(id -u)" -eq 0 ] && apt-get update -qq >/dev/null 2>&1 || true
    (cd "$debs" && apt-get download opencv-doc gnome-user-docs >/dev/null 2>&1) || true
  fi
  mkdir -p "$videos"
  for deb in "$debs"/*.deb; do
    [ -e "$deb" ] || continue
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$videos" --wildcards --transform='s|.*/||' \
      './usr/share/doc/opencv-doc/examples/data/*.avi' './usr/share/help/C/gnome-help/figures/display-dual-monitors.webm' \
      2>/dev/null || true
  done
  rm -rf "$debs"
}
for file in "${video_files[@]}"; do
  if [ ! -s "$videos/$file" ]; then
    if command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then fetch_videos; fi
    break
  fi
done
for file in "${video_files[@]}"; do
  [ -s "$videos/$file" ] || echo "could not fetch $file (packages opencv-doc, gnome-user-docs): video tests will fail" >&2
done
# libgomp1: OpenMP, which the local LLM's prebuilt runtime (xllamacpp) links against
want=(espeak-ng sox fonts-wqy-microhei chromium tuxpaint-stamps-default wordnet-base libgomp1)  # tuxpaint: tests/test_train.py; wordnet: richer image labels
missing=()
for pkg in "${want[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "please install: ${missing[*]} (spoken queries need espeak-ng; OCR tests a CJK font; browser tests chromium; the LLM libgomp1)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
