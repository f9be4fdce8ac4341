"""Shared plumbing of the CLI: settings, the database, output, and one-line errors."""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import asdict, is_dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import typer

from serving.db import Database
from serving.db.engine import SchemaMismatch
from serving.errors import InvalidInput, cut_message
from serving.settings import Settings, get_settings


class CliError(Exception):
    """Printed as one line on stderr; exit status 1."""


@lru_cache
def settings() -> Settings:
    return get_settings()


@lru_cache
def database(*, upgrade: bool = False) -> Database:
    """The database of SFAI_DATABASE_URL; a new one is created. ``upgrade``: an existing one behind this release is
    migrated (``serve``, ``demo``, ``db migrate``); else it is refused in one line (old servers may still run on
    it: :func:`serving.db.engine.migrate`)."""
    s = settings()
    s.ensure_home()
    try:
        return Database(s.resolved_database_url, upgrade=upgrade)
    except SchemaMismatch as e:
        raise CliError(str(e)) from None


def _default(o):  # noqa: ANN001, ANN202
    if isinstance(o, datetime):
        return o.isoformat()
    if is_dataclass(o):
        return asdict(o)
    raise TypeError(type(o).__name__)


def emit_json(obj) -> None:  # noqa: ANN001
    """One JSON line on stdout. A metric that is not a number (NaN, an infinity) is ``null``: Python's ``NaN``
    is not JSON, and ``jq`` or a strict parser refuses the whole line."""
    typer.echo(json.dumps(_finite(obj), default=_default, ensure_ascii=False, allow_nan=False))


def _finite(obj):  # noqa: ANN001, ANN202
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if is_dataclass(obj) and not isinstance(obj, type):
        return _finite(asdict(obj))
    if getattr(getattr(obj, "dtype", None), "kind", None) == "f" and getattr(obj, "ndim", None) == 0:
        return _finite(float(obj))  # a NumPy float32 (float64 is a float)
    return obj


def info(message: str) -> None:
    """Human-facing notes go to stderr, so that stdout carries only what a script needs."""
    typer.echo(message, err=True)


def fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {cut_message(message)}", err=True)
    sys.exit(code)


def check_output(path: Path, example: str) -> None:
    """Refuse, before any work, an output path that is a folder or a device, or whose folder is missing (nothing
    is created: a mistyped folder is an error, not a new folder). An existing regular file is replaced (like a
    shell's ``>``). ``example`` is the file name a refusal of a folder suggests."""
    if path.is_dir():
        raise InvalidInput(f"{path} is a folder; give the file to write, e.g. {path / example}")
    if path.is_symlink() or (os.path.lexists(path) and not path.is_file()):
        kind = "a symbolic link" if path.is_symlink() else "not a regular file"
        raise InvalidInput(f"{path} exists and is {kind}; give a file name")
    parent = path.parent
    if not parent.is_dir():
        raise InvalidInput(f"cannot write {path}: folder {parent} does not exist")
