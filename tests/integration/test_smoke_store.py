"""The store fixture itself: both kinds open, publish the duty list, and keep it across reopen."""

from __future__ import annotations

from domain.clock import ManualClock
from domain.service import CaseService
from infra.settings import Settings
from infra.store import open_service


def test_duty_list_survives_reopen(
    service: CaseService, store_settings: Settings, clock: ManualClock
) -> None:
    version, items = service.duty_items()
    reopened = open_service(store_settings, clock)
    try:
        assert reopened.duty_items() == (version, items)
        assert len(items) >= 60
    finally:
        reopened.close()
