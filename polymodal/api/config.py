"""What the service allows: where it listens, who may call it, how much they may send, how much work at once."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, replace

KB = 1024
MB = 1024 * 1024
ALLOWED_HOSTS_ENV = "POLYMODAL_ALLOWED_HOSTS"
TRUSTED_PROXIES_ENV = "POLYMODAL_TRUSTED_PROXIES"
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::", "[::]")


def _env_list(name: str) -> tuple[str, ...]:
    """A comma- or space-separated environment variable as a tuple (empty when unset)."""
    return tuple(part for part in os.environ.get(name, "").replace(",", " ").split() if part)


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    # "auto": API keys are required unless the service listens on loopback only.
    auth: str = "auto"
    max_upload_bytes: int = 200 * MB  # one uploaded file
    max_request_bytes: int = 1024 * MB  # one multipart request body, all files together
    max_json_bytes: int = 64 * KB  # a JSON (or any other non-form) body: the largest field is 2,000 characters
    max_form_bytes: int = 1 * MB  # a url-encoded form (texts of up to 50,000 characters, no files)
    max_files: int = 200  # files in one upload
    max_query_bytes: int = 25 * MB  # an image or a recording sent as a query
    # Requests per minute per key (per client address when keys are off); 0 turns the limit off.
    rate_per_minute: int = 600
    rate_burst: int = 120
    search_workers: int = 4  # threads for text searches (milliseconds each): never behind media queries
    media_workers: int = 2  # threads for image queries and quick tasks (decoding, perception: ~0.1 s)
    audio_workers: int = 1  # threads for recorded queries (speech recognition: seconds, all cores)
    max_pending: int = 64  # requests waiting for a worker before the service answers 503
    max_jobs: int = 16  # index jobs queued or running
    cors_origins: tuple[str, ...] = field(default_factory=tuple)  # CORS is off unless origins are given
    # Host names the service answers to when keys are off, besides loopback ones (DNS-rebinding defence):
    # exact names, ".example.org" for a domain and its subdomains, "*" for any.
    allowed_hosts: tuple[str, ...] = field(default_factory=lambda: _env_list(ALLOWED_HOSTS_ENV))
    # Proxies (addresses or networks) whose X-Forwarded-For is believed; by default nobody's.
    trusted_proxies: tuple[str, ...] = field(default_factory=lambda: _env_list(TRUSTED_PROXIES_ENV))
    warm: bool = True  # load the search models in the background at start

    @property
    def keys_required(self) -> bool:
        if self.auth in ("on", "required"):
            return True
        if self.auth in ("off", "none"):
            return False
        return not is_loopback(self.host)

    def with_(self, **changes: object) -> ServeConfig:
        return replace(self, **changes)  # type: ignore[arg-type]


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
