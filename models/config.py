"""Family configs are dataclasses with the shipped defaults; ``sfai train --set key=value`` overrides them."""

from __future__ import annotations

from dataclasses import fields
from typing import TypeVar

from serving.errors import InvalidInput

C = TypeVar("C")


def from_overrides(cls: type[C], overrides: dict | None, family: str) -> C:
    """``cls()`` with ``overrides`` applied, each cast to its default's type; unknown keys and values that do
    not cast are refused naming the key."""
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(overrides or {}) - set(known))
    if unknown:
        raise InvalidInput(f"unknown {family} config key(s): {', '.join(unknown)}; expected {', '.join(known)}")
    cfg = cls()
    for key, value in (overrides or {}).items():
        default = getattr(cfg, key)
        try:
            cast = (lambda v: str(v).lower() in ("1", "true", "yes")) if isinstance(default, bool) else type(default)
            setattr(cfg, key, value if default is None else cast(value))
        except (TypeError, ValueError):
            raise InvalidInput(f"config {key}={value!r}: expected {type(default).__name__}") from None
    return cfg
