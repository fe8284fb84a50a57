"""One Settings object, read from `WL_*` environment variables (and `.env`), built by a cached factory."""

from __future__ import annotations

import binascii
from base64 import b64decode
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The JWT secret everyone can read in this file: accepted only with `WL_DEV_MODE=true`.
DEFAULT_JWT_SECRET = "whistleloop-dev-secret-change-me-0123456789"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WL_", env_file=".env", extra="ignore")

    #: Where embedded defaults keep their files (SQLite stores, NATS JetStream, keys).
    var_dir: Path = Field(default=Path("var"))
    #: Event store URL; empty means SQLite at `<var_dir>/events.db`. PostgreSQL:
    #: `postgresql+psycopg://user@host:5432/db`.
    database_url: str = ""
    #: PostgreSQL schema for the event store tables (each test uses its own).
    database_schema: str = ""
    #: Base64 AES key (16, 24 or 32 bytes) that encrypts every stored event's state at rest
    #: (AES-GCM, `eventsourcing`'s AESCipher): residents' contact data is never in the database in
    #: clear. Set it before the first event (a store is all encrypted or all clear); empty: clear.
    #: `whistleloop store new-cipher-key` makes one. Kept out of reprs and logs.
    cipher_key: str = Field(default="", repr=False)
    #: Aggregates kept in memory per process; 0 turns the cache off.
    aggregate_cache_size: int = 10_000
    #: Seconds SQLite waits for a lock held by another process before failing.
    sqlite_timeout: float = 30.0

    #: NATS server(s), comma-separated; empty means the embedded server on `nats_port`.
    nats_url: str = ""
    #: Port of the embedded nats-server (not 4222, so it never collides with a system NATS).
    nats_port: int = 14222
    #: Replicas of the JetStream streams when this process creates them (3 in a cluster).
    nats_replicas: int = 1
    #: Credentials of this process's service user when the server enforces accounts.
    nats_user: str = ""
    nats_password: str = Field(default="", repr=False)
    #: The audit's Ed25519 signing key (PEM, generated on first use); empty means
    #: `<var_dir>/keys/audit-ed25519.pem`. Keep it away from the database and its backups.
    audit_key_path: str = ""
    #: The audit projection signs and publishes a tree head after this many new events, or after
    #: `audit_head_interval` seconds when the tree has grown at all.
    audit_head_every: int = 1000
    audit_head_interval: float = 60.0
    #: Seconds between the SLA clock's looks at open deadlines.
    sla_tick_seconds: float = 30.0
    #: Read models' database; empty means SQLite at `<var_dir>/views.db`.
    views_database_url: str = ""
    #: Relay: notifications per batch, seconds between polls when no nudge comes, ack timeout.
    relay_batch: int = 500
    relay_poll_interval: float = 0.5
    relay_ack_timeout: float = 10.0

    #: Development mode: the gateway accepts the default JWT secret (never in production).
    dev_mode: bool = False
    #: HS256 secret of the gateway's bearer tokens; outside dev mode it must be set (≥ 32 bytes).
    jwt_secret: str = Field(default=DEFAULT_JWT_SECRET, repr=False)
    #: Lifetime of `whistleloop token issue` tokens when no --ttl is given, in seconds.
    token_ttl: int = 8 * 3600
    #: Where `whistleloop gateway` listens.
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    #: Largest request body the gateway reads, in bytes (413 beyond it).
    gateway_max_body: int = 64 * 1024
    #: Writes (POSTs) per second each caller (a token's principal, an Open311 api_key) may make
    #: through one gateway, and the burst it may spend at once; 429 with Retry-After beyond them.
    #: 0 turns the limit off (the benchmarks do, to measure throughput).
    gateway_write_rate: float = Field(default=20.0, ge=0)
    gateway_write_burst: int = Field(default=60, ge=1)
    #: WebSocket feeds: seconds between heartbeats, frames a slow client may fall behind before
    #: it is dropped (close code 4008).
    ws_heartbeat: float = 15.0
    ws_queue: int = 1000
    #: Where `whistleloop dashboard` (Streamlit) listens.
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8501

    @field_validator("cipher_key")
    @classmethod
    def _cipher_key_is_an_aes_key(cls, value: str) -> str:
        if not value:
            return value
        try:
            size = len(b64decode(value.encode(), validate=True))
        except (binascii.Error, ValueError):
            raise ValueError(
                "WL_CIPHER_KEY must be base64 (whistleloop store new-cipher-key)"
            ) from None
        if size not in (16, 24, 32):
            raise ValueError(f"WL_CIPHER_KEY must decode to 16, 24 or 32 bytes, not {size}")
        return value

    def gateway_url(self) -> str:
        """The gateway's base URL as a client on this machine reaches it."""
        host = "127.0.0.1" if self.gateway_host in ("0.0.0.0", "::") else self.gateway_host
        return f"http://{host}:{self.gateway_port}"

    def event_store_url(self) -> str:
        if self.database_url:
            return self.database_url
        path = (self.var_dir / "events.db").resolve()
        return f"sqlite:///{path}?timeout={self.sqlite_timeout:g}"

    def nats_servers(self) -> str:
        return self.nats_url or f"nats://127.0.0.1:{self.nats_port}"

    def audit_key_file(self) -> Path:
        return (
            Path(self.audit_key_path)
            if self.audit_key_path
            else self.var_dir / "keys" / "audit-ed25519.pem"
        )

    def views_url(self) -> str:
        if self.views_database_url:
            return self.views_database_url
        return f"sqlite:///{(self.var_dir / 'views.db').resolve()}?timeout={self.sqlite_timeout:g}"

    @property
    def is_sqlite(self) -> bool:
        return self.event_store_url().startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
