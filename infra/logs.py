"""Structured logging: one JSON object per line for machines, readable lines on a terminal."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

#: Attributes every LogRecord has; anything else passed in `extra=` is a field worth keeping.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


#: Credentials that can ride in a URL's query (a WebSocket's `?token=`, an Open311 `api_key`):
#: uvicorn's access and WebSocket lines log the whole path, query included.
_QUERY_SECRET = re.compile(r"\b(token|access_token|api_key|password)=[^&\s\"']+", re.IGNORECASE)


class RedactQuerySecrets(logging.Filter):
    """Masks credentials in a record's message before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _QUERY_SECRET.sub(r"\1=***", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactQuerySecrets())
    if sys.stderr.isatty():
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
