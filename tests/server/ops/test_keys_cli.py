"""`trellis serve` refuses AUTH_MODE=none beyond loopback; `trellis keys`; the SDK with api_key."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client

from server.cli import main
from server.core.settings import Settings
from server.db import migrate
from tests.support.security import security_settings, trellis
from tests.support.servers import ROOT, create_database, drop_database, free_port


def trellis_cli(*args: str, database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_no_auth_refuses_a_public_host(security_db: str) -> None:
    done = trellis_cli(
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        str(free_port()),
        database_url=security_db,
        AUTH_MODE="none",
    )
    assert done.returncode != 0
    assert "refusing to listen on 0.0.0.0 with AUTH_MODE=none" in done.stderr


def test_production_refuses_placeholders_and_no_auth() -> None:
    with pytest.raises(ValueError, match="placeholder"):
        Settings(environment="production", auth_mode="api_key", openai_api_key="changeme")
    with pytest.raises(ValueError, match="AUTH_MODE=none"):
        Settings(environment="production")
    with pytest.raises(ValueError, match="refused"):
        Settings(jwt_algorithms=["none"])
    assert "changeme" not in repr(Settings(openai_api_key="changeme"))


def test_keys_cli_and_migration_roundtrip(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = create_database()
    monkeypatch.setenv("DATABASE_URL", url)
    try:
        assert main(["keys", "create", "--owner", "frank", "--scopes", "read"]) == 0
        key = capsys.readouterr().out.strip()
        assert key.startswith("trellis_")
        key_id = key.split("_")[1]
        assert main(["keys", "list"]) == 0
        listed = capsys.readouterr().out
        assert key_id in listed
        assert "frank" in listed
        assert key.split("_", 2)[2] not in listed
        assert main(["keys", "revoke", "nosuchkey000"]) == 1
        assert main(["keys", "revoke", key_id]) == 0
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT revoked_at, key_hash FROM api_keys").fetchone()
        assert row is not None
        assert row[0] is not None
        assert row[1] == hashlib.sha256(key.encode()).hexdigest()  # only the hash is stored
        sqlalchemy_url = "postgresql+psycopg://" + url.split("://", 1)[1]
        migrate.downgrade(sqlalchemy_url, "0001")
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT to_regclass('api_keys')").fetchone() == (None,)
        migrate.upgrade_trellis(sqlalchemy_url)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM api_keys").fetchone() == (0,)
    finally:
        drop_database(url)


async def test_official_sdk_with_api_key(security_db: str) -> None:
    from tests.support.security import create_key

    settings = security_settings(security_db, auth_mode="api_key")
    async with trellis(settings) as url:
        key = await create_key(settings, "gina")
        client = get_client(url=url, api_key=key.secret_key)
        try:
            thread = await client.threads.create(metadata={"who": "gina"})
            result = await client.runs.wait(thread["thread_id"], "echo", input={"text": "sdk"})
            assert result["text"] == "sdk!"
            found = await client.threads.search(metadata={"who": "gina"})
            assert [t["thread_id"] for t in found] == [thread["thread_id"]]
        finally:
            await client.http.client.aclose()
        wrong = get_client(url=url, api_key="trellis_aaaaaaaaaaaa_wrong")
        try:
            with pytest.raises(httpx.HTTPStatusError) as failed:
                await wrong.threads.search()
            assert failed.value.response.status_code == 401
        finally:
            await wrong.http.client.aclose()
