"""The OpenAPI document is complete: what a client generator or a reader of /docs needs is there.

Every operation is named (operation id) and summarised, answers a 2xx with a schema, documents its
errors in the shape they really come in (RFC 9457 problems under /api/v1, the spec's `errors`
document under /open311/v2) and shows an example of each request body. The structural checks read
the document of an app that is built but not started (building opens nothing); the running gateway
must serve the same document and the Swagger UI.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI

from gateway import create_app
from infra.settings import Settings
from tests.integration.gateway.conftest import Gateway

Json = dict[str, Any]
PROBLEM_REF = "#/components/schemas/Problem"
PROBLEM_MEDIA_TYPE = "application/problem+json"
SPEC_ERROR_REF = "#/components/schemas/SpecError"
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})
#: Errors the gateway's middleware answers on every POST, Open311's too, as problem documents
#: (503: the store dropped its connection, wherever that is met).
MIDDLEWARE_STATUSES = frozenset({"413", "422", "429", "503"})


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    settings = Settings(var_dir=tmp_path_factory.mktemp("docs") / "var", dev_mode=True)
    return create_app(settings)


@pytest.fixture(scope="module")
def document(app: FastAPI) -> Json:
    return app.openapi()


def operations(document: Json) -> Iterator[tuple[str, str, Json]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method.upper(), path, operation


def is_open311(path: str) -> bool:
    return path.startswith("/open311/")


def schemas_of(response: Json) -> list[tuple[str, Json | None]]:
    return [(media, content.get("schema")) for media, content in response["content"].items()]


def test_every_operation_has_a_unique_id_and_a_summary(document: Json) -> None:
    ids = [str(op.get("operationId")) for _, _, op in operations(document)]
    unnamed = [f"{m} {p}" for m, p, op in operations(document) if not op.get("operationId")]
    unsummarised = [f"{m} {p}" for m, p, op in operations(document) if not op.get("summary")]
    assert not unnamed
    assert not unsummarised
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert len(ids) >= 45  # the API surface did not silently shrink (a router left out)


def test_every_operation_answers_a_2xx_with_a_schema(document: Json) -> None:
    def documents_success(operation: Json) -> bool:
        return any(
            schema
            for status, response in operation["responses"].items()
            if status.startswith("2")
            for _, schema in schemas_of(response)
        )

    missing = [f"{m} {p}" for m, p, op in operations(document) if not documents_success(op)]
    assert not missing


def error_shape_problems(method: str, path: str, status: str, response: Json) -> list[str]:
    """What is wrong with one documented error response (nothing, for a well-documented one)."""
    where = f"{method} {path} {status}"
    content = response.get("content", {})
    if not content:
        return [f"{where}: no content"]
    if not is_open311(path) or (method == "POST" and status in MIDDLEWARE_STATUSES):
        if content.get(PROBLEM_MEDIA_TYPE, {}).get("schema") != {"$ref": PROBLEM_REF}:
            return [f"{where}: not an {PROBLEM_MEDIA_TYPE} Problem"]
        return []
    if path.endswith(".xml"):
        return [] if set(content) == {"text/xml"} else [f"{where}: not text/xml"]
    schema = content.get("application/json", {}).get("schema", {})
    if schema.get("items") != {"$ref": SPEC_ERROR_REF}:
        return [f"{where}: not the spec's errors list"]
    return []


def test_error_responses_are_documented_as_they_come(document: Json) -> None:
    """/api/v1 errors are problem documents; Open311's are the spec's (but the middleware's)."""
    found = [
        issue
        for method, path, operation in operations(document)
        for status, response in operation["responses"].items()
        if status[0] in "45" and (method, path, status) != ("GET", "/readyz", "503")
        for issue in error_shape_problems(method, path, status, response)
    ]
    assert not found
    readyz_503 = document["paths"]["/readyz"]["get"]["responses"]["503"]
    assert schemas_of(readyz_503) == [
        ("application/json", {"$ref": "#/components/schemas/Readiness"})
    ]  # not ready is an answer, with every check's state, not an error


def test_no_operation_advertises_fastapis_validation_error(document: Json) -> None:
    """Every 422 is a problem document (`invalid_request`), never FastAPI's own error shape."""
    assert "HTTPValidationError" not in json.dumps(document)


def test_api_operations_require_a_bearer_token_and_say_what_401_and_403_mean(
    document: Json,
) -> None:
    api = [(m, p, op) for m, p, op in operations(document) if p.startswith("/api/v1/")]
    assert api
    unsecured = [f"{m} {p}" for m, p, op in api if not op.get("security")]
    undocumented = [f"{m} {p}" for m, p, op in api if not {"401", "403"} <= op["responses"].keys()]
    assert not unsecured
    assert not undocumented
    scheme = next(iter(document["components"]["securitySchemes"].values()))
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")


def component(document: Json, ref: str) -> Json:
    schema: Json = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return schema


def has_examples(document: Json, media: Json) -> bool:
    """An example on the media type, or on the body's schema (each branch of a union)."""
    if media.get("example") is not None or media.get("examples"):
        return True
    schema = media.get("schema", {})
    branches = schema.get("anyOf") or schema.get("oneOf") or [schema]
    return all(
        "$ref" in branch and bool(component(document, branch["$ref"]).get("examples"))
        for branch in branches
    )


def test_every_request_body_shows_an_example(document: Json) -> None:
    bodies = [
        (f"{m} {p} {media_type}", media)
        for m, p, op in operations(document)
        if "requestBody" in op
        for media_type, media in op["requestBody"]["content"].items()
    ]
    assert len(bodies) >= 20  # every command and both Open311 POSTs
    assert not [where for where, media in bodies if not has_examples(document, media)]


def test_every_command_documents_the_idempotency_key(document: Json) -> None:
    commands = [
        (f"{m} {p}", op)
        for m, p, op in operations(document)
        if m == "POST" and p.startswith("/api/v1/cases")
    ]
    missing = [
        where
        for where, op in commands
        if "Idempotency-Key" not in {p["name"] for p in op.get("parameters", [])}
    ]
    assert commands
    assert not missing


def test_problem_is_a_component_with_a_stable_code(document: Json) -> None:
    problem = component(document, PROBLEM_REF)
    assert {"type", "title", "status", "detail", "code"} <= problem["properties"].keys()
    assert {"title", "status", "detail", "code"} <= set(problem["required"])
    assert problem["properties"]["status"]["type"] == "integer"


@pytest.mark.asyncio
async def test_the_running_gateway_serves_its_document_and_the_swagger_ui(
    gateway: Gateway, document: Json
) -> None:
    schema = await gateway.client.get("/openapi.json")
    assert schema.status_code == 200
    assert schema.headers["content-type"].startswith("application/json")
    served = schema.json()
    assert served["openapi"].startswith("3.")
    assert served["paths"] == document["paths"]  # the same routes, whatever the settings
    assert served["info"]["title"] == "whistleloop gateway"

    ui = await gateway.client.get("/docs")
    assert ui.status_code == 200
    assert ui.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in ui.text
    assert "/openapi.json" in ui.text
