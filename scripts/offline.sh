#!/usr/bin/env bash
# Run a command with the network cut (a fresh network namespace: loopback only), so a hidden download fails.
if unshare -n true 2>/dev/null; then
  exec unshare -n "$@"
fi
echo "note: cannot cut the network here (unshare -n needs root); relying on HF_HUB_OFFLINE=1" >&2
exec "$@"
