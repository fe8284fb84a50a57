"""The dashboard's section of `whistleloop bench` (issue 7): every page rendered against a gateway
serving a district-size corpus, each under 2 s.

A page render is measured as a user would wait for it: `streamlit.testing.v1.AppTest` runs the page
script in this process with every cache emptied first, so each of the page's gateway calls goes
over HTTP to `whistleloop gateway` (a child process) and its views database. infra may not import
the dashboard, the gateway or the projections, so the composition root (`infra/cli.py`) hands over
what this needs from them as a `Wiring`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from infra.benchmarks.corpus import Corpus, corpus
from infra.benchmarks.report import Limit, Section, print_section
from infra.benchmarks.store import postgres_everything
from infra.settings import Settings

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

CEILING_MS = 2000.0
#: Measured renders of each page (after one warm-up render that is not counted).
RENDERS = 20
BACKEND = "AppTest → HTTP gateway → SQLite views"
PG_BACKEND = "AppTest → HTTP gateway → PostgreSQL views"
#: Seconds AppTest waits for one run before calling it a failure (not the ceiling: a slow render
#: must be measured, not cut short).
RUN_TIMEOUT = 120.0
#: Cases whose histories are compared when choosing the case the detail pages show.
CANDIDATES = 50
VIEWS_MARKER = "complete"
CASES = "/api/v1/cases"
#: Loggers that write a line per page read, or per cache cleared, outside a Streamlit server.
NOISY = (
    "httpx",
    "streamlit.runtime.caching.cache_data_api",
    "streamlit.runtime.scriptrunner_utils.script_run_context",
)
#: A replay moment after every event: the case as it is now, for the inspector token's check.
FAR_FUTURE = "2100-01-01T00:00:00Z"


@dataclass(frozen=True)
class Wiring:
    """What the composition root passes in from the packages infra may not import."""

    #: The dashboard's main script (`dashboard.launch.APP`).
    app: Path
    #: Rebuilds every read model from `settings`' NATS stream into its views database and audit
    #: key under `settings.var_dir`; an exit code (0: done).
    build_views: Callable[[Settings], int]
    #: Runs `whistleloop gateway` as a child on the store, views and NATS of the settings given,
    #: with a fresh secret and port, until the context ends; yields the child's settings.
    serve: Callable[[Settings, Path], AbstractContextManager[Settings]]
    #: A bearer token for a role ("viewer", "inspector") signed with the settings' secret.
    issue: Callable[[Settings, str], str]
    #: The source folder of the read models: the views cache is keyed by a digest of its code.
    views_code: Path


@dataclass(frozen=True)
class Page:
    """A dashboard page and what a user does on it before the render that is timed."""

    name: str
    #: The session key of the page's case input: the chosen case is put there before the warm-up
    #: render, and must still be there after it (a list drops a pick it no longer shows).
    case_key: str | None = None
    #: What the timed render does (a button clicked), just before `run()`.
    act: Callable[[AppTest], None] | None = None

    @property
    def path(self) -> str:
        return f"pages/{self.name}.py"


def _verify(at: AppTest) -> None:
    """Verification runs only on its button: every timed audit render clicks it."""
    at.button(key="audit.verify").click()


PAGES = (
    Page("command_centre"),
    Page("departments"),
    Page("linkage"),
    Page("cases", case_key="cases.pick"),  # the list's select box: detail and timeline
    Page("audit", case_key="audit.case_id", act=_verify),  # the typed case id
)


def dashboard_section(
    events: int,
    wiring: Wiring,
    *,
    seed: int,
    renders: int = RENDERS,
    postgres_url: str = "",
    postgres_events: int = 200_000,
) -> Section:
    """Each page of the dashboard rendered `renders` times on the corpus of `events` events with
    SQLite views, then (if a URL is given) on at most `postgres_events` with PostgreSQL views."""
    built = corpus(seed, events)
    times, chosen = _on_sqlite_views(built, wiring, renders)
    limits = _limits(BACKEND, times)
    notes = _NOTES.format(
        cases=built.cases, events=built.events, seed=seed, renders=renders, candidates=CANDIDATES
    ) + _chosen("SQLite", chosen)
    if postgres_url:
        small = corpus(seed, min(events, postgres_events))
        with postgres_everything(postgres_url) as pg:
            pg_times, pg_chosen = _on_postgres_views(small, wiring, renders, pg)
        limits += _limits(f"{PG_BACKEND} ({small.cases:,} cases)", pg_times)
        notes += _PG_NOTES.format(events=small.events, cases=small.cases)
        notes += _chosen("PostgreSQL", pg_chosen)
    section = Section(
        f"Dashboard on {built.cases:,} cases (issue 7)",
        f"every page renders in ≤ {CEILING_MS:,.0f} ms (the slowest of its renders).",
        notes,
        limits=limits,
    )
    print_section(section)
    return section


#: Views for a run: given the corpus's NATS URL and a scratch folder, the settings of a views
#: database (and audit key) holding the corpus's read models.
Views = Callable[[str, Path], Settings]


def _rendered(
    built: Corpus, wiring: Wiring, renders: int, views: Views
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """The renders against a gateway on the corpus's SQLite event store and the views given."""
    server = built.nats_server().start()
    try:
        with tempfile.TemporaryDirectory(prefix="wl-bench-dashboard-") as tmp:
            store = views(server.url, Path(tmp)).model_copy(
                update={"database_url": built.store_settings.event_store_url()}
            )
            with wiring.serve(store, Path(tmp) / "gateway") as settings:
                return _measure(settings, wiring, renders)
    finally:
        server.stop()


