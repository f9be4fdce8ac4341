"""Rolling day-ahead forecasts with an exported energy model (ONNX Runtime only: never imports torch).

``predict`` makes one forecast per day at 00:00 from ``start`` to the end of the file, each from rows stamped
before its origin, and returns the contract's columns ``origin,timestamp,p10,p50,p90`` (kWh per 15 minutes;
``timestamp`` is the end of each 15-minute interval, as in the file once its 00:00 rows are read as 24:00).
``with_co2`` adds the CO2 that the p50 implies, as a separate frame, so the contract CSV stays exact.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from models.energy import features as F
from models.energy.calendar import PLANT, PlantCalendar, days_used
from serving.errors import InvalidInput
from serving.runtime import OnnxModel

log = logging.getLogger("sfai.energy")

COLUMNS = ["origin", "timestamp", "p10", "p50", "p90"]
# an origin is not forecast when more of the 96 intervals before it than this have no reading: its lags, last
# values and day blocks would be the gap fill's, not the plant's
MOST_MISSING = F.STEPS_PER_DAY // 2
STAMP = "%Y-%m-%d %H:%M:%S"
MINUTE = "%Y-%m-%d %H:%M"  # stamps in messages
# start: a date, or an ISO date and time (with an optional UTC offset)
ISO_START = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$")


def parse_start(start: str | None, series: F.Series) -> pd.Timestamp:
    """The first origin's day on the series' clock. A start with a UTC offset needs dates with one (it is converted
    to theirs); a start without one is a day of the plant's local time, whatever the dates carry."""
    if start is None:  # the first day with a full week of history
        return (series.start + F.HISTORY * F.STEP).ceil("D")
    text = str(start).strip()
    stamp = pd.NaT
    if ISO_START.match(text):  # only ISO: "04/03/2018" would be read month first, "March 4" is no contract
        try:
            stamp = pd.Timestamp(text)
        except (ValueError, OverflowError):
            pass
    if pd.isna(stamp):  # also "", "NaT", "nan", which parse to "not a time"
        raise InvalidInput(f"start {start!r} is not a date (YYYY-MM-DD)")
    if stamp.tz is not None:
        if series.tz is None:
            raise InvalidInput(f"start {start!r} has a UTC offset and the dates in column {F.DATE!r} have none: "
                               "send start as a date (YYYY-MM-DD) of the plant's local time")
        stamp = stamp.tz_convert(series.tz).tz_localize(None)
    return stamp.ceil("D")  # the first 00:00 at or after start (a date is its own 00:00)


def check_horizon(horizon: object, steps: int = F.STEPS_PER_DAY, *, text: bool = True) -> int:
    """``horizon`` as an int, or the one refusal that the CLI's ``--horizon``, the API's body and query string and
    the Python API all give. ``text``: digits as text are a number (the CLI's and a query string's); a JSON body's
    "96" is not (``text=False``)."""
    if text and isinstance(horizon, str) and horizon.strip().isascii() and horizon.strip().isdigit():
        horizon = int(horizon)  # and named as the number it is: got 0, as a JSON body's 0
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or not 1 <= horizon <= steps:
        raise InvalidInput(f'"horizon" must be a whole number of 15-minute steps, 1-{steps} (one day ahead); '
                           f"got {horizon!r}")
    return int(horizon)


# the level of the readings given (their mean) against the training readings' (the manifest's ``mean_kwh``): past
# these ratios a forecast is refused (a unit mistake: Wh is 1,000 x, MWh 1/1,000), past the inner ones it carries a
# warning (kW read as kWh is 4 x). The steel plant's monthly means lie within 0.72-1.52 x its Jan-Oct mean, any
# 7 days within 0.26-1.86 x, single days within 0.10-2.75 x (docs/quality_energy_models.md)
LEVEL_REFUSED = (1 / 200, 20.0)
LEVEL_WARNED = (1 / 5, 3.0)


