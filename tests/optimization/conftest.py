"""Fixtures for the scheduling tests: the shared datasets (skip with a reason if absent, fail on CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ON_CI = bool(os.environ.get("CI"))


def shared_dir() -> Path:
    env = os.environ.get("SFAI_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared"


@pytest.fixture(scope="session")
def datasets() -> Path:
    d = shared_dir() / "datasets"
    if not (d / "jsplib").is_dir() or not (d / "fjsp").is_dir():
        msg = f"shared datasets not found at {d} (set SFAI_SHARED)"
        if ON_CI:
            pytest.fail(msg + " - required on CI")
        print(f"\nSKIP: {msg}")
        pytest.skip(msg)
    return d


@pytest.fixture(params=["compiled", "python"])
def engine(request, monkeypatch):
    """Both dispatching schemes: compiled by numba (optimization/_dispatch_core.py, the default) and Python."""
    from optimization import heuristics

    monkeypatch.setattr(heuristics, "_COMPILED", request.param == "compiled")
    monkeypatch.setattr(heuristics, "_COMPILED_MIN_OPS", 0)
    return request.param
