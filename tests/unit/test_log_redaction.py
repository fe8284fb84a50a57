"""Tokens in a URL's query never reach the logs: uvicorn logs every request's path with its query
(a WebSocket's `?token=`, an Open311 `api_key`), through the handler `configure_logging` installs."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from infra.logs import configure_logging

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Logging as `whistleloop gateway` has it: ours on the root, uvicorn's loggers propagating to
    it (`log_config=None`), whatever an in-process uvicorn of an earlier test configured."""
    for name in ("uvicorn", "uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "handlers", [])
        monkeypatch.setattr(logger, "propagate", True)
        monkeypatch.setattr(logger, "disabled", False)
        monkeypatch.setattr(logger, "level", logging.NOTSET)
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    configure_logging("INFO")
    yield out
    logging.getLogger().handlers.clear()


def test_uvicorn_request_lines_lose_their_query_secrets(logged: io.StringIO) -> None:
    access = logging.getLogger("uvicorn.access")
    access.info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "GET",
        f"/ws/command-centre?since=4&token={TOKEN}",
        "1.1",
        101,
    )
    logging.getLogger("uvicorn.error").info(
        '%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", f"/ws/cases/x?token={TOKEN}"
    )
    logging.getLogger("whistleloop").warning("open311 call api_key=%s refused", TOKEN)
    text = logged.getvalue()
    assert TOKEN not in text
    assert text.count("token=***") == 2
    assert "api_key=***" in text
    assert "since=4" in text, "other parameters stay"