def _kwh(value: float) -> str:
    return f"{value:,.1f}" if value >= 10 else f"{value:.3g}"


def _times(ratio: float) -> str:
    """``1,000 x``, ``4.0 x``, ``0.26 x``, ``1/1,000 of``: how far a level is from the training level."""
    if ratio >= 10:
        return f"{ratio:,.0f} x"
    if ratio >= 0.1:
        return f"{ratio:.2g} x" if ratio < 1 else f"{ratio:.1f} x"
    return f"1/{1 / ratio:,.0f} of" if ratio > 0 else "0 x"


def check_level(model: OnnxModel, series: F.Series) -> list[str]:
    """Compare the mean of the readings given with the training readings' mean (``mean_kwh``; a model trained
    before it was recorded is not checked): refuse a level 20 x above it or below 1/200 of it, and return a
    warning for one 3 x above or below 1/5 (a real plant's busy month or shut-down week passes both)."""
    trained = model.manifest.get("mean_kwh")
    if not isinstance(trained, int | float) or isinstance(trained, bool) or not trained > 0:
        return []
    readings = series.kwh[~np.isnan(series.kwh)]
    level = float(readings.mean()) if len(readings) else 0.0
    ratio = level / float(trained)
    if level == 0:  # no unit makes every reading 0: a meter that is off, the plant shut down
        return [f"every reading of column {F.TARGET!r} given is 0 (a meter switched off, or the plant shut down?): "
                "the forecasts follow these rows"]
    said = (f"column {F.TARGET!r} averages {_kwh(level)} kWh per 15 minutes over the rows given, {_times(ratio)} "
            f"the {_kwh(trained)} kWh of the readings this model was trained on")
    own = "another meter needs a model trained on its own readings (sfai train energy)"
    if ratio > LEVEL_REFUSED[1]:
        raise InvalidInput(f"{said}: are the readings in Wh (1,000 x kWh)? Send the kWh of each 15 minutes; {own}")
    if ratio < LEVEL_REFUSED[0]:
        raise InvalidInput(f"{said}: are the readings in MWh (kWh / 1,000)? Send the kWh of each 15 minutes; {own}")
    if ratio > LEVEL_WARNED[1]:
        return [f"{said}: the forecasts may be far off. Readings in kW (mean power)? Send kWh (kW / 4); {own}"]
    if ratio < LEVEL_WARNED[0]:
        return [f"{said}: the forecasts may be far off. Readings in MWh? Send kWh; {own}; a plant shut down for most "
                "of these rows is forecast from them"]
    return []


# a reading this far above the highest the model was trained on (the manifest's ``max_kwh``; for a model trained
# before it was recorded, ``SPIKE_MEAN_X`` x its ``mean_kwh``) is a meter or unit error, not load: one reading of
# 40,000 kWh in a month of ~30 made the next day's p50 25 x too high, and a plan under a peak cap impossible
SPIKE_X = 5.0
SPIKE_MEAN_X = 50.0
SPIKE_SHARE = 0.1  # more readings than this share so high: a unit mistake (Wh), which check_level refuses


