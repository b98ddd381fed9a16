"""Logs as text (the default) or as one JSON object a line (``--log-format json``), and the
line per HTTP request that JSON logging adds (logger ``stratus.requests``)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

REQUESTS = logging.getLogger("stratus.requests")
# what a record may carry beyond its message, put in the JSON object as is
FIELDS = ("request_id", "key_id", "surface", "method", "path", "model", "status",
          "latency_ms", "input_tokens", "output_tokens", "cost_usd")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage()}
        line.update({name: getattr(record, name) for name in FIELDS if hasattr(record, name)})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, separators=(",", ":"), default=str)


def uvicorn_config(log_format: str, level: str) -> dict[str, Any] | None:
    """uvicorn's ``log_config`` for ``log_format`` (None: uvicorn's own, for text), which
    also sets up Stratus's loggers; JSON turns the per-request line on."""
    if log_format != "json":
        REQUESTS.setLevel(logging.WARNING)  # uvicorn's access log says it in text
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json",
               "stream": "ext://sys.stderr"}
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": handler},
        "root": {"handlers": ["json"], "level": level.upper()},
        "loggers": {"uvicorn": {"level": level.upper()},
                    "uvicorn.access": {"level": "WARNING"},  # the requests line replaces it
                    "stratus.requests": {"level": "INFO"}},
    }
