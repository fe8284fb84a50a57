"""With WL_CIPHER_KEY the event store holds no event in clear: a resident's phone number is not in
any stored row, on SQLite and PostgreSQL, yet the service and the relay's envelopes read it back.
Without the key, or with another, the store cannot be read at all (and the CLI says why)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from eventsourcing.persistence import MapperDeserialisationError
from pydantic import ValidationError
from sqlalchemy import text

from domain.actors import Actor
from domain.clock import ManualClock
from infra.event_codec import EventEnvelope
from infra.settings import Settings
from infra.store import engine_of, events_table, new_cipher_key, open_service
from tests.conftest import START
from tests.integration.builders import report_case

PHONE = "13912345678"
CONTACT = {"name": "王女士", "phone": PHONE}


def test_contact_data_is_encrypted_at_rest(
    store_settings: Settings, actors: dict[str, Actor]
) -> None:
    settings = store_settings.model_copy(update={"cipher_key": new_cipher_key()})
    service = open_service(settings, ManualClock(START))
    try:
        service.publish_duty_list()
        case_id = report_case(service, actors, contact=CONTACT)
        with engine_of(service).connect() as conn:
            rows = conn.execute(text(f"SELECT state FROM {events_table(service)}")).scalars().all()
        assert rows
        for raw in rows:
            stored = bytes(raw)
            assert PHONE.encode() not in stored
            assert "王女士".encode() not in stored
            assert b'"title"' not in stored, "a stored state is not encrypted"
        assert service.case(case_id)["contact"] == CONTACT
        last = service.recorder.select_notifications(start=0, limit=100)[-1]
        envelope = EventEnvelope.from_notification(last, service.mapper, "jianwai")
        assert envelope.payload["contact"] == CONTACT  # what the relay publishes
    finally:
        service.close()

    for other in ({"cipher_key": ""}, {"cipher_key": new_cipher_key()}):
        reader = open_service(store_settings.model_copy(update=other))
        try:
            with pytest.raises(MapperDeserialisationError, match="Failed to deserialise state"):
                reader.case(case_id)
        finally:
            reader.close()


@pytest.mark.parametrize("key", ["not base64!", "c2hvcnQ="])
def test_a_malformed_key_is_refused_at_start(key: str) -> None:
    with pytest.raises(ValidationError, match="WL_CIPHER_KEY"):
        Settings(cipher_key=key)


def test_secrets_stay_out_of_the_settings_repr() -> None:
    key = new_cipher_key()
    settings = Settings(cipher_key=key, jwt_secret="s" * 40, nats_password="hunter2-hunter2")
    shown = repr(settings) + str(settings)
    for secret in (key, "s" * 40, "hunter2-hunter2"):
        assert secret not in shown


def test_the_cli_names_an_unreadable_store(tmp_path: Path) -> None:
    whistleloop = Path(sys.executable).with_name("whistleloop")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WL_")}
    env |= {
        "WL_VAR_DIR": str(tmp_path / "var"),
        "WL_CIPHER_KEY": new_cipher_key(),
        "COLUMNS": "200",
    }

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(whistleloop), *args], env=env | extra, capture_output=True, text=True, check=False
        )

    assert run("store", "init").returncode == 0
    refused = run("store", "init", WL_CIPHER_KEY=new_cipher_key())
    assert refused.returncode == 1
    assert "WL_CIPHER_KEY" in refused.stdout
    assert "Traceback" not in refused.stdout + refused.stderr
    printed = run("store", "new-cipher-key").stdout.strip()
    assert Settings(cipher_key=printed).cipher_key == printed
