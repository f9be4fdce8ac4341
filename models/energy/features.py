"""Steel-plant series and forecast features, shared by training and prediction (numpy/pandas only).

Time index: every row is stamped with the *end* of its 15-minute interval. The file's ``dd/mm/yyyy 00:00`` row
closes its day (24:00), so it is moved to the next day's 00:00 (README quirk). Day D's 96 values are then
stamped D 00:15 ... D+1 00:00, and a forecast with origin D 00:00 may use only rows stamped before D 00:00.

Features for target step s (0..95) of origin o (grid index of the origin stamp): kWh the same time 1..7 days
earlier, 5-step means around the 1- and 7-day lags, the means of the seven 24-hour blocks before the origin,
the last value and the last hour's mean, the day-type profile, plus calendar covariates. Any index at or after the
origin is clamped to the last index before it, so no feature can see the origin row or later (``test_energy``
proves it).

The day-type profile: the quantiles (10, 25, 50, 75, 90 %) and the mean of the same step over the last
``PROFILE_DAYS`` days of the target day's type (Sunday or holiday, Saturday, working day) within
``PROFILE_LOOKBACK`` days before the origin. On its own its median forecasts Sep-Oct 2018 at 0.64 x the
same-time-last-week MAE; the network learns its corrections (the p50 is a residual on the profile median).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path

import numpy as np
import pandas as pd

from models.booleans import boolean_row
from models.energy.calendar import CALENDAR_NAMES, PlantCalendar, calendar_features, is_holiday, rest_days
from models.files import blank_rows, read_csv
from serving.errors import InvalidInput, shown
from serving.tenancy import END_OF_DAY

log = logging.getLogger("sfai.energy")
DATE, TARGET, CO2 = "date", "Usage_kWh", "CO2(tCO2)"
WHAT = "a steel-energy CSV"  # the format, in messages about a file
STEP = pd.Timedelta(minutes=15)
STEPS_PER_DAY = 96
LAG_DAYS = 7
HISTORY = LAG_DAYS * STEPS_PER_DAY + 2  # grid steps needed before an origin
PROFILE_DAYS = 20  # days of the target's type behind the profile (10: 0.67x, 20: 0.64x, 30: 0.65x last week)
PROFILE_LOOKBACK = 150  # calendar days searched for them (a Sunday profile needs 20 weeks)
PROFILE_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
# at most this many 15-minute intervals per row over the rows' span: at least half the intervals must hold a row.
# A plant's file with missing intervals (even a missing fortnight) passes; two rows years apart are refused before
# a grid of millions of forward-filled values and a forecast per day of it are built (the work is bounded by rows).
MAX_INTERVALS_PER_ROW = 2
# the median spacing of the rows up to this is the meter's interval, which must be 15 minutes; sparser rows are
# left to the span rule above (two rows years apart are no interval, just too few rows)
MAX_METER_INTERVAL = pd.Timedelta(days=1)
WEEK = LAG_DAYS * STEPS_PER_DAY  # grid steps from a gap to the same slot of the week before, its fill
MAX_KWH = 1e9  # per 15 minutes: 4 TW, more than the world's average power use: a unit or data error above
FLOAT32_MAX = float(np.finfo(np.float32).max)  # the model's input type: any reading must be finite in it
PROFILE_NAMES = [f"profile_p{round(q * 100)}" for q in PROFILE_QUANTILES] + ["profile_mean", "profile_days"]
FEATURE_NAMES = (
    PROFILE_NAMES
    + [f"lag_{k}d" for k in range(1, LAG_DAYS + 1)]
    + ["lag_1d_window", "lag_7d_window"]
    + [f"mean_block_{k}" for k in range(1, LAG_DAYS + 1)]
    + ["last", "last_hour_mean"]
    + CALENDAR_NAMES
)


def built_for(manifest: dict) -> bool:
    """Whether a model's manifest lists the input features this version builds (older energy models do not)."""
    return list(manifest.get("features", FEATURE_NAMES)) == FEATURE_NAMES


