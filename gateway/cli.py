"""What `whistleloop gateway` and `whistleloop token issue` do (infra.cli declares the commands and
imports this lazily, so other commands do not pay for importing FastAPI)."""

from __future__ import annotations

import json

import typer
import uvicorn

from domain.reference import load_reference
from gateway.app import create_app
from gateway.auth import ConfigError, Role, check_scope, check_secret, issue_token
from infra.files import write_private
from infra.settings import Settings, get_settings
from infra.terminal import wide_console

console = wide_console()

#: Units of --ttl.
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def serve(host: str | None, port: int | None) -> None:
    """`whistleloop gateway`: checks the settings, then serves until Ctrl-C/SIGTERM."""
    settings = get_settings()
    try:
        check_secret(settings)
    except ConfigError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=1) from None
    bind_host = host or settings.gateway_host
    bind_port = port or settings.gateway_port
    console.print(f"gateway on http://{bind_host}:{bind_port} (API docs: /docs)")
    uvicorn.run(
        create_app(settings),
        host=bind_host,
        port=bind_port,
        log_config=None,  # our structured logging (infra.logs), not uvicorn's own
        proxy_headers=True,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


#: Idle keep-alive connections stay open this long. uvicorn's default (5 s) equals httpx's pool
#: expiry, so a client reusing a connection just as the server closed it got a reset (ReadError on
#: a POST, which clients must not retry blindly); load balancers idle out after 60 s.
KEEP_ALIVE_SECONDS = 75


def issue(
    role: str,
    *,
    dept: str | None,
    street: str | None,
    community: str | None,
    subject: str | None,
    ttl: str | None,
) -> None:
    """`whistleloop token issue`: prints the token, or one clear error line."""
    settings = get_settings()
    try:
        check_secret(settings)
        parsed = _role(role)
        check_scope(load_reference(), parsed, dept=dept, street=street, community=community)
        seconds = parse_ttl(ttl) if ttl else None
    except (ConfigError, ValueError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=1) from None
    token = issue_token(
        settings,
        parsed,
        subject=subject,
        dept=dept,
        street=street,
        community=community,
        ttl=seconds,
    )
    typer.echo(token)


def up_banner(settings: Settings) -> list[str]:
    """The dashboard's and gateway's lines of `whistleloop up`'s banner; with --demo, tokens to try
    the API with, also written to `<var>/tokens.json` (mode 0600) for scripts."""
    try:
        check_secret(settings)
    except ConfigError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=1) from None
    base = settings.gateway_url()
    dashboard = f"http://{settings.dashboard_host}:{settings.dashboard_port}"
    lines = [
        f"dashboard   : {dashboard}",
        f"gateway     : {base}  (API docs {base}/docs, Open311 {base}/open311/v2/discovery.json)",
    ]
    if settings.dev_mode:
        tokens = demo_tokens(settings)
        lines += [f"token {label:<18}: {token}" for label, token in tokens.items()]
        path = write_private(
            settings.var_dir / "tokens.json",
            json.dumps({"dashboard": dashboard, "gateway": base, "tokens": tokens}, indent=2),
        )
        lines.append(f"tokens file : {path}")
    return lines


def demo_tokens(settings: Settings) -> dict[str, str]:
    """A day's token for each demo role, by label ("street jianwai", "viewer"…)."""
    day = 24 * 3600
    return {
        role.value + "".join(f" {v}" for v in scope.values()): issue_token(
            settings, role, ttl=day, dept=scope.get("dept"), street=scope.get("street")
        )
        for role, scope in DEMO_TOKENS
    }


#: The tokens `up --demo` prints (valid for a day).
DEMO_TOKENS: list[tuple[Role, dict[str, str]]] = [
    (Role.VIEWER, {}),
    (Role.COMMAND_CENTRE, {}),
    (Role.STREET, {"street": "jianwai"}),
    (Role.DEPARTMENT, {"dept": "cgzf"}),
    (Role.INSPECTOR, {}),
]


def dashboard_tokens(settings: Settings, viewer: str | None) -> tuple[str, str]:
    """The dashboard's viewer token (given, or issued for 30 days) and, in dev mode only, an
    inspector token for its time travel: outside dev mode an operator hands one over explicitly."""
    try:
        check_secret(settings)
    except ConfigError as error:
        if viewer:
            return viewer, ""
        console.print(f"[red]error:[/red] give --token / WL_DASHBOARD_TOKEN, or {error}")
        raise typer.Exit(code=1) from None
    month = 30 * 24 * 3600
    issued = viewer or issue_token(settings, Role.VIEWER, subject="dashboard", ttl=month)
    inspector = issue_token(settings, Role.INSPECTOR, subject="dashboard", ttl=month)
    return issued, inspector if settings.dev_mode else ""


def _role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise ValueError(f"--role is one of {', '.join(r.value for r in Role)}") from None


def parse_ttl(text: str) -> int:
    """`90s`, `30m`, `8h`, `7d` or plain seconds."""
    value, unit = (text[:-1], text[-1]) if text[-1:] in _SECONDS else (text, "s")
    if not value.isdigit() or int(value) <= 0:
        raise ValueError(f"--ttl must look like 30m, 8h or 7d, not {text!r}")
    return int(value) * _SECONDS[unit]
