"""The dock's log: one format for its own lines and uvicorn's, as text or as JSON lines.

``bwv dock serve`` hands :func:`log_config` to uvicorn (``log_config=``), so uvicorn's startup
and access lines and the dock's own (``bwv.*``: refusals, receipts, revocations) go through
the same formatter to stderr (the journal, under systemd):

- ``text``: ``2026-05-01T12:00:00.123Z WARNING bwv.dock: refused ... from 10.0.0.7``
- ``json``: one object a line, ``{"time", "level", "logger", "message", ...}`` plus the
  fields a line was given (``extra=``): for a refusal ``event``, ``status``, ``code``,
  ``reason``, ``device_id``, ``remote``, ``method``, ``path``.

Nothing secret is ever given to a log line: no token, no key, no request header.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# the attributes every LogRecord has: anything else on a record came from ``extra=``
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured copy of the message
}


class UtcFormatter(logging.Formatter):
    """Text lines stamped in UTC, ISO 8601 with milliseconds."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{t}.{int(record.msecs):03d}Z"


class JsonFormatter(UtcFormatter):
    """One JSON object a line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in _STANDARD and not k.startswith("_"):
                out[k] = v if isinstance(v, str | int | float | bool | type(None)) else str(v)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def log_config(fmt: str = "text", level: str = "INFO") -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` for uvicorn's and the dock's loggers, to stderr."""
    if fmt not in FORMATS:
        raise ValueError(f"log format is one of {', '.join(FORMATS)}")
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"}
        if fmt == "json"
        else {"()": f"{__name__}.UtcFormatter", "fmt": TEXT_FORMAT}
    )
    handler = {"class": "logging.StreamHandler", "formatter": "bwv", "stream": "ext://sys.stderr"}
    logger = {"handlers": ["stderr"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"bwv": formatter},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": dict(logger),
            "uvicorn.error": {"level": level},  # propagates to "uvicorn"
            "uvicorn.access": dict(logger),
            "bwv": dict(logger),
        },
    }
