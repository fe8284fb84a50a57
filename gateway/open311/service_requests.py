"""Cases as Open311 service requests, read from the `case_board` read model.

The board has each case's status, lead department, deadlines and latest event. What the reporter
wrote (description, address, the suggested duty item) is only in the case's first event, so it is
joined from `audit_log`, which keeps every event's canonical body: a left join, so a case the audit
projection has not reached yet is still listed (with its title as the description). Contact details
are in that body too and are never read out of it.

Spec rules applied here: `service_request_id` (a comma list) overrides every other filter; without
dates the window is the last 90 days, and no window may span more than 90; at most 1000 requests,
newest first. Status is `closed` for a closed, rejected or cancelled case, `open` otherwise (a
reopened case is open again).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import ColumnElement, Engine, and_, or_, select

from domain.case_rules import Status
from domain.clock import CHINA_TZ
from domain.reference import ReferenceData
from gateway.open311.render import Open311Error
from gateway.open311.schemas import ServiceRequest
from infra.event_codec import canonical_json, iso_utc
from infra.render import EVENT_LABELS
from projections.audit import audit_log
from projections.case_board import case_board
from projections.queries.common import fetch_rows

MAX_RESULTS = 1000
MAX_WINDOW = timedelta(days=90)
MAX_IDS = MAX_RESULTS
CLOSED_STATUSES = (Status.CLOSED.value, Status.REJECTED.value, Status.CANCELLED.value)
OpenStatus = Literal["open", "closed"]


@dataclass(frozen=True)
class RequestQuery:
    """GET requests' filters, checked: either ids, or a window with optional code and statuses."""

    ids: tuple[str, ...] = ()
    service_code: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    statuses: frozenset[OpenStatus] = frozenset()


def parse_query(
    now: datetime,
    *,
    service_request_id: str | None,
    service_code: str | None,
    start_date: str | None,
    end_date: str | None,
    status: str | None,
) -> RequestQuery:
    """The filters as the spec defines them; anything malformed is a 400 naming the parameter."""
    if service_request_id is not None:
        return RequestQuery(ids=_ids(service_request_id))
    start, end = _window(now, _moment("start_date", start_date), _moment("end_date", end_date))
    if service_code is not None and not 1 <= len(service_code) <= 64:
        raise Open311Error(400, "invalid_service_code", "service_code is 1–64 characters")
    return RequestQuery(service_code=service_code, start=start, end=end, statuses=_statuses(status))


def _ids(value: str) -> tuple[str, ...]:
    ids = tuple(part.strip() for part in value.split(",") if part.strip())
    if not 1 <= len(ids) <= MAX_IDS:
        raise Open311Error(
            400, "invalid_service_request_id", f"give 1–{MAX_IDS} comma-separated ids"
        )
    for case_id in ids:
        if not _is_uuid(case_id):
            raise Open311Error(
                400, "invalid_service_request_id", f"not a service request id: {case_id[:64]!r}"
            )
    return tuple(str(UUID(case_id)) for case_id in ids)


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True


