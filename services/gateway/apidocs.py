"""The API's documents as pages that work offline: Swagger UI at ``/docs``, ReDoc at ``/redoc``,
and the landing page for MLflow's "View run" links at ``/mlflow/<project>/``.

FastAPI's own ``/docs`` and ``/redoc`` load their scripts and styles from a CDN and start Swagger
UI with an inline script, so they are blank on a machine without internet access and would
need a policy that trusts other hosts. Here the scripts and styles are package data (vendored
from the npm registry's ``swagger-ui-dist`` and ``redoc``: ``static/vendor/README.md``), the
start-up code is a file of its own, and every page and file carries the web UI's same-origin
Content-Security-Policy.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response

from cairn.kernel.errors import InvalidInput, NotFound
from cairn.kernel.ids import NAME_RE
from cairn.services.gateway.webui import CSP, NO_CACHE, SECURITY_HEADERS

STATIC = Path(__file__).parent / "static"
# name under /docs/assets/ -> file: a fixed list, so no request names a path of its own
ASSETS = {
    "swagger-ui-bundle.js": STATIC / "vendor" / "swagger-ui" / "swagger-ui-bundle.js",
    "swagger-ui.css": STATIC / "vendor" / "swagger-ui" / "swagger-ui.css",
    "redoc.standalone.js": STATIC / "vendor" / "redoc" / "redoc.standalone.js",
    "swagger-init.js": STATIC / "swagger-init.js",
    "mlflow-view-run.js": STATIC / "mlflow-view-run.js",
}
# ReDoc (styled-components, and its bundled stylesheets) can only style itself with <style>
# elements it writes at run time, whose content no hash or nonce of ours can cover, and runs its
# search in a worker made from a blob: URL by its own (same-origin) script: its page alone allows
# inline styles and blob: workers. Scripts stay this origin's files only, which is what keeps a
# document's text from running as code. Its side menu's "Redocly" badge is an image on
# Redocly's CDN: the policy blocks it (no request leaves) and ReDoc hides it when it fails.
REDOC_CSP = (CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
             + "; worker-src 'self' blob:")
# the vendored files change only with a new release of the package, which changes their content
ASSET_CACHE = "public, max-age=86400"

SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Cairn API: Swagger UI</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/swagger-init.js"></script>
</body></html>
"""

# ReDoc's standalone bundle starts itself on the <redoc spec-url> element: no start-up script.
REDOC_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Cairn API: ReDoc</title></head>
<body><redoc spec-url="/openapi.json"></redoc>
<script src="/docs/assets/redoc.standalone.js"></script>
</body></html>
"""

MLFLOW_LINK_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Cairn: opening the MLflow link</title>
<script src="/docs/assets/mlflow-view-run.js"></script></head>
<body><p>Opening this run in Cairn's web UI&hellip; If nothing happens, go to
<a href="/">the projects page</a> (this page needs JavaScript).</p></body></html>
"""


def _page(html: str, csp: str = CSP) -> HTMLResponse:
    headers = {**SECURITY_HEADERS, "Content-Security-Policy": csp, "Cache-Control": NO_CACHE}
    return HTMLResponse(html, headers=headers)


def asset(name: str) -> Response:
    """One of :data:`ASSETS` with its content type; 404 for any other name."""
    path = ASSETS.get(name)
    if path is None or not path.is_file():
        raise NotFound(f"no file {name!r} under /docs/assets/; the API's documents are at /docs and /redoc")
    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if media.startswith("text/") or media.endswith("javascript"):
        media += "; charset=utf-8"
    return FileResponse(path, media_type=media, headers={**SECURITY_HEADERS, "Cache-Control": ASSET_CACHE})


def serve_api_docs(app: FastAPI) -> None:
    """Replace FastAPI's CDN-backed ``/docs`` and ``/redoc`` with the local ones, and add the
    MLflow link page. Call before the web UI's catch-all route."""
    fastapi_docs = {app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) not in fastapi_docs]

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _page(SWAGGER_PAGE)

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _page(REDOC_PAGE, REDOC_CSP)

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        return asset(name)

    @app.get("/mlflow/{project}", include_in_schema=False)  # also .../<project>/: PathGuard drops one trailing slash
    async def mlflow_link(project: str) -> HTMLResponse:
        """MLflow prints ``<tracking URI>/#/experiments/<exp>/runs/<run>``; the fragment never
        reaches the server, so the page's script reads it and goes to the run in the web UI."""
        if not NAME_RE.match(project):
            raise InvalidInput(f"{project!r} is not a project name: use /mlflow/<project>/, the project "
                               "your MLFLOW_TRACKING_URI names", details={"field": "project"})
        return _page(MLFLOW_LINK_PAGE)
