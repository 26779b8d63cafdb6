#!/usr/bin/env bash
# Peak memory (max RSS) and wall time of each CLI command on sample files, one fresh process each.
#   bash bench/command_memory.sh [STORE]     (needs `make demo` or an indexed STORE for search)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 POLYMODAL_CACHE="${POLYMODAL_CACHE:-$PWD/.cache/polymodal}"
pm=.venv/bin/polymodal; s=.cache/sample-collection; store="${1:-.cache/demo-store}"
.venv/bin/polymodal samples "$s" --json >/dev/null
[ -f "$store/polymodal.sqlite" ] || "$pm" index "$s" --store "$store" --json >/dev/null
run() {
  local name="$1"; shift
  /usr/bin/time -f "%M %e" -o /tmp/pm-time "$@" >/dev/null 2>&1 || true
  read -r kb secs < /tmp/pm-time
  printf "%-28s %8.0f MB %7.1f s\n" "$name" "$((kb / 1024))" "$secs"
}
echo "command                       peak RSS    wall"
run "--help" "$pm" --help
run "search (text)" "$pm" search "a cat" --store "$store"
run "search (image)" "$pm" search --image "$s/photos/coffee.jpg" --store "$store"
run "search (sound)" "$pm" search --audio "$s/sounds/dog.mp3" --store "$store"
run "classify (image)" "$pm" classify "$s/photos/chelsea_cat.jpg" --labels "cat,dog,bird,car"
run "classify (sound)" "$pm" classify "$s/sounds/dog.mp3" --labels "dog barking,alarm,speech,music"
run "transcribe (44 s)" "$pm" transcribe "$s/recordings/two_cities.wav" --format srt
run "read (scan)" "$pm" read "$s/scans/page.png"
run "tag (6 s)" "$pm" tag "$s/sounds/cow.mp3"
run "describe (0.5B LLM)" "$pm" describe "$s/photos/coffee.jpg" --llm qwen2.5-0.5b
run "describe (1.5B LLM)" "$pm" describe "$s/photos/coffee.jpg"
run "ask (1.5B LLM)" "$pm" ask "$s/photos/coffee.jpg" "Is there a drink?"
run "analyze 3 items (no LLM)" "$pm" analyze "$s/notes/coffee.md" "$s/scans/page.png" "$s/recordings/beckett.wav" --llm none
run "analyze 3 items (1.5B LLM)" "$pm" analyze "$s/notes/coffee.md" "$s/scans/page.png" "$s/recordings/beckett.wav"
