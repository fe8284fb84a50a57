"""Live simulated traffic through the gateway: `whistleloop simulate --rate N` (and `--backfill`).

The district of `infra.simulator` drives a running system from outside, as its users would: each
`Step` becomes the REST call of docs/API.md with a bearer token of the step's actor (a department
reports in with a department token, a street accepts with its street's), and a share of the reports
comes in through Open311 (`POST /open311/v2/requests.json`, form-encoded, a resident's `api_key`).
The gateway stamps every event with its own clock: this is real time, unlike the backfill.

Pacing is open loop: a step is sent every 1/N s whatever the answers take, by a pool of threads, so a
slow system shows up as latency and a backlog rather than as a lower rate. Steps of one case stay in
order (a case with a command in flight is passed over until it is answered); the simulated times only
order the steps. A command the domain or the gateway refuses (409, 403…) is counted and ends that
case's path: what follows was drawn for a state the case does not have. SLA-clock steps are not sent
(the simulation runs without them; the real SLA clock does that job live).

The CLI passes `token_for(role, scope)`, which signs tokens (`gateway.auth.issue_token`): infra
does not import the gateway.
"""

from __future__ import annotations

import contextlib
import random
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any
from uuid import UUID

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from domain.actors import Actor, Role
from domain.clock import CHINA_TZ, ManualClock, SystemClock
from domain.service import CaseService
from infra.calendars import china_calendar
from infra.settings import Settings
from infra.simulator import Backfill, Plan, Simulation, Step, backfill

Json = dict[str, Any]
#: `token_for(role, scope)`: a bearer token for a gateway role; scope is one of `{"dept": …}`,
#: `{"street": …}`, `{"community": …}` or `{"subject": …}` (the keywords of `issue_token`).
TokenFor = Callable[[str, dict[str, str]], str]
Client = tuple[str, dict[str, str]]

#: Live cases arrive at this rate in simulated time: a few dozen open at once, so that within a
#: minute the dashboard shows cases at every stage rather than a pile of new reports.
LIVE_CASES_PER_DAY = 12.0
#: Who reads a case's state between steps (time travel replays the store: never a lagging view).
READER: Client = ("command_centre", {"subject": "cc-sim"})
#: A moment after every event, for `?as_of=`: the case as the store holds it now.
LATEST = "9999-12-31T00:00:00+00:00"
ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
#: `CaseService` method → the gateway's command path (POST /api/v1/cases/{id}/<path>).
COMMAND_PATHS = {
    "accept": "accept",
    "reject": "reject",
    "whistle": "whistle",
    "report_in": "report-in",
    "hand_off": "hand-off",
    "dispute_hand_off": "dispute",
    "determine_responsibility": "determine",
    "hold_consultation": "consult",
    "report_handling": "report-handling",
    "send_back_for_rework": "rework",
    "close_case": "close",
    "rate_by_resident": "rate",
    "rate_by_street": "rate",
    "reopen": "reopen",
    "issue_supervision": "supervise",
    "escalate_to_district": "escalate",
    "cancel": "cancel",
}
#: Seconds before the driver asks for a new token (tokens live WL_TOKEN_TTL, 8 h by default).
TOKEN_REFRESH = 300.0
#: How many cases' ids the driver remembers after their paths end (for duplicates).
KNOWN_IDS = 10_000
#: Roughly the district's extent (WGS84), for Open311 reports located by coordinates.
LATITUDES, LONGITUDES = (39.88, 39.96), (116.42, 116.52)


class PathEnded(Exception):
    """The case's path cannot go on (its command was refused or failed); already counted."""


@dataclass
class Tally:
    """What a live run did, counted from several threads."""

    sent: Counter[str] = field(default_factory=Counter)  # accepted commands, by step name
    refused: Counter[str] = field(default_factory=Counter)  # "409 not_whistled"
    errors: Counter[str] = field(default_factory=Counter)  # 5xx, transport errors, bugs
    skipped: Counter[str] = field(default_factory=Counter)  # steps the HTTP API has no client for
    open311: int = 0
    unsent: int = 0  # steps still queued when the run ended (the gateway fell behind the rate)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, counter: Counter[str], label: str) -> None:
        with self.lock:
            counter[label] += 1

    def summary(self, seconds: float) -> str:
        """One line: sent (and the rate achieved), refused by code, errors, skipped."""
        sent = sum(self.sent.values())
        parts = [
            f"sent {sent} in {seconds:.0f} s ({sent / max(seconds, 1e-9):.1f}/s, "
            f"{self.open311} reports via Open311)",
            "refused " + _listed(self.refused),
            "errors " + _listed(self.errors),
        ]
        if self.skipped:
            parts.append("skipped " + _listed(self.skipped))
        if self.unsent:
            parts.append(f"{self.unsent} not sent (queued at the end: the gateway fell behind)")
        return "live: " + "; ".join(parts)


