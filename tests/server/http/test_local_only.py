"""`AUTH_MODE=none` serves this machine only: web pages cannot post to it (a `text/plain` POST
needs no preflight) and DNS-rebound names are refused, while curl and the SDK keep working."""

from __future__ import annotations

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from server.core.settings import Settings
from server.http.middleware.local_only import LocalOnly, host_name
from tests.support.security import security_settings, trellis

STUDIO = "https://smith.langchain.com"
EVIL = "https://evil.example"


class Ok:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def status(
    headers: dict[str, str],
    *,
    method: str = "POST",
    bind_host: str = "127.0.0.1",
    allowed_hosts: tuple[str, ...] = (),
) -> int:
    app = LocalOnly(
        Ok(), bind_host=bind_host, allowed_hosts=list(allowed_hosts), cors_origins=[STUDIO]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8123") as http:
        return (await http.request(method, "/threads", headers=headers)).status_code


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("localhost:8123", "localhost"),
        ("LOCALHOST.", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]:8123", "[::1]"),
        ("evil.example:8123", "evil.example"),
    ],
)
def test_host_name(value: str, name: str) -> None:
    assert host_name(value) == name


@pytest.mark.parametrize("host", ["localhost:8123", "127.0.0.1:8123", "[::1]:8123", "localhost"])
async def test_loopback_hosts_are_served(host: str) -> None:
    assert await status({"host": host}) == 200


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8123", "127.0.0.1.nip.io", "10.0.0.5"]
)
async def test_foreign_hosts_are_refused(host: str) -> None:
    assert await status({"host": host}) == 403
    assert await status({"host": host}, method="GET") == 403


async def test_the_bind_host_and_allowed_hosts_are_served() -> None:
    assert await status({"host": "10.0.0.5:8123"}, bind_host="10.0.0.5") == 200
    assert await status({"host": "devbox:8123"}, allowed_hosts=("devbox",)) == 200
    assert await status({"host": "devbox:8123"}, bind_host="0.0.0.0") == 403


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, 200),  # curl, the SDK
        ({"origin": "http://127.0.0.1:8123"}, 200),  # the docs page Trellis serves
        ({"origin": STUDIO, "sec-fetch-site": "cross-site"}, 200),
        ({"origin": EVIL}, 403),
        ({"origin": EVIL, "content-type": "text/plain"}, 403),
        ({"origin": "http://localhost:3000", "sec-fetch-site": "same-site"}, 403),
        ({"origin": "null"}, 403),
        ({"sec-fetch-site": "cross-site"}, 403),
        ({"sec-fetch-site": "same-origin"}, 200),
        ({"sec-fetch-site": "none"}, 200),  # typed into the address bar
    ],
)
async def test_cross_site_requests_are_refused(headers: dict[str, str], expected: int) -> None:
    assert await status(headers) == expected


async def test_a_link_from_another_site_still_opens() -> None:
    navigation = {"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"}
    assert await status(navigation, method="GET") == 200
    assert await status(navigation, method="POST") == 403  # a form posted from that site


async def test_a_served_trellis_refuses_web_pages_but_not_curl(security_db: str) -> None:
    config: Settings = security_settings(security_db)
    assert config.auth_mode == "none"
    async with trellis(config) as url, httpx.AsyncClient(base_url=url, timeout=20) as http:
        # What a page on another site can send without a preflight.
        page = await http.post(
            "/threads",
            content=b'{"metadata": {"from": "evil"}}',
            headers={"origin": EVIL, "content-type": "text/plain"},
        )
        assert page.status_code == 403
        assert page.json()["code"] == "forbidden"
        assert "CORS_ORIGINS" in page.json()["detail"]
        rebound = await http.post("/threads/search", json={}, headers={"host": "evil.example"})
        assert rebound.status_code == 403
        assert "ALLOWED_HOSTS" in rebound.json()["detail"]
        # curl -X POST .../threads -d '...': no Origin, a form content type or none at all.
        found = await http.post(
            "/threads/search", content=b'{"metadata": {"from": "evil"}}', headers={}
        )
        assert (found.status_code, found.json()) == (200, [])
        made = await http.post("/threads", content=b"{}")
        assert made.status_code == 200
        studio = await http.post("/threads/search", json={}, headers={"origin": STUDIO})
        assert studio.status_code == 200


async def test_modes_with_credentials_are_not_restricted(security_db: str) -> None:
    config = security_settings(security_db, auth_mode="api_key")
    async with trellis(config) as url, httpx.AsyncClient(base_url=url, timeout=20) as http:
        response = await http.post("/threads/search", json={}, headers={"host": "api.example"})
        assert response.status_code == 401  # refused for want of a key, not for the host