def _moment(name: str, value: str | None) -> datetime | None:
    """A W3C datetime with its offset (`2026-03-01T08:00:00+08:00` or `…Z`)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Open311Error(
            400,
            f"invalid_{name}",
            f"{name} is an ISO-8601 datetime, e.g. 2026-03-01T08:00:00+08:00",
        ) from None
    if moment.tzinfo is None:
        raise Open311Error(400, f"invalid_{name}", f"{name} needs a time zone (Z or ±HH:MM)")
    return moment


def _window(
    now: datetime, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    if end is None:
        end = now if start is None else start + MAX_WINDOW
    if start is None:
        start = end - MAX_WINDOW
    if end < start:
        raise Open311Error(400, "invalid_end_date", "end_date is before start_date")
    if end - start > MAX_WINDOW:
        raise Open311Error(400, "invalid_date_range", "start_date to end_date spans over 90 days")
    return start, end


def _statuses(value: str | None) -> frozenset[OpenStatus]:
    if value is None:
        return frozenset()
    found: set[OpenStatus] = set()
    for part in (p.strip().lower() for p in value.split(",")):
        if part == "open":
            found.add("open")
        elif part == "closed":
            found.add("closed")
        else:
            raise Open311Error(400, "invalid_status", "status is open, closed or both")
    return frozenset(found)


# --- reading -------------------------------------------------------------------------------


def find_requests(
    views: Engine,
    query: RequestQuery,
    names: Mapping[str, str],
    reference: ReferenceData,
) -> list[ServiceRequest]:
    """The matching cases as service requests; `names` maps service codes to service names."""
    board, first = case_board, audit_log
    reported = and_(first.c.aggregate_id == board.c.case_id, first.c.version == 1)
    statement = (
        select(board, first.c.body.label("report_body"))
        .select_from(board.outerjoin(first, reported))
        .where(*_conditions(query))
        .order_by(board.c.reported_at.desc(), board.c.case_id.desc())
        .limit(MAX_RESULTS)
    )
    rows = fetch_rows(views, statement)
    return [service_request(dict(row._mapping), names, reference) for row in rows]


def _conditions(query: RequestQuery) -> Iterable[ColumnElement[bool]]:
    board = case_board
    if query.ids:
        yield board.c.case_id.in_(query.ids)
        return
    if query.start is not None:
        yield board.c.reported_at >= iso_utc(query.start)
    if query.end is not None:
        yield board.c.reported_at <= iso_utc(query.end)
    if query.statuses == {"open"}:
        yield board.c.status.not_in(CLOSED_STATUSES)
    elif query.statuses == {"closed"}:
        yield board.c.status.in_(CLOSED_STATUSES)
    if query.service_code is not None:
        yield or_(
            board.c.duty_item == query.service_code,
            and_(
                board.c.duty_item.is_(None),
                audit_log.c.body.contains(_suggested(query.service_code), autoescape=True),
            ),
        )


def _suggested(code: str) -> str:
    """How a report suggesting `code` reads inside its canonical body (sorted keys, no spaces).

    Quotes inside a JSON string are escaped, so no description can contain this text: it matches
    the payload's own `suggested_item` key only.
    """
    return canonical_json({"suggested_item": code}).decode("utf-8")[1:-1]


def service_request(
    row: Mapping[str, Any], names: Mapping[str, str], reference: ReferenceData
) -> ServiceRequest:
    report = _report(row.get("report_body"))
    code = row["duty_item"] or report.get("suggested_item")
    return ServiceRequest(
        service_request_id=row["case_id"],
        status="closed" if row["status"] in CLOSED_STATUSES else "open",
        status_notes=EVENT_LABELS.get(row["last_event_type"], row["last_event_type"]),
        service_name=names.get(code) if code else None,
        service_code=code,
        description=report.get("description") or row["title"],
        agency_responsible=_agency(row, reference),
        service_notice=None,
        requested_datetime=_local(row["reported_at"]),
        updated_datetime=_local(row["updated_at"]),
        expected_datetime=_local(row["handling_deadline"]) if row["handling_deadline"] else None,
        address=report.get("address") or None,
        address_id=None,
        zipcode=None,
        lat=None,
        long=None,
        media_url=None,
    )


def _report(body: str | None) -> dict[str, str]:
    """The reporter's own words from the first event; only these fields, never the contact."""
    if not body:
        return {}
    payload = json.loads(body).get("payload", {})
    return {
        key: payload[key]
        for key in ("description", "address", "suggested_item")
        if isinstance(payload.get(key), str)
    }


def _agency(row: Mapping[str, Any], reference: ReferenceData) -> str | None:
    """The lead department once whistled; until then the street office, which holds the case."""
    if row["lead_department"]:
        dept = reference.departments.get(row["lead_department"])
        return dept.name if dept else row["lead_department"]
    street = reference.streets.get(row["street"])
    return street.name if street else row["street"]


def _local(stored: str) -> datetime:
    """A board time in China time, to the second (the W3C profile the spec asks for)."""
    return datetime.fromisoformat(stored).astimezone(CHINA_TZ).replace(microsecond=0)
