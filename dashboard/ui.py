"""What every page shares: the gateway client, cached reads, and friendly problem messages."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import streamlit as st

from dashboard.client import GatewayClient, GatewayProblem, Json
from dashboard.config import DashboardConfig
from dashboard.formatting import CHINA
from dashboard.i18n import lang, t

#: Seconds a read is cached: short, so the live pages stay live, but a rerun does not refetch.
CACHE_TTL = 2.0


@st.cache_resource
def config() -> DashboardConfig:
    return DashboardConfig.from_env()


@st.cache_resource
def gateway() -> GatewayClient:
    return GatewayClient(config())


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def fetch(
    path: str,
    params: tuple[tuple[str, Any], ...] = (),
    token: str | None = None,
    language: str = "zh",
) -> Json:
    """A cached GET (params as a tuple so the cache can hash them)."""
    return gateway().get(path, dict(params), token=token, lang=language)


def get(path: str, token: str | None = None, **params: Any) -> Json:
    """A GET through the cache, in the session's language."""
    return fetch(path, tuple(sorted(params.items())), token, lang())


@contextmanager
def friendly() -> Iterator[None]:
    """Shows a gateway problem as a message box instead of a traceback; the page goes on."""
    try:
        yield
    except GatewayProblem as problem:
        show_problem(problem)


def show_problem(problem: GatewayProblem) -> None:
    message = t(f"problem.{problem.kind}", detail=problem.detail or problem.code or "")
    if problem.kind in ("down", "error"):
        st.error(message, icon=":material/warning:")
    else:
        st.warning(
            message,
            icon=":material/lock:" if problem.kind in ("auth", "forbidden") else ":material/info:",
        )


def empty(message_key: str = "empty") -> None:
    st.info(t(message_key), icon=":material/info:")


def refreshed_caption() -> None:
    st.caption(f"{t('refreshed')} {datetime.now(CHINA):%H:%M:%S}")