def without_spikes(model: OnnxModel, series: F.Series) -> tuple[F.Series, list[str]]:
    """The series with readings far above the training range read as gaps (filled as every gap is, and counted),
    and the warning naming them; a real plant's busiest interval stays well inside ``SPIKE_X`` x its own maximum."""
    top, mean = model.manifest.get("max_kwh"), model.manifest.get("mean_kwh")
    ok = [v for v in (top, mean) if isinstance(v, int | float) and not isinstance(v, bool) and v > 0]
    if not ok:
        return series, []
    limit = SPIKE_X * float(top) if top in ok else SPIKE_MEAN_X * float(mean)
    with np.errstate(invalid="ignore"):
        high = np.flatnonzero(series.kwh > limit)
    if not len(high) or len(high) > SPIKE_SHARE * np.count_nonzero(~np.isnan(series.kwh)):
        return series, []  # none, or so many that the unit is wrong: check_level says so
    kwh = series.kwh.copy()
    shown = ", ".join(f"{series.start + int(i) * F.STEP:{MINUTE}} ({_kwh(float(kwh[i]))})" for i in high[:3])
    more = f" and {len(high) - 3:,} more" if len(high) > 3 else ""
    kwh[high] = np.nan
    basis = (f"{SPIKE_X:g} x the highest reading this model was trained on ({_kwh(float(top))} kWh per 15 minutes)"
             if top in ok else f"{SPIKE_MEAN_X:g} x the mean of the readings this model was trained on "
             f"({_kwh(float(mean))} kWh per 15 minutes)")
    return F.Series(series.start, kwh, series.co2, series.tz), [
        f"{len(high):,} reading{'s' * (len(high) != 1)} of column {F.TARGET!r} above {basis}, read as gaps (a meter "
        f"or unit error?): {shown}{more}; they are filled as gaps are"]


def _need_history(series: F.Series, ahead: bool) -> None:
    """Refuse rows too short for any origin, saying how much history a forecast needs and how much was given."""
    n, last = len(series.kwh), series.stamps[-1]
    first = (series.start + F.HISTORY * F.STEP).ceil("D")  # the first 00:00 with the history before it
    # the latest origin: the 00:00 right after the rows (``ahead``), else the last 00:00 before the last row
    latest = (series.start + n * F.STEP).floor("D") if ahead else last.ceil("D") - pd.Timedelta(days=1)
    if first <= latest:
        return
    upto = first - F.STEP if ahead else first + F.STEP
    before = max(series.index_of(latest), 0)  # rows stamped before the latest origin
    raise InvalidInput(
        f"a forecast needs {F.HISTORY} rows of 15 minutes ({F.LAG_DAYS} days and 30 minutes) of {F.TARGET!r} "
        f"before its 00:00 origin; the rows given cover {n} intervals ({n / F.STEPS_PER_DAY:.1f} days, "
        f"{series.start:{MINUTE}} to {last:{MINUTE}}), {before} of them before the latest origin, {latest:{MINUTE}}: "
        f"add the earlier rows from {latest - F.HISTORY * F.STEP:{MINUTE}} on (or, for the first possible origin, "
        f"{first.date()}, rows up to {upto:{MINUTE}})"
    )


def _span(intervals: int) -> str:
    """``95 intervals, 23 h 45 min`` / ``221 intervals, 2 days 7 h 15 min``: a gap's exact length."""
    days, rest = divmod(intervals * 15, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} day{'s' * (days != 1)}"] * bool(days) + [f"{hours} h"] * bool(hours) + [f"{minutes} min"] * bool(
        minutes)
    return f"{intervals} interval{'s' * (intervals != 1)}, {' '.join(parts)}"


def _gap_before(series: F.Series, o: int, missing: np.ndarray, count: int) -> str:
    """How many of the 96 intervals that origin ``o``'s forecast reads (stamped from 24 hours before it to 15
    minutes before it: the row stamped at the origin is not read) have no reading, and the latest gap among them,
    counted the same way: from its first missing interval, also before those 24 hours, up to 15 minutes before the
    origin at the latest."""
    inside = o - 1 - int(np.argmax(missing[o - 1 :: -1]))  # the last missing interval before the origin
    readings = np.flatnonzero(~missing[:inside])
    begin = int(readings[-1]) + 1 if len(readings) else 0
    first, last = (series.start + i * F.STEP for i in (begin, inside))
    read_from = series.start + (o - F.STEPS_PER_DAY) * F.STEP
    return (f"origin {series.start + o * F.STEP:{MINUTE}}: {count} of the {F.STEPS_PER_DAY} intervals it reads "
            f"(stamped {read_from:{MINUTE}} to {series.start + (o - 1) * F.STEP:{MINUTE}}) have no reading; the "
            f"latest gap: {first:{MINUTE}} to {last:{MINUTE}} ({_span(inside - begin + 1)})")


