"""The server's log: a caller's repeated data notes do not flood it, and nothing else is held back."""

from __future__ import annotations

import logging

from serving.logs import Repeats, UtcFormatter


def _record(name: str, msg: str, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def test_the_filter_covers_the_loggers_the_model_families_use():
    """The filter had watched ``models.*`` while the families log as ``sfai.defect`` and so on (reviewer): it let
    every note through."""
    from models.defect.predict import log as defect
    from models.energy.predict import log as energy
    from models.rul.predict import log as rul
    from serving.logs import MODEL_NOTES

    assert {defect.name, energy.name, rul.name} <= set(MODEL_NOTES)


def test_repeated_model_warnings_are_counted_not_logged():
    now = [0.0]
    f = Repeats(per_window=3, window_s=60, clock=lambda: now[0])
    passed = [f.filter(_record("sfai.defect", f"wafer {i}: 40 % outside")) for i in range(10)]
    assert passed == [True] * 3 + [False] * 7
    assert f.filter(_record("sfai.rul", "unit 3 skips cycles"))  # another model: its own allowance
    assert f.filter(_record("serving.scheduling", "job failed"))  # SFAI's own warnings: never held back
    assert f.filter(_record("sfai.defect", "an error", logging.ERROR))
    now[0] = 61.0
    first = _record("sfai.defect", "wafer %d: %s")
    first.args = (11, "40 % outside")
    assert f.filter(first)
    assert first.getMessage() == "wafer 11: 40 % outside (7 more like it were not logged before this one)"
    second = _record("sfai.defect", "wafer 12")
    assert f.filter(second) and second.getMessage() == "wafer 12"  # said once


def test_times_are_utc_iso_and_uvicorns_logger_is_not_called_error():
    rec = _record("serving", "x", logging.INFO)
    rec.created = 0.0
    assert UtcFormatter().format(rec).startswith("1970-01-01T00:00:00Z INFO [")
    started = _record("uvicorn.error", "Application startup complete.", logging.INFO)
    assert UtcFormatter().format(started).endswith("] uvicorn: Application startup complete.")
    assert started.name == "uvicorn.error"  # the record itself is unchanged for the other handlers
