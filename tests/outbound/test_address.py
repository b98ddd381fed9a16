"""Webhook URLs: public http(s) only, unless private addresses are allowed."""

from __future__ import annotations

import pytest

from stratus.errors import InvalidRequest
from stratus.outbound import check_url, is_private

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/hook",
    "http://localhost/hook",
    "http://10.1.2.3/hook",
    "https://192.168.0.10/hook",
    "http://172.16.5.4/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]/hook",
    "http://[fe80::1]/hook",
    "http://[::ffff:10.0.0.1]/hook",
    "http://0.0.0.0/hook",
    "http://100.64.0.1/hook",
])
async def test_private_addresses_are_refused(url: str) -> None:
    with pytest.raises(InvalidRequest, match="only sent to public addresses"):
        await check_url(url, allow_private=False)
    assert await check_url(url, allow_private=True) == url


@pytest.mark.parametrize("url", ["http://8.8.8.8/hook", "https://[2606:4700::1111]/x"])
async def test_public_addresses_pass(url: str) -> None:
    assert await check_url(url, allow_private=False) == url


@pytest.mark.parametrize(("url", "says"), [
    ("ftp://8.8.8.8/hook", "http:// or https://"),
    ("/relative/hook", "http:// or https://"),
    ("http://8.8.8.8:99999/hook", "not a valid URL"),
    ("http://no-such-host.invalid/hook", "does not resolve"),
    ("https://8.8.8.8/" + "x" * 3000, "longer than"),
])
async def test_malformed_urls(url: str, says: str) -> None:
    with pytest.raises(InvalidRequest, match=says):
        await check_url(url, allow_private=False)


@pytest.mark.parametrize("address", [
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b::808:808",  # NAT64 of a public address: refused all the same
    "64:ff9b:1::a00:1",  # local-use NAT64
    "::10.0.0.1",  # IPv4-compatible
    "::8.8.8.8",
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2002:808:808::1",
    "::ffff:0:a00:1",  # SIIT
    "::ffff:0:808:808",
    "fec0::1",  # site-local
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "::ffff:127.0.0.1",  # IPv4-mapped: the address inside is checked
    "ff02::1",
    "224.0.0.1",
    "fe80::1%eth0",
])
def test_non_public_addresses(address: str) -> None:
    assert is_private(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses(address: str) -> None:
    assert not is_private(address)


@pytest.mark.parametrize("host", ["64:ff9b::a00:1", "::10.0.0.1", "2002:a00:1::1",
                                  "::ffff:0:a00:1", "fec0::1", "64:ff9b::808:808"])
async def test_ipv6_forms_that_embed_ipv4_are_refused(host: str) -> None:
    with pytest.raises(InvalidRequest, match="only sent to public addresses"):
        await check_url(f"http://[{host}]/hook", allow_private=False)


class Answers:
    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)

    async def __call__(self, host: str, port: int) -> list[str]:
        return self.addresses


async def test_the_refusal_does_not_name_the_resolved_address() -> None:
    with pytest.raises(InvalidRequest) as refused:
        await check_url("https://intranet.example/hook", allow_private=False,
                        resolver=Answers("10.20.30.40"))
    assert "10.20.30.40" not in refused.value.message
    assert "resolves to a non-public address" in refused.value.message


async def test_every_resolved_address_is_checked() -> None:
    url = "https://mixed.example/hook"
    with pytest.raises(InvalidRequest, match="only sent to public addresses"):
        await check_url(url, allow_private=False, resolver=Answers("8.8.8.8", "10.0.0.1"))
    assert await check_url(url, allow_private=False,
                           resolver=Answers("8.8.8.8", "2606:4700::1111")) == url


@pytest.mark.parametrize("url", [
    "http://a..example/hook",
    "http://xn--a.com/hook",  # an A-label that does not decode
    "https://xn--zz.example/",
    "http://.example/hook",
    "http://a.example../hook",
    "http://" + "a" * 64 + ".example/hook",
    "http://" + ".".join(["abcdefgh"] * 30) + "/hook",  # 269 characters
    "http://exa!mple.com/hook",
])
@pytest.mark.parametrize("allow_private", [False, True])
async def test_host_names_that_fail_idna_are_refused(url: str, allow_private: bool) -> None:
    with pytest.raises(InvalidRequest, match="invalid host name"):
        await check_url(url, allow_private=allow_private, resolver=Answers("8.8.8.8"))


@pytest.mark.parametrize("url", [
    "http://example.com/\x01",
    "http://example.com/a\x7fb",
    "http://example.com/\x85",
    "http://example.com/a b",
    "http://exa mple.com/hook",
    "http://example.com/\thook",
    "http://example.com/hook\n",
    "http://example.com/\u2028",
])
@pytest.mark.parametrize("allow_private", [False, True])
async def test_control_characters_and_whitespace_are_refused(url: str,
                                                              allow_private: bool) -> None:
    with pytest.raises(InvalidRequest, match="whitespace or a control character"):
        await check_url(url, allow_private=allow_private, resolver=Answers("8.8.8.8"))


@pytest.mark.parametrize("url", [
    "http://b\u00fccher.example/hook",  # IDNA: sent as xn--bcher-kva.example
    "https://hook.example./hook",
    "https://hook_1.example:8443/a%20b?x=%01",  # percent-encoded characters are fine
])
async def test_valid_names_pass(url: str) -> None:
    assert await check_url(url, allow_private=False, resolver=Answers("8.8.8.8")) == url


async def test_special_use_names_are_answered_without_asking_dns() -> None:
    def never(host: str, port: int) -> list[str]:
        raise AssertionError(f"asked DNS for {host}")

    with pytest.raises(InvalidRequest, match="does not resolve"):
        await check_url("http://hooks.invalid/x", allow_private=False, resolver=never)
    with pytest.raises(InvalidRequest, match="only sent to public addresses"):
        await check_url("http://app.localhost/x", allow_private=False, resolver=never)


async def test_a_host_that_takes_too_long_to_resolve_is_refused(monkeypatch) -> None:
    import asyncio

    from stratus.outbound import _address

    async def silent(host: str, port: int) -> list[str]:
        await asyncio.sleep(30)
        return ["8.8.8.8"]

    monkeypatch.setattr(_address, "RESOLVE_TIMEOUT", 0.05)
    with pytest.raises(InvalidRequest, match=r"did not resolve within 0\.05 s"):
        await check_url("http://slow.example/hook", allow_private=False, resolver=silent)
