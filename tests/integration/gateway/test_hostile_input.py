"""Hostile bodies get the right 4xx and leave no trace: JSON nested past the parser's recursion
limit, XML entity expansion ("billion laughs"), invalid UTF-8, lone surrogates, wrong types and
unknown enum values, on /api/v1 and on Open311, with and without an Idempotency-Key."""

from __future__ import annotations

import json

import pytest

from tests.integration.gateway.conftest import Gateway
from tests.integration.gateway.rest import CASES, REPORT
from tests.integration.gateway.test_errors_and_idempotency import assert_problem, last_event
from tests.integration.gateway.test_open311 import BASE, check_error

pytestmark = pytest.mark.asyncio

DEEP_ARRAY = b"[" * 30_000 + b"]" * 30_000
DEEP_OBJECT = b'{"a":' * 10_000 + b"1" + b"}" * 10_000  # under the 64 KiB limit
LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<service_request><description>&lol4;</description></service_request>"""
JSON = "application/json"
INVALID = "invalid_request"
#: A body FastAPI cannot parse at all is a 400 (tests/integration/gateway/test_openapi_fuzz.py).
UNPARSEABLE = "invalid_body"


def report_with(**fields: object) -> bytes:
    return json.dumps({**REPORT, **fields}).encode()


API_BODIES = {
    "deep-array": (DEEP_ARRAY, JSON, UNPARSEABLE),
    "deep-object": (DEEP_OBJECT, JSON, UNPARSEABLE),
    "billion-laughs": (LAUGHS, "application/xml", INVALID),
    "invalid-utf8": (report_with(title="x").replace(b'"x"', b'"\xff\xfe"'), JSON, UNPARSEABLE),
    "lone-surrogate": (report_with(title="x").replace(b'"x"', b'"\\ud800"'), JSON, INVALID),
    "wrong-type": (report_with(title=5), JSON, INVALID),
    "unknown-enum": (report_with(source="carrier_pigeon"), JSON, "invalid_source"),
    "very-long-string": (report_with(title="长" * 10_000), JSON, INVALID),
}


async def test_api_refuses_and_stores_nothing(gateway: Gateway) -> None:
    gw = gateway
    street = gw.auth("street", street="jianwai")
    before = last_event(gw)
    for name, (body, content_type, code) in API_BODIES.items():
        status = 400 if code == UNPARSEABLE else 422
        for extra in ({}, {"Idempotency-Key": f"hostile-{name}"}):
            headers = street | {"Content-Type": content_type} | extra
            response = await gw.client.post(CASES, content=body, headers=headers)
            assert response.status_code == status, f"{name} {extra}: {response.text[:300]}"
            assert_problem(response, status, code)
    assert last_event(gw) == before


OPEN311_BODIES = {
    "deep-array": (DEEP_ARRAY, JSON, "invalid_body"),
    "deep-object": (DEEP_OBJECT, JSON, "invalid_body"),
    "invalid-utf8": (b'{"api_key": "\xff"}', JSON, "invalid_body"),
    "billion-laughs": (LAUGHS, "application/xml", "unsupported_content_type"),
    "billion-laughs-text": (LAUGHS, "text/xml", "unsupported_content_type"),
}


async def test_open311_refuses_and_stores_nothing(gateway: Gateway) -> None:
    gw = gateway
    before = last_event(gw)
    for name, (body, content_type, code) in OPEN311_BODIES.items():
        for fmt in ("json", "xml"):
            for extra in ({}, {"Idempotency-Key": f"hostile-{name}-{fmt}"}):
                headers = {"Content-Type": content_type} | extra
                response = await gw.client.post(
                    f"{BASE}/requests.{fmt}", content=body, headers=headers
                )
                assert response.status_code == 400, f"{name} {fmt} {extra}: {response.text[:300]}"
                check_error(response, fmt, 400, code)
    assert last_event(gw) == before
