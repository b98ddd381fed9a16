"""Webhook URLs: public http(s) only, unless private addresses are allowed."""

from __future__ import annotations

import pytest

from stratus.errors import InvalidRequest
from stratus.webhooks import check_url

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