@dataclass
class Series:
    start: pd.Timestamp  # stamp of grid index 0
    kwh: np.ndarray  # float64 on the regular grid, NaN where the file has no value
    co2: np.ndarray | None  # tCO2 on the same grid, where the file has the column
    tz: tzinfo | None = None  # the UTC offset of the dates where they carry one (stamps are its local wall time)

    @property
    def stamps(self) -> pd.DatetimeIndex:
        return pd.date_range(self.start, periods=len(self.kwh), freq=STEP)

    def index_of(self, stamp: pd.Timestamp) -> int:
        return int((stamp - self.start) / STEP)


KOREA = "Asia/Seoul"  # SFAI's plants: dates stamped in UTC are read on this clock (no summer time since 1988)
DMY = "dd/mm/yyyy HH:MM"
ISO = "YYYY-MM-DDTHH:MM (ISO 8601, with or without a UTC offset)"
_ISO_LIKE = r"^\d{4}-\d{1,2}-\d{1,2}"
_DMY_LIKE = r"^\d{1,2}/\d{1,2}/\d{4}"


def _date_formats(raw: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray, bool]:
    """The dates as stripped text, which look ISO and which dd/mm/yyyy, and whether ISO is the format in use (the
    one most dates are in)."""
    text = raw.astype(str).str.strip()
    iso_like = text.str.match(_ISO_LIKE).to_numpy(bool)
    dmy_like = text.str.match(_DMY_LIKE).to_numpy(bool)
    return text, iso_like, dmy_like, bool(iso_like.sum() > dmy_like.sum())


def parse_dates(raw: pd.Series, rows: np.ndarray | None = None) -> pd.DatetimeIndex:
    """``dd/mm/yyyy HH:MM`` as in the file, 00:00 moved to the next day; ISO stamps are taken as interval ends.
    Either format may write the end of a day as 24:00 (the next day's 00:00). The format in use is the one most
    dates are in; a date in the other one, or in neither, is refused naming its row (``rows``: each date's row
    number, counting from 1; default 1..n).

    ISO stamps either all carry a UTC offset or none does (a mix is refused). With offsets, the index is
    timezone-aware in the offset of the earliest stamp: a single offset keeps its local wall time, and stamps
    in other offsets (across a summer-time change) are converted to it, so the clock stays continuous. Stamps in
    UTC (``Z`` or ``+00:00``) are converted to Korea time (``KOREA``): a plant's midnight is its own, not UTC's."""
    rows = np.arange(1, len(raw) + 1) if rows is None else np.asarray(rows)
    text, iso_like, dmy_like, iso_in_use = _date_formats(raw)
    end_of_day = text.str.contains(END_OF_DAY, regex=True).to_numpy(bool)
    text = text.str.replace(END_OF_DAY, "00:00", regex=True)
    if iso_in_use:
        try:
            iso = pd.to_datetime(text, format="ISO8601", errors="coerce")
        except ValueError:  # "Mixed timezones": offsets differ, or some stamps have one and others not
            iso = _mixed_offsets(raw, text, rows, dmy_like)
        else:
            if iso.isna().any():
                _bad_date(raw, rows, iso.isna().to_numpy(), dmy_like, iso=True)
        index = pd.DatetimeIndex(iso) + pd.to_timedelta(end_of_day.astype(int), unit="D")
        if index.tz is not None and index[0].utcoffset() == pd.Timedelta(0):
            index = index.tz_convert(KOREA)  # UTC: the plant's clock is Korea's
        return index
    stamps = pd.to_datetime(text, format="%d/%m/%Y %H:%M", errors="coerce")
    if stamps.isna().any():
        _bad_date(raw, rows, stamps.isna().to_numpy(), iso_like, iso=False)
    midnight = (stamps.dt.hour == 0) & (stamps.dt.minute == 0)  # 00:00 (and 24:00) closes its day
    return pd.DatetimeIndex(stamps + pd.to_timedelta(midnight.astype(int), unit="D"))


