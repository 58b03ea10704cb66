"""Behind a load balancer: the client's address, host and scheme from the headers it adds.

The claim page's rate limit counts tries per client address, and an enrollment request's
RFC 9421 signature covers ``@target-uri`` (the URL the box dialled, e.g. https://vendor.example/...).
Behind a load balancer the TCP peer is the balancer and the Host is the backend's, so both
would be wrong: every office would share one address, and every signature would fail.
X-Forwarded-For / -Host / -Proto are taken only from the balancers the vendor names
(``serve --trusted-proxy``, METERBOX_CLOUD_TRUSTED_PROXIES); from anyone else they are ignored,
or a client could pick its own address and dodge the rate limit.
"""

from __future__ import annotations

import ipaddress
from typing import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(text: str) -> list[Network]:
    """"10.0.0.0/8, 192.0.2.7" as networks; raises ValueError naming the entry that is not one."""
    networks = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"trusted proxy {entry!r} is not an IP address or network (e.g. 10.0.0.0/8)") from None
    return networks


def _trusted(address: str, networks: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(forwarded_for: str, peer: str, networks: list[Network]) -> str:
    """The first address, from the right, that is not one of our balancers: the client's.

    Entries to its left were written by the client itself and prove nothing."""
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer


class TrustedProxyMiddleware:
    """Rewrites REMOTE_ADDR, the host and the scheme of a request that came through a trusted balancer."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.networks = trusted_networks(settings.METERBOX["TRUSTED_PROXIES"])

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        if self.networks and _trusted(meta.get("REMOTE_ADDR", ""), self.networks):
            if forwarded_for := meta.get("HTTP_X_FORWARDED_FOR", ""):
                meta["REMOTE_ADDR"] = client_address(forwarded_for, meta["REMOTE_ADDR"], self.networks)
            if host := meta.get("HTTP_X_FORWARDED_HOST", "").split(",")[0].strip():
                meta["HTTP_HOST"] = host
            proto = meta.get("HTTP_X_FORWARDED_PROTO", "").split(",")[0].strip().lower()
            if proto in ("http", "https"):
                meta["wsgi.url_scheme"] = proto
        return self.get_response(request)
