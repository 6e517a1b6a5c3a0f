"""Process settings: the one place that reads the environment.

Everything else receives values from a `Settings` instance passed down from the
edge (the CLI or `create_app`). Per-run knobs live in graph context schemas,
not here.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent

Environment = Literal["development", "test", "production"]
"""Where Trellis runs; placeholder secrets are refused outside development."""

LogFormat = Literal["json", "text"]
"""`json` writes one JSON object per line (default); `text` is for humans."""

Durability = Literal["sync", "async", "exit"]
"""When LangGraph persists checkpoints: every step synchronously, in the background, or at exit."""


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
    db_pool_min_size: int = Field(default=2, ge=1)
    db_pool_max_size: int = Field(default=20, ge=1)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)

    host: str = "127.0.0.1"
    port: int = Field(default=2024, ge=1, le=65535)
    cors_origins: list[str] = Field(
        default_factory=lambda: ["https://smith.langchain.com"],
        description="Origins allowed by CORS; LangGraph Studio runs at https://smith.langchain.com.",
    )
    log_level: str = "INFO"
    log_format: LogFormat = "json"

    graphs_config: Path = ROOT / "langgraph.json"
    default_durability: Durability = "sync"
    run_concurrency: int = Field(default=32, ge=1, description="Runs executed at once per process.")
    run_event_retention_seconds: int = Field(default=600, ge=1)
    wait_keepalive_seconds: float = Field(default=5.0, gt=0)
    sse_heartbeat_seconds: float = Field(default=10.0, gt=0)
    request_timeout_seconds: float = Field(default=60.0, gt=0)

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    qdrant_path: Path | None = None
    """Embedded Qdrant data directory; default `<embedded_data_dir>/qdrant`."""
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None

    @field_validator("database_url")
    @classmethod
    def _postgres(cls, value: str) -> str:
        scheme = value.split("://", 1)[0]
        if scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
            raise ValueError("DATABASE_URL must be a postgresql:// URL")
        return value

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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once per process."""
    return Settings()
