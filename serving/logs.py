"""How the API server logs: each record starts with its time (UTC, ISO 8601), level, process and logger, for SFAI's
own records and uvicorn's alike, in one process or many (``sfai serve --workers N``); a traceback follows its record.

The model packages log their notes on a caller's data (a wafer outside its training ranges, an engine whose cycles
skip numbers) for the CLI, where they are the run's stderr. In the server the same notes are already in the answer's
``warnings``; logged on every call as well, an MES that sends the same out-of-range wafer every few seconds would fill
the log. :class:`Repeats` lets a few through per model family and minute and counts the rest on the next one it
lets through.
"""
from __future__ import annotations

import logging
import threading
import time

# the loggers of the model families' notes on a caller's data (models/*/predict.py)
MODEL_NOTES = ("sfai.defect", "sfai.rul", "sfai.energy", "sfai.failure")
FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class UtcFormatter(logging.Formatter):
    converter = time.gmtime  # servers in several time zones, one log: UTC, as every SFAI time is

    def __init__(self, fmt: str = FORMAT, datefmt: str = DATE_FORMAT) -> None:
        super().__init__(fmt, datefmt)

    def format(self, record: logging.LogRecord) -> str:
        if record.name == "uvicorn.error":  # uvicorn's general logger: "INFO uvicorn.error: Started" misleads
            record = logging.makeLogRecord({**record.__dict__, "name": "uvicorn"})
        return super().format(record)


def stamped(message: str, level: int = logging.INFO, name: str = "sfai.serve") -> str:
    """``message`` as a server log line (UTC time, level, process, logger), for the lines ``sfai serve`` writes
    before uvicorn's logging starts and after it stops: they had none, though every other line has."""
    return UtcFormatter().format(logging.makeLogRecord({"msg": message, "levelno": level, "name": name,
                                                        "levelname": logging.getLevelName(level)}))


class Repeats(logging.Filter):
    """At most ``per_window`` warnings per logger under ``prefixes`` (one per model family) in each ``window_s``;
    the next one let through after a window that dropped some says how many. Other records pass untouched."""

    def __init__(self, prefixes: tuple[str, ...] = MODEL_NOTES, per_window: int = 5, window_s: float = 60.0,
                 clock=time.monotonic) -> None:  # noqa: ANN001
        super().__init__()
        self.prefixes, self.per_window, self.window_s, self.clock = prefixes, per_window, window_s, clock
        self._seen: dict[str, list] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING or not record.name.startswith(self.prefixes):
            return True
        now = self.clock()
        with self._lock:
            seen = self._seen.setdefault(record.name, [now, 0, 0, 0])  # window start, let through, dropped, unsaid
            if now - seen[0] >= self.window_s:
                seen[:] = [now, 0, 0, seen[3] + seen[2]]
            if seen[1] >= self.per_window:
                seen[2] += 1
                return False
            seen[1] += 1
            unsaid, seen[3] = seen[3], 0
        if unsaid:
            record.msg = f"{record.getMessage()} ({unsaid} more like it were not logged before this one)"
            record.args = None
        return True


def server_log_config(level: str = "info") -> dict:
    """uvicorn's ``log_config``: the root logger (SFAI's records) and uvicorn's share one handler and format."""
    level = level.upper() if level.lower() != "trace" else "DEBUG"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"repeats": {"()": Repeats}},
        "formatters": {"sfai": {"()": UtcFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "sfai",
                                "filters": ["repeats"]}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
            "alembic": {"level": "WARNING"},
        },
    }
