"""The nats-server accounts of DESIGN.md "NATS layout": services in `APP`, departments in `DEPTS`.

Why two accounts: inside the streams' own account, any user allowed one JetStream API subject can set
the reply subject of its request to `$JS.API.STREAM.DELETE.…` and the server, answering from inside
that account, deletes the stream (NOTES.md). So the streams and the trusted service users live in
`APP`, which exports only the department consumers' next/ack subjects; department users live in
`DEPTS`, which has no JetStream and imports only those two exports. Whatever a department aims a reply
at, the answer lands in `DEPTS`, where `$JS.API.…` only says "JetStream not enabled" and no department
may listen on anything but its own inbox (`$JS.ACK.…` replies are refused outright). Every such aim is
tried in tests/integration/nats_accounts/test_reply_redirects.py.

The service users inside `APP` are trusted processes: their permissions limit mistakes (the relay cannot
delete a stream by calling the API), not a hostile service, which could play the same reply trick.

Passwords are generated once and kept: a credentials file (mode 0600) holds them in clear for the
services and departments; the server config holds only their bcrypt hashes.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt

from domain.reference import load_reference
from infra.files import write_private
from infra.nats.server import NatsServer, cluster_nodes, cluster_url
from infra.nats.streams import (
    AUDIT_STREAM,
    AUDIT_SUBJECTS,
    DEPT_STREAM,
    DEPT_SUBJECTS,
    EVENTS_STREAM,
    EVENTS_SUBJECTS,
    NUDGE_SUBJECT,
)
from infra.settings import Settings

APP_ACCOUNT = "APP"
DEPTS_ACCOUNT = "DEPTS"
#: nats-server's own default cost (`nats server passwd`); each connect costs the server one check.
BCRYPT_ROUNDS = 11

_API = "$JS.API"
_STREAMS = (EVENTS_STREAM, DEPT_STREAM, AUDIT_STREAM)
#: What APP lends DEPTS. `response_type: stream`: a fetch(n) answers with n messages (the default
#: singleton export lets one through and drops the rest).
DEPT_NEXT_EXPORT = f"{_API}.CONSUMER.MSG.NEXT.{DEPT_STREAM}.*"
DEPT_ACK_EXPORT = f"$JS.ACK.{DEPT_STREAM}.>"


def department_user(code: str) -> str:
    """Prefixed so that no department code can ever collide with a service user's name."""
    return f"dept_{code}"


def department_consumer(code: str) -> str:
    """The durable pull consumer on WL_DEPT holding this department's feed."""
    return f"dept_{code}"


def department_inbox(code: str) -> str:
    """A department's own inbox prefix: with a shared `_INBOX.>` one could read another's fetches."""
    return f"_INBOX_{code}"


def department_filter(code: str) -> str:
    return f"wl.dept.{code}.>"


