"""What `whistleloop nats-config` writes: a config nats-server accepts, hashes only, private files."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from domain.reference import ReferenceData
from infra.nats.accounts import (
    APP_ACCOUNT,
    DEPTS_ACCOUNT,
    config_paths,
    department_permissions,
    department_user,
    load_credentials,
    service_permissions,
    write_config,
)
from infra.nats.server import nats_server_binary
from infra.settings import Settings
from tests.integration.nats_accounts.conftest import GeneratedConfig


def accounts_of(fragment: str) -> dict[str, Any]:
    """The fragment is `accounts: <JSON>`: read it back to inspect what the server gets."""
    prefix = "accounts: "
    assert fragment.startswith(prefix)
    accounts: dict[str, Any] = json.loads(fragment[len(prefix) :])
    return accounts


def users_of(accounts: dict[str, Any], account: str) -> dict[str, dict[str, Any]]:
    return {user["user"]: user for user in accounts[account]["users"]}


def test_nats_server_accepts_the_complete_config(cli_config: GeneratedConfig) -> None:
    result = subprocess.run(
        [str(nats_server_binary()), "-t", "-c", str(cli_config.paths.config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" in result.stdout + result.stderr


def test_files_are_private_and_the_config_holds_only_bcrypt_hashes(
    cli_config: GeneratedConfig,
) -> None:
    paths, credentials = cli_config.paths, cli_config.credentials
    for path in (paths.config, paths.fragment, paths.credentials):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    secrets = [*credentials.services.values(), *credentials.departments.values()]
    assert len(set(secrets)) == len(secrets), "two users share a password"
    for path in (paths.config, paths.fragment):
        text = path.read_text()
        assert [s for s in secrets if s in text] == [], f"a clear password is in {path.name}"

    accounts = accounts_of(paths.fragment.read_text())
    app, depts = users_of(accounts, APP_ACCOUNT), users_of(accounts, DEPTS_ACCOUNT)
    checks = {name: app[name] for name in credentials.services}
    checks[department_user("cgzf")] = depts[department_user("cgzf")]
    clear = {**credentials.services, department_user("cgzf"): credentials.departments["cgzf"]}
    for name, user in checks.items():  # production cost: a few are enough to prove the hashing
        assert user["password"].startswith("$2b$11$")
        assert bcrypt.checkpw(clear[name].encode(), user["password"].encode()), name


def test_the_layout_is_two_accounts_with_one_user_per_department(
    nats_config: GeneratedConfig, reference: ReferenceData
) -> None:
    accounts = accounts_of(nats_config.fragment())
    app, depts = accounts[APP_ACCOUNT], accounts[DEPTS_ACCOUNT]
    assert (app["jetstream"], depts["jetstream"]) == ("enabled", "disabled")
    assert set(users_of(accounts, APP_ACCOUNT)) == set(service_permissions())
    dept_users = users_of(accounts, DEPTS_ACCOUNT)
    assert set(dept_users) == {department_user(code) for code in reference.departments}
    for code in reference.departments:
        assert dept_users[department_user(code)]["permissions"] == (
            department_permissions(code).as_config()
        )
    assert [(e["service"], e.get("response_type"), e["accounts"]) for e in app["exports"]] == [
        ("$JS.API.CONSUMER.MSG.NEXT.WL_DEPT.*", "stream", [DEPTS_ACCOUNT]),
        ("$JS.ACK.WL_DEPT.>", None, [DEPTS_ACCOUNT]),
    ]
    assert [i["service"]["subject"] for i in depts["imports"]] == [
        "$JS.API.CONSUMER.MSG.NEXT.WL_DEPT.*",
        "$JS.ACK.WL_DEPT.>",
    ]


def test_running_it_again_keeps_passwords_and_adds_new_departments(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    output = tmp_path / "accounts.conf"
    first = load_credentials(
        write_config(settings, output, department_codes=["cgzf"], rounds=4).credentials
    )
    config_paths(output).credentials.chmod(0o644)  # someone loosened it
    paths = write_config(settings, output, department_codes=["cgzf", "zj"], rounds=4)
    second = load_credentials(paths.credentials)

    assert second.services == first.services
    assert second.departments["cgzf"] == first.departments["cgzf"]
    assert set(second.departments) == {"cgzf", "zj"}
    assert stat.S_IMODE(paths.credentials.stat().st_mode) == 0o600


@pytest.mark.parametrize("code", ["cgzf", "wl"])
def test_department_users_cannot_collide_with_service_users(code: str) -> None:
    assert department_user(code) not in service_permissions()