def _with_readings(series: F.Series, origins: np.ndarray, missing: np.ndarray) -> list[str]:
    """A warning naming the origins whose day before is mostly filled, not read: they are forecast all the same
    (the contract answers one origin per day), from the same time a week earlier, and the caller is told to send
    the missing rows (a day after a 2.3-day gap, filled with the last reading, had been forecast 2.5 x too high)."""
    cs = np.concatenate([[0], np.cumsum(missing)])
    count = cs[origins] - cs[origins - F.STEPS_PER_DAY]
    bad = count > MOST_MISSING
    if not bad.any():
        return []
    why = _gap_before(series, int(origins[bad][-1]), missing, int(count[bad][-1]))
    days = [f"{series.start + o * F.STEP:%Y-%m-%d}" for o in origins[bad]]
    shown = ", ".join(days[:3]) + (f" and {len(days) - 3} more" if len(days) > 3 else "")
    return [f"the forecasts from {shown} rest mostly on filled values (more than {MOST_MISSING} of the "
            f"{F.STEPS_PER_DAY} intervals each reads have no reading: send the missing rows); the latest, {why}"]


SHORT_HISTORY_DAYS = 35  # a profile of 20 working days (and a few weekends) needs about five weeks of readings


def _short_history(series: F.Series, origins: np.ndarray) -> list[str]:
    """A warning naming the origins with fewer than ``SHORT_HISTORY_DAYS`` days of readings before them: their
    day-type profile rests on a few days of each type, and they are forecast all the same (the same day's p50 moved
    from 3.98 to 4.31 kWh between 8 and 36 days of history, without a word: integration audit)."""
    days = np.rint(origins / F.STEPS_PER_DAY)  # an origin's grid index counts the intervals before it
    short = origins[days < SHORT_HISTORY_DAYS]
    if not len(short):
        return []
    first = series.start + int(short[0]) * F.STEP
    count = f"{len(short)} origins ({first:%Y-%m-%d} to {series.start + int(short[-1]) * F.STEP:%Y-%m-%d})" \
        if len(short) > 1 else f"origin {first:%Y-%m-%d}"
    return [f"{count} read fewer than {SHORT_HISTORY_DAYS} days of readings ({int(days[days < SHORT_HISTORY_DAYS][0])} "
            f"before {first:%Y-%m-%d}): the forecast's profile of the day's type (working day, Saturday, Sunday or "
            f"holiday) takes the last {F.PROFILE_DAYS} such days from the {F.PROFILE_LOOKBACK} before it, so it rests "
            f"on a few and is less sure; send {SHORT_HISTORY_DAYS} days of readings or more"]


def _filled_note(series: F.Series, last: int, missing: np.ndarray) -> tuple[int, list[str]]:
    """How many intervals before the last origin the gap fill supplied, and the warning that says so."""
    count = int(missing[:last].sum())
    if not count:
        return 0, []
    return count, [f"{count:,} of the {last:,} 15-minute intervals before the last origin "
                   f"({series.start + last * F.STEP:{MINUTE}}) have no reading ({count / F.STEPS_PER_DAY:.1f} days): "
                   "filled from the same time a week earlier (where it has none, from the last reading)"]


def _to_next_midnight(series: F.Series, start: pd.Timestamp) -> F.Series:
    """The series with the intervals from its last reading to the next 00:00 as gaps, where ``start`` asks for
    that day: tomorrow's forecast wanted at noon reads the afternoon filled from the same time a week earlier
    (counted and warned of as every gap is), rather than being refused."""
    n = len(series.kwh)
    following = series.index_of(series.stamps[-1].ceil("D"))
    if following <= n or series.index_of(start) != following:
        return series
    pad = np.full(following - n, np.nan)
    co2 = None if series.co2 is None else np.concatenate([series.co2, pad])
    return F.Series(series.start, np.concatenate([series.kwh, pad]), co2, series.tz)


