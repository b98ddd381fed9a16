"""Real, tiny images made with Pillow, base64-encoded."""

from __future__ import annotations

import base64
import io
import struct
import zlib

from PIL import Image


def image_b64(fmt: str = "PNG", size: tuple[int, int] = (8, 8)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def base64_block(media_type: str, data: str) -> dict:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type,
                                        "data": data}}


def with_image(block: dict, text: str = "describe this") -> dict:
    return {"messages": [{"role": "user", "content": [block, {"type": "text", "text": text}]}]}


def png_b64(width: int, height: int, idat: bytes | None = None) -> str:
    """A PNG whose header says ``width`` x ``height``; its pixel data is ``idat`` (by
    default a few compressed zero rows, too few for a big image: it does not decode)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 64) if idat is None else idat
    raw = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
           + chunk(b"IEND", b""))
    return base64.b64encode(raw).decode()
