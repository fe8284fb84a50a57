"""One Settings object, read from `WL_*` environment variables (and `.env`), built by a cached factory."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WL_", env_file=".env", extra="ignore")

    #: Where embedded defaults keep their files (SQLite stores, NATS JetStream, keys).
    var_dir: Path = Field(default=Path("var"))
    #: Event store URL; empty means SQLite at `<var_dir>/events.db`. PostgreSQL:
    #: `postgresql+psycopg://user@host:5432/db`.
    database_url: str = ""
    #: PostgreSQL schema for the event store tables (each test uses its own).
    database_schema: str = ""
    #: Aggregates kept in memory per process; 0 turns the cache off.
    aggregate_cache_size: int = 10_000
    #: Seconds SQLite waits for a lock held by another process before failing.
    sqlite_timeout: float = 30.0

    def event_store_url(self) -> str:
        if self.database_url:
            return self.database_url
        path = (self.var_dir / "events.db").resolve()
        return f"sqlite:///{path}?timeout={self.sqlite_timeout:g}"

    @property
    def is_sqlite(self) -> bool:
        return self.event_store_url().startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
