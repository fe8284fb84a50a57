"""The Open311 GeoReport v2 documents, field for field as the spec names and orders them.

One model per document serves three purposes: it builds the answer, it is the JSON shape in the
OpenAPI schema, and its field order is the element order of the XML rendering (`render.py`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SPEC_URL = "http://wiki.open311.org/GeoReport_v2"

#: The spec's attribute data types (service definitions).
Datatype = Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]


class _Document(BaseModel):
    model_config = ConfigDict(frozen=True)


class Endpoint(_Document):
    specification: str = Field(examples=[SPEC_URL])
    url: str = Field(examples=["https://whistleloop.example/open311/v2"])
    changeset: datetime
    type: Literal["production", "test"]
    formats: list[str] = Field(examples=[["text/xml", "application/json"]])


class Discovery(_Document):
    changeset: datetime
    contact: str
    key_service: str
    endpoints: list[Endpoint]


class Service(_Document):
    """One service type: here, one item of the duty list in force (职责清单事项)."""

    service_code: str = Field(examples=["CG-001"])
    service_name: str = Field(examples=["协助查处辖区内违法建设"])
    description: str
    metadata: bool = Field(description="Always true: every service asks for the street.")
    type: Literal["realtime", "batch", "blackbox"]
    keywords: str = Field(examples=["urban_management, 城管执法"])
    group: str = Field(examples=["城市管理"])


class AttributeValue(_Document):
    key: str = Field(examples=["jianwai"])
    name: str = Field(examples=["建外街道"])


class Attribute(_Document):
    variable: bool
    code: str = Field(examples=["street"])
    datatype: Datatype
    required: bool
    datatype_description: str | None
    order: int
    description: str
    values: list[AttributeValue]


class ServiceDefinition(_Document):
    service_code: str = Field(examples=["CG-001"])
    attributes: list[Attribute]


class ServiceRequest(_Document):
    """A case as a service request. Contact details of the reporter are never part of it."""

    service_request_id: str = Field(examples=["0c6f8e5a-8d1e-5a8e-9d57-1c2f3b4a5d6e"])
    status: Literal["open", "closed"]
    status_notes: str | None = Field(examples=["吹哨"])
    service_name: str | None
    service_code: str | None = Field(examples=["CG-001"])
    description: str | None
    agency_responsible: str | None = Field(examples=["区城市管理综合行政执法局"])
    service_notice: str | None
    requested_datetime: datetime
    updated_datetime: datetime
    expected_datetime: datetime | None
    address: str | None
    address_id: str | None
    zipcode: str | None
    lat: float | None
    long: float | None
    media_url: str | None


class RequestCreated(_Document):
    """The answer to POST requests: the id (the case id) and a token that maps back to it."""

    service_request_id: str
    token: str
    service_notice: str | None
    account_id: str | None


class TokenAnswer(_Document):
    service_request_id: str
    token: str


class SpecError(_Document):
    """One spec error; `description` starts with a stable machine code (`missing_api_key: …`)."""

    code: int = Field(examples=[404], description="The HTTP status.")
    description: str = Field(examples=["unknown_service_code: no service XX-999"])
