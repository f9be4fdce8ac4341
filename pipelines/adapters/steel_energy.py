"""DAEWOO Steel (Gwangyang) 15-minute plant energy (C24): the UCI CSV -> meter readings.

Decisions (see docs/pipelines.md):
- Entity: one plant meter, ``meter_id = "daewoo-gwangyang"`` (or ``meter_id=`` given by the caller).
- Time: each row is the energy of the 15 minutes that END at its stamp, in Korea time (KST, UTC+9, no DST).
  Each day's block runs 00:15 ... 23:45 and then a row stamped ``dd/mm/yyyy 00:00`` with NSM = 0: that row
  closes the SAME day (24:00), so it is read as the next day's 00:00. ``event_timestamp`` is the interval end
  as a UTC instant (when the value was known); ``interval_start`` is kept too; calendar features use the
  interval start in Asia/Seoul, so the 24:00 row counts for the day it closes (as the file's Day_of_week says).
- Units: kWh, kVArh per interval; tCO2 per interval; power factors in %; NSM in seconds after midnight.
- Columns: ``date`` and ``Usage_kWh`` are required (a plant with a kWh meter only writes those, and CO2 where it
  has it); each other column of the DAEWOO file is read and checked where it is there, and missing (null, never
  checked) where it is not: a file without ``Load_Type`` has no load type, one without ``NSM`` or ``Day_of_week``
  no check of its dates against them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.adapters.source import read_source
from pipelines.canonical import (
    SOURCE_ROW,
    TIMESTAMP,
    Canonical,
    Column,
    Table,
    coerce_numeric,
    join_reasons,
    reason_where,
    row_text,
)

DATASET = "steel-energy"
KSIC = "C24"
TZ = "Asia/Seoul"
INTERVAL = pd.Timedelta(minutes=15)
TIME_FORMAT = "%d/%m/%Y %H:%M"
METER_ID = "daewoo-gwangyang"

RENAME = {
    "date": "date",
    "Usage_kWh": "usage_kwh",
    "Lagging_Current_Reactive.Power_kVarh": "lagging_kvarh",
    "Leading_Current_Reactive_Power_kVarh": "leading_kvarh",
    "CO2(tCO2)": "co2_t",
    "Lagging_Current_Power_Factor": "lagging_pf",
    "Leading_Current_Power_Factor": "leading_pf",
    "NSM": "nsm",
    "WeekStatus": "week_status",
    "Day_of_week": "day_of_week",
    "Load_Type": "load_type",
}
LOAD_TYPES = ("Light_Load", "Medium_Load", "Maximum_Load")
METER_COLUMNS: dict[str, Column] = {
    "usage_kwh": Column("kWh", 0.0, 10_000.0, description="active energy in the interval"),
    "lagging_kvarh": Column("kVArh", 0.0, None, description="lagging reactive energy"),
    "leading_kvarh": Column("kVArh", 0.0, None, description="leading reactive energy"),
    "co2_t": Column("tCO2", 0.0, None, description="CO2 attributed to the interval"),
    "lagging_pf": Column("%", 0.0, 100.0, description="lagging power factor"),
    "leading_pf": Column("%", 0.0, 100.0, description="leading power factor"),
    "nsm": Column("s", 0, 86_399, dtype="int64", description="seconds after midnight of the stamp"),
    "load_type": Column("1", dtype="string", description="Light_Load / Medium_Load / Maximum_Load"),
    "interval_start": Column("UTC", dtype="timestamp", description="start of the 15-minute interval"),
}
KOREAN_DAYS = "월화수목금토일"  # 월요일 ... 일요일, or 월 ... 일
ENGLISH_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _weekday_number(name: str) -> int:
    """Monday 0 ... Sunday 6 for an English (Monday, mon) or Korean (월요일, 월) day name; -1 for anything else,
    which then disagrees with every date."""
    if name[:1] and name[0] in KOREAN_DAYS:
        return KOREAN_DAYS.index(name[0])
    key = name[:3].lower()
    return ENGLISH_DAYS.index(key) if key in ENGLISH_DAYS else -1
NUMERIC = ["usage_kwh", "lagging_kvarh", "leading_kvarh", "co2_t", "lagging_pf", "leading_pf", "nsm"]
# the columns a file must have: a plant with a kWh meter only writes its dates and kWh (CO2 where it has it); the
# DAEWOO file's other columns are read where they are there, and missing (null) where not
REQUIRED = ("date", "Usage_kWh")


def parse_times(stamps: pd.Series) -> pd.Series:
    """Local interval-end times (naive, KST); a ``00:00`` stamp closes its own date (24:00 -> next day)."""
    t = pd.to_datetime(stamps, format=TIME_FORMAT, errors="coerce")
    midnight = t.notna() & (t.dt.hour == 0) & (t.dt.minute == 0)
    return t.where(~midnight, t + pd.Timedelta(days=1))


def read(path: Path, *, meter_id: str = METER_ID) -> Canonical:
    path = Path(path)
    df, malformed, warnings = read_source(path, "a steel-energy CSV", encoding="utf-8-sig", columns=RENAME)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{path.name}: not a steel-energy file; missing columns {missing} (a meter's file needs "
                         f"{' and '.join(REQUIRED)}; the other columns of the DAEWOO file may be left out)")
    original = df.drop(columns=[SOURCE_ROW])  # the values as read, for the quarantine
    df = df.rename(columns=RENAME)
    absent = [RENAME[c] for c in RENAME if c not in original.columns]
    for c in absent:  # not measured (a kWh meter alone) or not written: missing throughout, and nothing checked
        df[c] = np.nan if c in NUMERIC else None
    total = len(df) + len(malformed)
    df, why = coerce_numeric(df, NUMERIC)
    end_local = parse_times(df["date"])
    nsm_expected = (end_local.dt.hour * 3600 + end_local.dt.minute * 60).astype("Int64")
    nsm_bad = end_local.notna() & df["nsm"].notna() & (df["nsm"] != nsm_expected)
    why = why.where(~nsm_bad, why + "; nsm: disagrees with the time of day of date").str.strip("; ")
    # the file's weekday is that of the day the interval belongs to: a date written month first (01/02/2018 for 2
    # January, as a US Excel saves it) reads as another day (1 February) and would be stored there without it.
    # Names in English (Monday, Mon) or Korean (월요일, 월)
    # (the names are looked up once each: a file holds seven of them)
    weekday = (end_local - INTERVAL).dt.day_of_week
    given = df["day_of_week"].astype("string").str.strip()
    day = given.map({name: _weekday_number(name) for name in given.dropna().unique()}).astype("Int64")
    day_bad = (end_local.notna() & given.notna() & (given != "") & (day != weekday)).fillna(False).astype(bool)
    if day_bad.any():
        names = (end_local - INTERVAL).dt.day_name()
        day_why = (why + "; day_of_week: " + given.astype(str) + " disagrees with date " + df["date"].astype(str)
                   + " (a " + names + ")")
        why = why.where(~day_bad, day_why).str.strip("; ")
    # the features count 15-minute intervals (lags, windows): a stamp between two interval ends has no place
    off_grid = end_local.notna() & (end_local.dt.minute % 15 != 0)
    if off_grid.any():  # the reason text only where a stamp is off the grid (a clean file builds none)
        off_why = why + "; date: " + df["date"].astype(str) + " is not on the 15-minute grid"
        why = why.where(~off_grid, off_why).str.strip("; ")
    bad_load = ~df["load_type"].isin(LOAD_TYPES) & ("load_type" not in absent)
    # a blank Load_Type is named too: astype(str) keeps a missing value missing, and "..." + NaN lost the reason
    load = df["load_type"]
    load_why = ("load_type: " + load.astype(object).fillna("").astype(str) + " is unknown").where(
        load.notna(), "load_type: missing")
    why = why.where(~bad_load, why + "; " + load_why).str.strip("; ")
    rejects = malformed
    if end_local.isna().any():  # no time: the row cannot be placed
        bad = end_local.isna()
        stamp = df.loc[bad, "date"]
        rj = df.loc[bad, [SOURCE_ROW]].copy()
        blank = stamp.isna() | (stamp.astype(str).str.strip() == "")
        place = join_reasons(
            reason_where(blank, "date: missing"),
            reason_where(~blank, "date: " + stamp.astype(str) + f" is not {TIME_FORMAT}"),
        )
        rj["reason"] = join_reasons(place, why[bad]).values
        rj["raw"] = row_text(original.loc[bad]).values
        rejects = pd.concat([malformed, rj], ignore_index=True).sort_values(SOURCE_ROW, ignore_index=True)
        df, why, end_local = df.loc[~bad].copy(), why[~bad], end_local[~bad]
    end_utc = end_local.dt.tz_localize(TZ).dt.tz_convert("UTC")
    df[TIMESTAMP] = end_utc
    df["interval_start"] = end_utc - INTERVAL
    df["meter_id"] = meter_id
    df["_invalid"] = why.values
    cols = ["meter_id", TIMESTAMP, SOURCE_ROW, "_invalid", *METER_COLUMNS, "week_status", "day_of_week"]
    readings = df[cols].reset_index(drop=True)
    notes = {
        "time": "interval end, KST -> UTC; the 00:00 row closes its own date (read as next-day 00:00 KST)",
        "entity": f"meter_id = {meter_id}",
        "interval": "15 min",
    }
    tables = {"meter_readings": Table("meter_readings", "meter_id", METER_COLUMNS, readings, notes)}
    return Canonical(DATASET, KSIC, str(path), tables, rejects, total, warnings)
