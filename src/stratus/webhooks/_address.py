"""Where a webhook may go: http(s) URLs whose host resolves to public addresses only.

A URL whose host resolves to a loopback, private, link-local, multicast, reserved or
unspecified address is refused (a webhook must not reach into the server's own network)
unless the configuration allows private addresses. Delivery checks again before each attempt,
so a name that later resolves somewhere private is refused then.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from stratus.errors import InvalidRequest

MAX_URL = 2048


def _private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


async def check_url(url: str, *, allow_private: bool) -> str:
    """``url`` if a webhook may be sent there; otherwise ``InvalidRequest`` saying why."""
    if len(url) > MAX_URL:
        raise InvalidRequest(f"webhook URL is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidRequest(f"webhook URL {url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"webhook URL {url!r} must be an absolute http:// or https:// URL")
    if allow_private:
        return url
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, port or (443 if parts.scheme == "https" else 80),
            type=socket.SOCK_STREAM)
    except OSError as exc:
        raise InvalidRequest(
            f"webhook URL host {parts.hostname!r} does not resolve: {exc}") from None
    for info in infos:
        address = str(info[4][0])
        if _private(address):
            raise InvalidRequest(
                f"webhook URL {url!r} resolves to {address}, a loopback, private or "
                "link-local address: webhooks are only sent to public addresses (the "
                "server's [webhooks] allow_private setting lifts this)")
    return url
