"""Real, tiny images made with Pillow, base64-encoded."""

from __future__ import annotations

import base64
import io

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
