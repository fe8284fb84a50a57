"""Domain errors with stable machine codes, so the gateway can map them once and clients can branch on them."""

from __future__ import annotations

from enum import Enum


class ErrorKind(Enum):
    """Why a command failed; the gateway turns each kind into one HTTP status."""

    INVALID = "invalid"  # the input itself is wrong (422)
    NOT_FOUND = "not_found"  # an id that does not exist (404)
    FORBIDDEN = "forbidden"  # the wrong actor for this command (403)
    CONFLICT = "conflict"  # legal input, illegal now: state, duplicates, races (409)


class DomainError(Exception):
    """A rule of the domain was broken; nothing was recorded.

    `code` is stable across releases (clients and tests match on it); the messages are for people.
    """

    kind: ErrorKind = ErrorKind.INVALID

    def __init__(self, code: str, message_zh: str, message_en: str, **details: object) -> None:
        super().__init__(f"{code}: {message_en}")
        self.code = code
        self.message_zh = message_zh
        self.message_en = message_en
        self.details = details

    def message(self, lang: str = "zh") -> str:
        return self.message_zh if lang.startswith("zh") else self.message_en


class InvalidInput(DomainError):
    kind = ErrorKind.INVALID


class NotFound(DomainError):
    kind = ErrorKind.NOT_FOUND


class WrongActor(DomainError):
    kind = ErrorKind.FORBIDDEN


class IllegalState(DomainError):
    kind = ErrorKind.CONFLICT
