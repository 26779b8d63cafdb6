#!/usr/bin/env bash
# Seconds from `make demo` to the served page, from a fresh clone of this repository with empty pip and uv
# caches (what a new user waits for). Usage: bash bench/quickstart_time.sh [PORT]
set -u
port="${1:-8766}"
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
scratch=$(mktemp -d)
git clone -q "$repo" "$scratch/main"
cd "$scratch/main" || exit 1
start=$(date +%s.%N)
PIP_CACHE_DIR="$scratch/pip" UV_CACHE_DIR="$scratch/uv" setsid make demo PORT="$port" > "$scratch/make.log" 2>&1 &
pid=$!
until curl -sf "http://127.0.0.1:$port/" >/dev/null; do
  sleep 1
  kill -0 "$pid" 2>/dev/null || { echo "make demo ended before serving (log: $scratch/make.log)"; exit 1; }
done
echo "make demo to the served page: $(echo "$(date +%s.%N) - $start" | bc) s (log: $scratch/make.log)"
kill -- -"$pid" 2>/dev/null
