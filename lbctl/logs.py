"""How the components log: text or JSON lines, set up once at start (I/O at setup only).

``json`` writes one object a line (``time``, ``level``, ``logger``, ``message``, and
``exception`` when there is one) for Loki, Elasticsearch and other shippers that parse lines.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record; never more than one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def setup(level: str, fmt: LogFormat = "text") -> None:
    """Configure the root logger for a long-running component."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # pyroute2 logs every netlink message at debug: far too much to be useful.
    logging.getLogger("pyroute2").setLevel(logging.WARNING)
