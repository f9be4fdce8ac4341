"""Calendar covariates: weekday, time of day and Korean public holidays (written out by hand for 2018)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

# Korean public holidays 2018 (Presidential Decree on Holidays of Government Offices, as observed in 2018),
# substitute holidays and the 13 June local-election day included.
KOREAN_HOLIDAYS: dict[dt.date, str] = {
    dt.date(2018, 1, 1): "New Year's Day",
    dt.date(2018, 2, 15): "Seollal (eve)",
    dt.date(2018, 2, 16): "Seollal",
    dt.date(2018, 2, 17): "Seollal (day after)",
    dt.date(2018, 3, 1): "Independence Movement Day",
    dt.date(2018, 5, 5): "Children's Day",
    dt.date(2018, 5, 7): "Children's Day (substitute)",
    dt.date(2018, 5, 22): "Buddha's Birthday",
    dt.date(2018, 6, 6): "Memorial Day",
    dt.date(2018, 6, 13): "Local elections",
    dt.date(2018, 8, 15): "Liberation Day",
    dt.date(2018, 9, 23): "Chuseok (eve)",
    dt.date(2018, 9, 24): "Chuseok",
    dt.date(2018, 9, 25): "Chuseok (day after)",
    dt.date(2018, 9, 26): "Chuseok (substitute)",
    dt.date(2018, 10, 3): "National Foundation Day",
    dt.date(2018, 10, 9): "Hangul Day",
    dt.date(2018, 12, 25): "Christmas",
}


def is_holiday(days: pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """1.0 where the (normalised) day is a Korean public holiday."""
    d = pd.DatetimeIndex(days).normalize()
    hol = pd.DatetimeIndex([pd.Timestamp(x) for x in KOREAN_HOLIDAYS])
    return d.isin(hol).astype(np.float32)


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
