"""Calendar features in factory-local time, with Korean public holidays.

The holidays of any year come from python-holidays (offline; the lunar Seollal/Chuseok blocks, Buddha's
Birthday, substitute holidays and declared election days included). ``KOREAN_HOLIDAYS`` writes out 2017-2020 by
hand from the official calendar (관공서의 공휴일에 관한 규정): the synthetic demo data uses it, and
tests/pipelines/test_transforms.py checks that the library gives exactly these days. A year the library has
no Korean calendar for (before 1949) is an error rather than a silent "no holiday".
"""

from __future__ import annotations

import functools
from datetime import date

import holidays as python_holidays
import numpy as np
import pandas as pd

HOLIDAY_YEARS = (2017, 2018, 2019, 2020)  # the years KOREAN_HOLIDAYS writes out

KOREAN_HOLIDAYS: dict[date, str] = {
    # 2017
    date(2017, 1, 1): "New Year's Day",
    date(2017, 1, 27): "Seollal",
    date(2017, 1, 28): "Seollal",
    date(2017, 1, 29): "Seollal",
    date(2017, 1, 30): "Seollal (substitute)",
    date(2017, 3, 1): "Independence Movement Day",
    date(2017, 5, 3): "Buddha's Birthday",
    date(2017, 5, 5): "Children's Day",
    date(2017, 5, 9): "Presidential election",
    date(2017, 6, 6): "Memorial Day",
    date(2017, 8, 15): "Liberation Day",
    date(2017, 10, 2): "Temporary holiday",
    date(2017, 10, 3): "National Foundation Day",
    date(2017, 10, 4): "Chuseok",
    date(2017, 10, 5): "Chuseok",
    date(2017, 10, 6): "Chuseok (substitute)",
    date(2017, 10, 9): "Hangul Day",
    date(2017, 12, 25): "Christmas Day",
    # 2018
    date(2018, 1, 1): "New Year's Day",
    date(2018, 2, 15): "Seollal",
    date(2018, 2, 16): "Seollal",
    date(2018, 2, 17): "Seollal",
    date(2018, 3, 1): "Independence Movement Day",
    date(2018, 5, 5): "Children's Day",
    date(2018, 5, 7): "Children's Day (substitute)",
    date(2018, 5, 22): "Buddha's Birthday",
    date(2018, 6, 6): "Memorial Day",
    date(2018, 6, 13): "Local elections",
    date(2018, 8, 15): "Liberation Day",
    date(2018, 9, 23): "Chuseok",
    date(2018, 9, 24): "Chuseok",
    date(2018, 9, 25): "Chuseok",
    date(2018, 9, 26): "Chuseok (substitute)",
    date(2018, 10, 3): "National Foundation Day",
    date(2018, 10, 9): "Hangul Day",
    date(2018, 12, 25): "Christmas Day",
    # 2019
    date(2019, 1, 1): "New Year's Day",
    date(2019, 2, 4): "Seollal",
    date(2019, 2, 5): "Seollal",
    date(2019, 2, 6): "Seollal",
    date(2019, 3, 1): "Independence Movement Day",
    date(2019, 5, 5): "Children's Day",
    date(2019, 5, 6): "Children's Day (substitute)",
    date(2019, 5, 12): "Buddha's Birthday",
    date(2019, 6, 6): "Memorial Day",
    date(2019, 8, 15): "Liberation Day",
    date(2019, 9, 12): "Chuseok",
    date(2019, 9, 13): "Chuseok",
    date(2019, 9, 14): "Chuseok",
    date(2019, 10, 3): "National Foundation Day",
    date(2019, 10, 9): "Hangul Day",
    date(2019, 12, 25): "Christmas Day",
    # 2020
    date(2020, 1, 1): "New Year's Day",
    date(2020, 1, 24): "Seollal",
    date(2020, 1, 25): "Seollal",
    date(2020, 1, 26): "Seollal",
    date(2020, 1, 27): "Seollal (substitute)",
    date(2020, 3, 1): "Independence Movement Day",
    date(2020, 4, 15): "National Assembly election",
    date(2020, 4, 30): "Buddha's Birthday",
    date(2020, 5, 5): "Children's Day",
    date(2020, 6, 6): "Memorial Day",
    date(2020, 8, 15): "Liberation Day",
    date(2020, 8, 17): "Temporary holiday",
    date(2020, 9, 30): "Chuseok",
    date(2020, 10, 1): "Chuseok",
    date(2020, 10, 2): "Chuseok",
    date(2020, 10, 3): "National Foundation Day",
    date(2020, 10, 9): "Hangul Day",
    date(2020, 12, 25): "Christmas Day",
}

