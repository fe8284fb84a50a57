"""Open311 answers in either format, and the spec's own error documents.

XML is required by the spec and JSON optional; both are rendered from the same `schemas` models, so
the two can never disagree. XML is UTF-8 with a declaration that says so (the spec asks for it);
lists are wrapped as the spec shows them: `<services><service>…`, `<attributes><attribute>…`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any
from xml.etree import ElementTree as ET

from fastapi.responses import Response
from pydantic import BaseModel

from domain.errors import DomainError, ErrorKind
from gateway.auth import AuthError
from gateway.open311.schemas import SpecError


class Format(StrEnum):
    JSON = "json"
    XML = "xml"

    @property
    def media_type(self) -> str:
        return "application/json" if self is Format.JSON else "text/xml"

    @classmethod
    def of_path(cls, path: str) -> Format:
        """The format a path asks for by its extension (XML, the required one, when unclear)."""
        return cls.JSON if path.endswith(".json") else cls.XML


class XMLResponse(Response):
    """Only names the media type, so the OpenAPI document lists XML routes as `text/xml`."""

    media_type = "text/xml"


#: The element each list's items are wrapped in (the list's own element is its field name).
ITEM_ELEMENT = {
    "endpoints": "endpoint",
    "formats": "format",
    "attributes": "attribute",
    "values": "value",
    "services": "service",
    "service_requests": "request",
    "errors": "error",
}

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
#: Characters XML 1.0 cannot carry at all, even escaped (C0 controls but tab, LF, CR).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

STATUS_OF_KIND = {
    ErrorKind.INVALID: 400,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.CONFLICT: 409,
}


class Open311Error(Exception):
    """An error answered in the spec's format; `code` is stable and leads the description."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def render(
    fmt: Format,
    root: str,
    document: BaseModel | Sequence[BaseModel],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A document (or a list of them, under `root`) as a response in `fmt`."""
    data: Any = (
        document.model_dump(mode="json")
        if isinstance(document, BaseModel)
        else [item.model_dump(mode="json") for item in document]
    )
    if fmt is Format.JSON:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    else:
        body = xml_document(root, data)
    return Response(
        body,
        status_code=status,
        media_type=f"{fmt.media_type}; charset=utf-8",
        headers=dict(headers or {}),
    )


def xml_document(root: str, data: Any) -> bytes:
    element = ET.Element(root)
    _fill(element, root, data)
    return XML_DECLARATION + ET.tostring(element, encoding="unicode").encode("utf-8")


def _fill(element: ET.Element, name: str, value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _fill(ET.SubElement(element, key), key, item)
    elif isinstance(value, list):
        child = ITEM_ELEMENT[name]
        for item in value:
            _fill(ET.SubElement(element, child), child, item)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = _NOT_XML.sub("", str(value))


def error_response(fmt: Format, error: Open311Error) -> Response:
    document = SpecError(code=error.status, description=f"{error.code}: {error.message}")
    return render(fmt, "errors", [document], status=error.status)


def from_domain(error: DomainError, language: str) -> Open311Error:
    """A domain error as the spec's kind of error: invalid input is a 400 there, not a 422."""
    return Open311Error(STATUS_OF_KIND[error.kind], error.code, error.message(language))


def from_auth(error: AuthError) -> Open311Error:
    return Open311Error(401, error.code, error.message)
