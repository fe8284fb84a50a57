"""The dashboard's configuration, from `WL_DASHBOARD_*` environment variables.

The dashboard imports nothing of the other packages (it talks to the gateway over HTTP only), so it
reads its few settings itself; `whistleloop dashboard` sets them from the system's settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DashboardConfig:
    #: The gateway's base URL.
    gateway_url: str
    #: A `viewer` token: everything the dashboard shows by default.
    token: str
    #: An `inspector` token, optional: time travel on the audit page needs it.
    inspector_token: str
    #: Seconds between refreshes of the live parts.
    refresh_seconds: float
    #: Seconds an HTTP call to the gateway may take.
    timeout: float

    @classmethod
    def from_env(cls) -> DashboardConfig:
        return cls(
            gateway_url=os.environ.get("WL_DASHBOARD_GATEWAY_URL", "http://127.0.0.1:8000").rstrip(
                "/"
            ),
            token=os.environ.get("WL_DASHBOARD_TOKEN", ""),
            inspector_token=os.environ.get("WL_DASHBOARD_INSPECTOR_TOKEN", ""),
            refresh_seconds=float(os.environ.get("WL_DASHBOARD_REFRESH", "3")),
            timeout=float(os.environ.get("WL_DASHBOARD_TIMEOUT", "5")),
        )
