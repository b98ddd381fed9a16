"""Image URLs fetched at admission: from a real local HTTP server, behind the address guard."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator

import pytest

from stratus.engines import ChatMessage, GenerationRequest, ImagePart, TextPart, ToolResultPart
from stratus.errors import InvalidRequest
from stratus.normalize import ImageFetcher, _fetch
from tests.images import PNG, image_site

pytestmark = pytest.mark.anyio

@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with image_site() as url:
        yield url


def with_url(url: str) -> GenerationRequest:
    return GenerationRequest(max_tokens=8, messages=(ChatMessage(role="user", parts=(
        TextPart(text="what is it"), ImagePart(url=url))),))


async def test_an_image_url_becomes_the_images_data(site: str) -> None:
    fetcher = ImageFetcher(allow_private=True)
    try:
        request = await fetcher.resolve(with_url(site + "/cat.png"))
    finally:
        await fetcher.close()
    part = request.messages[0].parts[1]
    assert isinstance(part, ImagePart)
    assert part.url is None and part.media_type == "image/png"
    assert base64.b64decode(part.data or "") == PNG


async def test_a_private_address_is_refused_before_any_request(site: str) -> None:
    fetcher = ImageFetcher(allow_private=False)
    try:
        with pytest.raises(InvalidRequest, match="non-public address") as refused:
            await fetcher.resolve(with_url(site + "/cat.png"))
    finally:
        await fetcher.close()
    assert "messages[0].content[1] image URL" in refused.value.message
    assert "[images] allow_private" in refused.value.message


@pytest.mark.parametrize(("path", "reason"), [
    ("/page.html", "of type 'text/html'"),
    ("/gone.png", "answered HTTP 404"),
    ("/moved.png", "redirects are not followed"),
    ("/huge.png", "larger than 5 MB"),
    ("/fake.png", "not a readable image"),
    ("/truncated.png", "could not be read: RemoteProtocolError"),
    ("/gzipped.png", "came gzip-encoded"),
])
async def test_what_is_not_an_acceptable_image_is_a_clear_400(site: str, path: str,
                                                              reason: str) -> None:
    fetcher = ImageFetcher(allow_private=True)
    try:
        with pytest.raises(InvalidRequest, match=reason):
            await fetcher.resolve(with_url(site + path))
    finally:
        await fetcher.close()


async def test_a_host_that_does_not_answer_in_time_is_refused() -> None:
    fetcher = ImageFetcher(allow_private=True, timeout=0.3)
    with socket.socket() as silent:  # takes connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        try:
            with pytest.raises(InvalidRequest, match=r"were not all fetched within 0\.3 s"):
                await fetcher.resolve(
                    with_url(f"http://127.0.0.1:{silent.getsockname()[1]}/cat.png"))
        finally:
            await fetcher.close()


async def test_images_nested_in_tool_results_are_fetched_too(site: str) -> None:
    request = GenerationRequest(max_tokens=8, messages=(ChatMessage(role="user", parts=(
        ToolResultPart(tool_use_id="t", content=(TextPart(text="chart:"),
                                                 ImagePart(url=site + "/cat.png"))),
        ImagePart(url=site + "/cat.png"))),))
    fetcher = ImageFetcher(allow_private=True)
    try:
        resolved = await fetcher.resolve(request)
    finally:
        await fetcher.close()
    result, image = resolved.messages[0].parts
    assert isinstance(result, ToolResultPart) and isinstance(image, ImagePart)
    assert result.content[0] == TextPart(text="chart:")
    for part in (result.content[1], image):
        assert isinstance(part, ImagePart) and part.url is None and part.data


async def test_a_request_may_fetch_only_so_much(site: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_fetch, "MAX_FETCHED_BYTES", len(PNG) * 2)
    request = GenerationRequest(max_tokens=8, messages=(ChatMessage(role="user", parts=tuple(
        ImagePart(url=f"{site}/cat.png") for _ in range(3))),))
    fetcher = ImageFetcher(allow_private=True)
    try:
        with pytest.raises(InvalidRequest, match="may take at most"):
            await fetcher.resolve(request)
    finally:
        await fetcher.close()