def _bad_date(raw: pd.Series, rows: np.ndarray, bad: np.ndarray, other_format: np.ndarray, *, iso: bool) -> None:
    """Refuse the first date that does not read in the format in use, naming its row and that format."""
    i = int(np.flatnonzero(bad)[0])
    used = ISO if iso else DMY
    head = f"column {DATE!r} row {rows[i]} holds {shown(raw.iloc[i])}"
    if not (~bad).any():  # no date reads: no format is in use
        raise InvalidInput(f"{head}, expected {DMY} or {ISO}")
    if other_format[i]:
        this, other = ("a dd/mm/yyyy date", "ISO") if iso else ("an ISO date", "dd/mm/yyyy")
        raise InvalidInput(f"{head}, {this} among {other} dates: give every date as the others are, {used}")
    raise InvalidInput(f"{head}, expected {used} as the other dates are")


def _mixed_offsets(raw: pd.Series, text: pd.Series, rows: np.ndarray, dmy_like: np.ndarray) -> pd.DatetimeIndex:
    utc = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    if utc.isna().any():
        _bad_date(raw, rows, utc.isna().to_numpy(), dmy_like, iso=True)
    zones = [pd.Timestamp(t).tz for t in text]  # only here, where pandas found more than one zone
    naive = np.array([z is None for z in zones])
    if naive.any():
        raise InvalidInput(
            f"column {DATE!r} mixes dates with a UTC offset (row {rows[~naive][0]}: {raw[~naive].iloc[0]!r}) and "
            f"without one (row {rows[naive][0]}: {raw[naive].iloc[0]!r}): send every date with its offset, or none "
            "(the plant's local time)"
        )
    return pd.DatetimeIndex(utc).tz_convert(zones[int(np.argmin(utc.to_numpy()))])


def read_series(path: Path | str) -> Series:
    return series_from_frame(read_csv(path, WHAT))


def _numeric(df: pd.DataFrame, col: str, most: float = FLOAT32_MAX, rows: np.ndarray | None = None) -> np.ndarray:
    """``col`` as floats; text, booleans, readings out of range and negative ones are refused naming the row
    (``rows``: each row's number, counting from 1; default 1..n)."""
    rows = np.arange(1, len(df) + 1) if rows is None else rows
    num = pd.to_numeric(df[col], errors="coerce")
    values = num.to_numpy(float)
    bad = num.isna().to_numpy() & df[col].notna().to_numpy()  # a new (writable) array
    boolean = boolean_row(df[col], values)  # true and false would be read as 1.0 and 0.0: no readings
    if boolean is not None:
        bad[boolean] = True
    if bad.any():
        row = int(bad.argmax())
        raise InvalidInput(f"column {col!r} row {rows[row]} holds a non-numeric value {shown(df[col].iloc[row])}")
    with np.errstate(invalid="ignore"):
        huge = np.isinf(values) | (np.abs(values) > most)
    if huge.any():
        row = int(np.flatnonzero(huge)[0])
        bound = "a finite number" if most >= FLOAT32_MAX else f"at most {most:g} kWh per 15 minutes"
        raise InvalidInput(f"column {col!r} row {rows[row]} holds {shown(df[col].iloc[row])}: out of range "
                           f"(expected {bound})")
    negative = np.flatnonzero(values < 0)
    if len(negative):
        row = int(negative[0])
        raise InvalidInput(f"column {col!r} row {rows[row]} holds a negative value {shown(num.iloc[row])}")
    return values


# A meter's readings read back from the feature store (view ``steel_energy_features``: its stored rows as a
# point-in-time frame, written with ``to_csv``) name the interval end ``event_timestamp`` (UTC, read on the plant's
# clock as any UTC date is) and the readings ``usage_kwh`` and ``co2_t``: such a frame is read as the steel file of
# the same intervals. The view's other columns (reactive power, lags, rolling statistics, calendar) are not read:
# the model builds its own features from the series.
STORE_NAMES = {"event_timestamp": DATE, "usage_kwh": TARGET, "co2_t": CO2}
STORE_KEY = "meter_id"


