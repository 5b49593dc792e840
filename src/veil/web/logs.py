"""Structured logs: one JSON object a line, each carrying the request id of the request
it was logged in.

``REQUEST_ID`` holds the id of the request or WebSocket connection being served
(``veil.web.observe`` sets it), so every line logged while serving it, in the event
loop, in threads it hands work to, or in tasks it starts, says which request it
belongs to. ``JsonFormatter`` writes::

    {"time": "2026-11-25T10:00:00.123Z", "level": "info", "logger": "veil.access",
     "message": "POST /v1/transform 200", "service": "keyserver", "request_id": "...",
     "method": "POST", "route": "/v1/transform", "path": "/v1/transform", "status": 200,
     "duration_ms": 7.31, "pid": 4242}

Veil logs no secret: no token, signature, share, escrow blob, key or request body,
and no query string. As a backstop, the formatter replaces anything shaped like a JWT
or like the base64url of 32 bytes or more (mixed case and digits, as random bytes
are) with ``[redacted]``. ``logging_config`` also holds the libraries that would log
secrets at DEBUG or INFO at WARNING (SQLAlchemy logs statement parameters at INFO,
websockets logs frames at DEBUG), whatever level Veil's own loggers run at.
"""

import contextvars
import json
import logging
import os
import re
import sys
import time
from typing import Any

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "veil_request_id", default=None
)
"""The id of the request being served here, or ``None`` outside requests."""

LEVELS = ("debug", "info", "warning", "error")

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_LONG_BASE64URL = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43,}(?![A-Za-z0-9_-])")
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
    "taskName",
}
"""LogRecord attributes that are not ``extra`` fields (``color_message``: uvicorn's)."""


def redact(text: str) -> str:
    """``text`` with JWT-shaped strings and long random-looking base64url runs replaced."""
    if len(text) < 43:
        return text
    text = _JWT.sub("[redacted]", text)
    return _LONG_BASE64URL.sub(_redact_random, text)


def _redact_random(match: re.Match[str]) -> str:
    run = match.group()
    random_looking = (
        any(c.isdigit() for c in run)
        and any(c.isupper() for c in run)
        and any(c.islower() for c in run)
    )
    return "[redacted]" if random_looking else run


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ms), level, logger, message, request_id when
    in a request, pid, the record's ``extra`` fields, and ``exception`` (the traceback)
    when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = redact(value) if isinstance(value, str) else value
        entry["pid"] = record.process
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def _utc(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def log_level(value: str | None = None) -> str:
    """The level Veil's loggers run at: ``value``, else ``$VEIL_LOG_LEVEL``, else info."""
    level = (value or os.environ.get("VEIL_LOG_LEVEL") or "info").strip().lower()
    if level not in LEVELS:
        raise ValueError(f"VEIL_LOG_LEVEL must be one of {', '.join(LEVELS)}, not {level!r}")
    return level


def uvicorn_level(level: str) -> str:
    """uvicorn's level for Veil's ``level``: never below info (its WebSocket protocol
    logs every frame at DEBUG, and a hello carries a JWT)."""
    return "info" if level == "debug" else level


def uvicorn_options(level: str | None = None) -> dict[str, Any]:
    """``uvicorn.run``'s logging options: JSON lines at ``log_level(level)``, and no
    uvicorn access log (``veil.access`` has one line a request)."""
    level = log_level(level)
    return {
        "log_config": logging_config(level),
        "log_level": uvicorn_level(level),
        "access_log": False,
    }


QUIET_LOGGERS = ("sqlalchemy", "alembic", "websockets", "httpx", "httpcore", "nats")
"""Libraries whose records below WARNING are dropped: SQLAlchemy logs statement
parameters (escrow blobs, keys) at INFO, websockets logs frames at DEBUG, httpx and
httpcore each outgoing request."""


class QuietFilter(logging.Filter):
    """Drops records below WARNING from ``QUIET_LOGGERS`` and below INFO from uvicorn,
    whatever level someone set those loggers to."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if record.levelno < logging.INFO and (name == "uvicorn" or name.startswith("uvicorn.")):
            return False
        if record.levelno < logging.WARNING:
            return not any(name == q or name.startswith(q + ".") for q in QUIET_LOGGERS)
        return True


def logging_config(level: str = "info") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` (and uvicorn ``log_config``) for JSON lines on
    stderr: Veil's loggers at ``level``; uvicorn's at info or above, without its access
    log (``veil.access`` logs each request instead); ``QUIET_LOGGERS`` at WARNING (and
    filtered so); anything else at WARNING."""
    json_handler = {"level": level.upper(), "handlers": ["json"], "propagate": False}
    uvicorn = uvicorn_level(level).upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "filters": {"quiet": {"()": QuietFilter}},
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["quiet"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": "WARNING", "handlers": ["json"]},
        "loggers": {
            "veil": json_handler,
            "uvicorn": {**json_handler, "level": uvicorn},
            "uvicorn.error": {"level": uvicorn},
            "uvicorn.access": {"level": "WARNING"},
            **{name: {"level": "WARNING"} for name in QUIET_LOGGERS},
        },
    }


def main() -> None:
    """``python -m veil.web.logs [LEVEL] > log-config.json``: the configuration for
    ``uvicorn --log-config`` when running an ASGI factory with uvicorn directly."""
    config = logging_config(log_level(sys.argv[1] if len(sys.argv) > 1 else None))
    config["formatters"]["json"]["()"] = "veil.web.logs.JsonFormatter"
    config["filters"]["quiet"]["()"] = "veil.web.logs.QuietFilter"
    json.dump(config, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
