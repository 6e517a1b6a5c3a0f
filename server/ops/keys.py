"""`trellis keys ...` and the serve-time check that `AUTH_MODE=none` stays on loopback."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
from collections.abc import Callable

from server.core.settings import Settings

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether binding `host` only accepts connections from this machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def refuse_insecure_bind(settings: Settings, *, insecure_no_auth: bool) -> str | None:
    """Why `trellis serve` must not start, or None."""
    if settings.auth_mode != "none" or is_loopback(settings.host):
        return None
    if insecure_no_auth or settings.allow_insecure_no_auth:
        return None
    return (
        f"trellis: refusing to listen on {settings.host} with AUTH_MODE=none: anyone who can "
        "reach this port would control every thread and run. Set AUTH_MODE=api_key (then "
        "`trellis keys create --owner NAME`), jwt or custom, or bind to 127.0.0.1. "
        "(--insecure-no-auth / ALLOW_INSECURE_NO_AUTH=true overrides this; do not.)"
    )


def add_key_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    settings_for: Callable[[argparse.Namespace], Settings],
) -> None:
    """Register `trellis keys create|list|revoke`; `settings_for` resolves the database."""
    keys = sub.add_parser("keys", help="manage API keys (AUTH_MODE=api_key)")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="create a key; it is printed once")
    create.add_argument("--owner", required=True, help="the identity that will own resources")
    create.add_argument("--name", help="a label for the key")
    create.add_argument(
        "--scopes",
        nargs="+",
        default=["read", "write"],
        choices=["read", "write", "*"],
        help="read: GET/search/history/join; write: create, update, delete, runs",
    )
    list_ = actions.add_parser("list", help="list keys (never their secrets)")
    list_.add_argument("--owner", help="only this owner's keys")
    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    keys.set_defaults(func=lambda args: run_keys(args, settings_for(args)))


def run_keys(args: argparse.Namespace, settings: Settings) -> int:
    """Execute a `trellis keys` command."""
    return asyncio.run(_keys(args, settings))


async def _keys(args: argparse.Namespace, settings: Settings) -> int:
    from server.auth import api_keys
    from server.db import api_key_rows, migrate
    from server.db.engine import create_engine

    await asyncio.to_thread(migrate.upgrade_trellis, settings.sqlalchemy_url)
    engine = create_engine(settings.model_copy(update={"db_pool_max_size": 1}))
    try:
        async with engine.begin() as conn:
            if args.keys_command == "create":
                key = api_keys.generate(args.owner, tuple(dict.fromkeys(args.scopes)))
                await api_keys.store(conn, key, name=args.name)
                print(key.secret_key)
                print(
                    f"key id {key.key_id} for owner {key.owner!r}, scopes {list(key.scopes)}; "
                    "the key is shown only now, store it safely",
                    file=sys.stderr,
                )
                return 0
            if args.keys_command == "list":
                rows = await api_key_rows.list_keys(conn, args.owner)
                header = ("KEY ID", "OWNER", "SCOPES", "CREATED", "LAST USED")
                print("".join(f"{h:<{w}}" for h, w in zip(header, _WIDTHS, strict=True)), "REVOKED")
                for row in rows:
                    print(
                        f"{row['key_id']:<14}{row['owner'][:23]:<24}{','.join(row['scopes']):<16}"
                        f"{_ts(row['created_at']):<27}{_ts(row['last_used_at']):<27}"
                        f"{_ts(row['revoked_at'])}"
                    )
                return 0
            revoked = await api_key_rows.revoke(conn, args.key_id)
            if revoked is None:
                print(f"trellis: no key {args.key_id!r}", file=sys.stderr)
                return 1
            print(f"key {args.key_id} revoked at {revoked.isoformat()}")
            return 0
    finally:
        await engine.dispose()


_WIDTHS = (14, 24, 16, 27, 27)


def _ts(value: object) -> str:
    return value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else "-"
