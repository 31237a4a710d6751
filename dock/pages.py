"""The dock's pages for people: ``/`` says what this server is; ``/docs`` and ``/redoc`` are
the API documentation, served from local files so that they work on a dock without internet.

The Swagger UI and ReDoc scripts come from the ``fastapi-offline`` package (a dependency),
served under ``/docs/assets/``; the pages name no other host. Without the package the doc
pages say so and point at ``/openapi.json``.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS_URL = "/docs/assets"
SWAGGER_JS, SWAGGER_CSS, REDOC_JS, FAVICON = (
    "swagger-ui-bundle.js",
    "swagger-ui.css",
    "redoc.standalone.js",
    "favicon.png",
)


def assets_dir() -> Path | None:
    """Where the Swagger UI and ReDoc files are installed, or None."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    d = Path(fastapi_offline.__file__).parent / "static"
    needed = (SWAGGER_JS, SWAGGER_CSS, REDOC_JS, FAVICON)
    return d if all((d / name).is_file() for name in needed) else None


def _version() -> str:
    from bwv import __version__

    return __version__


def home_page(title: str, key_id: str, docs: bool) -> str:
    version = html.escape(_version())
    key = html.escape(key_id)
    docs_links = (
        '<li><a href="/docs">/docs</a>: the API, browsable (Swagger UI)</li>\n'
        '<li><a href="/redoc">/redoc</a>: the API, as a reference (ReDoc)</li>\n'
        if docs
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="icon" href="/favicon.ico">
<style>
body {{ font-family: system-ui, sans-serif; max-width: 44em; margin: 2em auto;
       padding: 0 1em; line-height: 1.5; color: #222; }}
code {{ background: #f3f3f3; padding: 0 .2em; }}
</style>
</head>
<body>
<h1>bwv dock</h1>
<p>This is a <strong>bwv dock</strong> (version {version}): it takes in the signed,
encrypted footage of docked body-worn cameras, verifies it, keeps it with a custody log and
answers each camera with a signed receipt. Cameras talk to it over the API under
<code>/v1/</code>; every answer is signed by the dock key.</p>
<p>Dock key id: <code>{key}</code> (compare it with the one a camera pinned).</p>
<ul>
{docs_links}<li><a href="/openapi.json">/openapi.json</a>: the OpenAPI description</li>
<li><a href="/v1/dock">/v1/dock</a>: the dock's public key, to pin on a camera</li>
</ul>
<p>On the dock machine, <code>bwv dock status --store DIR</code> lists the cameras and
what the dock holds; <code>bwv dock --help</code> shows the rest.</p>
</body>
</html>
"""


def pages_router(title: str, key_id: str, openapi_url: str, assets: Path | None) -> APIRouter:
    """``/``, ``/favicon.ico``, ``/docs`` and ``/redoc`` (the docs pages use ``assets``,
    served under ``ASSETS_URL``; without them they say what is missing)."""
    router = APIRouter(include_in_schema=False)
    page = home_page(title, key_id, assets is not None)

    @router.get("/")
    def home() -> HTMLResponse:
        return HTMLResponse(page)

    if assets is None:
        missing = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>bwv dock API</title>"
            "</head><body><p>The API documentation pages need the fastapi-offline package, "
            f"which is not installed. The API is described at "
            f"<a href='{openapi_url}'>{openapi_url}</a>.</p></body></html>"
        )

        @router.get("/docs")
        @router.get("/redoc")
        def no_docs() -> HTMLResponse:
            return HTMLResponse(missing)

        return router

    @router.get("/favicon.ico")
    def favicon() -> FileResponse:
        return FileResponse(assets / FAVICON, media_type="image/png")

    @router.get("/docs")
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title}: API",
            swagger_js_url=f"{ASSETS_URL}/{SWAGGER_JS}",
            swagger_css_url=f"{ASSETS_URL}/{SWAGGER_CSS}",
            swagger_favicon_url="/favicon.ico",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @router.get("/redoc")
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title}: API reference",
            redoc_js_url=f"{ASSETS_URL}/{REDOC_JS}",
            redoc_favicon_url="/favicon.ico",
            with_google_fonts=False,
        )

    return router


def mount_pages(app: FastAPI, key_id: str) -> None:
    """Add the pages (``pages_router``) and the local assets to ``app`` (made with
    ``docs_url=None, redoc_url=None``)."""
    assets = assets_dir()
    if assets is not None:
        app.mount(ASSETS_URL, StaticFiles(directory=assets), name="docs-assets")
    app.include_router(pages_router(app.title, key_id, app.openapi_url or "/openapi.json", assets))
