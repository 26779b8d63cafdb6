#!/usr/bin/env bash
# One search of each kind over the indexed sample collection.
set -euo pipefail
pm="$1"; store="$2"; samples=sample-collection
run() { echo; echo "\$ polymodal $*"; "$pm" "$@" --store "$store" -k 5; }
run search "a cat on a sofa"
run search "一只猫"
run search --image "$samples/photos/coffee.jpg"
run search --image "$samples/photos/coffee.jpg" "a document about it"
spoken=$(mktemp --suffix .wav)
if command -v espeak-ng >/dev/null; then
  espeak-ng -w "$spoken" "it was the best of times"
  run search --audio "$spoken"
fi
dog=$(ls "$samples"/sounds/*dog* 2>/dev/null | head -1 || true)
[ -n "$dog" ] && run search --audio "$dog"
echo; "$pm" status --store "$store"
