"""Image URLs fetched once, at admission, so that an engine (and an upstream) only ever gets
image data, never a URL a client chose.

The same guard as webhooks: the host is resolved once and every address it resolves to must
be public (unless ``[images] allow_private``); the request goes to one of those addresses
(pinned: no second lookup can point it elsewhere); redirects are not followed; the body is
read up to the size limit; the whole fetch has one deadline. What comes back must be an
image of an accepted type that decodes, as for inline images. Any failure is a 400 that names
the block and the reason.
"""

from __future__ import annotations

import asyncio
import base64

import httpx

from stratus.engines import ChatMessage, GenerationRequest, ImagePart, Part, ToolResultPart
from stratus.errors import InvalidRequest
from stratus.normalize._images import MAX_IMAGE_BYTES, MEDIA_TYPES, inline_part
from stratus.webhooks import pinned_request, resolve_target

RULE = ("images are only fetched from public addresses (the server's [images] allow_private "
        "setting lifts this)")


class ImageFetcher:
    def __init__(self, *, allow_private: bool = False, timeout: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._allow_private = allow_private
        self._timeout = timeout
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False,
                                         trust_env=False, transport=transport,
                                         limits=httpx.Limits(max_keepalive_connections=0))

    async def close(self) -> None:
        await self._client.aclose()

    async def resolve(self, request: GenerationRequest) -> GenerationRequest:
        """``request`` with every image URL replaced by the image's data."""
        if not any(p.url for m in request.messages for p in m.images()):
            return request
        messages = []
        for i, message in enumerate(request.messages):
            parts = [await self._part(p, f"messages[{i}].content[{j}]")
                     for j, p in enumerate(message.parts)]
            messages.append(ChatMessage(role=message.role, parts=tuple(parts)))
        return request.model_copy(update={"messages": tuple(messages)})

    async def _part(self, part: Part, path: str) -> Part:
        if isinstance(part, ImagePart) and part.url:
            return await self.fetch(part.url, path)
        if isinstance(part, ToolResultPart) and any(
                isinstance(p, ImagePart) and p.url for p in part.content):
            content = [await self.fetch(p.url, f"{path}.content[{k}]")
                       if isinstance(p, ImagePart) and p.url else p
                       for k, p in enumerate(part.content)]
            return part.model_copy(update={"content": tuple(content)})
        return part

    async def fetch(self, url: str, path: str) -> ImagePart:
        what = f"{path} image URL"
        try:
            async with asyncio.timeout(self._timeout):
                raw, media_type = await self._get(url, what)
        except TimeoutError:
            raise InvalidRequest(f"{what} {url!r} did not answer within {self._timeout:g} s: "
                                 "send the image as base64 instead") from None
        data = base64.b64encode(raw).decode("ascii")
        return await asyncio.to_thread(inline_part, media_type, data, path)

    async def _get(self, url: str, what: str) -> tuple[bytes, str]:
        target = await resolve_target(url, allow_private=self._allow_private, what=what,
                                      rule=RULE)  # an InvalidRequest if it may not be fetched
        failure: Exception | None = None
        for address in target.addresses:
            request = pinned_request(self._client, target, address, None,
                                     {"accept": ", ".join(MEDIA_TYPES)}, method="GET")
            try:
                response = await self._client.send(request, stream=True)
            except httpx.HTTPError as exc:
                failure = exc
                continue
            try:
                return await _read(response, url, what)
            finally:
                await response.aclose()
        raise InvalidRequest(f"{what} {url!r} could not be fetched: {failure}")


async def _read(response: httpx.Response, url: str, what: str) -> tuple[bytes, str]:
    if response.is_redirect:
        raise InvalidRequest(f"{what} {url!r} redirects (HTTP {response.status_code}); "
                             "redirects are not followed: give the image's own URL")
    if response.status_code != 200:
        raise InvalidRequest(f"{what} {url!r} answered HTTP {response.status_code}")
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in MEDIA_TYPES:
        raise InvalidRequest(f"{what} {url!r} is of type {media_type or 'unknown'!r}: "
                             f"images must be one of {', '.join(MEDIA_TYPES)}")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_IMAGE_BYTES:
            raise InvalidRequest(f"{what} {url!r} is larger than 5 MB: resize or compress it")
    return bytes(body), media_type
