"""API keys (stored hashed in the store directory) and per-key rate limits. No web framework needed here.

A key looks like ``pm_<id>_<secret>``; only its SHA-256 is kept, in ``<store>/api-keys.json`` (mode 0600).
The file is re-read when it changes, so ``polymodal keys revoke`` takes effect on a running service.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from polymodal.errors import UsageError

KEYS_FILE = "api-keys.json"


@dataclass
class ApiKey:
    id: str
    name: str
    sha256: str
    created: float
    revoked: float | None = None

    def public(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "created": self.created, "revoked": self.revoked}


class KeyFileError(ValueError):
    """The keys file cannot be read as keys; the message names the file and says what to do."""


class KeyStore:
    def __init__(self, store_dir: Path):
        self.path = Path(store_dir) / KEYS_FILE
        self._lock = threading.Lock()
        self._cache: tuple[float, list[ApiKey]] | None = None

    def list(self) -> list[ApiKey]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return []
        with self._lock:
            if self._cache is None or self._cache[0] != mtime:
                self._cache = (mtime, self._read())
            return list(self._cache[1])

    def _read(self) -> list[ApiKey]:
        try:
            rows = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(rows, list):
                raise TypeError("it is not a list of keys")
            return [ApiKey(**row) for row in rows]
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
            raise KeyFileError(
                f"the API keys file {self.path} is damaged ({_problem(exc)}): restore it from a backup, or move it "
                "away and make new keys with `polymodal keys create NAME` (every key made before stops working)"
            ) from None
        except OSError as exc:
            raise KeyFileError(
                f"the API keys file {self.path} cannot be read ({exc.strerror or exc}): check its owner and mode "
                "(the service's user needs to read it; it should be 0600)"
            ) from None

    def active(self) -> list[ApiKey]:
        return [k for k in self.list() if k.revoked is None]

    def create(self, name: str) -> tuple[ApiKey, str]:
        """A new key: (its record, the secret shown once)."""
        name = name.strip()
        if not name or len(name) > 64:
            raise UsageError("a key needs a name of 1 to 64 characters")
        key_id = secrets.token_hex(4)
        secret = f"pm_{key_id}_{secrets.token_urlsafe(24)}"
        record = ApiKey(key_id, name, _digest(secret), round(time.time(), 3))
        self._write([*self.list(), record])
        return record, secret

    def revoke(self, ref: str) -> ApiKey:
        """Revoke the key with this id or name."""
        keys = self.list()
        matches = [k for k in keys if k.revoked is None and ref in (k.id, k.name)]
        if not matches:
            raise UsageError(f"no active key with id or name {ref!r}; see: polymodal keys list")
        for key in matches:
            key.revoked = round(time.time(), 3)
        self._write(keys)
        return matches[0]

    def verify(self, secret: str) -> ApiKey | None:
        digest = _digest(secret)
        found = None
        for key in self.active():  # compare with every key, in constant time each
            if hmac.compare_digest(key.sha256, digest):
                found = key
        return found

    def _write(self, keys: list[ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump([asdict(k) for k in keys], handle, indent=1)
        tmp.replace(self.path)
        with self._lock:
            self._cache = None


def _problem(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return f"not a list of keys: {exc}"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class RateLimiter:
    """A token bucket per caller: ``per_minute`` sustained, ``burst`` at once; 0 turns it off."""

    def __init__(self, per_minute: int, burst: int, max_callers: int = 10_000):
        self.rate = per_minute / 60.0
        self.burst = float(max(burst, 1))
        self.max_callers = max_callers
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait(self, caller: str) -> float:
        """The seconds ``caller`` must wait before its next call (0: now), without spending anything."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            tokens, last = self._buckets.get(caller, (self.burst, time.monotonic()))
        tokens = min(self.burst, tokens + (time.monotonic() - last) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def check(self, caller: str) -> float:
        """0 if the call may go ahead (and spend one token), else the seconds to wait."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[caller] = (tokens, now)
                return (1.0 - tokens) / self.rate
            if len(self._buckets) >= self.max_callers and caller not in self._buckets:
                self._buckets.clear()  # bounded memory; a reset only ever lets callers through
            self._buckets[caller] = (tokens - 1.0, now)
            return 0.0
