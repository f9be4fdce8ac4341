"""Calendar covariates: weekday, time of day and Korean public holidays (any year: the pipelines' calendar), and a
plant's own calendar on top of them.

A plant calendar (:class:`PlantCalendar`, stored per tenant: ``serving.calendar_store``) lists the days the plant
keeps otherwise than the public calendar: a ``day_off`` date (a summer shutdown day, a company holiday) is read as
a public holiday (the holiday covariate on, day type Sunday or holiday), a ``working`` date (a working Saturday, a
public holiday worked through) as a working day (no holiday covariate, not a day off, day type working day). The
weekday covariate stays the date's own. Without a calendar (``None``, or one without days) every function here
gives exactly what it gave before plant calendars existed.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from pipelines.transforms.calendar import holidays_kr
from serving.errors import InvalidInput

DAY_OFF, WORKING = "day_off", "working"
KINDS = (DAY_OFF, WORKING)


@dataclass(frozen=True)
class PlantCalendar:
    """A plant's own days off (``off``) and working days (``working``); a date is in one of them at most."""

    off: frozenset[date] = frozenset()
    working: frozenset[date] = frozenset()
    _arrays: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        both = self.off & self.working
        if both:
            raise InvalidInput(f"date {min(both)} is both a day off and a working day in the plant calendar")
        self._arrays["off"] = np.array(sorted(self.off), dtype="datetime64[D]")
        self._arrays["working"] = np.array(sorted(self.working), dtype="datetime64[D]")

    @classmethod
    def of(cls, entries: Iterable[tuple[date, str]]) -> PlantCalendar | None:
        """The calendar of ``(date, kind)`` pairs, or None where there are none (no calendar: the public one)."""
        off, working = set(), set()
        for day, kind in entries:
            (off if kind == DAY_OFF else working).add(day)
        return cls(frozenset(off), frozenset(working)) if off or working else None

    def __bool__(self) -> bool:
        return bool(self.off or self.working)

    def marks(self, days: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
        """(day off, working day): boolean arrays over the (normalised) ``days``."""
        d = pd.DatetimeIndex(days).normalize().values.astype("datetime64[D]")
        return np.isin(d, self._arrays["off"]), np.isin(d, self._arrays["working"])


# The calendar of the tenant whose forecast is being made, where the caller knows it (the energy router sets it for
# each request; the worker thread that scores inherits it). The forecast reads it where it is given none.
PLANT: ContextVar[PlantCalendar | None] = ContextVar("sfai_plant_calendar", default=None)


def _public(d: pd.DatetimeIndex) -> np.ndarray:
    try:
        hol = [pd.Timestamp(x) for y in sorted(set(d.year)) for x in holidays_kr(int(y))]
    except ValueError as e:
        raise InvalidInput(f"dates out of range: {e}") from None
    return d.isin(pd.DatetimeIndex(hol)).astype(np.float32)


def is_holiday(days: pd.DatetimeIndex | np.ndarray, plant: PlantCalendar | None = None) -> np.ndarray:
    """1.0 where the (normalised) day is a Korean public holiday, or the plant's day off; 0.0 on the plant's
    working days."""
    d = pd.DatetimeIndex(days).normalize()
    hol = _public(d)
    if not plant:
        return hol
    off, working = plant.marks(d)
    return np.where(off, 1.0, np.where(working, 0.0, hol)).astype(np.float32)


def rest_days(days: pd.DatetimeIndex, plant: PlantCalendar | None = None) -> np.ndarray:
    """Boolean: Sunday or holiday (public, or the plant's day off), and not one of the plant's working days."""
    days = pd.DatetimeIndex(days).normalize()
    sunday = np.asarray(days.day_of_week) == 6
    if not plant:
        return sunday | (is_holiday(days) > 0)
    off, working = plant.marks(days)
    return off | ((sunday | (_public(days) > 0)) & ~working)


def calendar_features(days: pd.DatetimeIndex, slots: np.ndarray, plant: PlantCalendar | None = None) -> np.ndarray:
    """Rows for (operating day, slot 0..95): weekday one-hot (7), holiday today / yesterday / a week ago (3),
    Sunday-or-holiday (1), time of day as two sine/cosine harmonics (4). ``days`` and ``slots`` are aligned.
    ``plant``: its days off are holidays (and days off), its working days neither."""
    days = pd.DatetimeIndex(days).normalize()
    wd = np.eye(7, dtype=np.float32)[days.day_of_week]
    one, week = pd.Timedelta(days=1), pd.Timedelta(days=7)
    hol = np.stack([is_holiday(days, plant), is_holiday(days - one, plant), is_holiday(days - week, plant)], 1)
    if plant:
        off = rest_days(days, plant).astype(np.float32)[:, None]
    else:
        off = np.maximum(hol[:, :1], (days.day_of_week == 6).astype(np.float32)[:, None])
    phase = 2 * np.pi * (np.asarray(slots, dtype=np.float32) + 0.5) / 96
    tod = np.stack([np.sin(phase), np.cos(phase), np.sin(2 * phase), np.cos(2 * phase)], 1)
    return np.hstack([wd, hol, off, tod]).astype(np.float32)


CALENDAR_NAMES = [f"weekday_{i}" for i in range(7)] + ["holiday", "holiday_yesterday", "holiday_last_week",
                                                       "day_off", "tod_sin1", "tod_cos1", "tod_sin2", "tod_cos2"]


WEEKEND, HOLIDAY, WORKING_DAY = "weekend", "holiday", "working"


def days_used(days: Iterable, plant: PlantCalendar | None = None) -> list[dict]:
    """The dates among ``days`` (the plant's local days a forecast's horizon covers) that the forecast did not read
    as an ordinary weekday, and why, in date order: ``{"date": "2018-08-15", "day_type": "holiday", "source":
    "public"}`` for a public holiday, ``"plant"`` for the plant calendar's day off, ``{"day_type": "working",
    "source": "plant"}`` for its working day on a weekend or public holiday (one on an ordinary weekday changes
    nothing: left out), ``{"day_type": "weekend", "source": "public"}`` for a Saturday or Sunday. An ordinary
    weekday is not listed: an empty list says every day forecast was one."""
    d = pd.DatetimeIndex(sorted({pd.Timestamp(x).normalize().tz_localize(None) for x in days}))
    if not len(d):
        return []
    public = _public(d) > 0
    off, working = plant.marks(d) if plant else (np.zeros(len(d), bool), np.zeros(len(d), bool))
    out = []
    for i, day in enumerate(d):
        weekend = day.day_of_week >= 5
        if off[i]:
            kind, source = HOLIDAY, "plant"
        elif working[i]:
            if not (weekend or public[i]):
                continue
            kind, source = WORKING_DAY, "plant"
        elif public[i]:
            kind, source = HOLIDAY, "public"
        elif weekend:
            kind, source = WEEKEND, "public"
        else:
            continue
        out.append({"date": f"{day:%Y-%m-%d}", "day_type": kind, "source": source})
    return out


def describe_days(days: list[dict]) -> str:
    """:func:`days_used` in one line: ``2018-08-15 holiday (public), 2018-08-18 weekend`` (``none``: ordinary
    weekdays only)."""
    if not days:
        return "ordinary weekdays only"
    shown = [f"{e['date']} {e['day_type']}" + (f" ({e['source']})" if e["day_type"] != WEEKEND else "")
             for e in days[:8]]
    return ", ".join(shown) + (f" and {len(days) - 8} more" if len(days) > 8 else "")
