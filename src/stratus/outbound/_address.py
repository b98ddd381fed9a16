"""Where a webhook may go: http(s) URLs whose host resolves to public addresses only.

A URL is parsed as the HTTP client will parse it, and refused if it has control characters
or whitespace, or a host name that is not a valid DNS name (empty labels, labels over 63
characters, names that fail IDNA). Its host is then resolved once, and every address it
resolves to is checked: loopback, private, link-local, shared, reserved, multicast,
site-local and unspecified addresses, and the IPv6 forms that carry an IPv4 address inside
(NAT64, IPv4-compatible, 6to4, Teredo, SIIT), are refused (a webhook must not reach into
the server's own network) unless the configuration allows private addresses. The message
never says which address a name resolved to.

Delivery resolves and checks again before each attempt, and connects to an address it
checked (:func:`resolve_target`), so a name that later resolves somewhere private is
refused then, and a second, different answer to the same question is never used.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from stratus.errors import InvalidRequest

MAX_URL = 2048
WEBHOOK_RULE = ("webhooks are only sent to public addresses (the server's [webhooks] "
                "allow_private setting lifts this)")
RESOLVE_TIMEOUT = 10.0  # seconds a host name may take to resolve
MAX_HOST = 253
_LABEL = re.compile(r"[a-z0-9_-]{1,63}", re.IGNORECASE)

# IPv6 ranges that embed or translate to an IPv4 address, or are deprecated local scopes:
# refused whatever the address inside them.
_REFUSED_V6 = tuple(ipaddress.IPv6Network(net) for net in (
    "64:ff9b::/96",  # NAT64, well-known prefix
    "64:ff9b:1::/48",  # NAT64, local use
    "::/96",  # IPv4-compatible (::a.b.c.d), deprecated
    "::ffff:0:0:0/96",  # SIIT IPv4-translated (::ffff:0:a.b.c.d)
    "2002::/16",  # 6to4
    "2001::/32",  # Teredo
    "fec0::/10",  # site-local, deprecated
))

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``(host, port)`` → the addresses a name resolves to (``OSError`` if it does not)."""


class Unresolved(InvalidRequest):
    """The host name does not resolve (now): refused at submit, retried on delivery."""


@dataclass(frozen=True, slots=True)
class Target:
    """A webhook URL and the checked addresses of its host, to connect to one of them."""

    url: httpx.URL
    host: str  # the host as sent on the wire: ASCII (IDNA-encoded), or an IP literal
    addresses: tuple[str, ...]


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_private(address: str) -> bool:
    """True unless ``address`` is a public unicast address a webhook may be sent to."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif any(ip in net for net in _REFUSED_V6):
            return True
    return not ip.is_global or ip.is_multicast


def parse_url(url: str, what: str = "webhook URL") -> httpx.URL:
    """``url`` parsed as it will be sent, or ``InvalidRequest`` saying what is wrong
    (``what``: the URL's name in the message)."""
    if len(url) > MAX_URL:
        raise InvalidRequest(f"{what} is longer than {MAX_URL} characters")
    bad = next((ch for ch in url if ch.isspace() or unicodedata.category(ch) == "Cc"), None)
    if bad is not None:
        raise InvalidRequest(
            f"{what} {url!r} contains whitespace or a control character ({bad!r}): "
            "percent-encode it")
    try:
        parsed = httpx.URL(url)
        port = parsed.port
    except Exception as exc:
        raise InvalidRequest(f"{what} {url!r} is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise InvalidRequest(f"{what} {url!r} must be an absolute http:// or https:// URL")
    if port is not None and not 0 < port < 65536:
        raise InvalidRequest(f"{what} {url!r} is not a valid URL: port {port} is out "
                             "of range (1-65535)")
    _check_host(url, _wire_host(parsed), what)
    return parsed


def _wire_host(url: httpx.URL) -> str:
    return url.raw_host.decode("ascii")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _check_host(url: str, host: str, what: str) -> None:
    if _is_ip(host):
        return
    name = host.removesuffix(".")
    labels = name.split(".")
    if len(name) > MAX_HOST or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidRequest(
            f"{what} {url!r} has an invalid host name: each dot-separated label must be "
            f"1 to 63 letters, digits or hyphens (IDNA for other characters), at most "
            f"{MAX_HOST} characters in all")
    try:
        name.encode("idna")  # what the resolver will do with it
        for label in labels:
            if label.lower().startswith("xn--"):
                label.encode("ascii").decode("idna")  # an A-label must decode
    except UnicodeError as exc:
        raise InvalidRequest(
            f"{what} {url!r} has an invalid host name: {exc}") from None


async def resolve_target(url: str, *, allow_private: bool, resolver: Resolver | None = None,
                         what: str = "webhook URL",
                         rule: str = WEBHOOK_RULE) -> Target:
    """Parse ``url``, resolve its host once and check every address it resolves to
    (``what``: the URL's name in messages; ``rule``: why a private address is refused)."""
    parsed = parse_url(url, what)
    host = _wire_host(parsed)
    if _is_ip(host):
        addresses = [host]
    else:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        tld = host.lower().removesuffix(".").rsplit(".", 1)[-1]
        if tld == "invalid":  # RFC 6761: never resolves; no need to ask
            raise Unresolved(f"{what} host {host!r} does not resolve")
        if tld == "localhost":  # RFC 6761: always loopback
            addresses = ["127.0.0.1"]
        else:
            try:
                async with asyncio.timeout(RESOLVE_TIMEOUT):
                    addresses = await (resolver or system_resolver)(host, port)
            except TimeoutError:  # before OSError, of which it is a kind
                raise Unresolved(f"{what} host {host!r} did not resolve within "
                                 f"{RESOLVE_TIMEOUT:g} s") from None
            except (OSError, UnicodeError) as exc:
                raise Unresolved(
                    f"{what} host {host!r} does not resolve: {exc}") from None
        if not addresses:
            raise Unresolved(f"{what} host {host!r} does not resolve")
    if not allow_private and any(is_private(address) for address in addresses):
        raise InvalidRequest(
            f"{what} {url!r}: its host is or resolves to a non-public address "
            "(loopback, private, link-local, shared, reserved, or an IPv6 form that embeds "
            f"one): {rule}")
    return Target(url=parsed, host=host, addresses=tuple(addresses))


async def check_url(url: str, *, allow_private: bool, resolver: Resolver | None = None) -> str:
    """``url`` if a webhook may be sent there; otherwise ``InvalidRequest`` saying why."""
    if allow_private:
        parse_url(url)
    else:
        await resolve_target(url, allow_private=False, resolver=resolver)
    return url
