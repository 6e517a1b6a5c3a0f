"""Who the client is, over real HTTP: `X-Forwarded-For` counts only from `FORWARDED_ALLOW_IPS`,
and the failed-authentication limit (30 a minute, the default) never locks out a valid key."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.security import create_key, security_settings, trellis

LIMIT = 30
BAD = {"x-api-key": "trellis_aaaaaaaaaaaa_not-a-real-secret"}


def settings(security_db: str, **overrides: Any) -> Any:
    return security_settings(
        security_db, auth_mode="api_key", rate_limit_auth_failures=f"{LIMIT}/minute", **overrides
    )


async def statuses(http: httpx.AsyncClient, headers: list[dict[str, str]]) -> list[int]:
    return [(await http.post("/threads/search", json={}, headers=h)).status_code for h in headers]


async def test_forwarded_for_from_loopback_is_ignored_by_default(security_db: str) -> None:
    config = settings(security_db)
    assert config.forwarded_allow_ips == []
    async with trellis(config) as url, httpx.AsyncClient(base_url=url, timeout=20) as http:
        good = await create_key(config, "alice")
        # Each failure claims another address; all of them count against the real peer.
        claimed = [BAD | {"x-forwarded-for": f"203.0.113.{i}"} for i in range(LIMIT + 1)]
        assert await statuses(http, claimed) == [401] * LIMIT + [429]
        # Nor can a peer pick an address to lock out: the valid key still gets through.
        assert await statuses(http, [{"x-api-key": good.secret_key}]) == [200]
        valid_claiming = {"x-api-key": good.secret_key, "x-forwarded-for": "198.51.100.1"}
        assert await statuses(http, [valid_claiming, BAD]) == [200, 429]


async def test_forwarded_for_is_honoured_from_a_listed_proxy(security_db: str) -> None:
    config = settings(security_db, forwarded_allow_ips="127.0.0.1")
    async with trellis(config) as url, httpx.AsyncClient(base_url=url, timeout=20) as http:
        good = await create_key(config, "alice")
        client = {"x-forwarded-for": "203.0.113.7"}
        assert await statuses(http, [BAD | client] * (LIMIT + 1)) == [401] * LIMIT + [429]
        # Another client behind the same proxy is its own address.
        assert await statuses(http, [BAD | {"x-forwarded-for": "203.0.113.8"}]) == [401]
        # A valid key from the locked-out address is accepted; bad ones stay refused.
        assert await statuses(http, [{"x-api-key": good.secret_key} | client, BAD | client]) == [
            200,
            429,
        ]
