"""Shared plumbing of the CLI: settings, the database, output, and one-line errors."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, is_dataclass
from datetime import datetime
from functools import lru_cache

import typer

from serving.db import Database
from serving.settings import Settings, get_settings


class CliError(Exception):
    """Printed as one line on stderr; exit status 1."""


@lru_cache
def settings() -> Settings:
    return get_settings()


@lru_cache
def database() -> Database:
    s = settings()
    s.ensure_home()
    return Database(s.resolved_database_url)


def _default(o):  # noqa: ANN001, ANN202
    if isinstance(o, datetime):
        return o.isoformat()
    if is_dataclass(o):
        return asdict(o)
    raise TypeError(type(o).__name__)


def emit_json(obj) -> None:  # noqa: ANN001
    typer.echo(json.dumps(obj, default=_default, ensure_ascii=False))


def info(message: str) -> None:
    """Human-facing notes go to stderr, so that stdout carries only what a script needs."""
    typer.echo(message, err=True)


def fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    sys.exit(code)