def _on_sqlite_views(
    built: Corpus, wiring: Wiring, renders: int
) -> tuple[dict[str, list[float]], dict[str, str]]:
    def views(nats_url: str, _scratch: Path) -> Settings:
        return Settings(var_dir=cached_views(built, wiring, nats_url), nats_url=nats_url)

    return _rendered(built, wiring, renders, views)


def _on_postgres_views(
    built: Corpus, wiring: Wiring, renders: int, pg: Settings
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """The corpus's views rebuilt into a fresh PostgreSQL schema (not kept: they are cheap at this
    size)."""

    def views(nats_url: str, scratch: Path) -> Settings:
        built_views = Settings(
            var_dir=scratch / "views", views_database_url=pg.views_database_url, nats_url=nats_url
        )
        if wiring.build_views(built_views) != 0:
            raise RuntimeError(f"building the PostgreSQL views of {built.path} failed")
        return built_views

    return _rendered(built, wiring, renders, views)


def _chosen(backend: str, chosen: dict[str, str]) -> str:
    return (
        f"\n- *{backend} views, cases shown*: {chosen['listed']}… on *cases*, "
        f"{chosen['audited']}… on *audit*."
    )


def _limits(backend: str, times: dict[str, list[float]]) -> list[Limit]:
    """Each page's slowest render against the ceiling, its median beside it."""
    return [
        Limit(
            backend,
            f"render {page}",
            len(found),
            max(found),
            "ms",
            CEILING_MS,
            statistics.median(found),
        )
        for page, found in times.items()
    ]


# --- the views database, built once per corpus and code -----------------------------------------


def cached_views(built: Corpus, wiring: Wiring, nats_url: str) -> Path:
    """The corpus's views (database and audit key), rebuilt from its stream unless a complete
    build by the same read-model code is beside it; builds by other code are thrown away."""
    key = code_digest(wiring.views_code)
    views = Path(built.path) / f"views-{key}"
    if (views / VIEWS_MARKER).exists():
        return views
    for stale in Path(built.path).glob("views-*"):
        shutil.rmtree(stale)
    views.mkdir()
    if wiring.build_views(Settings(var_dir=views, nats_url=nats_url)) != 0:
        raise RuntimeError(f"building the views of {built.path} failed")
    (views / VIEWS_MARKER).write_text(key + "\n")
    return views


def code_digest(folder: Path) -> str:
    """A short digest of every Python file under `folder` (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


# --- rendering --------------------------------------------------------------------------------


def _measure(
    settings: Settings, wiring: Wiring, renders: int
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Milliseconds per render of each page, interleaved round by round (a noisy moment hits every
    page alike), and the cases the detail pages showed."""
    url = settings.gateway_url()
    viewer, inspector = wiring.issue(settings, "viewer"), wiring.issue(settings, "inspector")
    with _quiet():
        chosen = {
            "listed": _longest(url, viewer, {"limit": CANDIDATES}),
            "audited": _longest(url, viewer, {"limit": CANDIDATES, "status": "closed"}),
        }
        _check_token(url, inspector, chosen["audited"])
    cases = {"cases": chosen["listed"], "audit": chosen["audited"]}
    with _dashboard_env(url, viewer, inspector), _quiet():
        sessions = {page.name: _warm(wiring.app, page, cases.get(page.name, "")) for page in PAGES}
        times: dict[str, list[float]] = {page.name: [] for page in PAGES}
        for _round in range(renders):
            for page in PAGES:
                times[page.name].append(_render(sessions[page.name], page))
    return times, {key: case_id[:8] for key, case_id in chosen.items()}


def _longest(url: str, token: str, params: dict[str, Any]) -> str:
    """Of the cases the list gives for `params`, the one with the longest history: the heaviest
    detail, timeline and verification a user can open there."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        listed = _ok(http.get(CASES, params=params))["items"]
        if not listed:
            raise RuntimeError(f"the corpus has no case listed for {params}")
        sizes: dict[str, int] = {
            str(item["case_id"]): len(_ok(http.get(f"{CASES}/{item['case_id']}/history")))
            for item in listed
        }
    return max(sizes, key=sizes.__getitem__)


def _check_token(url: str, inspector: str, case_id: str) -> None:
    """The inspector token works (a refused one would show as a friendly box and be timed)."""
    headers = {"Authorization": f"Bearer {inspector}"}
    _ok(httpx.get(f"{url}{CASES}/{case_id}", params={"as_of": FAR_FUTURE}, headers=headers))


def _ok(response: httpx.Response) -> Any:
    if response.status_code != 200:
        raise RuntimeError(f"GET {response.url}: {response.status_code} {response.text[:300]}")
    return response.json()


@contextlib.contextmanager
def _dashboard_env(url: str, viewer: str, inspector: str) -> Iterator[None]:
    """The dashboard's `WL_DASHBOARD_*` variables for the pages run in this process, then back."""
    values = {
        "WL_DASHBOARD_GATEWAY_URL": url,
        "WL_DASHBOARD_TOKEN": viewer,
        "WL_DASHBOARD_INSPECTOR_TOKEN": inspector,
        "WL_DASHBOARD_TIMEOUT": str(RUN_TIMEOUT),
    }
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No line per HTTP request, nor per cache made outside a Streamlit server (AppTest resets
    Streamlit's log levels on each run, so those loggers are switched off, then back on)."""
    loggers = [logging.getLogger(name) for name in NOISY]
    before = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, disabled in zip(loggers, before, strict=True):
            logger.disabled = disabled


def _warm(app: Path, page: Page, case_id: str) -> AppTest:
    """A session on `page`, prepared and rendered (first imports, connections; the widgets its
    timed renders use appear): not timed."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(app), default_timeout=RUN_TIMEOUT)
    at.run()
    at.switch_page(page.path)
    if page.case_key is not None:
        at.session_state[page.case_key] = case_id
    at.run()
    _render(at, page)
    if page.case_key is not None and (
        page.case_key not in at.session_state or at.session_state[page.case_key] != case_id
    ):
        raise RuntimeError(f"the {page.name} page did not keep case {case_id} in {page.case_key}")
    return at


def _render(at: AppTest, page: Page) -> float:
    """One render of the page with every cache emptied first, so each read reaches the gateway;
    its milliseconds. A render that failed (a traceback, an error box) fails the benchmark."""
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    if page.act is not None:
        page.act(at)
    started = time.perf_counter()
    at.run()
    elapsed = (time.perf_counter() - started) * 1000
    failures = [e.value for e in at.exception] + [e.value for e in at.error]
    if failures:
        raise RuntimeError(f"the {page.name} page failed to render: {failures}")
    return elapsed


_NOTES = """- *corpus*: the projections section's corpus ({events:,} events, {cases:,} cases, seed
  {seed}); its views are rebuilt from its stream once per corpus and read-model code and kept
  beside it (`views-<digest>/`).
- *gateway*: `whistleloop gateway` as a child process on the corpus's SQLite event store and those
  views, with a fresh JWT secret; a viewer and an inspector token as `whistleloop dashboard` has.
- *render PAGE*: `streamlit.testing.v1.AppTest` of `dashboard/app.py` switched to that page, in the
  benchmark process (Chinese, the default), {renders} timed `run()`s each after one warm-up,
  interleaved page by page. `st.cache_data` and `st.cache_resource` are cleared before each, so a
  render is the whole page script with every gateway call it makes served over HTTP (and a fresh
  HTTP client): the slowest render is held to the ceiling, the median shown beside it.
  `st.fragment(run_every=…)` refreshes are not fired by AppTest: each render is a first load.
- *cases*: the case with the longest history of the list's newest {candidates} is picked in the
  select box, so its detail and timeline render too. *audit*: the longest history of the
  newest {candidates} closed cases typed in; each timed render clicks *verify*
  (every event checked against the store and the Merkle tree), and shows the inclusion proof and
  the inspector's time travel (the case replayed as of its last event)."""

_PG_NOTES = """
- *PostgreSQL views*: the same, on a corpus of {events:,} events ({cases:,} cases) whose views are
  rebuilt into a fresh PostgreSQL schema for the run (`projections rebuild --jobs`); the gateway
  reads them there and the event store (verify, time travel) from the corpus's SQLite file. A
  10⁶-event PostgreSQL rebuild would add about ten minutes to every run."""
