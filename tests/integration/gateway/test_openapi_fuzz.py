"""Schemathesis against the gateway's own OpenAPI document, on a live gateway over real HTTP.

Every documented operation gets generated requests, valid and invalid, some aimed at the seeded
cases, departments and services so the happy paths are reached too. Each answer must be no 5xx,
a documented status, a documented media type and a body that matches the documented schema: the
document is the contract clients code against, so a gap in it is a bug like any other.

The gateway runs behind uvicorn in the test's event loop (with relay and projectors); schemathesis'
client is blocking, so the fuzzing runs in a worker thread. Failures are collected, not raised, so
one run reports every operation that breaks the contract. Hypothesis is derandomised and keeps no
example database: CI sees the same requests every run.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies as st
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.integration.gateway.conftest import Gateway, Served
from tests.integration.gateway.rest import command, full_loop, report

pytestmark = pytest.mark.asyncio

#: Generated requests per operation and caller: bounded in `make test` so the file stays well under
#: 90 s; `make fuzz` sets WL_FUZZ_EXAMPLES for the long run of docs/RELIABILITY.md.
EXAMPLES = int(os.environ.get("WL_FUZZ_EXAMPLES", "25"))
CHECKS: list[CheckFunction] = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]
HYPOTHESIS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.generate],  # no shrinking: a failure is reported as generated
    suppress_health_check=list(HealthCheck),
    report_multiple_bugs=False,
)


Operation = APIOperation[Any, Any, Any, Any]
AnyCase = Case[Any]


@dataclass
class Caller:
    """Who fuzzes, and real values to send beside generated ones.

    `path_values`: per path parameter, real ids to aim at. `body_fields`: fields set in every valid
    generated body that has them (an Open311 `api_key`, which nothing generated can guess).
    """

    headers: dict[str, str]
    path_values: Mapping[str, Sequence[str]] = field(default_factory=dict)
    body_fields: Mapping[str, str] = field(default_factory=dict)

    def fill(self, case: AnyCase) -> AnyCase:
        if isinstance(case.body, dict):
            case.body.update({k: v for k, v in self.body_fields.items() if k in case.body})
        return case


def strategy(
    schema: OpenApiSchema, operation: Operation, caller: Caller
) -> st.SearchStrategy[AnyCase]:
    """Valid and invalid requests, plus the document's own examples, aimed at real and made-up ids.

    The documented examples name a made-up case, so they are also sent with each real path value:
    that is where a valid command body meets a case it can act on.
    """
    real: list[dict[str, Any]] = [{}] + [
        {name: value}
        for name in (p.name for p in operation.path_parameters)
        for value in caller.path_values.get(name, ())
    ]
    valid = [operation.as_strategy(path_parameters=path) for path in real] + [
        example
        for path in real
        for example in schema.get_strategies_from_examples(operation, path_parameters=path)
    ]
    return st.one_of(
        operation.as_strategy(GenerationMode.NEGATIVE),
        *(strategy.map(caller.fill) for strategy in valid),
    )


def fuzz_operation(
    schema: OpenApiSchema,
    operation: Operation,
    caller: Caller,
    base_url: str,
    session: requests.Session,
) -> list[str]:
    """Every distinct contract failure of one operation, as schemathesis words it."""
    found: dict[str, str] = {}

    @HYPOTHESIS
    @given(case=strategy(schema, operation, caller))
    def run(case: AnyCase) -> None:
        try:
            case.call_and_validate(
                base_url=base_url, session=session, headers=caller.headers, checks=CHECKS
            )
        except FailureGroup as group:
            titles = ", ".join(sorted(failure.title for failure in group.exceptions))
            found.setdefault(titles, f"{operation.label} ({titles}):\n{group}")

    run()
    return list(found.values())


def fuzz(
    schema: OpenApiSchema,
    base_url: str,
    caller: Caller,
    select: Callable[[Operation], bool] = lambda _: True,
) -> list[str]:
    """Fuzzes every selected operation of the schema (blocking: run it in a thread)."""
    failures: list[str] = []
    with requests.Session() as session:
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                raise result.err()  # the document itself does not load
            operation = result.ok()
            if select(operation):
                failures.extend(fuzz_operation(schema, operation, caller, base_url, session))
    return failures


async def seed(served: Served) -> list[str]:
    """Cases in several states (reported, whistled, closed and rated), the projections caught up."""
    gw = served.gateway
    street = gw.auth("street", street="jianwai")
    closed = await full_loop(gw)
    reported = await report(gw.client, street)
    whistled = await report(gw.client, street, title="占道经营")
    await command(gw.client, street, whistled, "accept")
    await command(gw.client, street, whistled, "whistle", lead="cgzf", duty_item="CG-001")
    await gw.settle()
    return [closed, reported, whistled]


async def load_schema(served: Served) -> OpenApiSchema:
    response = await served.gateway.client.get("/openapi.json")
    response.raise_for_status()
    return schemathesis.openapi.from_dict(response.json())


def report_of(failures: list[str]) -> str:
    return f"{len(failures)} contract failure(s):\n\n" + "\n\n".join(failures)


async def test_every_operation_keeps_its_documented_contract(served: Served) -> None:
    case_ids = await seed(served)
    schema = await load_schema(served)
    caller = Caller(
        headers=served.gateway.auth("command_centre"),
        path_values={
            "case_id": case_ids,
            "service_request_id": case_ids,
            "token": case_ids,
            "department": ["cgzf", "ghzr"],
            "service_code": ["CG-001"],
        },
        body_fields={"api_key": served.gateway.token("resident", subject="r-fuzz")},
    )
    failures = await asyncio.to_thread(fuzz, schema, served.base_url, caller)
    assert not failures, report_of(failures)


def is_api_read(operation: Operation) -> bool:
    return operation.method.upper() == "GET" and operation.path.startswith("/api/v1/")


async def test_a_department_reads_within_the_contract(served: Served) -> None:
    """The scoped role's answers (403s for others' data, its own views) are documented too."""
    case_ids = await seed(served)
    schema = await load_schema(served)
    caller = Caller(
        headers=served.gateway.auth("department", dept="cgzf"),
        path_values={"case_id": case_ids, "department": ["cgzf", "ghzr"]},
    )
    failures = await asyncio.to_thread(fuzz, schema, served.base_url, caller, is_api_read)
    assert not failures, report_of(failures)


# --- what the fuzzer found, pinned -------------------------------------------------------------


async def test_a_command_the_case_state_forbids_is_a_409_problem(gateway: Gateway) -> None:
    """`illegal_transition` carries the case's status as a detail: it must not clash with the
    problem's own `status` (it did: a 500 for every command on a case in the wrong state)."""
    case_id = await full_loop(gateway)
    response = await gateway.client.post(
        f"/api/v1/cases/{case_id}/accept", json={}, headers=gateway.auth("command_centre")
    )
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["code"]) == (409, "illegal_transition")


async def test_a_body_that_is_not_json_text_is_a_documented_400(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/api/v1/cases",
        content=b'"\x80"',  # invalid UTF-8: FastAPI cannot even decode it
        headers={**gateway.auth("command_centre"), "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    documented = gateway.app.openapi()["paths"]["/api/v1/cases"]["post"]["responses"]
    assert "400" in documented
