"""Logging for every component: TF_LOG_LEVEL (trace, debug, info, warn, error) and TF_LOG_FORMAT.

Call `setup_logging()` once at process start. TF_LOG_FORMAT=json writes one JSON object per
line (for log pipelines); the default is plain text. `trace` is a level below debug for
per-request or per-sample detail that even debug would drown in.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

from tfcore.model.errors import ValidationError

TRACE = 5
LEVELS: dict[str, int] = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS = ("text", "json")
ENV_LEVEL = "TF_LOG_LEVEL"
ENV_FORMAT = "TF_LOG_FORMAT"
_HANDLER_NAME = "tensor-fusion"
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

logging.addLevelName(TRACE, "TRACE")


def parse_level(text: str) -> int:
    level = LEVELS.get(text.strip().lower())
    if level is None:
        raise ValidationError.single(ENV_LEVEL, f"unknown log level {text!r}", "trace, debug, info, warn or error")
    return level


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(env: Mapping[str, str] | None = None, *, stream: IO[str] | None = None) -> int:
    """Configure the root logger from the environment; returns the level. Bad values raise ValidationError."""
    env = os.environ if env is None else env
    level = parse_level(env.get(ENV_LEVEL) or "info")
    fmt = (env.get(ENV_FORMAT) or "text").strip().lower()
    if fmt not in FORMATS:
        raise ValidationError.single(ENV_FORMAT, f"unknown log format {fmt!r}", "text or json")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return level
