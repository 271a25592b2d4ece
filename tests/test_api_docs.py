"""/docs (Swagger UI) and /redoc work offline: every script and stylesheet they load is a file of
this gateway, served with its content type, and the pages keep the same-origin
Content-Security-Policy. The MLflow link page's input checks are here too; the browser side of
both is in tests/ui/test_mlflow_links.py."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import loopback
import pytest

from platform_harness import Platform

CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}


class Links(HTMLParser):
    """Every URL a page loads or links to (src and href attributes)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def self_only(csp: str, inline_styles: bool = False) -> bool:
    """Each fetch directive names this origin, 'none' or inline images only: no other host.
    Scripts are this origin's files only; styles too, unless ``inline_styles`` (ReDoc's page)."""
    for directive in filter(None, (d.strip() for d in csp.split(";"))):
        name, *sources = directive.split()
        styles = name == "style-src" and inline_styles
        if not set(sources) <= {"'self'", "'none'", "data:", "blob:"} | ({"'unsafe-inline'"} if styles else set()):
            return False
        if name == "script-src" and sources != ["'self'"]:
            return False
        if name == "style-src" and sources != (["'self'", "'unsafe-inline'"] if styles else ["'self'"]):
            return False
    return True


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_documents_load_only_files_of_this_origin(platform: Platform, page: str) -> None:
    resp = loopback.get(f"{platform.gateway}{page}")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    csp = resp.headers["content-security-policy"]
    assert self_only(csp, inline_styles=page == "/redoc"), csp
    assert not re.search(r"(https?:)?//", resp.text), "the page names another host"
    links = Links()
    links.feed(resp.text)
    assert links.urls, "the page loads nothing: Swagger UI and ReDoc are scripts"
    for url in links.urls:
        assert url.startswith("/docs/assets/"), url
        asset = loopback.get(f"{platform.gateway}{url}")
        assert asset.status_code == 200, url
        suffix = url[url.rindex("."):]
        assert asset.headers["content-type"].split(";")[0] == CONTENT_TYPES[suffix], url
        assert self_only(asset.headers["content-security-policy"])
        assert len(asset.content) > 100, url
    assert loopback.get(f"{platform.gateway}/openapi.json").status_code == 200  # what both pages read


def test_swagger_ui_starts_from_a_script_file_not_inline(platform: Platform) -> None:
    """An inline script would need 'unsafe-inline': every <script> has a src and no body."""
    html = loopback.get(f"{platform.gateway}/docs").text
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all("src=" in attrs and not body.strip() for attrs, body in scripts)
    init = loopback.get(f"{platform.gateway}/docs/assets/swagger-init.js").text
    assert "SwaggerUIBundle(" in init and '"/openapi.json"' in init


def test_an_unknown_docs_asset_is_a_404_naming_the_pages(platform: Platform) -> None:
    for name in ("nope.js", "..%2Fapidocs.py", "swagger-ui.css.map"):
        resp = loopback.get(f"{platform.gateway}/docs/assets/{name}")
        assert resp.status_code in (400, 404), name
        assert "error" in resp.json()
    resp = loopback.get(f"{platform.gateway}/docs/assets/apidocs.py")
    assert resp.status_code == 404 and "/docs and /redoc" in resp.json()["error"]["message"]


def test_the_mlflow_link_page_is_a_same_origin_script(platform: Platform) -> None:
    resp = loopback.get(f"{platform.gateway}/mlflow/vision/")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    assert self_only(resp.headers["content-security-policy"])
    links = Links()
    links.feed(resp.text)
    assert "/docs/assets/mlflow-view-run.js" in links.urls
    script = loopback.get(f"{platform.gateway}/docs/assets/mlflow-view-run.js")
    assert script.status_code == 200 and "location.replace" in script.text


def test_the_mlflow_link_page_refuses_a_name_that_is_no_project(platform: Platform) -> None:
    resp = loopback.get(f"{platform.gateway}/mlflow/Not%20A%20Project/")
    assert resp.status_code == 422
    assert "/mlflow/<project>/" in resp.json()["error"]["message"]