def _listed(counter: Counter[str]) -> str:
    if not counter:
        return "0"
    return (
        f"{sum(counter.values())} ("
        + ", ".join(f"{k} ×{n}" for k, n in counter.most_common())
        + ")"
    )


@dataclass
class _Remote:
    """What the driver knows of a simulated case on the gateway."""

    case_id: str  # the gateway's id
    street: str
    resident: str | None  # the reporting resident's id, if a resident reported it


class HttpDriver:
    """The simulator's `Driver` over the gateway's HTTP API; safe to call from several threads
    (each case is driven by one thread at a time)."""

    def __init__(
        self,
        client: httpx.Client,
        token_for: TokenFor,
        tally: Tally,
        *,
        open311_share: float,
        rng: random.Random,
    ) -> None:
        self.client = client
        self.token_for = token_for
        self.tally = tally
        self.open311_share = open311_share
        self.rng = rng
        self.cases: dict[UUID, _Remote] = {}  # open paths
        self.ids: dict[UUID, str] = {}  # every case created: simulated id → the gateway's
        self._tokens: dict[str, tuple[float, str]] = {}  # client → (issued, token)
        self._lock = threading.Lock()

    # -- the Driver protocol --

    def execute(self, case_id: UUID, step: Step) -> None:
        if step.actor.role is Role.SYSTEM:
            self.tally.add(self.tally.skipped, f"{step.name} (the SLA clock's)")
            return
        if step.name == "report":
            self.cases[case_id] = remote = self._report(step)
            self._remember(case_id, remote.case_id)
        elif not self._command(self.cases[case_id], step):
            return
        self.tally.add(self.tally.sent, step.name)

    def state(self, case_id: UUID) -> Json:
        """The case's state in the store, as `CaseService.case` gives it (times as datetimes)."""
        remote = self.cases[case_id]
        response = self._send(
            "GET",
            f"/api/v1/cases/{remote.case_id}",
            READER,
            "state",
            params={"as_of": LATEST},
        )
        state: Json = _revive(response.json()["case"])
        return state

    def finished(self, case_id: UUID) -> None:
        self.cases.pop(case_id, None)

    def flush(self) -> None:
        """Nothing is buffered: every step is one request."""

    # -- reports --

    def _report(self, step: Step) -> _Remote:
        kwargs = dict(step.kwargs)
        key = kwargs.pop("idempotency_key")
        street = kwargs["street"]
        item = step.about.get("item")
        via_open311 = kwargs.get("source") == "open311" or self.rng.random() < self.open311_share
        if item is not None and via_open311:  # the simulator's own Open311 share goes there too
            resident = step.actor.id if step.actor.role is Role.RESIDENT else "open311-resident"
            return _Remote(self._open311(key, item, kwargs, resident), street, resident)
        client = _reporter(step.actor, kwargs)
        body = {k: v for k, v in kwargs.items() if v is not None}
        response = self._send("POST", "/api/v1/cases", client, "report", json=body, key=key)
        reporter = step.actor.id if step.actor.role is Role.RESIDENT else None
        return _Remote(str(response.json()["case_id"]), street, reporter)

    def _open311(self, key: str, item: str, kwargs: Json, resident: str) -> str:
        """The report as a GeoReport v2 service request; the answer's id is the case id."""
        form = {
            "api_key": self._token(("resident", {"subject": resident})),
            "service_code": item,
            "attribute[street]": kwargs["street"],
            "description": kwargs["description"],
            **({"attribute[community]": kwargs["community"]} if kwargs.get("community") else {}),
            **self._location(kwargs["address"]),
            **({"phone": kwargs["contact"]["phone"]} if kwargs.get("contact") else {}),
        }
        response = self._send(
            "POST", "/open311/v2/requests.json", None, "report (open311)", data=form, key=key
        )
        with self.tally.lock:
            self.tally.open311 += 1
        return str(response.json()[0]["service_request_id"])

    def _location(self, address: str) -> dict[str, str]:
        """Half the requests give coordinates (a phone app), half an address (a web form)."""
        if self.rng.random() < 0.5:
            return {"address_string": address}
        return {
            "lat": f"{self.rng.uniform(*LATITUDES):.6f}",
            "long": f"{self.rng.uniform(*LONGITUDES):.6f}",
        }

    # -- commands on a case --

    def _command(self, remote: _Remote, step: Step) -> bool:
        """Sends the step; False when the API has no client for it (counted as skipped)."""
        client = self._client(remote, step)
        if client is None:
            self.tally.add(self.tally.skipped, f"{step.name} (no reporting resident)")
            return False
        body = {k: v for k, v in step.kwargs.items() if v is not None}
        if "duplicate_of" in body:
            body["duplicate_of"] = self._remote_id(body["duplicate_of"])
        path = f"/api/v1/cases/{remote.case_id}/{COMMAND_PATHS[step.name]}"
        self._send("POST", path, client, step.name, json=body)
        return True

    def _client(self, remote: _Remote, step: Step) -> Client | None:
        """Whose token sends the step. Over HTTP a resident acts only on what they reported: when a
        grid worker, community or street reported the case, the street reopens it on the
        resident's complaint (as after a 12345 call-back) and the resident's rating is skipped."""
        actor = step.actor
        if actor.role is Role.RESIDENT:
            if remote.resident is not None:
                return "resident", {"subject": remote.resident}
            return ("street", {"street": remote.street}) if step.name == "reopen" else None
        return _scoped(actor)

    def _remember(self, case_id: UUID, remote_id: str) -> None:
        """Keeps the latest `KNOWN_IDS` ids: a duplicate names a case reported shortly before."""
        with self._lock:
            self.ids[case_id] = remote_id
            if len(self.ids) > KNOWN_IDS:
                del self.ids[next(iter(self.ids))]

    def _remote_id(self, sim_id: Any) -> str:
        """The gateway's id of a simulated case (a duplicate names the case it repeats)."""
        remote_id = self.ids.get(UUID(str(sim_id)))
        if remote_id is None:
            self.tally.add(self.tally.skipped, "reject (duplicate of a case never created)")
            raise PathEnded
        return remote_id

    # -- HTTP --

    def _token(self, client: Client) -> str:
        """A token for the client, issued afresh every `TOKEN_REFRESH` s (a run may outlive one)."""
        role, scope = client
        label = f"{role}:{sorted(scope.items())}"
        now = time.monotonic()
        with self._lock:
            issued, token = self._tokens.get(label, (-TOKEN_REFRESH, ""))
            if now - issued >= TOKEN_REFRESH:
                token = self.token_for(role, scope)
                self._tokens[label] = (now, token)
            return token

    def _send(
        self,
        method: str,
        path: str,
        client: Client | None,
        what: str,
        *,
        key: str | None = None,
        **request: Any,
    ) -> httpx.Response:
        """The request; a refusal (4xx) or failure (5xx, no answer) is counted and ends the path."""
        headers = {} if client is None else {"Authorization": f"Bearer {self._token(client)}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        try:
            response = self._throttled(method, path, headers, request)
        except httpx.HTTPError as error:
            self.tally.add(self.tally.errors, f"{what}: {type(error).__name__}")
            raise PathEnded from error
        if response.status_code >= 500:
            self.tally.add(self.tally.errors, f"{response.status_code} {what}")
            raise PathEnded
        if response.status_code >= 400:
            self.tally.add(self.tally.refused, f"{response.status_code} {_code(response)}")
            raise PathEnded
        return response

    def _throttled(
        self, method: str, path: str, headers: dict[str, str], request: dict[str, Any]
    ) -> httpx.Response:
        """The request, sent again after `Retry-After` while the gateway's per-caller write limit
        refuses it (429 claims no idempotency key, so a resend is safe), a few times at most."""
        for _attempt in range(THROTTLE_RETRIES):
            response = self.client.request(method, path, headers=headers, **request)
            if response.status_code != 429:
                return response
            time.sleep(min(float(response.headers.get("Retry-After", "1")), 5.0))
        return response


#: Resends of a write the gateway's rate limit refused before it counts as refused.
THROTTLE_RETRIES = 4


def _reporter(actor: Actor, fields: Json) -> Client:
    """Who reports over REST: a resident, a street or the command centre as themselves; a grid
    worker or community through its community (or its street when the report names none)."""
    if actor.role in (Role.COMMUNITY, Role.GRID_WORKER):
        community = fields.get("community")
        return ("community", {"community": community}) if community else _street(fields["street"])
    return _scoped(actor)


def _scoped(actor: Actor) -> Client:
    """The token of an actor the gateway knows by role and scope."""
    match actor.role:
        case Role.DEPARTMENT:
            return "department", {"dept": actor.id}
        case Role.STREET:
            return _street(actor.id)
        case Role.COMMUNITY:
            return "community", {"community": actor.id}
        case _:
            return actor.role.value, {"subject": actor.id}


def _street(street: str) -> Client:
    return "street", {"street": street}


def _code(response: httpx.Response) -> str:
    """The stable error code of a problem document or an Open311 error list."""
    with contextlib.suppress(ValueError, KeyError, IndexError, TypeError, AttributeError):
        body = response.json()
        if isinstance(body, list):
            return str(body[0]["description"]).split(":", 1)[0]
        return str(body["code"])
    return "unknown"


def _revive(value: Any) -> Any:
    """JSON state with its ISO-8601 times back as datetimes (the paths compute with them)."""
    if isinstance(value, dict):
        return {k: _revive(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_revive(v) for v in value]
    if isinstance(value, str) and ISO_TIME.match(value):
        return datetime.fromisoformat(value)
    return value


# --- the pacer ----------------------------------------------------------------------------------


class LiveTraffic:
    """Sends the simulation's steps at `rate` per second (open loop) until `stop` or `duration`."""

    def __init__(self, simulation: Simulation, tally: Tally, rate: float) -> None:
        if rate <= 0:
            raise ValueError("the rate is a positive number of commands per second")
        self.simulation = simulation
        self.tally = tally
        self.rate = rate
        self.busy: set[UUID] = set()
        self._lock = threading.Lock()
        self._submitted = 0
        self._started = 0

    def run(self, duration: float | None, stop: threading.Event) -> float:
        """Runs until `stop` is set or `duration` seconds have passed; waits for the requests in
        flight, drops the ones not yet sent. Returns the seconds it ran."""
        started = time.monotonic()
        interval = 1 / self.rate
        workers = max(8, min(64, int(self.rate)))
        with ThreadPoolExecutor(workers, thread_name_prefix="simulate") as pool:
            due = started
            while not stop.is_set():
                if duration is not None and due - started >= duration:
                    break
                if stop.wait(max(0.0, due - time.monotonic())):
                    break
                pool.submit(self._carry, *self._take())
                self._submitted += 1
                due += interval
            pool.shutdown(wait=True, cancel_futures=True)
        self.tally.unsent = self._submitted - self._started
        return time.monotonic() - started

    def _take(self) -> tuple[UUID, Step, Plan]:
        with self._lock:
            case_id, step, plan = self.simulation.take(self.busy)
            self.busy.add(case_id)
            return case_id, step, plan

    def _carry(self, case_id: UUID, step: Step, plan: Plan) -> None:
        """One step, then the case's next (which may read its state); a path that cannot go on ends."""
        with self._lock:
            self._started += 1
        head = None
        try:
            self.simulation.driver.execute(case_id, step)
            head = next(plan, None)
        except PathEnded:
            plan.close()
        except Exception as error:  # a bug in one path is reported, and the traffic goes on
            self.tally.add(self.tally.errors, f"{step.name}: {type(error).__name__}: {error}"[:160])
            plan.close()
        with self._lock:
            self.busy.discard(case_id)
            self.simulation.resume(case_id, plan, head)


def live_traffic(
    base_url: str,
    token_for: TokenFor,
    *,
    seed: int,
    rate: float,
    duration: float | None,
    open311_share: float,
    stop: threading.Event,
) -> tuple[Tally, float]:
    """Drives the gateway at `base_url`; returns what was done and for how long.

    The reports' keys name the seed and the start, so a second run makes new cases (a key the
    gateway has seen would replay its first answer: the old case)."""
    now = SystemClock().now()
    clock = ManualClock(now)
    tally = Tally()
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        driver = HttpDriver(
            client, token_for, tally, open311_share=open311_share, rng=random.Random(seed + 1)
        )
        simulation = Simulation(
            driver,
            _offline_service(clock),
            clock,
            seed,
            sla=False,
            start=now,
            cases_per_day=LIVE_CASES_PER_DAY,
            key_prefix=f"live:{seed}:{now.astimezone(CHINA_TZ):%Y%m%dT%H%M%S}",
        )
        seconds = LiveTraffic(simulation, tally, rate).run(duration, stop)
    return tally, seconds


def _offline_service(clock: ManualClock) -> CaseService:
    """What the paths read besides the cases (reference data, working calendar): an in-memory
    service, never the event store, which may be on another machine with the gateway."""
    return CaseService(
        {"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=clock, calendar=china_calendar()
    )


# --- `whistleloop simulate` ----------------------------------------------------------------------


def run_simulate(
    settings: Settings,
    *,
    seed: int,
    backfill_days: float,
    rate: float,
    duration: float,
    open311_share: float,
    token_for: TokenFor,
    url: str | None = None,
    wait: float = 0.0,
    console: Console | None = None,
    stop: threading.Event | None = None,
) -> int:
    """`whistleloop simulate`: the backfill (if `backfill_days`), then live traffic (if `rate`).

    Returns the exit status: 0, or 1 for bad options, an unreachable gateway or live errors (5xx,
    no answer); refused commands are part of realistic traffic and do not fail the run.
    """
    console = console or Console()
    problem = _bad_options(backfill_days, rate, duration, open311_share)
    if problem:
        console.print(f"[red]error:[/red] {problem}")
        return 1
    if backfill_days > 0:
        done = backfill_with_progress(settings, seed, backfill_days, console)
        console.print(done.summary())
    if rate <= 0:
        return 0
    base_url = url or settings.gateway_url()
    unreachable = _reachable_within(base_url, wait)
    if unreachable:
        console.print(f"[red]error:[/red] {unreachable}")
        return 1
    stop = stop or threading.Event()
    console.print(
        f"live traffic to {base_url}: {rate:g} commands/s"
        + (f" for {duration:g} s" if duration else " until Ctrl-C")
    )
    with _stopped_by_signals(stop):
        tally, seconds = live_traffic(
            base_url,
            token_for,
            seed=seed,
            rate=rate,
            duration=duration or None,
            open311_share=open311_share,
            stop=stop,
        )
    console.print(tally.summary(seconds))
    return 1 if tally.errors else 0


def _bad_options(backfill_days: float, rate: float, duration: float, share: float) -> str | None:
    if backfill_days <= 0 and rate <= 0:
        return "nothing to do: give --backfill DAYS, --rate N, or both"
    if backfill_days < 0 or rate < 0 or duration < 0:
        return "--backfill, --rate and --duration are not negative"
    if not 0 <= share <= 1:
        return "--open311-share is a share between 0 and 1"
    return None


def backfill_with_progress(
    settings: Settings, seed: int, days: float, console: Console
) -> Backfill:
    """The backfill with a progress bar in simulated days."""
    end = datetime.now(UTC)
    with Progress(
        TextColumn("backfill {task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.1f}/{task.total:g} days"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(f"of the last {days:g} d (seed {seed})", total=days)
        start = end.timestamp() - days * 86400

        def progress(at: datetime) -> None:
            bar.update(task, completed=(at.timestamp() - start) / 86400)

        done = backfill(settings, seed, days, end=end, progress=progress)
        bar.update(task, completed=days)
    return done


def _reachable_within(base_url: str, wait: float) -> str | None:
    """None once the gateway answers, trying for `wait` seconds (it may be starting beside us)."""
    deadline = time.monotonic() + wait
    while (problem := _unreachable(base_url)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return problem


def _unreachable(base_url: str) -> str | None:
    """Why the gateway cannot take traffic, or None when `/healthz` answers."""
    try:
        response = httpx.get(f"{base_url}/healthz", timeout=5.0)
    except httpx.HTTPError as error:
        return (
            f"no gateway at {base_url} ({type(error).__name__}): start `whistleloop up` "
            "(or `whistleloop gateway`), or give --url"
        )
    if response.status_code != 200:
        return f"the gateway at {base_url} is not healthy (/healthz: {response.status_code})"
    return None


@contextlib.contextmanager
def _stopped_by_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM set `stop` (a clean end with a summary) while the traffic runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
