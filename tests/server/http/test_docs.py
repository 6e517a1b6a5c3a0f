"""The interactive docs work offline: `/docs` and `/redoc` load only assets the server itself
serves (no CDN), and those assets are public like the pages, even with authentication on."""

from __future__ import annotations

import re

import httpx
import pytest

from server.http.route_table import DOCS_ASSETS, DOCS_ASSETS_URL, PUBLIC_PATHS
from tests.support.security import security_settings, trellis

_REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")
_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


def references(html: str) -> list[str]:
    """Every URL a page loads: script and link targets, and the spec the UI fetches."""
    return [a or b for a, b in _REFERENCE.findall(html)]


@pytest.mark.parametrize(
    ("page", "must_load"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}),
        ("/redoc", {"redoc.standalone.js", "favicon.png"}),
    ],
)
async def test_docs_pages_load_only_local_assets(
    http: httpx.AsyncClient, page: str, must_load: set[str]
) -> None:
    response = await http.get(page)
    assert response.status_code == 200
    assert "://" not in response.text, response.text
    urls = references(response.text)
    assert urls, response.text
    for url in urls:
        assert re.match(r"/[^/]", url), f"{page} loads {url}"
    assets = {url for url in urls if url.startswith(DOCS_ASSETS_URL + "/")}
    assert {url.rsplit("/", 1)[1] for url in assets} == must_load
    assert "/openapi.json" in urls or "/openapi.json" in response.text
    for url in assets:
        asset = await http.get(url)
        assert asset.status_code == 200, url
        assert _TYPES[url[url.rindex(".") :]] in asset.headers["content-type"], url
        assert len(asset.content) > 1000, url
    # Swagger UI's bundle is the real thing, not a placeholder.
    if page == "/docs":
        bundle = await http.get(f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js")
        assert "SwaggerUIBundle" in bundle.text
    assert (await http.get("/docs/oauth2-redirect")).status_code == 200


def test_every_docs_asset_is_public() -> None:
    assert DOCS_ASSETS <= PUBLIC_PATHS
    assert {path.rsplit("/", 1)[1] for path in DOCS_ASSETS} == {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "redoc.standalone.js",
        "favicon.png",
    }


async def test_docs_and_assets_need_no_key_when_auth_is_on(security_db: str) -> None:
    async with (
        trellis(security_settings(security_db, auth_mode="api_key")) as url,
        httpx.AsyncClient(base_url=url, timeout=20) as http,
    ):
        for page in ("/docs", "/redoc"):
            html = (await http.get(page)).text
            for asset in references(html):
                if asset.startswith(DOCS_ASSETS_URL):
                    assert (await http.get(asset)).status_code == 200, asset
        # Only the named assets are public: anything else under the mount still needs a key.
        assert (await http.get(f"{DOCS_ASSETS_URL}/other.js")).status_code == 401
        assert (await http.get("/threads/search")).status_code == 401
