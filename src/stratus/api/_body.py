"""Reading a request body within the configured size limit."""

from __future__ import annotations

from fastapi import Request

from stratus.errors import InvalidRequest, PayloadTooLarge

SETTINGS_BODY = 64 * 1024  # bodies of the account and admin routes: a few settings


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"request body is larger than the limit of {limit} bytes: send a smaller body "
        "(images: at most 5 MB each)")


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _too_large(limit)
        except ValueError:
            raise InvalidRequest("Content-Length header is not a number") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)
