"""Open311 GeoReport v2 conformance: the spec's calls in JSON and XML against the real gateway.

Every document is checked element by element against the spec's lists (names, order, types: ints,
booleans, W3C datetimes with an offset), and every error against the spec's `errors` format.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID
from xml.etree import ElementTree as ET

import httpx
import pytest

from domain.actors import Actor
from tests.integration.gateway.conftest import Gateway

pytestmark = pytest.mark.asyncio

BASE = "/open311/v2"
FORMATS = ("json", "xml")
W3C_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

# The spec's elements, in its order, with their types ("?" = may be empty/null).
DISCOVERY = {"changeset": "datetime", "contact": "str", "key_service": "str", "endpoints": "list"}
ENDPOINT = {
    "specification": "str",
    "url": "str",
    "changeset": "datetime",
    "type": "str",
    "formats": "list",
}
SERVICE = {
    "service_code": "str",
    "service_name": "str",
    "description": "str",
    "metadata": "bool",
    "type": "str",
    "keywords": "str",
    "group": "str",
}
DEFINITION = {"service_code": "str", "attributes": "list"}
ATTRIBUTE = {
    "variable": "bool",
    "code": "str",
    "datatype": "str",
    "required": "bool",
    "datatype_description": "str?",
    "order": "int",
    "description": "str",
    "values": "list",
}
VALUE = {"key": "str", "name": "str"}
REQUEST = {
    "service_request_id": "str",
    "status": "str",
    "status_notes": "str?",
    "service_name": "str?",
    "service_code": "str?",
    "description": "str?",
    "agency_responsible": "str?",
    "service_notice": "str?",
    "requested_datetime": "datetime",
    "updated_datetime": "datetime",
    "expected_datetime": "datetime?",
    "address": "str?",
    "address_id": "str?",
    "zipcode": "str?",
    "lat": "number?",
    "long": "number?",
    "media_url": "str?",
}
CREATED = {
    "service_request_id": "str",
    "token": "str",
    "service_notice": "str?",
    "account_id": "str?",
}
TOKEN = {"service_request_id": "str", "token": "str"}
ERROR = {"code": "int", "description": "str"}
#: Element name → the element of its items (list documents and nested lists).
ITEMS = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "endpoints": "endpoint",
    "formats": "format",
    "attributes": "attribute",
    "values": "value",
}

DESCRIPTION = "院内新搭建彩钢板房，占用消防通道\n已持续一周"
CONTACT_EMAIL = "resident@example.cn"
CONTACT_PHONE = "13800000001"


# --- reading documents ------------------------------------------------------------------------


def from_xml(element: ET.Element) -> Any:
    """An XML element as the JSON value it stands for (text stays text: types are checked apart)."""
    if element.tag in ITEMS:
        assert all(child.tag == ITEMS[element.tag] for child in element)
        return [from_xml(child) for child in element]
    if len(element):
        return {child.tag: from_xml(child) for child in element}
    return element.text


def document(response: httpx.Response, fmt: str, root: str) -> Any:
    """The body, checked to be well-formed UTF-8 in the format's media type."""
    media = "application/json" if fmt == "json" else "text/xml"
    assert response.headers["content-type"] == f"{media}; charset=utf-8"
    if fmt == "json":
        return response.json()
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    element = ET.fromstring(response.content)
    assert element.tag == root
    return from_xml(element)


def check(fmt: str, value: Any, spec: Mapping[str, str]) -> None:
    """Every element of the spec's list, in its order, nothing else, each of its type."""
    assert list(value) == list(spec), f"elements {list(value)} != spec {list(spec)}"
    for name, kind in spec.items():
        check_type(fmt, name, value[name], kind)


def check_type(fmt: str, name: str, value: Any, kind: str) -> None:
    base, optional = kind.rstrip("?"), kind.endswith("?")
    if value is None or (fmt == "xml" and base != "list" and value == ""):
        assert optional, f"{name} is empty"
        return
    if base == "list":
        assert isinstance(value, list), name
    elif fmt == "json":
        expected: Any = {
            "str": str,
            "datetime": str,
            "bool": bool,
            "int": int,
            "number": int | float,
        }[base]
        assert isinstance(value, expected), f"{name}={value!r}"
        assert base != "int" or not isinstance(value, bool), f"{name}={value!r}"
    elif base == "bool":
        assert value in ("true", "false"), f"{name}={value!r}"
    elif base == "int":
        assert re.fullmatch(r"-?\d+", value), f"{name}={value!r}"
    elif base == "number":
        float(value)
    if base == "datetime":
        assert W3C_DATETIME.match(value), f"{name}={value!r}"


