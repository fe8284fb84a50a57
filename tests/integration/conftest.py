"""The contract suite's service: a CaseService on each kind of fresh store (see tests/stores.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from domain.clock import ManualClock
from domain.service import CaseService
from infra.settings import Settings
from infra.store import open_service


@pytest.fixture
def service(store_settings: Settings, clock: ManualClock) -> Iterator[CaseService]:
    """A CaseService on a fresh store with the shipped duty list published."""
    svc = open_service(store_settings, clock)
    svc.publish_duty_list()
    yield svc
    svc.close()