@dataclass(frozen=True)
class Permissions:
    """Subjects a user may publish to and subscribe to; everything else is denied."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]

    def as_config(self) -> dict[str, Any]:
        return {
            "publish": {"allow": list(self.publish)},
            "subscribe": {"allow": list(self.subscribe)},
        }


def _stream_api(verbs: Iterable[str], streams: Iterable[str] = _STREAMS) -> list[str]:
    return [f"{_API}.STREAM.{verb}.{stream}" for verb in verbs for stream in streams]


def _consumer_create(stream: str) -> list[str]:
    """Every form nats-py uses: ephemeral, named (with or without filter) and legacy durable."""
    return [
        f"{_API}.CONSUMER.CREATE.{stream}",
        f"{_API}.CONSUMER.CREATE.{stream}.>",
        f"{_API}.CONSUMER.DURABLE.CREATE.{stream}.*",
    ]


def _read_by_sequence(stream: str) -> list[str]:
    """`js.get_msg` / `js.get_last_msg`, plain or direct (the direct form may append the subject)."""
    return [
        f"{_API}.STREAM.MSG.GET.{stream}",
        f"{_API}.DIRECT.GET.{stream}",
        f"{_API}.DIRECT.GET.{stream}.>",
    ]


def _pull(stream: str) -> list[str]:
    return [
        f"{_API}.CONSUMER.INFO.{stream}.*",
        f"{_API}.CONSUMER.MSG.NEXT.{stream}.*",
        f"$JS.ACK.{stream}.>",
    ]


def service_permissions() -> dict[str, Permissions]:
    """Each service user may do what its process does (DESIGN.md "NATS layout"), and no more.

    Services share `_INBOX.>`: they are trusted and may read the same streams anyway, and a
    per-service prefix would have to be configured in every process. STREAM.NAMES is what nats-py
    asks when `subscribe`/`pull_subscribe` are given a subject but no stream.
    """
    inbox = "_INBOX.>"
    names = f"{_API}.STREAM.NAMES"
    return {
        "relay": Permissions(
            publish=(
                EVENTS_SUBJECTS,
                *_stream_api(("INFO", "CREATE", "UPDATE")),
                *_read_by_sequence(EVENTS_STREAM),
            ),
            subscribe=(inbox, NUDGE_SUBJECT),
        ),
        "projector": Permissions(
            publish=(
                DEPT_SUBJECTS,
                AUDIT_SUBJECTS,
                names,
                *_stream_api(("INFO", "CREATE", "UPDATE")),  # projections.cli may ensure_streams
                *(subject for stream in _STREAMS for subject in _read_by_sequence(stream)),
                *_consumer_create(EVENTS_STREAM),
                *_pull(EVENTS_STREAM),
                f"{_API}.CONSUMER.DELETE.{EVENTS_STREAM}.*",  # a durable whose config changed
                f"{_API}.CONSUMER.RESET.{EVENTS_STREAM}.*",  # an operator's skip or replay
                *_consumer_create(DEPT_STREAM),
                f"{_API}.CONSUMER.INFO.{DEPT_STREAM}.*",
                f"{_API}.CONSUMER.DELETE.{DEPT_STREAM}.*",
                f"{_API}.CONSUMER.NAMES.{DEPT_STREAM}",
                f"{_API}.CONSUMER.LIST.{DEPT_STREAM}",
            ),
            subscribe=(inbox,),
        ),
        "gateway": Permissions(
            publish=(
                NUDGE_SUBJECT,
                names,
                *_stream_api(("INFO",)),
                *_read_by_sequence(
                    EVENTS_STREAM
                ),  # /metrics: the relay's last relayed notification
                *_consumer_create(EVENTS_STREAM),
                *_consumer_create(DEPT_STREAM),
                f"{_API}.CONSUMER.INFO.{EVENTS_STREAM}.*",
                f"{_API}.CONSUMER.INFO.{DEPT_STREAM}.*",
                f"$JS.FC.{EVENTS_STREAM}.>",
                f"$JS.FC.{DEPT_STREAM}.>",
            ),
            subscribe=(inbox,),
        ),
        "admin": Permissions(publish=(">",), subscribe=(">",)),
    }


def department_permissions(code: str) -> Permissions:
    """Its own consumer's next and ack subjects, its own inbox: nothing else."""
    return Permissions(
        publish=(
            f"{_API}.CONSUMER.MSG.NEXT.{DEPT_STREAM}.{department_consumer(code)}",
            f"$JS.ACK.{DEPT_STREAM}.{department_consumer(code)}.>",
        ),
        subscribe=(f"{department_inbox(code)}.>",),
    )


@dataclass(frozen=True)
class Credentials:
    """Clear-text passwords: `services` by user name, `departments` by department code."""

    services: dict[str, str] = field(default_factory=dict)
    departments: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {"services": self.services, "departments": self.departments}, indent=2, sort_keys=True
        )

    @classmethod
    def from_json(cls, text: str) -> Credentials:
        data = json.loads(text)
        return cls(services=dict(data["services"]), departments=dict(data["departments"]))


def new_password() -> str:
    return secrets.token_urlsafe(24)


def complete_credentials(known: Credentials, department_codes: Iterable[str]) -> Credentials:
    """Keeps every known password (running the command again must not lock anyone out)."""
    services = {name: known.services.get(name) or new_password() for name in service_permissions()}
    departments = {code: known.departments.get(code) or new_password() for code in department_codes}
    return Credentials(services=services, departments=departments)


def _hash(password: str, rounds: int) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def _user(name: str, password: str, permissions: Permissions, rounds: int) -> dict[str, Any]:
    return {
        "user": name,
        "password": _hash(password, rounds),
        "permissions": permissions.as_config(),
    }


def accounts_block(credentials: Credentials, rounds: int = BCRYPT_ROUNDS) -> dict[str, Any]:
    """The `accounts` map: APP (JetStream, services, two exports to DEPTS), DEPTS (importers)."""
    services = service_permissions()
    exports = [
        {"service": DEPT_NEXT_EXPORT, "response_type": "stream", "accounts": [DEPTS_ACCOUNT]},
        {"service": DEPT_ACK_EXPORT, "accounts": [DEPTS_ACCOUNT]},
    ]
    imports = [
        {"service": {"account": APP_ACCOUNT, "subject": DEPT_NEXT_EXPORT}},
        {"service": {"account": APP_ACCOUNT, "subject": DEPT_ACK_EXPORT}},
    ]
    app_users = [
        _user(name, credentials.services[name], perms, rounds) for name, perms in services.items()
    ]
    dept_users = [
        _user(department_user(code), password, department_permissions(code), rounds)
        for code, password in sorted(credentials.departments.items())
    ]
    return {
        APP_ACCOUNT: {"jetstream": "enabled", "users": app_users, "exports": exports},
        DEPTS_ACCOUNT: {"jetstream": "disabled", "users": dept_users, "imports": imports},
    }


