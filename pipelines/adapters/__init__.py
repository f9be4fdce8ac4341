"""Adapters: one per source format, each ``read(path) -> Canonical`` (see pipelines/canonical.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipelines.adapters import ai4i, cmapss, secom, steel_energy
from pipelines.canonical import Canonical

ADAPTERS: dict[str, Callable[[Path], Canonical]] = {
    "cmapss": cmapss.read,
    "ai4i": ai4i.read,
    "secom": secom.read,
    "steel-energy": steel_energy.read,
}

__all__ = ["ADAPTERS", "ai4i", "cmapss", "secom", "steel_energy"]
