"""Driving the web app in Debian's Chromium through Playwright, for tests/ui and benchmarks/bench_ui.py.

The browser is the system one (``shutil.which("chromium")``): Playwright's own download is not
possible here. Each person gets a persistent context of their own (its own user-data dir, so
its own cookie jar), launched with the background services that would reach off the machine
switched off. By default the context bypasses the page's Content-Security-Policy so the tests can
add axe-core to a page; ``bypass_csp=False`` keeps the gateway's policy in force, as a real
browser does (tests/ui/test_csp.py shows every page works under it).
"""

from __future__ import annotations

import gzip
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "ui" / "node_modules" / "axe-core" / "axe.min.js"
DIST = ROOT / "src" / "cairn" / "ui" / "dist"
VIEWPORT = {"width": 1280, "height": 800}


def chromium_path() -> str | None:
    return shutil.which("chromium")


def open_context(pw: Playwright, user_data_dir: Path, *, bypass_csp: bool = True) -> BrowserContext:
    """A headless Chromium with its own profile (cookies): one per signed-in person."""
    exe = chromium_path()
    assert exe, "Debian's chromium is not installed (apt-get install chromium)"
    user_data_dir.mkdir(parents=True, exist_ok=True)
    # Playwright takes the profile as user_data_dir (it refuses --user-data-dir in args).
    return pw.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=exe, headless=True, viewport=VIEWPORT, bypass_csp=bypass_csp,
        args=["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync"])


def sign_in(page: Page, url: str, token: str) -> None:
    """Paste a token on the sign-in page; done when the projects page shows."""
    page.goto(f"{url}/")
    page.get_by_label("Cairn token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Projects").wait_for()


@contextmanager
def signed_in(pw: Playwright, user_data_dir: Path, url: str, token: str, **context: Any) -> Iterator[Page]:
    """A page in a browser profile of its own, signed in with ``token``; the profile is closed
    when the block ends, however it ends."""
    ctx = open_context(pw, user_data_dir, **context)
    try:
        page = ctx.new_page()
        sign_in(page, url, token)
        yield page
    finally:
        ctx.close()


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => { const r = await axe.run(document);"
                           " return {passes: r.passes.length, violations: r.violations}; }")
    assert result["passes"] > 0, "axe-core checked nothing: the page is empty?"
    return [v for v in result["violations"] if v.get("impact") in ("serious", "critical")]


def describe(violations: list[dict[str, Any]]) -> str:
    return "\n".join(f"{v['impact']}: {v['id']}: {v['help']} at "
                     + ", ".join(str(n.get("target")) for n in v.get("nodes", [])[:5]) for v in violations)


def row_count_text(page: Page) -> str:
    return page.locator("p.count").inner_text()


def timed(action: Callable[[], None], done: Callable[[], None]) -> float:
    """Seconds from ``action`` to ``done`` returning (``done`` waits with a deadline of its own)."""
    t0 = time.perf_counter()
    action()
    done()
    return time.perf_counter() - t0


def bundle_gzip_bytes() -> dict[str, int]:
    """The built app's files, each gzip-compressed (level 9), as a browser would fetch them."""
    sizes = {}
    for path in sorted(DIST.rglob("*")):
        if path.is_file():
            sizes[str(path.relative_to(DIST))] = len(gzip.compress(path.read_bytes(), 9))
    return sizes


SHOTS = ROOT / "docs" / "ui"


def shot(page: Page, name: str, tmp_path: Path) -> None:
    """Every run takes the picture; only CAIRN_UI_SCREENSHOTS=1 replaces the committed one."""
    out = tmp_path / f"{name}.png"
    page.screenshot(path=str(out))
    assert out.stat().st_size > 1000
    if os.environ.get("CAIRN_UI_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, SHOTS / f"{name}.png")


def no_violations(page: Page, where: str) -> None:
    """axe-core finds no serious or critical violation on the page."""
    found = axe_violations(page)
    assert not found, f"axe-core on {where}:\n{describe(found)}"


# Every browser test module's marks (``pytestmark = BROWSER_TEST``): skipped, saying why, where
# the system Chromium or ui/node_modules (axe-core) is missing.
BROWSER_TEST = [
    pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed"),
    pytest.mark.skipif(not AXE.exists(), reason="ui/node_modules is missing: cd ui && npm ci"),
]
