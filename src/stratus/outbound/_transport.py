"""A request to an address that was checked: a webhook POST (reading the status only), or
a GET of an image.

The request goes to the URL with its host replaced by one of the target's checked addresses
(tried in order while the connection is refused); the ``Host`` header keeps the original
host and port, and for https the TLS server name (SNI) and the certificate check use the
original host name (httpcore's ``sni_hostname`` request extension). The client ignores the
environment's proxy settings and keeps no idle connection, so a connection opened for one
host name is never reused for another. Of a webhook POST only the status line and headers
are read: the body is never read, whatever its size, and the connection is closed.
"""

from __future__ import annotations

import httpx

from stratus.outbound._address import Target


def make_client(timeout: float,
                transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False,
                             limits=httpx.Limits(max_keepalive_connections=0),
                             transport=transport)


async def post(client: httpx.AsyncClient, target: Target, content: bytes,
               headers: dict[str, str]) -> int:
    """The receiver's status code; raises ``httpx.HTTPError`` if there is none."""
    refused: httpx.ConnectError | None = None
    for address in target.addresses:
        request = pinned_request(client, target, address, content, headers)
        try:
            response = await client.send(request, stream=True)
        except httpx.ConnectError as exc:
            refused = exc
            continue
        await response.aclose()
        return response.status_code
    assert refused is not None
    raise refused


def pinned_request(client: httpx.AsyncClient, target: Target, address: str,
                   content: bytes | None, headers: dict[str, str],
                   method: str = "POST") -> httpx.Request:
    """The request to ``target``, addressed to ``address`` (its Host header set from the
    URL)."""
    request = client.build_request(method, target.url, content=content, headers=headers)
    request.url = request.url.copy_with(host=f"[{address}]" if ":" in address else address)
    if target.url.scheme == "https":
        request.extensions = {**request.extensions, "sni_hostname": target.host}
    return request
