"""A nats-server running the config `whistleloop nats-config` writes, seeded like production.

The config is written once per session; each test gets a fresh server with it, so no attack can
leak into another test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.js.api import AckPolicy, ConsumerConfig

from infra.nats.accounts import (
    Credentials,
    WrittenConfig,
    config_paths,
    department_consumer,
    department_filter,
    load_credentials,
    write_config,
)
from infra.nats.server import NatsServer, free_port
from infra.nats.streams import DEPT_STREAM, EVENTS_STREAM, EVENTS_SUBJECTS, ensure_streams
from infra.settings import Settings
from tests.integration.nats_accounts.support import (
    FEED,
    OTHER,
    OWN,
    PROJECTOR_CONSUMER,
    Secured,
    dept_subject,
)


@dataclass(frozen=True)
class GeneratedConfig:
    paths: WrittenConfig
    credentials: Credentials

    def fragment(self) -> str:
        return self.paths.fragment.read_text()


#: bcrypt cost of the servers these tests start. The server checks a password's hash on every connect
#: (≈ 0.25 s at the production cost of 11, four connects a test); the rendering is the same code.
TEST_ROUNDS = 4


@pytest.fixture(scope="session")
def nats_config(tmp_path_factory: pytest.TempPathFactory) -> GeneratedConfig:
    """write_config as the CLI calls it, every department of the reference data, cheap hashes."""
    workdir = tmp_path_factory.mktemp("nats-config")
    settings = Settings(var_dir=workdir / "var")
    paths = write_config(settings, workdir / "accounts.conf", rounds=TEST_ROUNDS)
    return GeneratedConfig(paths, load_credentials(paths.credentials))


@pytest.fixture(scope="session")
def cli_config(tmp_path_factory: pytest.TempPathFactory) -> GeneratedConfig:
    """`whistleloop nats-config --output …/accounts.conf`, run as an operator would."""
    workdir = tmp_path_factory.mktemp("nats-cli")
    output = workdir / "conf" / "accounts.conf"
    env = {**os.environ, "WL_VAR_DIR": str(workdir / "var"), "WL_NATS_PORT": str(free_port())}
    command = [str(Path(sys.executable).with_name("whistleloop")), "nats-config", "--output"]
    subprocess.run([*command, str(output)], cwd=workdir, env=env, check=True, timeout=60)
    paths = config_paths(output)
    return GeneratedConfig(paths, load_credentials(paths.credentials))


@pytest.fixture
def secured_server(tmp_path: Path, nats_config: GeneratedConfig) -> Iterator[NatsServer]:
    """A fresh server per test: the accounts fragment appended to NatsServer's own config."""
    server = NatsServer(tmp_path / "nats", config_extra=nats_config.fragment()).start()
    try:
        yield server
    finally:
        server.kill()


async def _seed(url: str, credentials: Credentials) -> None:
    """The projector creates its consumers (as ensure_department_consumers will); admin publishes."""
    projector = await nats.connect(
        url, user="projector", password=credentials.services["projector"]
    )
    try:
        js = projector.jetstream(timeout=3)
        for code in (OWN, OTHER):
            await js.add_consumer(
                DEPT_STREAM,
                ConsumerConfig(
                    durable_name=department_consumer(code),
                    filter_subject=department_filter(code),
                    ack_policy=AckPolicy.EXPLICIT,
                ),
            )
        await js.add_consumer(
            EVENTS_STREAM,
            ConsumerConfig(
                durable_name=PROJECTOR_CONSUMER,
                filter_subject=EVENTS_SUBJECTS,
                ack_policy=AckPolicy.EXPLICIT,
            ),
        )
        for index, (code, case) in enumerate(FEED):
            await js.publish(dept_subject(code, case, index), f"{code}:{index}".encode())
        await js.publish("wl.audit.sth", b"tree head 1")
    finally:
        await projector.close()


@pytest_asyncio.fixture
async def secured(
    secured_server: NatsServer, nats_config: GeneratedConfig
) -> AsyncIterator[Secured]:
    """Streams created by the admin user, consumers and feed seeded, a few events on WL_EVENTS."""
    credentials = nats_config.credentials
    admin = await nats.connect(
        secured_server.url, user="admin", password=credentials.services["admin"]
    )
    try:
        js = admin.jetstream(timeout=3)
        await ensure_streams(js)
        for index in range(3):
            await js.publish(f"wl.ev.jianwai.case{index}.Reported", b"{}")
        await _seed(secured_server.url, credentials)
        yield Secured(secured_server.url, credentials, js)
    finally:
        await admin.close()