def with_file_names(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """``df`` with the feature store's names as the steel file's, and that renaming (empty for a frame without the
    store's names). A frame with names of both (``date`` beside ``usage_kwh``) or holding more than one meter is
    refused, naming the columns."""
    store = [c for c in STORE_NAMES if c in df.columns]
    if not store:
        return df, {}
    given = next((c for c in STORE_NAMES.values() if c in df.columns), None)
    if given is not None:
        raise InvalidInput(f"column {given!r} is the steel file's name and {store[0]!r} the feature store's: a frame "
                           f"from the store names its columns as get_training_frame gives them (event_timestamp, "
                           f"usage_kwh, co2_t), a file as the steel file does ({DATE}, {TARGET}, {CO2})")
    if STORE_KEY in df.columns:
        meters = pd.unique(df[STORE_KEY].dropna())
        if len(meters) > 1:
            raise InvalidInput(f"column {STORE_KEY!r} holds {len(meters)} meters ({shown(meters[0])}, "
                               f"{shown(meters[1])}{', ...' if len(meters) > 2 else ''}): the energy model reads one "
                               "meter's series; write each meter's rows to a file of its own")
    renamed = {c: STORE_NAMES[c] for c in store}
    return df.rename(columns=renamed), renamed


def series_from_frame(df: pd.DataFrame) -> Series:
    """The series of a steel file's rows (``date``, ``Usage_kWh`` and, where given, ``CO2(tCO2)``), or of a meter's
    rows from the feature store (``STORE_NAMES``): errors about the latter name its columns."""
    df, renamed = with_file_names(df)
    if not renamed:
        return _series(df)
    try:
        return _series(df)
    except InvalidInput as e:  # the frame's own names, not the file's
        message = e.message
        for store, name in STORE_NAMES.items():  # a store column missing is named as the store names it too
            message = message.replace(repr(name), repr(store))
        raise InvalidInput(message) from None


def _series(df: pd.DataFrame) -> Series:
    for col in (DATE, TARGET):
        if col not in df.columns:
            raise InvalidInput(f"input lacks the column {col!r}")
    blank = blank_rows(df)
    rows = np.flatnonzero(~blank) + 1  # each row's number in the input, counting from 1 (skipped rows keep theirs)
    if blank.any():
        df = df[~blank].reset_index(drop=True)
    if df.empty:
        raise InvalidInput(f"input has no rows in column {TARGET!r}")
    stamps = parse_dates(df[DATE], rows)
    tz = stamps.tz
    if tz is not None:  # local wall time in the dates' offset: origins and answers are on that clock
        stamps = stamps.tz_localize(None)
    _check_interval(stamps)
    off = np.flatnonzero(np.asarray(stamps != stamps.floor(STEP)))
    if len(off):  # a clock off the quarter hours would shift every origin off 00:00
        raise InvalidInput(
            f"column {DATE!r} row {rows[off[0]]} holds {shown(df[DATE].iloc[off[0]])}, not a quarter hour (:00, :15, "
            ":30 or :45, no seconds): give the meter's quarter-hour stamps (the end of each 15-minute interval)"
        )
    repeated = np.flatnonzero(np.asarray(stamps.duplicated()))
    if len(repeated):
        i = int(repeated[0])
        first = int(np.flatnonzero(np.asarray(stamps == stamps[i]))[0])
        raise InvalidInput(f"column {DATE!r} row {rows[i]} repeats the timestamp {stamps[i]} of row {rows[first]} "
                           f"({shown(df[DATE].iloc[first])})")
    _check_order(stamps, df[DATE], rows)
    start, end = stamps.min(), stamps.max()
    n = int((end - start) / STEP) + 1
    if n > MAX_INTERVALS_PER_ROW * len(stamps):
        raise InvalidInput(
            f"column {DATE!r} runs from {start} to {end}: {n:,} intervals of 15 minutes for {len(stamps):,} rows; "
            f"at least 1 in {MAX_INTERVALS_PER_ROW} intervals of the span needs a row (leave out long gaps: "
            f"send the recent, contiguous part of the history)"
        )
    kwh = _numeric(df, TARGET, MAX_KWH, rows)
    co2 = _numeric(df, CO2, rows=rows) if CO2 in df.columns else None
    pos = ((stamps - start) / STEP).astype(int)
    grid = np.full(n, np.nan)
    grid[pos] = kwh
    co2_grid = None
    if co2 is not None:
        co2_grid = np.full(n, np.nan)
        co2_grid[pos] = co2
    return Series(start, grid, co2_grid, tz)


def _check_order(stamps: pd.DatetimeIndex, raw: pd.Series, rows: np.ndarray) -> None:
    """Rows that go back in time. A day's closing 00:00 row given its own day's date (``2018-01-01T00:00`` after
    ``2018-01-01T23:45``: the steel file's ``01/01/2018 00:00``, which is 24:00, reformatted to ISO at face value,
    as Excel does) is refused, naming the row and the fix: read as given it would put every day's last reading 24
    hours early, at the start of its own day, and change the forecasts silently. Other rows out of time order are
    placed by their dates, as before, and the first is logged."""
    back = np.flatnonzero(np.diff(stamps.asi8) < 0)
    if not len(back):
        return
    i = int(back[0]) + 1
    now, before = stamps[i], stamps[i - 1]
    where = f"column {DATE!r} row {rows[i]} holds {shown(raw.iloc[i])}, earlier than row {rows[i - 1]} " \
            f"({shown(raw.iloc[i - 1])})"
    iso = _date_formats(raw)[3]
    # the closing-row pattern: a 00:00 row after the evening of its own date, and the rows after it going on from
    # that evening (rows sent newest first also step back to a 00:00, but from 00:15, and keep going back)
    closing = now == now.normalize() and before.normalize() == now and before - now >= pd.Timedelta(hours=12) \
        and (i + 1 == len(stamps) or stamps[i + 1] > before)
    if iso and closing:
        raise InvalidInput(
            f"{where}: the rows go back in time. It looks like the day's closing 00:00 row (24:00) written with its "
            f"own day's date, as dd/mm/yyyy HH:MM dates (where 00:00 closes the day, as in the steel file) "
            f"reformatted to ISO at face value are: write it as the next day's 00:00 "
            f"({now + pd.Timedelta(days=1):%Y-%m-%dT%H:%M}) or as {now:%Y-%m-%d}T24:00, or send the dates as "
            f"dd/mm/yyyy HH:MM"
        )
    log.warning("%s: the rows go back in time (%d times); each is placed by its date", where, len(back))


def _duration(span: pd.Timedelta) -> str:
    """``30 minutes``, ``1 hour``, ``2 days``: a spacing of rows as a message names it."""
    seconds = span.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            k = int(seconds // size)
            return f"{k} {unit}{'s' * (k != 1)}"
    return f"{seconds:g} second{'s' * (seconds != 1)}"


def _check_interval(stamps: pd.DatetimeIndex) -> None:
    """Refuse rows of another meter interval, read from the median spacing: 30-minute kWh on the 15-minute grid
    left every other interval to the gap fill (a day's forecast nearly doubled), hourly and 5-minute rows got
    messages about gaps or the grid."""
    gaps = np.diff(np.unique(stamps.to_numpy()))
    if not len(gaps):
        return
    median = pd.Timedelta(np.partition(gaps, (len(gaps) - 1) // 2)[(len(gaps) - 1) // 2])  # a spacing that occurs
    if median != STEP and median <= MAX_METER_INTERVAL:
        finer = " (the sum of each quarter hour's)" if median < STEP else ""
        raise InvalidInput(f"column {DATE!r}: the rows are {_duration(median)} apart (median); the model forecasts "
                           f"15-minute kWh: give 15-minute readings{finer}")


def filled(kwh: np.ndarray, fill: float) -> np.ndarray:
    """Gaps take the same 15-minute slot of the latest earlier week with a reading (the plant's week repeats; the
    last reading carried over 2.3 days after a 135 kWh peak made the next day 2.5 x too high), else the last
    reading, else ``fill``. Every value comes from an earlier index: a forecast still reads only its past."""
    v = np.asarray(kwh, dtype=float)
    if not np.isnan(v).any():
        return v.copy()
    weeks = -(-len(v) // WEEK)
    by_slot = np.full(weeks * WEEK, np.nan)
    by_slot[: len(v)] = v
    by_slot = pd.DataFrame(by_slot.reshape(weeks, WEEK)).ffill().to_numpy().ravel()[: len(v)]
    return pd.Series(by_slot).ffill().fillna(fill).to_numpy(float)


def origin_indices(series: Series, first: pd.Timestamp, last: pd.Timestamp | None = None) -> np.ndarray:
    """Grid indices of the daily 00:00 origins from ``first`` while the origin is before the series' end."""
    end = series.stamps[-1] if last is None else last
    days = pd.date_range(first.normalize(), end, freq="D", inclusive="left")
    idx = np.array([series.index_of(d) for d in days], dtype=int)
    return idx[idx < len(series.kwh)] if last is None else idx


def day_types(days: pd.DatetimeIndex, plant: PlantCalendar | None = None) -> np.ndarray:
    """0 working day, 1 Saturday, 2 Sunday or public holiday. ``plant``: its days off are 2, its working days 0
    (a working Saturday is a working day)."""
    days = pd.DatetimeIndex(days).normalize()
    dow = np.asarray(days.day_of_week)
    if not plant:
        return np.where((dow == 6) | (is_holiday(days) > 0), 2, np.where(dow == 5, 1, 0))
    working = plant.marks(days)[1]
    return np.where(rest_days(days, plant), 2, np.where((dow == 5) & ~working, 1, 0))


def profile(v: np.ndarray, origins: np.ndarray, origin_days: pd.DatetimeIndex, scale: float,
            plant: PlantCalendar | None = None) -> np.ndarray:
    """(m, 96, len(PROFILE_NAMES)): per step, the quantiles and mean over the last ``PROFILE_DAYS`` days of the
    target day's type, and the share of ``PROFILE_DAYS`` found. Only whole days before the origin are read (the
    24:00 value of the day before, stamped at the origin, is clamped to 23:45, as the lags are); where the
    history holds no day of that type, every day in it stands in. ``plant``: the types of the target day and of the
    past days read are the plant's (a past shutdown day is a holiday, not a working day of the profile)."""
    o = np.asarray(origins, dtype=int)
    m, ks = len(o), np.arange(1, PROFILE_LOOKBACK + 1)
    days = pd.DatetimeIndex(origin_days).normalize()
    back = days.values[:, None] - ks[None, :] * np.timedelta64(1, "D")  # (m, K) the day k days before
    types = day_types(pd.DatetimeIndex(back.ravel()), plant).reshape(m, -1)
    inside = (o[:, None] + 1 - STEPS_PER_DAY * ks[None, :]) >= 0  # the whole day lies in the series
    same = inside & (types == day_types(days, plant)[:, None])
    same = np.where(same.any(1, keepdims=True), same, inside)
    chosen = same & (np.cumsum(same, axis=1) <= PROFILE_DAYS)
    order = np.argsort(~chosen, axis=1, kind="stable")[:, :PROFILE_DAYS]  # chosen days first, nearest first
    picked = np.take_along_axis(chosen, order, 1)  # (m, P) whether the slot holds a chosen day
    k = ks[order]
    idx = o[:, None, None] + 1 + np.arange(STEPS_PER_DAY)[None, :, None] - STEPS_PER_DAY * k[:, None, :]
    vals = v[np.clip(np.minimum(idx, (o - 1)[:, None, None]), 0, None)] / scale  # (m, 96, P)
    vals = np.where(picked[:, None, :], vals, np.nan)
    q = np.nanquantile(vals, PROFILE_QUANTILES, axis=2)  # (5, m, 96)
    count = np.repeat((picked.sum(1) / PROFILE_DAYS)[:, None], STEPS_PER_DAY, axis=1)
    return np.concatenate([np.moveaxis(q, 0, 2), np.nanmean(vals, axis=2)[..., None], count[..., None]], axis=2)


# readings so large that sums or the float32 cast overflow give inf or NaN: the runtime refuses them, naming the feature
@np.errstate(over="ignore", invalid="ignore")
def build(v: np.ndarray, origins: np.ndarray, origin_days: pd.DatetimeIndex, scale: float,
          plant: PlantCalendar | None = None) -> np.ndarray:
    """Features, one row per (origin, step): shape (len(origins) * 96, len(FEATURE_NAMES)), float32.

    ``v`` must already be gap-filled; only ``v[:o]`` is read for origin ``o``. ``plant``: the plant's own days off
    and working days, for the calendar covariates and the day-type profile (None: the public calendar)."""
    o = np.asarray(origins, dtype=int)
    if len(o) and o.min() < HISTORY:
        raise InvalidInput(f"a forecast origin needs {LAG_DAYS} days of history before it")
    s = np.arange(STEPS_PER_DAY)
    last = (o - 1)[:, None]  # latest index a forecast may read
    target = o[:, None] + 1 + s[None, :]  # (m, 96) grid index of each forecast step

    def at(idx: np.ndarray) -> np.ndarray:
        return v[np.minimum(idx, last)] / scale

    lags = [at(target - STEPS_PER_DAY * k) for k in range(1, LAG_DAYS + 1)]
    window = [np.mean([at(target - STEPS_PER_DAY * k + d) for d in range(-2, 3)], axis=0) for k in (1, LAG_DAYS)]
    cs = np.concatenate([[0.0], np.cumsum(v)])
    blocks = [(cs[o - STEPS_PER_DAY * (k - 1)] - cs[o - STEPS_PER_DAY * k]) / STEPS_PER_DAY / scale
              for k in range(1, LAG_DAYS + 1)]
    recent = [v[o - 1] / scale, (cs[o] - cs[o - 4]) / 4 / scale]
    per_origin = np.stack(blocks + recent, axis=1)  # (m, 9)
    per_step = np.stack(lags + window, axis=2)  # (m, 96, 9)
    days = pd.DatetimeIndex(np.repeat(pd.DatetimeIndex(origin_days).normalize().values, STEPS_PER_DAY))
    cal = calendar_features(days, np.tile(s, len(o)), plant).reshape(len(o), STEPS_PER_DAY, -1)
    prof = profile(v, o, origin_days, scale, plant)
    x = np.concatenate([prof, per_step, np.repeat(per_origin[:, None, :], STEPS_PER_DAY, axis=1), cal], axis=2)
    return x.reshape(len(o) * STEPS_PER_DAY, -1).astype(np.float32)


def targets(v_raw: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """(m, 96) actual kWh after each origin (NaN where missing or beyond the series)."""
    idx = np.asarray(origins, dtype=int)[:, None] + 1 + np.arange(STEPS_PER_DAY)[None, :]
    out = np.full(idx.shape, np.nan)
    ok = idx < len(v_raw)
    out[ok] = v_raw[idx[ok]]
    return out


def baselines(v: np.ndarray, origins: np.ndarray) -> dict[str, np.ndarray]:
    """Naive forecasts (m, 96): same time last week, and yesterday's profile (its last, 24:00 step is the origin
    row itself, so the 23:45 value stands in)."""
    o = np.asarray(origins, dtype=int)
    target = o[:, None] + 1 + np.arange(STEPS_PER_DAY)[None, :]
    return {
        "same_time_last_week": v[target - LAG_DAYS * STEPS_PER_DAY],
        "yesterday_profile": v[np.minimum(target - STEPS_PER_DAY, (o - 1)[:, None])],
    }
