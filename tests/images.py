"""Real, tiny images made with Pillow, base64-encoded."""

from __future__ import annotations

import base64
import contextlib
import io
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


PNG = base64.b64decode(image_b64("PNG", (16, 8)))
# path -> (status, headers, body)
ROUTES: dict[str, tuple[int, dict[str, str], bytes]] = {
    "/cat.png": (200, {"content-type": "image/png"}, PNG),
    "/page.html": (200, {"content-type": "text/html"}, b"<html></html>"),
    "/gone.png": (404, {"content-type": "text/plain"}, b"no"),
    "/moved.png": (302, {"location": "/cat.png"}, b""),
    "/huge.png": (200, {"content-type": "image/png"}, b"\x89PNG" + b"0" * (6 * 1024 * 1024)),
    "/fake.png": (200, {"content-type": "image/png"}, b"not an image at all"),
    # says 100000 bytes, sends 4 and hangs up
    "/truncated.png": (200, {"content-type": "image/png", "content-length": "100000"},
                       b"\x89PNG"),
    "/gzipped.png": (200, {"content-type": "image/png", "content-encoding": "gzip"}, PNG),
}


class _Images(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, headers, body = ROUTES.get(self.path, (404, {}, b""))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "content-length" not in headers:
            self.send_header("content-length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def image_site() -> Iterator[str]:
    """A local web server of images (``ROUTES``): its root URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
