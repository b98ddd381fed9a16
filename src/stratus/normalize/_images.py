"""Image blocks: the three wire forms checked and reduced to one ``ImagePart``."""

from __future__ import annotations

import base64
import binascii
import io
import re
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError

from stratus.engines import ImagePart
from stratus.errors import InvalidRequest
from stratus.protocol.messages import Base64Source, ImageBlock, ImageUrlBlock

MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_IMAGE_SIDE = 8000  # pixels, as Anthropic's API
MAX_IMAGE_PIXELS = 25_000_000  # decoding one takes up to 100 MB
MEDIA_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF",
               "image/webp": "WEBP"}
_DATA_URL = re.compile(r"^data:(?P<type>[^;,]+);base64,(?P<data>.*)$", re.DOTALL)


def image_part(block: ImageBlock | ImageUrlBlock, path: str) -> ImagePart:
    if isinstance(block, ImageUrlBlock):
        url = block.image_url.url
        match = _DATA_URL.match(url)
        if match:
            return inline_part(match["type"], match["data"], f"{path}.image_url.url")
        return ImagePart(url=_web_url(url, f"{path}.image_url.url"))
    if isinstance(block.source, Base64Source):
        return inline_part(block.source.media_type, block.source.data, f"{path}.source")
    return ImagePart(url=_web_url(block.source.url, f"{path}.source.url"))


def inline_part(media_type: str, data: str, path: str) -> ImagePart:
    fmt = MEDIA_TYPES.get(media_type)
    if fmt is None:
        raise InvalidRequest(
            f"{path} media type {media_type!r} is not supported: "
            f"use one of {', '.join(MEDIA_TYPES)}"
        )
    if len(data) > (MAX_IMAGE_BYTES * 4) // 3 + 4:
        raise InvalidRequest(f"{path} image is larger than 5 MB: resize or compress it")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{path} data is not valid base64") from None
    if len(raw) > MAX_IMAGE_BYTES:
        raise InvalidRequest(f"{path} image is larger than 5 MB: resize or compress it")
    actual = _decode(raw, fmt, path)
    if actual != fmt:
        raise InvalidRequest(
            f"{path} data is a {actual} image but media type says {media_type}: "
            "make them agree"
        )
    return ImagePart(media_type=media_type, data=data)


def _decode(raw: bytes, fmt: str, path: str) -> str | None:
    """Decode the whole image (a header alone proves nothing); returns its format."""
    unreadable = InvalidRequest(f"{path} data is not a readable image: send a real {fmt} file")
    try:
        with Image.open(io.BytesIO(raw), formats=list(MEDIA_TYPES.values())) as img:
            width, height = img.size
            if max(width, height) > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
                raise InvalidRequest(
                    f"{path} image is {width}x{height} pixels: at most {MAX_IMAGE_SIDE} a "
                    f"side and {MAX_IMAGE_PIXELS // 1_000_000} million in all; resize it")
            img.load()
            return img.format
    except Image.DecompressionBombError:
        raise InvalidRequest(
            f"{path} image claims more pixels than any image this API takes: at most "
            f"{MAX_IMAGE_SIDE} a side and {MAX_IMAGE_PIXELS // 1_000_000} million in all; "
            "resize it") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise unreadable from None


def _web_url(url: str, path: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequest(
            f"{path} must be an http(s) URL or a data:image/...;base64 URL, not {url[:60]!r}"
        )
    return url
