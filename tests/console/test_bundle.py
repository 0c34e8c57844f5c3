"""The built console names no address it would load from the internet.

Addresses in the build that are never fetched are listed here, each with the reason; any other
http(s) address in a built file fails the test (a CDN, a web font, a tile or style server)."""

from __future__ import annotations

import re

import pytest

from tests.console.conftest import CONSOLE_DIST

pytestmark = pytest.mark.skipif(
    not (CONSOLE_DIST / "index.html").exists(), reason="the console is not built (npm run build in console/)"
)

URL = re.compile(r"https?://[^\s\"'`)<>\\]+")
NEVER_FETCHED = (
    "http://www.w3.org/",  # XML namespaces of SVG, XHTML, MathML, XLink
    "https://vuejs.org/error-reference/",  # link in Vue's error messages
    "https://maplibre.org/",  # MapLibre's attribution link (the control is off)
    "https://maplibre.invalid/",  # MapLibre's placeholder base for relative URLs (.invalid never resolves)
    "https://github.com/",  # issue and licence links in comments and messages
    "https://wiki.openstreetmap.org/wiki/This_map_requires_WebGL",  # link in the no-WebGL message
)


def test_no_outside_address_in_the_build() -> None:
    files = [path for path in CONSOLE_DIST.rglob("*") if path.suffix in {".html", ".js", ".css", ".mjs"}]
    assert any(path.suffix == ".js" for path in files)
    found = {
        (path.name, url)
        for path in files
        for url in URL.findall(path.read_text(errors="replace"))
        if not url.startswith(NEVER_FETCHED)
    }
    assert found == set()


def test_the_page_loads_only_the_hubs_own_files() -> None:
    page = (CONSOLE_DIST / "index.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources
    assert all(source.startswith("/") and not source.startswith("//") for source in sources), sources
