"""Image URLs fetched once, at admission, so that an engine (and an upstream) only ever gets
image data, never a URL a client chose.

The same guard as webhooks: the host is resolved once and every address it resolves to must
be public (unless ``[images] allow_private``); the request goes to one of those addresses
(pinned: no second lookup can point it elsewhere); redirects are not followed; the body is
read up to the size limit (5 MB an image, 32 MB for all of a request's); all of a request's
images are fetched within one deadline, a few at a time. What comes back must be an
image of an accepted type that decodes, as for inline images. Any failure is a 400 that names
the block and the reason.
"""

from __future__ import annotations

import asyncio
import base64

import httpx

from stratus.engines import ChatMessage, GenerationRequest, ImagePart, Part, ToolResultPart
from stratus.errors import InvalidRequest, describe
from stratus.normalize._images import MAX_IMAGE_BYTES, MEDIA_TYPES, inline_part
from stratus.outbound import pinned_request, resolve_target

AT_ONCE = 4  # images of one request fetched at the same time
MAX_FETCHED_BYTES = 32 * 1024 * 1024  # fetched for one request, in all
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
        """``request`` with every image URL replaced by the image's data: fetched
        ``AT_ONCE`` at a time, all within one deadline, at most ``MAX_FETCHED_BYTES`` in
        all."""
        wanted = [(i, j, k, p.url) for i, m in enumerate(request.messages)
                  for j, part in enumerate(m.parts)
                  for k, p in enumerate(part.content if isinstance(part, ToolResultPart)
                                        else (part,))
                  if isinstance(p, ImagePart) and p.url]
        if not wanted:
            return request
        budget = _Budget(MAX_FETCHED_BYTES)
        gate = asyncio.Semaphore(AT_ONCE)

        async def one(i: int, j: int, k: int, url: str) -> ImagePart:
            nested = isinstance(request.messages[i].parts[j], ToolResultPart)
            path = f"messages[{i}].content[{j}]" + (f".content[{k}]" if nested else "")
            async with gate:
                return await self._fetch(url, path, budget)

        try:
            async with asyncio.timeout(self._timeout):
                fetched = await asyncio.gather(*(one(*w) for w in wanted))
        except TimeoutError:
            raise InvalidRequest(
                f"the request's {len(wanted)} image URL(s) were not all fetched within "
                f"{self._timeout:g} s: send the images as base64 instead") from None
        found = {(i, j, k): part for (i, j, k, _), part in zip(wanted, fetched, strict=True)}
        return request.model_copy(update={"messages": tuple(
            ChatMessage(role=m.role, parts=tuple(_replaced(part, i, j, found)
                                                 for j, part in enumerate(m.parts)))
            for i, m in enumerate(request.messages))})

    async def _fetch(self, url: str, path: str, budget: _Budget) -> ImagePart:
        what = f"{path} image URL"
        raw, media_type = await self._get(url, what, budget)
        data = base64.b64encode(raw).decode("ascii")
        return await asyncio.to_thread(inline_part, media_type, data, path)

    async def _get(self, url: str, what: str, budget: _Budget) -> tuple[bytes, str]:
        target = await resolve_target(url, allow_private=self._allow_private, what=what,
                                      rule=RULE)  # an InvalidRequest if it may not be fetched
        failure: Exception | None = None
        for address in target.addresses:
            request = pinned_request(self._client, target, address, None,
                                     {"accept": ", ".join(MEDIA_TYPES),
                                      "accept-encoding": "identity"}, method="GET")
            try:
                response = await self._client.send(request, stream=True)
            except httpx.HTTPError as exc:
                failure = exc
                continue
            try:
                return await _read(response, url, what, budget)
            except httpx.HTTPError as exc:
                raise InvalidRequest(f"{what} {url!r} could not be read: "
                                     f"{describe(exc)}") from None
            finally:
                await response.aclose()
        raise InvalidRequest(f"{what} {url!r} could not be fetched: "
                             f"{describe(failure) if failure else 'no address'}")


class _Budget:
    """The bytes the images of one request may still take."""

    def __init__(self, left: int) -> None:
        self.left = left

    def take(self, n: int, what: str, url: str) -> None:
        self.left -= n
        if self.left < 0:
            raise InvalidRequest(
                f"{what} {url!r}: the images fetched for one request may take at most "
                f"{MAX_FETCHED_BYTES // (1024 * 1024)} MB in all: send fewer or smaller ones")


def _replaced(part: Part, i: int, j: int, found: dict[tuple[int, int, int], ImagePart]) -> Part:
    if isinstance(part, ToolResultPart):
        return part.model_copy(update={"content": tuple(
            found.get((i, j, k), p) for k, p in enumerate(part.content))})
    return found.get((i, j, 0), part)


async def _read(response: httpx.Response, url: str, what: str,
                budget: _Budget) -> tuple[bytes, str]:
    if response.is_redirect:
        raise InvalidRequest(f"{what} {url!r} redirects (HTTP {response.status_code}); "
                             "redirects are not followed: give the image's own URL")
    if response.status_code != 200:
        raise InvalidRequest(f"{what} {url!r} answered HTTP {response.status_code}")
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in MEDIA_TYPES:
        raise InvalidRequest(f"{what} {url!r} is of type {media_type or 'unknown'!r}: "
                             f"images must be one of {', '.join(MEDIA_TYPES)}")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise InvalidRequest(f"{what} {url!r} came {encoding}-encoded: serve the image "
                             "as it is")
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        budget.take(len(chunk), what, url)
        if len(body) > MAX_IMAGE_BYTES:
            raise InvalidRequest(f"{what} {url!r} is larger than 5 MB: resize or compress it")
    return bytes(body), media_type
