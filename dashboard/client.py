"""The gateway's API as the dashboard uses it: GET JSON, and errors a person can read.

Every failure becomes a `GatewayProblem` with a kind (`down`, `auth`, `forbidden`, `not_found`,
`invalid`, `error`) and the gateway's own message, so a page shows a friendly box, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from dashboard.config import DashboardConfig

Json = Any


@dataclass
class GatewayProblem(Exception):
    kind: str  # down | auth | forbidden | not_found | invalid | error
    detail: str
    status: int | None = None
    code: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


_KIND_OF_STATUS = {401: "auth", 403: "forbidden", 404: "not_found", 409: "invalid", 422: "invalid"}


class GatewayClient:
    """One keep-alive HTTP client on the gateway; `token` is the viewer's unless a call names another."""

    def __init__(
        self, config: DashboardConfig, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.config = config
        self._http = httpx.Client(
            base_url=config.gateway_url, timeout=config.timeout, transport=transport
        )

    def get(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        lang: str = "zh",
    ) -> Json:
        bearer = token if token is not None else self.config.token
        headers = {"Accept-Language": lang}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        clean = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        try:
            response = self._http.get(path, params=clean, headers=headers)
        except httpx.HTTPError as error:
            raise GatewayProblem("down", f"{self.config.gateway_url}: {error}") from None
        if response.status_code >= 400:
            raise _problem(response)
        return response.json()

    def close(self) -> None:
        self._http.close()


def _problem(response: httpx.Response) -> GatewayProblem:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail = str(body.get("detail") or response.reason_phrase) if isinstance(body, dict) else ""
    code = body.get("code") if isinstance(body, dict) else None
    kind = _KIND_OF_STATUS.get(status, "down" if status in (502, 503, 504) else "error")
    return GatewayProblem(kind, detail, status, code)
