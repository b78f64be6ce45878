"""``/docs``: Swagger UI served from this server, so the page works offline.

The assets are the Swagger UI build shipped in the ``fastapi-offline`` package (part of the
``server`` extra); the page names no other host, not even for its favicon.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import FileResponse, HTMLResponse

from ..errors import NotFound

ASSETS = "/docs/assets"
_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}
router = APIRouter(include_in_schema=False)


def _static() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    # Relative links: behind a proxy that serves botwire under /prefix, the page at
    # /prefix/docs loads /prefix/openapi.json and /prefix/docs/assets/... with no setting.
    assets = ASSETS.lstrip("/")
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url.lstrip("/"),
        title=f"{request.app.title} API",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon.png",
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from swagger.io
    )


@router.get(ASSETS + "/{name}")
async def asset(name: str) -> FileResponse:
    if name not in _TYPES:
        raise NotFound(f"no documentation asset {name!r}")
    return FileResponse(_static() / name, media_type=_TYPES[name])