def forecast(
    model: OnnxModel, series: F.Series, start: pd.Timestamp, horizon: int = 96, *, ahead: bool = False,
    asked: bool = False, plant: PlantCalendar | None = None,
) -> pd.DataFrame:
    """One forecast per day at 00:00 from ``start`` while the origin lies inside the series; ``ahead`` also makes
    the forecast for the day right after the series (a forecast reads rows up to 15 minutes before its origin);
    ``asked`` (a start the caller gave): a start at the next 00:00 after rows ending mid-day is forecast from them,
    the rest of the day filled. ``plant``: the plant's own days off and working days (None: the public calendar),
    for the days forecast and the past days their profile reads."""
    steps = int(model.manifest.get("steps_per_day", F.STEPS_PER_DAY))
    horizon = check_horizon(horizon, steps)
    if not F.built_for(model.manifest):
        raise InvalidInput("this energy model was trained on an older feature set; train it again "
                           "(sfai train energy) to forecast with this version of SFAI")
    _need_history(series, ahead)
    series, spikes = without_spikes(model, series)
    level = spikes + check_level(model, series)  # before the gap fill: the rows as given
    if ahead and asked:
        series = _to_next_midnight(series, start)
    n = len(series.kwh)
    if (series.index_of(start) > n) if ahead else (start >= series.stamps[-1]):
        raise InvalidInput(f"start {start.date()} is after the last row of column {F.DATE!r} ({series.stamps[-1]})")
    if series.index_of(start) < F.HISTORY:
        first = (series.start + F.HISTORY * F.STEP).ceil("D")
        raise InvalidInput(f"start {start.date()} needs {F.LAG_DAYS} days of {F.TARGET!r} before it: "
                           f"the first possible start is {first.date()}")
    origins = F.origin_indices(series, start)
    if ahead:  # the next 00:00 whose forecast reads only rows the series has
        following = series.index_of(series.stamps[-1].ceil("D"))
        if following <= n and following >= series.index_of(start) and following not in origins:
            origins = np.append(origins, following)
    missing = np.isnan(series.kwh)
    notes = level + _with_readings(series, origins, missing)
    filled, note = _filled_note(series, int(origins.max()) if len(origins) else 0, missing)
    notes += note + _short_history(series, origins)
    for line in notes:
        log.warning("%s", line)
    v = F.filled(series.kwh, float(model.manifest["fill_value"]))
    days = series.start + origins * F.STEP
    x = F.build(v, origins, pd.DatetimeIndex(days), float(model.manifest["scale"]), plant)
    q = model.run({"x": x})["y"].reshape(len(origins), steps, 3)[:, :horizon]
    q = np.maximum(q.astype(float), 0.0)  # kWh is never negative; clipping all three keeps their order
    origin_col = np.repeat(pd.DatetimeIndex(days).strftime(STAMP).to_numpy(), horizon)
    steps_ahead = pd.to_timedelta(np.arange(1, horizon + 1) * 15, unit="min").to_numpy()
    ts = (pd.DatetimeIndex(days).values[:, None] + steps_ahead[None, :]).ravel()
    out = pd.DataFrame(
        {
            "origin": origin_col,
            "timestamp": pd.DatetimeIndex(ts).strftime(STAMP).to_numpy(),
            "p10": np.round(q[..., 0].ravel(), 4),
            "p50": np.round(q[..., 1].ravel(), 4),
            "p90": np.round(q[..., 2].ravel(), 4),
        },
        columns=COLUMNS,
    )
    # beside the contract's columns, for the API's answer: intervals gap-filled, the warnings logged, and the days
    # forecast that were no ordinary weekday (a weekend, a public holiday, the plant calendar's), as they were read
    out.attrs.update(filled_intervals=filled, warnings=notes, calendar_used=horizon_days(days, horizon, plant))
    return out


