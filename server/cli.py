"""The `trellis` command: serve the API, run workers, manage the schema, check the setup."""

from __future__ import annotations

import argparse
import asyncio
import sys
from importlib.metadata import version
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import SettingsError

from server.core.settings import ROOT, Settings, describe_settings_error


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    if getattr(args, "config", None):
        overrides["graphs_config"] = Path(args.config).resolve()
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None):
        overrides["port"] = args.port
    from server.ops.embedded import ensure_postgres

    return ensure_postgres(Settings(**overrides))  # type: ignore[arg-type]


def _serve(args: argparse.Namespace) -> int:
    from server.ops.keys import refuse_insecure_bind

    # Checked before anything starts or is even imported (an embedded Postgres, graphs).
    bind = Settings(**({"host": args.host} if args.host else {}))
    refusal = refuse_insecure_bind(bind, insecure_no_auth=args.insecure_no_auth)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 2

    import uvicorn

    from server.core.logging import configure
    from server.graph_host.config_keys import ConfigKeyError
    from server.http.app import create_app
    from server.http.wire import BoundedHttpToolsProtocol
    from server.ops.embedded import refuse_shared_qdrant

    settings = _settings(args)
    from server.graph_host.registry import GraphLoadError, read_config

    try:  # a wrong langgraph.json is one line, before anything starts
        read_config(settings.graphs_config)
    except GraphLoadError as exc:
        print(f"trellis: could not start: {exc}", file=sys.stderr)
        return 2
    if refusal := refuse_shared_qdrant(settings, command="serve"):
        print(refusal, file=sys.stderr)
        return 1
    configure(settings.log_level, settings.log_format)
    try:
        app = create_app(settings, worker=not args.no_worker)
    except ConfigKeyError as exc:
        print(f"trellis: {exc}", file=sys.stderr)
        return 1
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,  # the app trusts `FORWARDED_ALLOW_IPS` only (`create_app`)
        timeout_graceful_shutdown=10,
        http=BoundedHttpToolsProtocol,  # request heads bounded as with h11
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    from server.core.logging import configure, report_fatal
    from server.worker import run_worker

    settings = _settings(args)
    if args.concurrency:
        settings = settings.model_copy(update={"run_concurrency": args.concurrency})
    from server.ops.embedded import refuse_shared_qdrant

    if refusal := refuse_shared_qdrant(settings, command="worker"):
        print(refusal, file=sys.stderr)
        return 1
    configure(settings.log_level, settings.log_format)
    # The same event loop as `serve` (uvicorn picks uvloop when it is installed): a
    # worker's time goes to many small database and Redis round trips.
    try:
        import uvloop
    except ImportError:
        runner = asyncio.Runner()
    else:
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    try:
        with runner:
            runner.run(run_worker(settings))
    except Exception as error:
        report_fatal("worker stopped", error)
        return 1
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from server.db import migrate

    settings = _settings(args)
    if args.action == "downgrade":
        migrate.downgrade(settings.sqlalchemy_url, args.revision or "-1")
    else:
        migrate.upgrade(settings.sqlalchemy_url, settings.psycopg_url, args.revision or "head")
    print(f"trellis: schema {args.action} done")
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from server.ops.ingest import ProgressBar, ingest_local, ingest_remote

    _progress = ProgressBar()
    if args.server:
        report = asyncio.run(
            ingest_remote(
                args.paths,
                server=args.server,
                collection=args.collection,
                api_key=args.api_key,
                progress=_progress,
            )
        )
    else:
        settings = Settings()  # no database: ingesting needs only the index and the embedder
        report = asyncio.run(
            ingest_local(
                args.paths, settings=settings, collection=args.collection, progress=_progress
            )
        )
    print(
        f"trellis: ingested {report['documents']} documents, {report['chunks']} chunks "
        f"into {report['collection']!r} ({report['total_chunks']} chunks in all)"
    )
    print(f"trellis: sources are paths relative to {report['root']}")
    for source in report.get("skipped", []):
        print(f"trellis: skipped {source} (empty or not UTF-8 text)", file=sys.stderr)
    for source, same_as in report["duplicates"]:
        print(f"trellis: duplicate: {source} has the same text as {same_as}", file=sys.stderr)
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from server.ops.doctor import diagnose, report

    overrides = {"graphs_config": Path(args.config).resolve()} if args.config else {}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    lines, healthy = report(asyncio.run(diagnose(settings)))
    for line in lines:
        print(line)
    print("trellis: all checks passed" if healthy else "trellis: some checks failed (FAIL above)")
    return 0 if healthy else 1


def _setting(name: str, what: str) -> str:
    """An option's help: what it sets, its default, and the variable that sets it too."""
    default = Settings.model_fields[name].default
    if isinstance(default, Path) and default.is_relative_to(ROOT):
        default = default.relative_to(ROOT)
    return f"{what} (default: {default}; environment: {name.upper()})"


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    root = argparse.ArgumentParser(prog="trellis", description=__doc__)
    root.add_argument("--version", action="version", version=f"trellis {version('trellis')}")
    sub = root.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the LangGraph Server API")
    serve.add_argument("--config", help=_setting("graphs_config", "path to a langgraph.json"))
    serve.add_argument("--host", help=_setting("host", "address to listen on"))
    serve.add_argument("--port", type=int, help=_setting("port", "port to listen on"))
    serve.add_argument("--no-worker", action="store_true", help="serve the API only")
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help=_setting(
            "allow_insecure_no_auth",
            "allow AUTH_MODE=none on a non-loopback host (never in production)",
        ),
    )
    serve.set_defaults(func=_serve)

    worker = sub.add_parser("worker", help="execute queued runs")
    worker.add_argument("--config", help=_setting("graphs_config", "path to a langgraph.json"))
    worker.add_argument(
        "--concurrency", type=int, help=_setting("run_concurrency", "runs executed at once")
    )
    worker.set_defaults(func=_worker)

    ingest = sub.add_parser("ingest", help="index text and Markdown files for the assistant")
    ingest.add_argument("paths", nargs="+", help="files or directories (.md, .txt)")
    ingest.add_argument("--collection", help=_setting("collection", "Qdrant collection"))
    ingest.add_argument("--server", help="send through a running Trellis at this URL")
    ingest.add_argument("--api-key", help="API key for --server")
    ingest.set_defaults(func=_ingest)

    migrate = sub.add_parser("migrate", help="apply or revert Trellis' schema")
    migrate.add_argument("action", nargs="?", choices=["upgrade", "downgrade"], default="upgrade")
    migrate.add_argument("revision", nargs="?", help="target revision (default head / -1)")
    migrate.set_defaults(func=_migrate)

    doctor = sub.add_parser(
        "doctor",
        help="check the configuration, Postgres, Redis, Qdrant, the model endpoint, OCR and "
        "the graphs; exits 1 when one fails",
    )
    doctor.add_argument("--config", help=_setting("graphs_config", "path to a langgraph.json"))
    doctor.set_defaults(func=_doctor)

    from server.ops.keys import add_key_commands

    add_key_commands(sub, _settings)
    return root


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `trellis` console script."""
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (ValidationError, SettingsError) as exc:
        for line in describe_settings_error(exc):
            print(f"trellis: configuration: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
