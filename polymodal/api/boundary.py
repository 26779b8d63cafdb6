"""Who may reach the service from a browser, and from which address a request really comes.

:class:`Boundary` (ASGI middleware) refuses, before anything is read or run:

* when API keys are off, a ``Host`` that is neither loopback nor allowed (421): a page on a name the attacker
  controls, re-pointed at 127.0.0.1 (DNS rebinding), would otherwise read the keyless service;
* a request to ``/api/`` or ``/metrics`` sent by a page of another site (403): ``Sec-Fetch-Site`` (set by the
  browser, never by a page) or else ``Origin`` must say same-origin, unless that origin is allowed for CORS.
  Clients that send neither (curl, scripts, the CLI) are not browsers and go through.

:meth:`Trust.client_address` believes ``X-Forwarded-For`` only from the configured proxies.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from polymodal.api.config import ALLOWED_HOSTS_ENV, TRUSTED_PROXIES_ENV, WILDCARD_ADDRESSES, ServeConfig, is_loopback
from polymodal.api.errors import send_error
from polymodal.api.metrics import Metrics

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


@dataclass(frozen=True)
class Trust:
    keys_required: bool
    allowed_hosts: tuple[str, ...]  # lower case; ".example.org" also allows its subdomains; "*" anything
    allowed_origins: frozenset[str]
    proxies: tuple[Network, ...]

    @classmethod
    def from_config(cls, config: ServeConfig) -> Trust:
        hosts = [_allowed_name(h) for h in config.allowed_hosts if h.strip()]
        if config.host.lower() not in WILDCARD_ADDRESSES:
            hosts.append(_allowed_name(config.host))  # the address the user told the service to listen on
        return cls(
            keys_required=config.keys_required,
            allowed_hosts=tuple(hosts),
            allowed_origins=frozenset(o.rstrip("/").lower() for o in config.cors_origins),
            proxies=tuple(_network(p) for p in config.trusted_proxies),
        )

    # --- the Host header ----------------------------------------------------------------------------
    def host_allowed(self, host_header: str | None) -> bool:
        """Whether to answer a request for this ``Host`` (any, when keys are required)."""
        if self.keys_required or host_header is None:  # a browser always sends Host
            return True
        name = host_name(host_header)
        if name is None:
            return False
        if is_loopback(name) or "*" in self.allowed_hosts:
            return True
        return any(name == h or (h.startswith(".") and (name == h[1:] or name.endswith(h))) for h in self.allowed_hosts)

    # --- cross-site requests ------------------------------------------------------------------------
    def cross_site(self, headers: dict[str, str]) -> str | None:
        """Why a request comes from a page of another site, or None when it does not (or is not a browser's)."""
        origin = headers.get("origin")
        if origin is not None and origin.rstrip("/").lower() in self.allowed_origins:
            return None
        site = headers.get("sec-fetch-site", "").strip().lower()
        if site in ("same-origin", "none"):  # "none": typed in the address bar or opened from a bookmark
            return None
        if site in ("same-site", "cross-site"):
            return f"the browser marked it {site}" + (f" from {origin[:100]}" if origin else "")
        if origin is None:
            return None
        if same_origin(origin, headers.get("host", "")):
            return None
        return f"it comes from the page of {origin[:100]}"

    # --- the caller's address -----------------------------------------------------------------------
    def client_address(self, scope: dict[str, Any]) -> str:
        """The caller's address: the peer's, or what a trusted proxy in front says (X-Forwarded-For)."""
        client = scope.get("client")
        peer = str(client[0]) if client else "unknown"
        if not self.proxies or not self._trusted(peer):
            return peer
        forwarded = ",".join(
            value.decode("latin-1") for name, value in scope.get("headers") or [] if name == b"x-forwarded-for"
        )
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        for hop in reversed(hops):  # each trusted proxy appends whom it heard from: the last untrusted one is it
            if not _is_address(hop):
                return peer  # garbage a trusted proxy passed on: count the proxy
            if not self._trusted(hop):
                return hop
        return hops[0] if hops else peer

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return False
        return any(ip in network for network in self.proxies)


def split_host(host_header: str) -> tuple[str, str] | None:
    """(name, port or "") of a ``Host`` header: lower case, no brackets, no final dot; None when malformed."""
    value = host_header.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
    else:
        name, _, port = value.partition(":")
    if (port and not port.isdigit()) or not name.rstrip("."):
        return None
    return name.rstrip("."), port


def host_name(host_header: str) -> str | None:
    split = split_host(host_header)
    return split[0] if split else None


def same_origin(origin: str, host_header: str) -> bool:
    """Whether ``Origin`` names the host and port the request was sent to (the scheme is left out: a TLS
    proxy in front changes it; a Host without a port matches the origin's default port)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return False
    if not parts.hostname or parts.scheme not in DEFAULT_PORTS:
        return False  # "null" (sandboxed frames, local files) and anything else odd
    host = split_host(host_header)
    if host is None:
        return False
    wanted = str(port) if port else DEFAULT_PORTS[parts.scheme]
    return host[0] == parts.hostname.lower().rstrip(".") and (host[1] or wanted) == wanted


class Boundary:
    """Pure ASGI middleware: the Host check and the cross-site check (see the module doc)."""

    def __init__(self, app: Any, trust: Trust, metrics: Metrics):
        self.app = app
        self.trust = trust
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope.get("headers") or []}
        if not self.trust.host_allowed(headers.get("host")):
            self.metrics.count("refused_host")
            shown = headers.get("host", "")[:100]
            message = (
                f"this service answers only to localhost and the host names it is told, not to {shown!r}: "
                f"if that name is yours, add it to {ALLOWED_HOSTS_ENV} (comma-separated) or use API keys"
            )
            await send_error(send, 421, message)
            return
        path = scope.get("path", "")
        if path.startswith("/api/") or path == "/metrics":
            why = self.trust.cross_site(headers)
            if why is not None:
                self.metrics.count("refused_cross_site")
                message = f"requests from other web sites are refused ({why}); allow an origin with --cors-origin"
                await send_error(send, 403, message)
                return
        await self.app(scope, receive, send)


def _network(value: str) -> Network:
    try:
        return ipaddress.ip_network(value.strip().strip("[]"), strict=False)
    except ValueError:
        raise ValueError(
            f"{value!r} in the trusted proxies ({TRUSTED_PROXIES_ENV}) is not an address or a network like 10.0.0.0/8"
        ) from None


def _allowed_name(entry: str) -> str:
    """An allowed-host entry as :meth:`Trust.host_allowed` compares it: "Example.org:8000" -> "example.org"."""
    entry = entry.strip().lower()
    if entry == "*" or _is_address(entry):
        return entry.strip("[]")
    split = split_host(entry)
    return split[0] if split else entry


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip("[]"))
        return True
    except ValueError:
        return False
