"""CaseService: the application service, one method per command of the closed loop.

Each command loads the case, lets the aggregate check its rules at the injected clock's time, and saves.
Optimistic concurrency: when another writer saved first (`IntegrityError`), the command is tried again
on the fresh state a bounded number of times; if it is no longer legal, the domain error says why.
Methods return plain values (ids, versions, dicts), never aggregates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import suppress
from datetime import datetime
from threading import Lock
from typing import Any, ClassVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from domain.actors import Actor
from domain.calendar import HolidayTable, TableHolidayProvider, WorkingCalendar
from domain.case import Case
from domain.clock import Clock, SystemClock
from domain.deadlines import Urgency
from domain.duty_list import DutyList
from domain.errors import DomainError, IllegalState, InvalidInput, NotFound
from domain.reference import DutyItem, ReferenceData, load_reference

Json = dict[str, Any]

#: The identity that publishes the shipped duty list on first start.
BOOTSTRAP_ACTOR = Actor.of("command_centre", "bootstrap")


class ConcurrentModification(IllegalState):
    """Other writers kept winning the race; the client may try again."""


class CaseService(Application[UUID]):
    name = "whistleloop"  # table names: whistleloop_events, whistleloop_snapshots
    max_attempts: ClassVar[int] = 5

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        clock: Clock | None = None,
        reference: ReferenceData | None = None,
        calendar: WorkingCalendar | None = None,
    ) -> None:
        super().__init__(env)
        self.clock = clock or SystemClock()
        self.reference = reference or load_reference()
        self.calendar = calendar or WorkingCalendar(TableHolidayProvider(HolidayTable.shipped()))
        self.duty_list_id = DutyList.id_for(self.reference.district)
        self._duty_list_lock = Lock()
        #: Called after every successful save; must be quick and must not raise.
        self.after_save: list[Callable[[], None]] = []
        #: Striped locks: commands on one case in this process take turns on its cached object.
        self._case_locks = [Lock() for _ in range(64)]
        self._shared_duty_list: DutyList | None = None

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """Saves, then tells every `after_save` listener (e.g. the relay's nudge) that events landed."""
        recordings = super().save(*objs, **kwargs)
        for listener in self.after_save:
            listener()
        return recordings

    # --- intake -------------------------------------------------------------------------------

    def report(
        self,
        actor: Actor,
        *,
        source: str,
        street: str,
        title: str,
        description: str,
        community: str | None = None,
        grid: str | None = None,
        address: str = "",
        suggested_item: str | None = None,
        contact: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> UUID:
        """收集. With an idempotency key, a retried report returns the first case's id."""
        self.reference.check_location(street, community, grid)
        if suggested_item is not None:
            self._duty_list().item_at(suggested_item, self.clock.now())
        case_id = Case.id_for(idempotency_key)
        if idempotency_key and case_id in self.repository:
            return case_id
        case = Case.report(
            actor,
            self.clock.now(),
            case_id=case_id,
            source=source,
            street=street,
            community=community,
            grid=grid,
            title=title,
            description=description,
            address=address,
            suggested_item=suggested_item,
            contact=contact,
        )
        try:
            self.save(case)
        except IntegrityError:
            if not idempotency_key:
                raise
        return case_id

    def accept(self, case_id: UUID, actor: Actor, note: str = "") -> int:
        return self._update(case_id, lambda case, at: case.accept(actor, at, note))

    def reject(
        self,
        case_id: UUID,
        actor: Actor,
        reason: str,
        note: str = "",
        duplicate_of: UUID | None = None,
    ) -> int:
        if duplicate_of == case_id:
            raise InvalidInput(
                "duplicate_of_self", "案件不能与自身重复", "a case cannot duplicate itself"
            )
        if duplicate_of is not None:
            self._get(duplicate_of)
        other = str(duplicate_of) if duplicate_of else None
        return self._update(case_id, lambda case, at: case.reject(actor, at, reason, note, other))

    def whistle(
        self,
        case_id: UUID,
        actor: Actor,
        *,
        lead: str,
        assisting: tuple[str, ...] = (),
        duty_item: str | None = None,
        urgency: str = "normal",
        justification: str | None = None,
    ) -> int:
        """吹哨 under the duty-list version in force now."""
        for dept in (lead, *assisting):
            self.reference.department(dept)
        level = _urgency(urgency)

        def whistle(case: Case, at: datetime) -> None:
            version, item = self._item_now(duty_item, at)
            case.whistle(
                actor,
                at,
                lead=lead,
                assisting=tuple(assisting),
                item=item,
                duty_list_version=version,
                urgency=level,
                justification=justification,
                calendar=self.calendar,
            )

        return self._update(case_id, whistle)

    # --- departments --------------------------------------------------------------------------

    def report_in(self, case_id: UUID, actor: Actor, mode: str, note: str = "") -> int:
        return self._update(case_id, lambda case, at: case.report_in(actor, at, mode, note))

    def hand_off(self, case_id: UUID, actor: Actor, to_department: str, reason: str) -> int:
        self.reference.department(to_department)
        return self._update(
            case_id,
            lambda case, at: case.hand_off(
                actor, at, to_department, reason, item=self._item_of(case)
            ),
        )

    def dispute_hand_off(self, case_id: UUID, actor: Actor, reason: str) -> int:
        return self._update(case_id, lambda case, at: case.dispute_hand_off(actor, at, reason))

    def determine_responsibility(
        self, case_id: UUID, actor: Actor, department: str, basis: str
    ) -> int:
        self.reference.department(department)
        return self._update(
            case_id,
            lambda case, at: case.determine_responsibility(
                actor, at, department, basis, item=self._item_of(case)
            ),
        )

    def hold_consultation(
        self, case_id: UUID, actor: Actor, departments: tuple[str, ...], plan: str
    ) -> int:
        for dept in departments:
            self.reference.department(dept)
        return self._update(
            case_id, lambda case, at: case.hold_consultation(actor, at, tuple(departments), plan)
        )

    def report_handling(self, case_id: UUID, actor: Actor, result: str, note: str = "") -> int:
        return self._update(case_id, lambda case, at: case.report_handling(actor, at, result, note))

    # --- street, residents --------------------------------------------------------------------

    def send_back_for_rework(self, case_id: UUID, actor: Actor, reason: str) -> int:
        return self._update(
            case_id,
            lambda case, at: case.send_back_for_rework(
                actor, at, reason, self._item_of(case), self.calendar
            ),
        )

    def close_case(self, case_id: UUID, actor: Actor, note: str = "") -> int:
        """核查结案. (Not `close`: that name is `Application.close()`, which closes the store.)"""
        return self._update(case_id, lambda case, at: case.close(actor, at, note))

    def rate_by_resident(
        self, case_id: UUID, actor: Actor, satisfaction: str, solved: bool, comment: str = ""
    ) -> int:
        return self._update(
            case_id,
            lambda case, at: case.rate_by_resident(actor, at, satisfaction, solved, comment),
        )

    def rate_by_street(
        self, case_id: UUID, actor: Actor, scores: dict[str, int], comment: str = ""
    ) -> int:
        return self._update(
            case_id, lambda case, at: case.rate_by_street(actor, at, scores, comment)
        )

    def reopen(self, case_id: UUID, actor: Actor, reason: str) -> int:
        return self._update(
            case_id,
            lambda case, at: case.reopen(actor, at, reason, self._item_of(case), self.calendar),
        )

    # --- oversight ----------------------------------------------------------------------------

    def record_deadline_missed(
        self, case_id: UUID, actor: Actor, department: str, obligation: str
    ) -> int:
        return self._update(
            case_id, lambda case, at: case.record_deadline_missed(actor, at, department, obligation)
        )

    def issue_supervision(
        self,
        case_id: UUID,
        actor: Actor,
        colour: str,
        department: str,
        reason: str,
        obligation: str | None = None,
    ) -> int:
        return self._update(
            case_id,
            lambda case, at: case.issue_supervision(
                actor, at, colour, department, obligation, reason
            ),
        )

    def escalate_to_district(
        self, case_id: UUID, actor: Actor, department: str, reason: str
    ) -> int:
        return self._update(
            case_id, lambda case, at: case.escalate_to_district(actor, at, department, reason)
        )

    def cancel(self, case_id: UUID, actor: Actor, reason: str) -> int:
        return self._update(case_id, lambda case, at: case.cancel(actor, at, reason))

    # --- duty list ----------------------------------------------------------------------------

    def publish_duty_list(self) -> int:
        """Publishes the shipped list as version 1 if the store has none; returns the current version."""
        if self.duty_list_id not in self.repository:
            ref = self.reference
            duty_list = DutyList.publish(
                BOOTSTRAP_ACTOR,
                self.clock.now(),
                ref.district,
                ref.duty_list_version,
                ref.duty_list_effective,
                list(ref.duty_items.values()),
            )
            with suppress(IntegrityError):  # another process published it first: same id, same list
                self.save(duty_list)
        return self._duty_list().current_version

    def revise_duty_list(self, actor: Actor, **revision: Any) -> int:
        for item in [*revision.get("added", ()), *revision.get("changed", ())]:
            for dept in item.departments:
                self.reference.department(dept)
        for _attempt in range(self.max_attempts):
            self._evict(self.duty_list_id)
            duty_list = self._load_duty_list(None)  # the stored state, never the shared copy
            version = duty_list.revise(actor, self.clock.now(), **revision)
            try:
                self.save(duty_list)
            except IntegrityError:
                continue  # another revision won the race: judge this one on the new list
            return version
        raise _concurrent()

    def duty_items(self, at: datetime | None = None) -> tuple[int, list[DutyItem]]:
        version, items = self._duty_list().version_at(at or self.clock.now())
        return version, [DutyItem.from_state(state) for state in items.values()]

    # --- queries ------------------------------------------------------------------------------

    def case(self, case_id: UUID, as_of: datetime | None = None) -> Json:
        """The case now, or as it stood at `as_of`, replayed from its events."""
        if as_of is None:
            with self._case_lock(case_id):
                case = self._get(case_id)
            self._catch_up(case)
            return case.public_state()
        if as_of.tzinfo is None:
            raise InvalidInput(
                "invalid_as_of", "时间须带时区", "as_of needs a time zone", field="as_of"
            )
        events = self._stored_events(case_id)
        if not events:
            raise NotFound("case_not_found", "案件不存在", f"no case {case_id}")
        version = 0
        for event in events:
            if event.timestamp > as_of:
                break
            version = event.originator_version
        if version == 0:
            raise NotFound(
                "case_not_yet_reported", "该时间案件尚未上报", "the case did not exist then"
            )
        return self._get(case_id, version).public_state()

    def missed_deadlines(self, case_id: UUID, department: str) -> int:
        """How many deadlines the department has missed on the case, read from the store.

        The SLA clock's rule: a department's second miss on one case is supervised in red.
        """
        with self._case_lock(case_id):
            case = self._get(case_id)
        self._catch_up(case)
        return sum(1 for key in case.missed if key.split(":", 2)[1] == department)

    def history(self, case_id: UUID) -> list[Json]:
        """Every event of the case in order: what, who, when and the payload."""
        self._get(case_id)
        return [_event_record(event) for event in self.repository.event_store.get(case_id)]

    # --- internals ----------------------------------------------------------------------------

    def _update(self, case_id: UUID, command: Callable[[Case, datetime], None]) -> int:
        """Runs `command` on the case and saves it, judging it on the stored state if need be.

        Two costs are avoided on the hot path, both measured to matter (docs/BENCHMARKS.md):
        - No fast-forward query per command. A cached case may then be stale when another process
          wrote since, which is safe: a stale case cannot be saved (the store refuses a taken
          version: `IntegrityError`), and a command refused on a cached case is tried once more on
          the stored state before its refusal is believed.
        - No deep copy of the cached case. Commands work on the cached object itself under a
          per-case lock, and any failure evicts it, so a half-applied or unsaved change is never
          seen again.
        """
        for _attempt in range(self.max_attempts):
            with self._case_lock(case_id):
                from_store = not self._is_cached(case_id)
                case = self._get(case_id, shared=True)
                try:
                    command(case, self.clock.now())
                    self.save(case)
                except BaseException as error:
                    self._evict(case_id)
                    stale = isinstance(error, DomainError) and not from_store
                    if stale or isinstance(error, IntegrityError):
                        continue  # judge it again on the stored state
                    raise
                return case.version
        raise _concurrent()

    def _get(self, case_id: UUID, version: int | None = None, *, shared: bool = False) -> Case:
        """A copy of the case (or, `shared`, the cached object itself: only under its lock)."""
        try:
            case: object = self.repository.get(
                case_id, version=version, deepcopy_from_cache=not shared
            )
        except AggregateNotFoundError:
            raise NotFound("case_not_found", "案件不存在", f"no case {case_id}") from None
        if not isinstance(case, Case):
            raise NotFound("case_not_found", "案件不存在", f"no case {case_id}")
        return case

    def _case_lock(self, case_id: UUID) -> Lock:
        return self._case_locks[case_id.int % len(self._case_locks)]

    def _is_cached(self, aggregate_id: UUID) -> bool:
        cache = self.repository.cache
        if cache is None:
            return False
        try:
            cache.get(aggregate_id)
        except KeyError:
            return False
        return True

    def _evict(self, aggregate_id: UUID) -> None:
        cache = self.repository.cache
        if cache is not None:
            with suppress(KeyError):
                cache.get(aggregate_id, evict=True)

    def _duty_list(self) -> DutyList:
        """The duty list, caught up with every revision in the store (other processes' too).

        Whistles share one in-memory copy (commands never mutate it) instead of deep-copying its
        ~70 items each time; one small indexed query per use asks whether revisions were stored
        since.
        """
        with self._duty_list_lock:
            self._shared_duty_list = self._load_duty_list(self._shared_duty_list)
            return self._shared_duty_list

    def _load_duty_list(self, known: DutyList | None) -> DutyList:
        if known is None:
            try:
                loaded: object = self.repository.get(self.duty_list_id)
            except AggregateNotFoundError:
                raise IllegalState(
                    "duty_list_missing",
                    "职责清单尚未发布",
                    "no duty list: run `whistleloop store init`",
                ) from None
            assert isinstance(loaded, DutyList)
            return loaded
        if self.has_newer_events(self.duty_list_id, known.version):
            for event in self._stored_events(self.duty_list_id, after=known.version):
                event.mutate(known)
        return known

    def has_newer_events(self, aggregate_id: UUID, version: int) -> bool:
        """Whether the store holds events of the aggregate after `version`.

        Asked on every whistle (is the duty list still current?), so adapters override it with a
        cheaper query than loading events (see infra.store.SqlCaseService).
        """
        return bool(self._stored_events(aggregate_id, after=version))

    def _catch_up(self, aggregate: Case) -> None:
        """Applies events other processes stored since the cached copy was made (reads only)."""
        if not self.has_newer_events(aggregate.id, aggregate.version):
            return
        newer = self._stored_events(aggregate.id, after=aggregate.version)
        if newer:
            self._evict(aggregate.id)  # the next command loads the stored state
            for event in newer:
                event.mutate(aggregate)

    def _stored_events(self, aggregate_id: UUID, after: int = 0) -> list[Aggregate.Event]:
        events = self.repository.event_store.get(aggregate_id, gt=after or None)
        return cast(list[Aggregate.Event], list(events))

    def _item_now(self, code: str | None, at: datetime) -> tuple[int, DutyItem | None]:
        duty_list = self._duty_list()
        if code is None:
            return duty_list.version_at(at)[0], None
        return duty_list.item_at(code, at)

    def _item_of(self, case: Case) -> DutyItem | None:
        """The case's item as the version it was whistled under had it."""
        if case.duty_item is None:
            return None
        return self._duty_list().item_in_version(case.duty_item, case.duty_list_version)


def _concurrent() -> ConcurrentModification:
    return ConcurrentModification(
        "concurrent_modification",
        "正被他人同时修改，请重试",
        "it kept changing under this command; try again",
    )


def _urgency(value: str) -> Urgency:
    try:
        return Urgency(value)
    except ValueError:
        raise InvalidInput(
            "invalid_urgency", f"紧急程度无效：{value}", "urgency is normal, urgent or emergency"
        ) from None


def _event_record(event: Any) -> Json:
    payload = {
        k: v
        for k, v in event.__dict__.items()
        if k
        not in ("originator_id", "originator_version", "timestamp", "actor", "originator_topic")
    }
    return {
        "version": event.originator_version,
        "type": type(event).__name__,
        "topic": type(event).TOPIC,
        "at": event.timestamp,
        "actor": event.actor,
        "payload": payload,
    }