def check_requests(fmt: str, requests: Sequence[Any]) -> None:
    for request in requests:
        check(fmt, request, REQUEST)
        assert request["status"] in ("open", "closed")


def check_error(response: httpx.Response, fmt: str, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    errors = document(response, fmt, "errors")
    assert len(errors) == 1
    check(fmt, errors[0], ERROR)
    assert int(errors[0]["code"]) == status
    assert errors[0]["description"].startswith(f"{code}: ")


def ids(requests: Sequence[Mapping[str, Any]]) -> list[str]:
    return [r["service_request_id"] for r in requests]


# --- driving the gateway ----------------------------------------------------------------------


def form(gw: Gateway, **extra: str) -> dict[str, str]:
    fields = {
        "api_key": gw.token("resident", subject="r-2001"),
        "service_code": "CG-001",
        "attribute[street]": "jianwai",
        "attribute[community]": "jianwai_c01",
        "address_string": "建国门外大街 1 号院东侧",
        "description": DESCRIPTION,
        "email": CONTACT_EMAIL,
        "phone": CONTACT_PHONE,
        "first_name": "女士",
        "last_name": "李",
    }
    fields.update(extra)
    return {k: v for k, v in fields.items() if v != ""}


async def post(gw: Gateway, fmt: str, **extra: str) -> str:
    response = await gw.client.post(f"{BASE}/requests.{fmt}", data=form(gw, **extra))
    assert response.status_code == 201, response.text
    created = document(response, fmt, "service_requests")
    assert len(created) == 1
    check(fmt, created[0], CREATED)
    case_id = created[0]["service_request_id"]
    assert created[0]["token"] == case_id
    assert response.headers["location"] == f"{BASE}/requests/{case_id}.{fmt}"
    return str(case_id)


async def list_requests(gw: Gateway, fmt: str, **params: str) -> list[Any]:
    response = await gw.client.get(f"{BASE}/requests.{fmt}", params=params)
    assert response.status_code == 200, response.text
    found = document(response, fmt, "service_requests")
    check_requests(fmt, found)
    return list(found)


# --- the spec's calls -------------------------------------------------------------------------


async def test_discovery_services_and_a_definition(gateway: Gateway) -> None:
    gw = gateway
    _version, items = gw.service.duty_items()
    for fmt in FORMATS:
        discovery = document(await gw.client.get(f"{BASE}/discovery.{fmt}"), fmt, "discovery")
        check(fmt, discovery, DISCOVERY)
        (endpoint,) = discovery["endpoints"]
        check(fmt, endpoint, ENDPOINT)
        assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
        assert endpoint["url"] == "http://gateway/open311/v2"
        assert set(endpoint["formats"]) == {"text/xml", "application/json"}

        services = document(await gw.client.get(f"{BASE}/services.{fmt}"), fmt, "services")
        for service in services:
            check(fmt, service, SERVICE)
        assert {s["service_code"] for s in services} == {item.code for item in items}
        cg = next(s for s in services if s["service_code"] == "CG-001")
        assert cg["service_name"] == "协助查处辖区内违法建设"
        assert cg["group"] == "城市管理"
        assert str(cg["metadata"]).lower() == "true"

        definition = document(
            await gw.client.get(f"{BASE}/services/CG-001.{fmt}"), fmt, "service_definition"
        )
        check(fmt, definition, DEFINITION)
        assert definition["service_code"] == "CG-001"
        street, community = definition["attributes"]
        for attribute in (street, community):
            check(fmt, attribute, ATTRIBUTE)
            assert attribute["datatype"] == "singlevaluelist"
            for value in attribute["values"]:
                check(fmt, value, VALUE)
        assert (street["code"], str(street["required"]).lower()) == ("street", "true")
        assert (community["code"], str(community["required"]).lower()) == ("community", "false")
        assert {"key": "jianwai", "name": "建外街道"} in street["values"]
        assert {v["key"] for v in street["values"]} == set(gw.service.reference.streets)
        assert "jianwai_c01" in {v["key"] for v in community["values"]}


async def test_post_a_request_then_read_it_back_with_every_filter(gateway: Gateway) -> None:
    gw = gateway
    by_form = await post(gw, "json")
    # JSON bodies too, with attributes as an object and coordinates instead of an address.
    response = await gw.client.post(
        f"{BASE}/requests.xml",
        json={
            "api_key": gw.token("street", street="hujialou"),
            "service_code": "CG-001",
            "attribute": {"street": "hujialou"},
            "lat": 39.9219,
            "long": 116.4435,
            "description": "人行道被占用",
        },
    )
    assert response.status_code == 201, response.text
    (created,) = document(response, "xml", "service_requests")
    check("xml", created, CREATED)
    by_json = created["service_request_id"]

    # A retry with the same Idempotency-Key gets the first answer, not a second case.
    retry = form(gw, api_key=gw.token("resident", subject="r-2002"))
    url, key = f"{BASE}/requests.json", {"Idempotency-Key": "k-1"}
    first = await gw.client.post(url, data=retry, headers=key)
    again = await gw.client.post(url, data=retry, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    retried = first.json()[0]["service_request_id"]

    # The POST made a case, reported by the key's principal, with the service as suggested item.
    case = gw.service.case(UUID(by_form))
    assert (case["source"], case["street"], case["community"]) == (
        "open311",
        "jianwai",
        "jianwai_c01",
    )
    assert case["reporter"] == {"role": "resident", "id": "r-2001"}
    assert case["suggested_item"] == "CG-001"
    assert case["title"] == "协助查处辖区内违法建设：院内新搭建彩钢板房，占用消防通道"
    assert case["description"] == DESCRIPTION
    assert case["address"] == "建国门外大街 1 号院东侧"
    assert case["contact"] == {"name": "女士 李", "phone": CONTACT_PHONE, "email": CONTACT_EMAIL}
    assert gw.service.history(UUID(by_form))[0]["type"] == "CaseReported"
    other = gw.service.case(UUID(by_json))
    assert other["address"] == "39.921900,116.443500"
    assert other["reporter"] == {"role": "street", "id": "hujialou"}

    # The token maps back at once, before any projection has run.
    for fmt in FORMATS:
        answer = await gw.client.get(f"{BASE}/tokens/{by_form}.{fmt}")
        assert answer.status_code == 200, answer.text
        (token,) = document(answer, fmt, "service_requests")
        check(fmt, token, TOKEN)
        assert token == {"service_request_id": by_form, "token": by_form}

    await gw.settle()
    every = {by_form, by_json, retried}
    both = f"{by_form},{by_json}"
    for fmt in FORMATS:
        one = await gw.client.get(f"{BASE}/requests/{by_form}.{fmt}")
        assert one.status_code == 200, one.text
        (request,) = document(one, fmt, "service_requests")
        check(fmt, request, REQUEST)
        assert request["status"] == "open"
        assert request["service_code"] == "CG-001"
        assert request["service_name"] == "协助查处辖区内违法建设"
        assert request["description"] == DESCRIPTION
        assert request["address"] == "建国门外大街 1 号院东侧"
        assert request["agency_responsible"] == "建外街道"  # the street holds it until whistled
        assert request["status_notes"] == "上报"
        assert request["requested_datetime"] == "2026-03-02T09:00:00+08:00"
        assert request["expected_datetime"] in (None, "")
        assert CONTACT_EMAIL not in one.text
        assert CONTACT_PHONE not in one.text
        assert "李" not in one.text

        listed = await list_requests(gw, fmt)
        assert set(ids(listed)) == every
        assert set(ids(await list_requests(gw, fmt, service_request_id=both))) == {by_form, by_json}
        assert ids(await list_requests(gw, fmt, service_request_id=by_json, status="closed")) == [
            by_json
        ]  # ids override every other filter
        assert set(ids(await list_requests(gw, fmt, service_code="CG-001"))) == every
        assert await list_requests(gw, fmt, service_code="CG-002") == []
        assert len(await list_requests(gw, fmt, status="open")) == len(every)
        assert await list_requests(gw, fmt, status="closed") == []
        assert len(await list_requests(gw, fmt, status="open,closed")) == len(every)
        window = {
            "start_date": "2026-03-02T08:00:00+08:00",
            "end_date": "2026-03-02T10:00:00+08:00",
        }
        assert len(await list_requests(gw, fmt, **window)) == len(every)
        assert await list_requests(gw, fmt, start_date="2026-03-02T01:00:01Z") == []
        assert await list_requests(gw, fmt, end_date="2026-03-02T00:59:59Z") == []

    # Without dates the window is the last 90 days; given dates still reach back.
    gw.clock.advance(timedelta(days=91))
    for fmt in FORMATS:
        assert await list_requests(gw, fmt) == []
        assert len(await list_requests(gw, fmt, start_date="2026-03-01T00:00:00+08:00")) == len(
            every
        )

    # The key is the reporter's own: another resident's same key is another request.
    neighbour = form(gw, api_key=gw.token("resident", subject="r-2003"))
    theirs = await gw.client.post(url, data=neighbour, headers=key)
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()[0]["service_request_id"] != retried


async def test_a_closed_case_shows_closed_and_its_lead_department(
    gateway: Gateway, actors: Mapping[str, Actor]
) -> None:
    gw = gateway
    case_id = await post(gw, "xml")
    case = UUID(case_id)
    service, street, lead = gw.service, actors["street"], actors["cgzf"]
    steps: list[Callable[[], int]] = [
        lambda: service.accept(case, street, "属实"),
        lambda: service.whistle(case, street, lead="cgzf", duty_item="CG-001"),
        lambda: service.report_in(case, lead, "on_site"),
        lambda: service.report_handling(case, lead, "resolved"),
        lambda: service.close_case(case, street, "现场核查已拆除"),
    ]
    for step in steps:
        gw.clock.advance(timedelta(hours=1))
        step()
    await gw.settle()
    for fmt in FORMATS:
        (request,) = await list_requests(gw, fmt, status="closed")
        assert request["service_request_id"] == case_id
        assert request["status"] == "closed"
        assert request["agency_responsible"] == "区城市管理综合行政执法局"
        assert request["service_code"] == "CG-001"
        assert request["status_notes"] == "核查结案"
        assert request["updated_datetime"] == "2026-03-02T14:00:00+08:00"
        assert W3C_DATETIME.match(request["expected_datetime"])
        assert await list_requests(gw, fmt, status="open") == []


async def test_errors_are_the_specs_in_both_formats(gateway: Gateway) -> None:
    gw = gateway
    client = gw.client
    for fmt in FORMATS:
        check_error(
            await client.get(f"{BASE}/services/XX-999.{fmt}"), fmt, 404, "unknown_service_code"
        )
        url = f"{BASE}/requests.{fmt}"
        check_error(await client.post(url, data=form(gw, api_key="")), fmt, 401, "missing_api_key")
        check_error(
            await client.post(url, data=form(gw, api_key="not-a-token")), fmt, 401, "invalid_token"
        )
        for role, scope in (("viewer", {}), ("department", {"dept": "cgzf"}), ("inspector", {})):
            key = gw.token(role, **scope)
            check_error(await client.post(url, data=form(gw, api_key=key)), fmt, 403, "forbidden")
        check_error(
            await client.post(url, data=form(gw, service_code="XX-999")),
            fmt,
            400,
            "unknown_service_code",
        )
        check_error(
            await client.post(url, data=form(gw, address_string="")), fmt, 400, "missing_location"
        )
        for body in (
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            {"data": {f"field{i}": "x" for i in range(100)}},
            {"data": form(gw), "files": {"media": ("a.jpg", b"\xff\xd8", "image/jpeg")}},
        ):
            check_error(await client.post(url, **body), fmt, 400, "invalid_body")
        check_error(
            await client.post(url, data=form(gw, address_string="", lat="91", long="116")),
            fmt,
            400,
            "invalid_lat",
        )
        check_error(
            await client.post(url, data={**form(gw), "attribute[street]": "nowhere"}),
            fmt,
            400,
            "unknown_street",
        )
        check_error(
            await client.post(url, data=form(gw, api_key=gw.token("street", street="hujialou"))),
            fmt,
            403,
            "other_street",
        )
        check_error(
            await client.get(url, params={"start_date": "yesterday"}),
            fmt,
            400,
            "invalid_start_date",
        )
        check_error(
            await client.get(url, params={"end_date": "2026-03-01T00:00:00"}),
            fmt,
            400,
            "invalid_end_date",
        )
        check_error(
            await client.get(
                url,
                params={"start_date": "2025-01-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"},
            ),
            fmt,
            400,
            "invalid_date_range",
        )
        check_error(await client.get(url, params={"status": "pending"}), fmt, 400, "invalid_status")
        check_error(
            await client.get(url, params={"service_request_id": "1,2"}),
            fmt,
            400,
            "invalid_service_request_id",
        )
        missing = "00000000-0000-4000-8000-000000000000"
        check_error(
            await client.get(f"{BASE}/requests/{missing}.{fmt}"), fmt, 404, "request_not_found"
        )
        check_error(await client.get(f"{BASE}/requests/nope.{fmt}"), fmt, 404, "request_not_found")
        check_error(await client.get(f"{BASE}/tokens/{missing}.{fmt}"), fmt, 404, "token_not_found")
        check_error(await client.get(f"{BASE}/nothing.{fmt}"), fmt, 404, "not_found")
    check_error(await client.get(f"{BASE}/services.csv"), "xml", 404, "not_found")
    # Nothing above made a case.
    assert gw.service.recorder.max_notification_id() == 1  # the duty list's publication only
