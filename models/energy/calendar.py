"""Calendar covariates: weekday, time of day and Korean public holidays (any year: the pipelines' calendar)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.transforms.calendar import holidays_kr
from serving.errors import InvalidInput


def is_holiday(days: pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """1.0 where the (normalised) day is a Korean public holiday."""
    d = pd.DatetimeIndex(days).normalize()
    try:
        hol = [pd.Timestamp(x) for y in sorted(set(d.year)) for x in holidays_kr(int(y))]
    except ValueError as e:
        raise InvalidInput(f"dates out of range: {e}") from None
    return d.isin(pd.DatetimeIndex(hol)).astype(np.float32)


def calendar_features(days: pd.DatetimeIndex, slots: np.ndarray) -> np.ndarray:
    """Rows for (operating day, slot 0..95): weekday one-hot (7), holiday today / yesterday / a week ago (3),
    Sunday-or-holiday (1), time of day as two sine/cosine harmonics (4). ``days`` and ``slots`` are aligned."""
    days = pd.DatetimeIndex(days).normalize()
    wd = np.eye(7, dtype=np.float32)[days.day_of_week]
    one, week = pd.Timedelta(days=1), pd.Timedelta(days=7)
    hol = np.stack([is_holiday(days), is_holiday(days - one), is_holiday(days - week)], 1)
    off = np.maximum(hol[:, :1], (days.day_of_week == 6).astype(np.float32)[:, None])
    phase = 2 * np.pi * (np.asarray(slots, dtype=np.float32) + 0.5) / 96
    tod = np.stack([np.sin(phase), np.cos(phase), np.sin(2 * phase), np.cos(2 * phase)], 1)
    return np.hstack([wd, hol, off, tod]).astype(np.float32)


CALENDAR_NAMES = [f"weekday_{i}" for i in range(7)] + ["holiday", "holiday_yesterday", "holiday_last_week",
                                                       "day_off", "tod_sin1", "tod_cos1", "tod_sin2", "tod_cos2"]