def render_fragment(credentials: Credentials, rounds: int = BCRYPT_ROUNDS) -> str:
    """What `NatsServer(config_extra=...)` appends. The config format reads JSON values, and quoted
    strings are never taken for `$variables` (bcrypt hashes and `$JS` subjects start with `$`)."""
    block = json.dumps(accounts_block(credentials, rounds), indent=2)
    return f"accounts: {block}\n"


def render_config(settings: Settings, fragment: str) -> str:
    """A complete file for `nats-server -c`: the embedded server's listen port and store, plus accounts."""
    store = (settings.var_dir / "nats" / "jetstream").resolve()
    head = [
        "# Written by `whistleloop nats-config`: APP (streams, services) and DEPTS (departments).",
        "server_name: whistleloop",
        f"listen: 127.0.0.1:{settings.nats_port}",
        f"jetstream {{ store_dir: {json.dumps(str(store))} }}",
    ]
    return "\n".join(head) + "\n" + fragment


@dataclass(frozen=True)
class WrittenConfig:
    config: Path
    fragment: Path
    credentials: Path


def config_paths(output: Path) -> WrittenConfig:
    """`accounts.conf` → `accounts.fragment.conf` and `accounts.credentials.json` beside it."""
    return WrittenConfig(
        config=output,
        fragment=output.with_name(f"{output.stem}.fragment.conf"),
        credentials=output.with_name(f"{output.stem}.credentials.json"),
    )


def load_credentials(path: Path) -> Credentials:
    return Credentials.from_json(path.read_text(encoding="utf-8"))


def _write_accounts(
    paths: WrittenConfig, department_codes: Iterable[str] | None, rounds: int
) -> str:
    """Completes and writes the credentials and the accounts fragment; returns the fragment."""
    paths.config.parent.mkdir(parents=True, exist_ok=True)
    codes = list(load_reference().departments) if department_codes is None else department_codes
    known = load_credentials(paths.credentials) if paths.credentials.exists() else Credentials()
    credentials = complete_credentials(known, codes)
    fragment = render_fragment(credentials, rounds)
    write_private(paths.credentials, credentials.to_json() + "\n")
    write_private(paths.fragment, fragment)
    return fragment


def write_config(
    settings: Settings,
    output: Path,
    *,
    department_codes: Iterable[str] | None = None,
    rounds: int = BCRYPT_ROUNDS,
) -> WrittenConfig:
    """Writes the complete config, the appendable fragment and the credentials (all 0600)."""
    paths = config_paths(output)
    fragment = _write_accounts(paths, department_codes, rounds)
    write_private(paths.config, render_config(settings, fragment))
    return paths


#: Defaults of `nats-config --cluster`: node i listens for clients on WL_NATS_PORT + i - 1 and for
#: routes on CLUSTER_ROUTE_PORT + i - 1.
CLUSTER_SIZE = 3
CLUSTER_ROUTE_PORT = 16222


@dataclass(frozen=True)
class ClusterLayout:
    """Where each node of a loopback cluster listens: node i gets `client_ports[i-1]` and
    `route_ports[i-1]`."""

    client_ports: list[int]
    route_ports: list[int]

    @classmethod
    def consecutive(
        cls, client_port: int, route_port: int = CLUSTER_ROUTE_PORT, size: int = CLUSTER_SIZE
    ) -> ClusterLayout:
        return cls(
            client_ports=[client_port + i for i in range(size)],
            route_ports=[route_port + i for i in range(size)],
        )


@dataclass(frozen=True)
class WrittenCluster:
    """`node-1.conf…` (each a complete config), the shared fragment and credentials, and the nodes
    as `NatsServer`s that run those files (`node.start()`), with their stores under the var dir."""

    nodes: list[NatsServer]
    fragment: Path
    credentials: Path

    @property
    def url(self) -> str:
        return cluster_url(self.nodes)


def write_cluster_config(
    settings: Settings,
    output: Path,
    layout: ClusterLayout,
    *,
    department_codes: Iterable[str] | None = None,
    rounds: int = BCRYPT_ROUNDS,
) -> WrittenCluster:
    """Node configs of a JetStream cluster on this machine's loopback, beside `output` (whose stem
    names the shared fragment and credentials, as for `write_config`): distinct client, route and
    store dirs (`<var>/nats/node-<i>`), routes to the other nodes, the same accounts in each.

    The same credentials file serves both layouts, so switching to the cluster keeps every password.
    """
    paths = config_paths(output)
    fragment = _write_accounts(paths, department_codes, rounds)
    header = "# Written by `whistleloop nats-config --cluster`: one node of a loopback cluster.\n"
    nodes = cluster_nodes(
        (settings.var_dir / "nats").resolve(),
        layout.client_ports,
        layout.route_ports,
        config_extra=fragment,
    )
    for index, node in enumerate(nodes, start=1):
        node.config_file = output.with_name(f"node-{index}.conf")
        write_private(node.config_file, header + node.config_text())
    return WrittenCluster(nodes=nodes, fragment=paths.fragment, credentials=paths.credentials)
