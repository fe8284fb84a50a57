"""POST requests: a spec submission, checked, becomes the arguments of `CaseService.report`.

The spec's fields arrive form-encoded (or as JSON, for clients that prefer it); attributes come as
`attribute[street]=…` (or, in JSON, an `attribute` object). What the domain checks itself (street and
community codes, text lengths, contact fields) is left to it; what only the spec knows is checked here:
`service_code` is required and must be a service in force, and a location is required, either
`lat`+`long` or `address_string`/`address_id`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from domain.reference import DutyItem
from gateway.open311.render import Open311Error
from gateway.open311.services import COMMUNITY_ATTRIBUTE, STREET_ATTRIBUTE

#: Longest value of any one field (the domain bounds description and address more tightly).
MAX_FIELD = 8000
TITLE_LIMIT = 200
SUMMARY_LIMIT = 60


def bad(code: str, message: str) -> Open311Error:
    return Open311Error(400, code, message)


def flat_fields(data: Any) -> dict[str, str]:
    """A JSON body as the form fields it stands for: `{"attribute": {"street": …}}` included."""
    if not isinstance(data, dict):
        raise bad("invalid_body", "the JSON body is an object of the spec's fields")
    fields: dict[str, str] = {}
    for key, value in data.items():
        if key == "attribute" and isinstance(value, dict):
            for name, item in value.items():
                fields[f"attribute[{name}]"] = _scalar(f"attribute[{name}]", item)
        elif value is not None:
            fields[str(key)] = _scalar(str(key), value)
    return fields


def _scalar(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise bad("invalid_field", f"{name[:64]} is text or a number")
    return str(value)


@dataclass(frozen=True)
class Submission:
    service_code: str
    street: str
    community: str | None
    address: str
    description: str | None
    contact: dict[str, str] | None


def read_submission(fields: Mapping[str, str]) -> Submission:
    """The spec fields a report needs; 400 for a missing service, street or location."""
    for name, value in fields.items():
        if len(value) > MAX_FIELD:
            raise bad("field_too_long", f"{name[:64]} is longer than {MAX_FIELD} characters")
    service_code = _text(fields, "service_code")
    if service_code is None:
        raise bad("missing_service_code", "service_code is required")
    street = _text(fields, f"attribute[{STREET_ATTRIBUTE}]")
    if street is None:
        raise bad(
            "missing_street",
            f"attribute[{STREET_ATTRIBUTE}] is required (see services/{service_code}.xml)",
        )
    return Submission(
        service_code=service_code,
        street=street,
        community=_text(fields, f"attribute[{COMMUNITY_ATTRIBUTE}]"),
        address=_location(fields),
        description=_text(fields, "description"),
        contact=_contact(fields),
    )


def _text(fields: Mapping[str, str], name: str) -> str | None:
    value = fields.get(name, "").strip()
    return value or None


def _location(fields: Mapping[str, str]) -> str:
    """The address the case records: the one given, else the coordinates as text."""
    address = _text(fields, "address_string") or _text(fields, "address_id")
    lat, long = _text(fields, "lat"), _text(fields, "long")
    if lat is None and long is None:
        if address is None:
            raise bad("missing_location", "give lat and long, or address_string, or address_id")
        return address
    if lat is None or long is None:
        raise bad("invalid_location", "lat and long come together")
    latitude, longitude = _coordinate("lat", lat, 90), _coordinate("long", long, 180)
    return address or f"{latitude:.6f},{longitude:.6f}"


def _coordinate(name: str, value: str, bound: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise bad(f"invalid_{name}", f"{name} is a decimal number (WGS84)") from None
    if not math.isfinite(number) or abs(number) > bound:
        raise bad(f"invalid_{name}", f"{name} is between -{bound:g} and {bound:g}")
    return number


def _contact(fields: Mapping[str, str]) -> dict[str, str] | None:
    """The spec's person fields in the domain's contact shape (it keeps name, phone, email)."""
    name = " ".join(p for p in (_text(fields, "first_name"), _text(fields, "last_name")) if p)
    contact = {
        "name": name,
        "phone": _text(fields, "phone") or "",
        "email": _text(fields, "email") or "",
    }
    kept = {key: value for key, value in contact.items() if value}
    return kept or None


def report_arguments(submission: Submission, item: DutyItem) -> dict[str, Any]:
    """`CaseService.report`'s keyword arguments (all but the actor and the idempotency key)."""
    description = submission.description or item.name
    return {
        "source": "open311",
        "street": submission.street,
        "community": submission.community,
        "title": title(item.name, description),
        "description": description,
        "address": submission.address,
        "suggested_item": item.code,
        "contact": submission.contact,
    }


def title(service_name: str, description: str) -> str:
    """`<service name>：<the description's first line, shortened>`, within the domain's 200."""
    first_line = description.strip().splitlines()[0] if description.strip() else ""
    summary = first_line[:SUMMARY_LIMIT] + ("…" if len(first_line) > SUMMARY_LIMIT else "")
    text = f"{service_name}：{summary}" if summary and summary != service_name else service_name
    return text[:TITLE_LIMIT]