def horizon_days(origins: pd.DatetimeIndex, horizon: int, plant: PlantCalendar | None) -> list[dict]:
    """:func:`models.energy.calendar.days_used` of the plant's days that the forecasts from ``origins`` cover (each
    15-minute interval's day, from the origin's to the last interval's start)."""
    origins = pd.DatetimeIndex(origins)
    last = origins + (horizon - 1) * F.STEP
    return days_used(origins.append(last), plant)


def plant_calendar(model: OnnxModel, given: PlantCalendar | None = None) -> PlantCalendar | None:
    """The plant calendar a forecast uses: ``given``, else the one the caller set for this request (``PLANT``: the
    API's), else, for a registered model (its manifest names its tenant), that tenant's stored calendar (``sfai
    predict energy``); None where there is none (the public calendar)."""
    if given is not None:
        return given or None
    current = PLANT.get()
    if current is not None:
        return current or None
    tenant = model.manifest.get("tenant")
    if not isinstance(tenant, str) or not tenant:
        return None
    from serving.calendar_store import calendar_of_tenant  # the metadata database: only for a registered model

    return calendar_of_tenant(tenant)


def predict(model: OnnxModel, input_path: Path, dataset: str, *, start=None, horizon=96,  # noqa: ANN001
            plant: PlantCalendar | None = None, **_) -> pd.DataFrame:
    """The contract's forecasts: one origin per day at 00:00 from ``start`` while it lies inside the file. A start
    at the file's end (the day right after its rows: a history file, tomorrow wanted) is that day's forecast; a
    start without a week of rows before it begins at the first day with one (logged as a warning). ``plant``: the
    plant calendar (default: :func:`plant_calendar`, the model's tenant's)."""
    series = F.read_series(input_path)
    stamp = parse_start(start, series)
    first = parse_start(None, series)  # the first 00:00 with a week of history before it in the file
    notes = []
    if first > stamp and first < series.stamps[-1]:  # the file begins at (or just before) the start wanted
        notes.append(f"{Path(input_path).name}: start {stamp.date()} has less than {F.LAG_DAYS} days of {F.TARGET!r} "
                     f"before it in the file; forecasts begin at {first.date()} (the days before it are skipped: add "
                     "the week before to the file to forecast them)")
        log.warning("%s", notes[0])
        stamp = first
    out = forecast(model, series, stamp, horizon, ahead=bool(stamp >= series.stamps[-1]), asked=start is not None,
                   plant=plant_calendar(model, plant))
    out.attrs["warnings"] = notes + out.attrs["warnings"]
    return out


def score(model: OnnxModel, df: pd.DataFrame, *, start: str | None = None, horizon: int = 96) -> pd.DataFrame:
    """Forecasts from series rows already read (the API's records), including the day right after them: the
    contract columns plus ``co2_p50``, the tCO2 per 15 minutes the p50 implies at the plant's emission factor.
    The plant calendar is the one the caller set (``PLANT``: the API sets the tenant's), else none."""
    series = F.series_from_frame(df)
    out = forecast(model, series, parse_start(start, series), horizon, ahead=True, asked=start is not None,
                   plant=PLANT.get() or None)
    out["co2_p50"] = with_co2(out, model)["co2_p50"]
    # the factor beside the numbers, for a manager to check them or apply the reporting year's official factor
    out.attrs["emission_factor_t_per_kwh"] = float(model.manifest["emission_factor_t_per_kwh"])
    return out


def with_co2(frame: pd.DataFrame, model: OnnxModel) -> pd.DataFrame:
    """``origin,timestamp,p50,co2_p50`` where ``co2_p50`` is tCO2 per 15 minutes at the manifest's factor."""
    factor = float(model.manifest["emission_factor_t_per_kwh"])
    out = frame[["origin", "timestamp", "p50"]].copy()
    out["co2_p50"] = np.round(out["p50"] * factor, 6)
    return out
