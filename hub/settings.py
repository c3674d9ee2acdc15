"""Every setting of the hub, read from ``HUB_*`` environment variables in one place.

Build :class:`Settings` only at the edges (the CLI, test fixtures) and pass it down; nothing
else reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_RETRY_SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


class Settings(BaseSettings):
    """The hub's configuration; see the README's settings table."""

    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".hub")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"

    max_body_bytes: int = Field(default=1_048_576, gt=0)
    http_keepalive_seconds: float = Field(default=75.0, gt=0)
    http_body_timeout_seconds: float = Field(default=30.0, gt=0)
    rate_limit: str = "100/second"
    rate_limit_burst: int = Field(default=200, gt=0)
    hooks_rate_limit: str = "5000/second"

    default_currency: str = "SAR"
    default_phone_region: str = "SA"
    duplicate_window_seconds: int = Field(default=300, ge=0)

    webhook_allow_loopback: bool = False
    webhook_allow_private: bool = False
    webhook_retry_schedule: Annotated[tuple[int, ...], NoDecode] = DEFAULT_RETRY_SCHEDULE
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_endpoint_concurrency: int = Field(default=8, gt=0)
    webhook_disable_after_seconds: int = Field(default=5 * 24 * 3600, gt=0)
    webhook_secret_overlap_seconds: int = Field(default=24 * 3600, ge=0)

    inbound_tolerance_seconds: int = Field(default=300, gt=0)
    # How far ahead of its receipt a source's updated-at may be; later clocks are capped (one event
    # from "9999-12-31" would otherwise make every later event look stale).
    source_clock_skew_seconds: int = Field(default=300, ge=0)
    sweep_interval_seconds: int = Field(default=5, gt=0)
    sweep_after_seconds: float = Field(default=5.0, ge=0)
    delivery_lease_seconds: int = Field(default=30, gt=0)
    batch_size: int = Field(default=200, gt=0)
    reconcile_interval_seconds: float = Field(default=600.0, gt=0)
    reconcile_overlap_seconds: float = Field(default=300.0, ge=0)

    ops_token: SecretStr | None = None
    metrics_token: SecretStr | None = None

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _parse_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            if not parts:
                raise ValueError("HUB_WEBHOOK_RETRY_SCHEDULE needs at least one delay")
            return tuple(int(float(p)) for p in parts)
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _check_schedule(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(v < 0 for v in value):
            raise ValueError("retry delays are seconds >= 0, at least one")
        return value

    @field_validator("database_url", "redis_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def embedded(self) -> bool:
        """True when no database or Redis URL is configured: ``hub up`` runs its own."""
        return self.database_url is None or self.redis_url is None


def asyncpg_dsn(url: str) -> str:
    """A libpq URI that asyncpg accepts (drops any ``+driver`` suffix of the scheme)."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme == "postgres":
        scheme = "postgresql"
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


def sqlalchemy_url(url: str) -> str:
    """The same database as a SQLAlchemy URL on the asyncpg driver.

    Accepts libpq URIs as pgserver prints them (``postgresql://postgres:@/postgres?host=/dir``).
    """
    parts = urlsplit(asyncpg_dsn(url))
    query = urlencode(parse_qsl(parts.query))
    return urlunsplit(("postgresql+asyncpg", parts.netloc, parts.path, query, parts.fragment))
