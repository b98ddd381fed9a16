"""HTTP routes of the web console: ``/`` (to the console), ``/console`` and its assets.

The pages need no key: the browser keeps the key and sends it to the JSON API itself. They
are not part of the API's OpenAPI document.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from stratus.errors import NotFound

STATIC = Path(__file__).parent / "static"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".png": "image/png"}
# The key lives in this page's session storage: nothing from elsewhere may run or load here.
SECURITY = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _assets() -> dict[str, Path]:
    return {path.name: path for path in STATIC.iterdir()
            if path.is_file() and path.suffix in MEDIA_TYPES and path.name != "index.html"}


ASSETS = _assets()


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/console", status_code=307)


@router.api_route("/console", methods=["GET", "HEAD"])
async def console() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type=MEDIA_TYPES[".html"],
                        headers=SECURITY)


@router.api_route("/console/static/{name}", methods=["GET", "HEAD"])
async def asset(name: str) -> FileResponse:
    path = ASSETS.get(name)
    if path is None:
        raise NotFound(f"no console file {name!r}")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=SECURITY)
