"""Structured logs: one JSON object per line on stderr, with the job id on every line and secrets masked."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

current_job: ContextVar[str | None] = ContextVar("current_job", default=None)
_secrets: set[str] = set()
_LOGGER_NAME = "studio"


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """Replace every known secret in text with `***`."""
    for secret in sorted(set(secrets or ()) | _secrets, key=len, reverse=True):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def register_secrets(secrets: Iterable[str]) -> None:
    """Remember values that must never be written out (API keys, S3 credentials)."""
    _secrets.update(s for s in secrets if s)


class JsonLineFormatter(logging.Formatter):
    """Formats a record as a JSON line: time, level, logger, job_id, message and any `extra` fields."""

    _standard = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "job_id": getattr(record, "job_id", None) or current_job.get(),
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._standard and key != "job_id":
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


def configure(level: str = "INFO") -> None:
    """Send the studio's logs to stderr as JSON lines (idempotent)."""
    logger = logging.getLogger(_LOGGER_NAME)
    if not any(isinstance(h.formatter, JsonLineFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLineFormatter())
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def get_logger(name: str) -> logging.Logger:
    """A logger under the studio's namespace."""
    return logging.getLogger(f"{_LOGGER_NAME}.{name}")
