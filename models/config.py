"""Family configs are dataclasses with the shipped defaults; ``sfai train --set key=value`` overrides them.

Every value is checked before any training starts (and before Ray starts a tuning run): each override is cast to
its default's type -- strictly: ``2.5`` is not a whole number, ``ture`` is not a boolean -- and every field of the
config, given or default, must lie in its allowed range (``RULES``, one table for the four families, so that a
family's config module needs no validation code of its own). A refusal is one line naming the key and the range,
e.g. ``config folds=1: expected a whole number >= 2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TypeVar

from serving.errors import InvalidInput

C = TypeVar("C")

TRUE, FALSE = ("true", "yes", "1"), ("false", "no", "0")
# the families derive a seed per fold and member (seed * 100 + fold + 1000 * member, + small offsets), which NumPy's
# legacy seeding takes up to 2**32 - 1
MAX_SEED = 10_000_000
BOOL_TEXT = "true or false (also yes/no, 1/0)"


@dataclass(frozen=True)
class Rule:
    """The allowed range of a number: ``lo``/``hi`` (None: unbounded), each inclusive unless ``*_open``."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def ok(self, v: float) -> bool:
        if not math.isfinite(v):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))

    def describe(self, whole: bool) -> str:
        what = "a whole number" if whole else "a finite number"
        lo = None if self.lo is None else f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        hi = None if self.hi is None else f"{'<' if self.hi_open else '<='} {_num(self.hi)}"
        if lo and hi and not self.lo_open and not self.hi_open:
            return f"{what} from {_num(self.lo)} to {_num(self.hi)}"
        return " ".join([what, " and ".join(p for p in (lo, hi) if p)]).strip()


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def at_least(lo: float) -> Rule:
    return Rule(lo)


POSITIVE = Rule(0, lo_open=True)  # > 0: learning rates, scales, clip limits
NON_NEGATIVE = Rule(0)  # >= 0: weight decay, penalties, "0 = off" counts
SHARE = Rule(0, 1, lo_open=True, hi_open=True)  # a fraction strictly between 0 and 1 (a split)
PROBABILITY = Rule(0, 1)  # 0..1
DROPOUT = Rule(0, 1, hi_open=True)  # 0 <= p < 1

# every family: counts and sizes are positive whole numbers, learning rates finite and positive
COMMON: dict[str, Rule] = {
    "epochs": at_least(1),
    "batch_size": at_least(1),
    "hidden": at_least(1),
    "patience": at_least(1),
    "threads": Rule(1, 256),
    "seed": Rule(0, MAX_SEED),
    "lr": POSITIVE,
    "weight_decay": NON_NEGATIVE,
    "dropout": DROPOUT,
}
# per family, over COMMON
RULES: dict[str, dict[str, Rule]] = {
    "failure": {
        "folds": Rule(2, 100),  # K-fold: at least two folds (one trains, one validates)
        "mode_weight": NON_NEGATIVE,
        "pos_weight": POSITIVE,
    },
    "rul": {
        "window": at_least(1),
        "history": NON_NEGATIVE,  # 0: the window only
        "history_pool": at_least(1),
        "cap": POSITIVE,
        "smooth": Rule(0, 1, hi_open=True),
        "train_max_rul": NON_NEGATIVE,  # 0: none
        "cycle_clip": NON_NEGATIVE,  # 0: standardised
        "channels": at_least(1),
        "members": at_least(1),
        "val_fraction": SHARE,
        "val_cuts": at_least(1),
        "lr_second": NON_NEGATIVE,  # 0: one member per fold
        "patience": NON_NEGATIVE,  # 0: the full schedule, last epoch kept
        "max_windows": NON_NEGATIVE,  # 0: every window
        "max_seconds": POSITIVE,
    },
    "defect": {
        "max_missing": Rule(0, 1, lo_open=True),
        "min_missing_indicator": PROBABILITY,
        "clip": POSITIVE,
        "hidden": NON_NEGATIVE,  # 0: the logistic model
        "members": Rule(1, 50),
        "l2": NON_NEGATIVE,
        "inner_val_fraction": SHARE,
        "n_splits": NON_NEGATIVE,  # 0: no validation splits
        "test_fraction": SHARE,
        "top_k": at_least(1),
        "drift_window": at_least(1),
    },
    "energy": {
        "layers": at_least(1),
        "scale": POSITIVE,
        "val_months": NON_NEGATIVE,  # 0: the last third of the days validates
        "early_stop_days": at_least(1),
        "max_days": NON_NEGATIVE,  # 0: the whole file
    },
}


def rule(family: str, key: str) -> Rule | None:
    """The allowed range of ``family``'s numeric ``key`` (None: any finite value)."""
    return RULES.get(family, {}).get(key) or COMMON.get(key)


def _cast(key: str, value, default):  # noqa: ANN001, ANN202
    """``value`` as the type of ``default``, strictly; InvalidInput naming ``key`` otherwise."""
    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in TRUE or text in FALSE:
            return text in TRUE
        raise InvalidInput(f"config {key}={value!r}: expected {BOOL_TEXT}")
    if isinstance(default, int | float):
        whole = isinstance(default, int)
        number = None
        if not isinstance(value, bool):
            try:
                number = float(value) if isinstance(value, str | int | float) else None
            except ValueError:
                number = None
        if number is None or (whole and not (math.isfinite(number) and number == int(number))):
            expected = "int (a whole number)" if whole else "float (a number)"
            raise InvalidInput(f"config {key}={value!r}: expected {expected}")
        if whole:
            return int(value) if isinstance(value, int) else int(number)
        return number
    return type(default)(value)


def validate(cfg, family: str, given: dict | None = None) -> None:  # noqa: ANN001
    """Refuse a config (every field, given or default) with a value outside its range: one line naming the key
    and the range (and the value as ``given``, where it came from overrides). Booleans must be booleans, whole
    numbers whole and every number finite."""
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        shown = (given or {}).get(f.name, value)
        default = f.default
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise InvalidInput(f"config {f.name}={shown!r}: expected {BOOL_TEXT}")
        elif isinstance(default, int | float):
            whole = isinstance(default, int)
            r = rule(family, f.name) or Rule()
            number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
            if number is None or (whole and not isinstance(value, int)) or not r.ok(float(number)):
                raise InvalidInput(f"config {f.name}={shown!r}: expected {r.describe(whole)}")


def from_overrides(cls: type[C], overrides: dict | None, family: str) -> C:
    """``cls()`` with ``overrides`` applied, each cast to its default's type, then ``validate``-d; unknown keys,
    values that do not cast and values out of range are refused naming the key."""
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(overrides or {}) - set(known))
    if unknown:
        raise InvalidInput(f"unknown {family} config key(s): {', '.join(unknown)}; expected {', '.join(known)}")
    cfg = cls()
    for key, value in (overrides or {}).items():
        try:
            setattr(cfg, key, _cast(key, value, getattr(cfg, key)))
        except (TypeError, ValueError):
            raise InvalidInput(f"config {key}={value!r}: expected {type(getattr(cfg, key)).__name__}") from None
    validate(cfg, family, overrides)
    return cfg
