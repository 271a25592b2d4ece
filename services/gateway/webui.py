"""The web UI's files: the built single-page app (``cairn/ui/dist``, package data) at ``/``.

Any GET path outside the API and the gateway's other paths answers ``index.html``, so a client-side
route such as ``/projects/x/runs/y`` reloads fine (the SPA fallback). ``/assets/<file>`` are
content-hashed by the build, so they are cached for a year; ``index.html`` is revalidated every
time, so a new build shows at once. Every answer carries a Content-Security-Policy that allows
scripts, styles and connections to this origin only (no CDN), and the usual hardening headers.
A source checkout that did not build the app gets a short page saying how, never a 500.
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

import cairn
from cairn.kernel.errors import NotFound

# paths that are never the app: the API, MLflow's, the API's documents and health
NOT_THE_APP = ("/api/", "/ajax-api/", "/mlflow/", "/docs", "/redoc", "/openapi.json", "/healthz")
NOT_THE_APP_EXACT = ("/api", "/ajax-api", "/mlflow")
ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data: blob:; "
       "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"}
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"

BUILD_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Cairn: the web UI is not built</title></head>
<body><h1>The web UI is not built in this installation</h1>
<p>The API works as usual under <code>/api/v1/</code> (see <a href="/docs">/docs</a>).</p>
<p>This looks like a source checkout whose app was not built. Build it once (Node.js 20 or newer):</p>
<pre>cd ui
npm ci
npm run build      # writes src/cairn/ui/dist/</pre>
<p>then restart the gateway. Wheels from <code>pip install .</code> include the built app.</p>
</body></html>
"""


def default_dist() -> Path:
    """The package's build: ``cairn/ui/dist`` next to the installed sources."""
    return Path(cairn.__file__).parent / "ui" / "dist"


def is_app_path(path: str) -> bool:
    return not (path.startswith(NOT_THE_APP) or path in NOT_THE_APP_EXACT)


class WebApp:
    """Answers for the app's paths from one build directory (read on every request: a rebuild in
    place shows without a restart, and a missing build is noticed, not cached)."""

    def __init__(self, dist: Path) -> None:
        self.dist = dist

    def index(self) -> Response:
        index = self.dist / "index.html"
        if not index.is_file():
            return HTMLResponse(BUILD_PAGE, headers={**SECURITY_HEADERS, "Cache-Control": NO_CACHE})
        return FileResponse(index, media_type="text/html; charset=utf-8",
                            headers={**SECURITY_HEADERS, "Cache-Control": NO_CACHE})

    def asset(self, name: str) -> Response:
        """One built asset; 404 (never the app) for a missing one, so a stale page's script tag
        fails plainly instead of running HTML as JavaScript."""
        path = self.dist / "assets" / name
        if not ASSET_NAME.match(name) or not path.is_file():
            raise NotFound(f"no asset {name!r} in this build of the web UI")
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media, headers={**SECURITY_HEADERS, "Cache-Control": IMMUTABLE})

    def top_file(self, name: str) -> Response | None:
        """A file at the build's top level besides index.html (favicon.svg, robots.txt), if any."""
        path = self.dist / name
        if name == "index.html" or not ASSET_NAME.match(name) or not path.is_file():
            return None
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media, headers={**SECURITY_HEADERS, "Cache-Control": NO_CACHE})


def serve_web_app(app: FastAPI, dist: Path | None) -> None:
    """Add the app's routes; call last, after every other route, since the fallback takes any
    GET path left over."""
    web = WebApp(dist or default_dist())
    app.state.web_app = web

    @app.get("/assets/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        return web.asset(name)

    @app.get("/{path:path}", include_in_schema=False)
    async def page(path: str, request: Request) -> Response:
        """``index.html`` for every client-side route; the API's unknown paths stay JSON 404s."""
        if not is_app_path(request.url.path):
            raise NotFound(f"no route {request.url.path!r}; the API is under /api/v1/ (see /docs)")
        if "/" not in path and (found := web.top_file(path)) is not None:
            return found
        return web.index()