CALENDAR_FEATURES = (
    "hour",
    "minute_of_day",
    "day_of_week",
    "month",
    "day_of_year",
    "is_weekend",
    "is_holiday",
    "is_workday",
    "days_to_holiday",
    "days_from_holiday",
)


def holidays_kr(year: int) -> dict[date, str]:
    """The Korean public holidays of ``year``."""
    return dict(_holidays_kr(int(year)))


@functools.lru_cache(maxsize=256)
def _holidays_kr(year: int) -> dict[date, str]:
    days = {d: str(name) for d, name in python_holidays.country_holidays("KR", years=year).items()}
    if not days:
        raise ValueError(f"no Korean public holiday calendar for {year}")
    return days


def calendar_features(
    times: pd.Series, *, tz: str = "Asia/Seoul", holidays: dict[date, str] | None = None
) -> pd.DataFrame:
    """Features of instants ``times`` (tz-aware) read in local time ``tz``.

    ``day_of_week`` 0 = Monday; ``is_workday`` = neither weekend nor public holiday; ``days_to_holiday`` /
    ``days_from_holiday``: calendar days to the next / since the last holiday (capped at 30).
    """
    local = pd.to_datetime(times, utc=True).dt.tz_convert(tz)
    days = local.dt.normalize().dt.tz_localize(None)
    if holidays is None:
        years = sorted(set(days.dt.year.unique().tolist()))
        holidays = {}
        for y in years:
            holidays.update(holidays_kr(int(y)))
            for near in (y - 1, y + 1):  # distances across New Year
                try:
                    holidays.update(holidays_kr(near))
                except ValueError:  # the edge of the calendar: distances are capped there anyway
                    pass
    hol = np.array(sorted(np.datetime64(d, "D") for d in holidays)) if holidays else np.array([], "datetime64[D]")
    d64 = days.to_numpy().astype("datetime64[D]")
    is_hol = np.isin(d64, hol)
    if len(hol):
        i = np.searchsorted(hol, d64, side="left")
        nxt = hol[np.minimum(i, len(hol) - 1)]
        to = np.where(i < len(hol), (nxt - d64).astype(np.int64), 30)
        j = np.searchsorted(hol, d64, side="right") - 1
        prv = hol[np.maximum(j, 0)]
        frm = np.where(j >= 0, (d64 - prv).astype(np.int64), 30)
    else:
        to = frm = np.full(len(d64), 30)
    dow = local.dt.day_of_week.to_numpy()
    weekend = dow >= 5
    return pd.DataFrame(
        {
            "hour": local.dt.hour.astype("int64").to_numpy(),
            "minute_of_day": (local.dt.hour * 60 + local.dt.minute).astype("int64").to_numpy(),
            "day_of_week": dow.astype("int64"),
            "month": local.dt.month.astype("int64").to_numpy(),
            "day_of_year": local.dt.day_of_year.astype("int64").to_numpy(),
            "is_weekend": weekend,
            "is_holiday": is_hol,
            "is_workday": ~weekend & ~is_hol,
            "days_to_holiday": np.minimum(to, 30).astype("int64"),
            "days_from_holiday": np.minimum(frm, 30).astype("int64"),
        },
        index=times.index,
    )
