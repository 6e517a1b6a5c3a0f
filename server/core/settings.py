"""Process settings: the one place that reads the environment.

Everything else receives values from a `Settings` instance passed down from the
edge (the CLI or `create_app`). Per-run knobs live in graph context schemas,
not here.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated, Literal

from limits import parse as parse_rate
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

ROOT = Path(__file__).resolve().parents[2]

Environment = Literal["development", "test", "production"]
"""Where Trellis runs; placeholder secrets are refused outside development."""

LogFormat = Literal["json", "text"]
"""`json` writes one JSON object per line (default); `text` is for humans."""

Durability = Literal["sync", "async", "exit"]
"""When LangGraph persists checkpoints: every step synchronously, in the background, or at exit."""

AuthMode = Literal["none", "api_key", "jwt", "custom"]
"""How requests are authenticated: not at all (local development only), Trellis API keys,
JWT bearer tokens checked against a JWKS, or the `langgraph_sdk.Auth` object named by the
`auth` section of `langgraph.json`."""

RateLimitStrategy = Literal["moving-window", "fixed-window", "sliding-window-counter"]
"""The `limits` library strategy used for rate limits."""

PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "change_me", "changethis", "secret", "password", "xxx", "todo"}
)
"""Values refused as secrets outside `environment=development`."""

_REFUSED_JWT_ALGORITHMS = frozenset({"none", "hs256", "hs384", "hs512"})
_HOST = re.compile(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]")

# As `tools.retrieval.check_collection_name`: "__owner_" marks owners' own collections.
_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_OWNER_MARK = "__owner_"
_WORST_IMAGE_BYTES_PER_PIXEL = 9


def _collection_name(name: str) -> str:
    if not _COLLECTION_NAME.match(name):
        raise ValueError(
            f"{name!r} is not a collection name (1-64 letters, digits, '_' or '-', "
            "starting with a letter or digit)"
        )
    if _OWNER_MARK in name.lower():
        raise ValueError(f"{name!r} contains {_OWNER_MARK!r}, reserved for owners' collections")
    return name


class Settings(BaseSettings):
    """Trellis process settings, read from the environment and `.env`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_file_encoding="utf-8")

    environment: Environment = "development"
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        description="Postgres for Trellis tables, checkpoints and the store.",
    )
    embedded_data_dir: Path = ROOT / ".trellis"
    """Where embedded services (Postgres when none is reachable, Qdrant) keep their data."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_max_connections: int = Field(default=50, ge=4)
    """The most pooled Redis connections a process opens; past it, commands wait for one
    (`redis_pool_timeout_seconds`) instead of opening more. Two more are kept apart: the
    event writer's and the event feed's."""
    redis_pool_timeout_seconds: float = Field(default=20.0, gt=0)
    """How long a command waits for a pooled Redis connection before it fails."""
    db_pool_min_size: int = Field(default=2, ge=1)
    db_pool_max_size: int = Field(default=20, ge=1)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    db_pool_check_idle_seconds: float = Field(default=5.0, ge=0)
    """A pooled connection not handed out for longer than this is pinged before use; one used
    more recently is handed out as is (a ping per checkout costs a round trip per query)."""
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)
    db_slow_query_ms: float = Field(default=500.0, ge=0)
    """A named statement of the run path slower than this is logged (its name and duration,
    never its parameters) on `trellis.db.slow`; 0 turns the log off."""

    host: str = "127.0.0.1"
    port: int = Field(default=8123, ge=1, le=65535)
    """8123, like the official `langgraph up` deployment."""
    cors_origins: list[str] = Field(
        default_factory=lambda: ["https://smith.langchain.com"],
        description="Origins allowed by CORS; LangGraph Studio runs at https://smith.langchain.com.",
    )
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Proxies trusted to set `X-Forwarded-For`/`-Proto` (addresses or networks, comma-separated
    or a JSON list; `*` trusts every peer). Empty (default): the headers are ignored and the
    peer address is the client, so no caller can choose the address it is limited by."""
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """With `auth_mode=none`, `Host` names served besides localhost, 127.0.0.1, [::1] and
    `host` (comma-separated or a JSON list); any other is refused, against DNS rebinding."""
    log_level: str = "INFO"
    log_format: LogFormat = "json"

    metrics_public_addresses: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Addresses or networks (comma-separated or a JSON list) whose requests to `GET /metrics`
    need no credentials: a Prometheus scraper's. Empty (default): `/metrics` is protected like
    the rest of the API."""
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """`trellis worker` only: serve this process' metrics at `http://METRICS_HOST:METRICS_PORT/`
    (each worker exports its own; no credentials there, so bind it to a private address).
    None (default): a worker exports none."""
    metrics_host: str = "127.0.0.1"
    """Where a worker's metrics port listens."""
    otel_traces_exporter: Literal["none", "otlp", "console"] = "none"
    """OpenTelemetry traces (the `otel` extra): `otlp` sends spans to
    `OTEL_EXPORTER_OTLP_ENDPOINT` over HTTP, `console` prints them; `none` (default): off,
    and free (no span is made)."""
    otel_exporter_otlp_endpoint: str = "http://localhost:4318"
    """The OTLP/HTTP collector (`/v1/traces` is appended, as the OpenTelemetry spec says)."""
    otel_exporter_otlp_headers: SecretStr | None = None
    """Headers for the collector, `key=value` pairs separated by commas (an API key...)."""
    otel_service_name: str = "trellis"
    """The `service.name` of every span."""
    metrics_enabled: bool = True
    """Off: `GET /metrics` answers 404, a worker serves no metrics port, and runs, requests
    and Redis commands are not measured (no callback handler, no timers)."""

    graphs_config: Path = ROOT / "langgraph.json"
    default_durability: Durability = "sync"
    run_concurrency: int = Field(default=32, ge=1, description="Runs executed at once per process.")
    run_concurrency_per_owner: int | None = Field(default=None, ge=1)
    """Running runs one owner may have at once, across all workers; more of its runs wait
    while other owners' runs start. None: half of RUN_CONCURRENCY (at least 1)."""
    run_timeout_seconds: float = Field(default=3600.0, gt=0)
    """The longest a run may execute; then it ends with status `timeout` and frees its slot.
    An assistant may ask for less (`config.configurable.run_timeout_seconds`), never more."""
    run_max_recursion_limit: int = Field(default=1000, ge=1)
    """The highest `config.recursion_limit` (graph steps per run) a caller or an assistant may
    set; more is refused with 422 (LangGraph's default is 25)."""
    run_max_revisions: int = Field(default=5, ge=0)
    """The highest `max_revisions` (critic revision rounds) a run's context may ask for."""
    run_lease_seconds: float = Field(default=4.0, gt=0.5)
    """How long a worker's claim on a run lasts without a heartbeat; takeover happens after it."""
    run_sweep_seconds: float = Field(default=1.0, gt=0)
    """How often workers look for runs whose worker died."""
    run_fault_attempts: int = Field(default=6, ge=1, le=100)
    """How many times a run is attempted when an infrastructure fault (a lost database
    connection, a restart, a serialization failure, a pool timeout) interrupts it; then it
    ends `error` naming the fault. Faults raised by a graph's own code fail it at once."""
    run_fault_backoff_seconds: float = Field(default=0.5, ge=0)
    """How long a run interrupted by an infrastructure fault waits before it is claimed
    again (doubled per attempt, at most 10 s)."""
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    """On SIGTERM, how long running steps may take to finish before their leases are released."""
    run_event_retention_seconds: int = Field(default=3600, ge=1)
    """How long a finished run's events stay replayable, when it was created with
    `stream_resumable` (as the official server, only those are kept for replay)."""
    run_event_max_length: int = Field(default=100_000, ge=100)
    """At most this many events are kept per run (older ones are trimmed)."""
    run_event_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """At most this many bytes of event data are kept per run (older events are trimmed)."""
    run_event_grace_seconds: int = Field(default=10, ge=1)
    """How long a finished run's events stay for readers still catching up, when the run
    was not created with `stream_resumable` (those stay `run_event_retention_seconds`)."""
    thread_values_max_bytes: int = Field(default=16 * 1024, ge=0)
    """The bound of the copy of a thread's values its row keeps for search (`values` filters);
    larger top-level keys are read from the latest checkpoint instead."""
    wait_keepalive_seconds: float = Field(default=5.0, gt=0)
    sse_heartbeat_seconds: float = Field(default=10.0, gt=0)
    stream_end_event: bool = Field(
        default=False,
        description=(
            "Close a finished run's stream with an `end` event carrying its status. The "
            "official server just closes the stream, so the SDK then reads the run back to "
            "tell a finished run from a cut connection; with `end` it need not. Clients "
            "that list every event see one more."
        ),
    )
    request_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Deadline of non-streaming requests (504 after it)."
    )

    auth_mode: AuthMode = "none"
    allow_insecure_no_auth: bool = False
    """Let `trellis serve` listen beyond loopback with `auth_mode=none` (never do this)."""
    jwt_jwks_url: str | None = None
    """Where the identity provider publishes its signing keys (operator-configured)."""
    jwt_issuer: str | None = None
    jwt_audience: list[str] = Field(default_factory=list)
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    jwt_owner_claim: str = "sub"
    jwt_permissions_claim: str = "permissions"
    """A list claim, or a space-separated string such as OAuth's `scope`."""
    jwt_display_name_claim: str = "name"
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwks_cache_seconds: float = Field(default=300.0, gt=0)
    jwks_min_refetch_seconds: float = Field(default=10.0, ge=0)
    """At most one JWKS refetch per this many seconds when a token names an unknown `kid`."""
    jwks_timeout_seconds: float = Field(default=5.0, gt=0)

    rate_limit_enabled: bool = True
    rate_limit_storage_url: str | None = None
    """A `limits` storage URL; default: `redis_url` as `async+redis://`."""
    rate_limit_key_prefix: str = "trellis-limits"
    rate_limit_strategy: RateLimitStrategy = "moving-window"
    rate_limit_read: str = "6000/minute"
    """Reads (GET, search, count, history) per identity."""
    rate_limit_write: str = "1200/minute"
    """Creates, updates and deletes other than runs, per identity."""
    rate_limit_runs: str = "600/minute"
    """Run creation (stream, wait, background, batch) per identity."""
    rate_limit_auth_failures: str = "30/minute"
    """Failed authentications per client address before it is refused outright."""
    rate_limit_public: str = "600/minute"
    """Requests to the public paths (`/ok`, `/info`, the docs) per client address."""

    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    """The request line and headers of a request together; larger ones are refused (431)
    before the app sees them."""
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_metadata_bytes: int = Field(default=64 * 1024, ge=256)
    max_run_input_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_stream_modes: int = Field(default=16, ge=1)
    history_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """A `/history` page stops once its JSON would pass this (one state is always sent); the
    `X-Next-Before` header says where the next page starts."""
    hsts_seconds: int = Field(default=0, ge=0)
    """`Strict-Transport-Security` max-age; set it when Trellis is served over HTTPS only."""

    checkpoint_allowed_types: list[str] = Field(default_factory=list)
    """Extra classes checkpoints may contain, as `module:Name` (or `module.Name`); types in
    served graphs' state schemas, LangChain messages and LangGraph's own are always allowed."""

    thread_sweep_seconds: float = Field(default=300.0, gt=0)
    """How often the thread sweeper applies expired TTLs and checkpoint retention;
    `langgraph.json` `checkpointer.ttl.sweep_interval_minutes` overrides it."""
    thread_sweep_limit: int = Field(default=1000, ge=1)
    """At most this many threads are swept per sweep (`checkpointer.ttl.sweep_limit`
    overrides it); the rest wait for the next."""
    checkpoint_keep_last: int | None = Field(default=None, ge=1)
    """Keep only the last N checkpoints of each thread (older ones are deleted by the
    sweeper); an assistant's or thread's `checkpoint_keep_last` metadata overrides it.
    None: keep every checkpoint (unless `checkpointer.keep_last` in `langgraph.json`)."""
    approval_ttl_seconds: float | None = Field(default=None, gt=0)
    """Default lifetime of an approval; an interrupt value's `expires_in_seconds` or
    `expires_at` overrides it. None: approvals never expire."""
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    """Per attempt, for run-completion webhooks (the `webhook` field of a run)."""
    webhook_attempts: int = Field(default=5, ge=1, le=20)
    webhook_allow_private: bool = False
    """Allow webhooks to loopback and private addresses (refused by default)."""
    approval_webhook_url: str | None = None
    """POSTed a JSON event when an approval is created or decided."""
    approval_webhook_allow_private: bool = False
    """Let the approval webhook target loopback or private addresses (same-host receivers)."""
    approval_webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    approval_webhook_attempts: int = Field(default=5, ge=1, le=20)
    """Deliveries tried per event, with exponential backoff between them."""

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    """Default chat model for every role of the built-in graph."""
    openai_fallback_model: str | None = None
    openai_embedding_model: str | None = None
    """When set (with a key), embeddings come from OpenAI instead of the local MiniLM."""
    openai_timeout_seconds: float = Field(default=60.0, gt=0)
    openai_max_retries: int = Field(default=3, ge=0)
    openai_deadline_seconds: float = Field(default=90.0, gt=0)
    """Total time one model call may take, its retries and the fallback model included; then
    the run fails with an error naming the endpoint and what it answered."""
    embedding_cache_ttl_seconds: int = Field(default=7 * 86400, ge=1)
    response_cache_ttl_seconds: int = Field(default=3600, ge=1)
    collection: str = "documents"
    """The Qdrant collection the built-in assistant searches, shared with every caller."""
    shared_collections: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """More collections every caller may name in a run's `context.collection` and `trellis
    ingest` may fill, as a comma list (`COLLECTION` is always shared). Any other name a
    caller gives reaches only that caller's own documents."""
    seed_sample_corpus: bool = True
    """Ingest the shipped sample corpus into an empty collection on first start."""
    image_fetch_timeout_seconds: float = Field(default=10.0, gt=0)
    image_max_pixels: int = Field(default=16_000_000, ge=1)
    """Largest width x height of an image a run may send (checked before decoding)."""
    image_decode_budget_mb: int = Field(default=256, ge=1)
    """Pixel memory all image decodes of a process may hold at once, in MiB; decodes past it
    wait their turn. Must fit one image of `image_max_pixels` at its worst (9 bytes a pixel,
    and 28 MiB of working memory)."""
    qdrant_path: Path | None = None
    """Embedded Qdrant data directory; default `<embedded_data_dir>/qdrant`."""
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    tesseract_cmd: str = "tesseract"
    """The OCR command of the built-in vision agent: a name on the PATH or a path."""

    langsmith_tracing: bool | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "langsmith_tracing", "langsmith_tracing_v2", "langchain_tracing_v2", "langchain_tracing"
        ),
    )
    """LangSmith tracing, read by langchain itself; named here so `/info` can report it."""
    langsmith_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("langsmith_api_key", "langchain_api_key")
    )
    langsmith_endpoint: str = Field(
        default="https://api.smith.langchain.com",
        validation_alias=AliasChoices("langsmith_endpoint", "langchain_endpoint"),
    )

    @field_validator("database_url")
    @classmethod
    def _postgres(cls, value: str) -> str:
        scheme = value.split("://", 1)[0]
        if scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
            raise ValueError("DATABASE_URL must be a postgresql:// URL")
        return value

    @field_validator(
        "forwarded_allow_ips",
        "allowed_hosts",
        "shared_collections",
        "metrics_public_addresses",
        mode="before",
    )
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except json.JSONDecodeError:
                    raise ValueError("not a JSON list (or use a comma-separated list)") from None
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @field_validator("forwarded_allow_ips", "metrics_public_addresses")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for item in value:
            if item == "*":
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network (nor `*`)") from None
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        bad = [item for item in value if not _HOST.fullmatch(item)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a host name or address (no scheme or port)")
        return [item.lower() for item in value]

    @field_validator("jwt_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        refused = [alg for alg in value if alg.lower() in _REFUSED_JWT_ALGORITHMS]
        if refused:
            raise ValueError(f"JWT algorithms {refused} are refused; use RS*/PS*/ES*/EdDSA")
        if not value:
            raise ValueError("JWT_ALGORITHMS must name at least one algorithm")
        return value

    @field_validator(
        "rate_limit_read",
        "rate_limit_write",
        "rate_limit_runs",
        "rate_limit_auth_failures",
        "rate_limit_public",
    )
    @classmethod
    def _rate(cls, value: str) -> str:
        try:
            parse_rate(value)
        except ValueError:
            raise ValueError("expected a rate such as 600/minute or 10/second") from None
        return value

    @model_validator(mode="after")
    def _image_budget(self) -> Settings:
        # As tools.images: WORST_BYTES_PER_PIXEL a pixel (a palette image converted to RGBA,
        # then resized), and decode_overhead(1024) for the working copies and buffers.
        needed = self.image_max_pixels * _WORST_IMAGE_BYTES_PER_PIXEL + 28 * 2**20
        if self.image_decode_budget_mb * 2**20 < needed:
            raise ValueError(
                f"IMAGE_DECODE_BUDGET_MB={self.image_decode_budget_mb} is too small for one "
                f"image of IMAGE_MAX_PIXELS={self.image_max_pixels} (needs "
                f"{-(-needed // 2**20)}); raise it or lower IMAGE_MAX_PIXELS"
            )
        return self

    @model_validator(mode="after")
    def _production_safety(self) -> Settings:
        if self.auth_mode == "jwt" and not self.jwt_jwks_url:
            raise ValueError("AUTH_MODE=jwt needs JWT_JWKS_URL")
        if self.environment == "development":
            return self
        for name in ("openai_api_key", "qdrant_api_key"):
            secret: SecretStr | None = getattr(self, name)
            if secret is not None and secret.get_secret_value().strip().lower() in (
                PLACEHOLDER_SECRETS
            ):
                raise ValueError(
                    f"{name.upper()} is a placeholder; set a real secret or unset it "
                    f"(placeholders are only accepted with ENVIRONMENT=development)"
                )
        if (
            self.environment == "production"
            and self.auth_mode == "none"
            and not self.allow_insecure_no_auth
        ):
            raise ValueError(
                "AUTH_MODE=none is for local development; choose api_key, jwt or custom "
                "(or set ALLOW_INSECURE_NO_AUTH=true, which you should not)"
            )
        return self

    @field_validator("collection")
    @classmethod
    def _default_collection(cls, value: str) -> str:
        return _collection_name(value)

    @field_validator("shared_collections")
    @classmethod
    def _shared_names(cls, value: list[str]) -> list[str]:
        return [_collection_name(name) for name in value]

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL in SQLAlchemy's psycopg-async dialect."""
        return "postgresql+psycopg://" + self.database_url.split("://", 1)[1]

    @property
    def psycopg_url(self) -> str:
        """The database URL as libpq expects it."""
        return "postgresql://" + self.database_url.split("://", 1)[1]

    @property
    def langsmith_tracing_on(self) -> bool:
        """Whether runs are traced to LangSmith: tracing on and a key to send with (as the
        official server's `langsmith` flag)."""
        return bool(self.langsmith_tracing) and self.langsmith_api_key is not None

    @property
    def owner_run_share(self) -> int:
        """Running runs one owner may have at once (`run_concurrency_per_owner` resolved)."""
        if self.run_concurrency_per_owner is not None:
            return self.run_concurrency_per_owner
        return max(1, self.run_concurrency // 2)

    @property
    def limits_storage_url(self) -> str:
        """The rate-limit storage in `limits` syntax (`async+redis://...`)."""
        if self.rate_limit_storage_url:
            return self.rate_limit_storage_url
        return "async+" + self.redis_url if self.redis_url.startswith("redis") else self.redis_url


_SECRET_NAME = re.compile(r"key|secret|password|token", re.IGNORECASE)


def describe_settings_error(error: ValidationError | SettingsError) -> list[str]:
    """One line per problem with the settings: the variable, the value given (masked when it
    is a secret), what is expected. For `trellis` to print instead of a traceback."""
    if isinstance(error, SettingsError):
        found = re.search(r'field "(\w+)"', str(error))
        name = found.group(1).upper() if found else "a setting"
        return [f'{name}: not valid JSON (lists and objects are JSON, e.g. ["a", "b"])']
    lines = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if not field:
            lines.append(message)
            continue
        given = "***" if _SECRET_NAME.search(field) else repr(problem.get("input"))
        lines.append(f"{field.upper()}={given}: {message}")
    return lines
