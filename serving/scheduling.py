"""The scheduling module behind the API: synchronous solves and background jobs, per tenant.

Linked modules: a tenant subscribed to ``maintenance`` may pass machine failure risks, one subscribed to
``energy`` a tariff, base load and peak cap; without the partner module those parts of the request are
ignored (the plain behaviour) and the answer says so.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import queue
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from feature_store.view import TIMESTAMP
from serving.db import Database
from serving.db.tables import SchedulingJob
from serving.errors import Conflict, InvalidInput, NotFound, TooManyRequests
from serving.idempotency import IDEMPOTENCY_S, reused
from serving.settings import Settings
from serving.tenancy import active_subscriptions, as_utc, utc_text, utcnow

log = logging.getLogger("sfai.scheduling")
# A process stamps its queued and running jobs this often; a job not stamped for STALE_S is taken over by another
# live process (its own stopped). Long enough that a busy process is never taken for a stopped one.
HEARTBEAT_S = 10.0
STALE_S = 120.0
RELEASED = datetime(2000, 1, 1, tzinfo=UTC)  # the stamp of a job its process handed back on stop: stale at once
# parts of a problem that only a partner module's subscription enables
PARTNERS = (("failure_risk", "maintenance"), ("energy", "energy"))
PARTNER_KEYS = {key for key, _ in PARTNERS}
DAY_MINUTES = 96 * 15  # the energy forecast's day: 96 steps of 15 minutes
MAX_LOAD_PERIODS = 100_000  # energy periods of the plan in that day (load_period_minutes)
PEAK_MINUTES = 15  # KEPCO bills the highest 15-minute demand: a cap on longer periods' means is a looser cap


def stale_jobs(now: datetime, stale_s: float = STALE_S):  # noqa: ANN201 - a SQL condition
    """Queued or running jobs their process has not stamped for ``stale_s`` (one never stamped, from before
    migration 0007, counts from its creation): another process takes them over, and /metrics counts them."""
    stamp = func.coalesce(SchedulingJob.heartbeat_at, SchedulingJob.created_at)
    return SchedulingJob.status.in_(("queued", "running")) & (stamp < now - timedelta(seconds=stale_s))


def machine_risk(platform, tenant: str, spec: dict) -> dict:  # noqa: ANN001
    """The failure probability of each plan machine from the tenant's failure model (the maintenance module's):
    ``spec["machines"]`` maps a machine to its entity id in ``spec["view"]`` (its latest readings in the online
    store) or to one record of readings. Returns what the plan used: the model, the view and the risks."""
    from serving.predictions import entity_rows, record_scorer

    machines = spec["machines"]
    by_id = {m: v for m, v in machines.items() if not isinstance(v, dict)}
    inline = {m: v for m, v in machines.items() if isinstance(v, dict)}
    if by_id and not spec.get("view"):
        raise InvalidInput('maintenance.machines gives entity ids: "view" names the feature view to read them from')
    with _field("maintenance"):  # no failure model trained: a 404 naming the request's field
        model = platform.models.champion(tenant, "failure", spec.get("model"), refresh=True)
    score = _named_errors(record_scorer("failure"), "maintenance")
    risks: dict[str, float] = {}
    taken: dict[str, datetime] = {}  # each store-read machine's reading time
    if by_id:
        with _field("maintenance"):  # an entity without readings is a 404 naming the request's field
            rows = entity_rows(platform.feature_store(tenant), spec["view"], list(by_id.values()))
        for m, p, row in zip(by_id, score(model, rows, from_store=True), rows, strict=True):
            risks[m] = p["failure_probability"]
            taken[m] = _reading_time(row)
    if inline:
        for m, p in zip(inline, score(model, list(inline.values())), strict=True):
            risks[m] = p["failure_probability"]
    used = {"model": f"{model.name}@{model.version}", "view": spec.get("view"),
            "risks": {m: risks[m] for m in machines}}
    if taken:
        used["readings_at"] = {m: utc_text(t) for m, t in taken.items()}
        warnings = stale_readings(by_id, taken, risks, spec["view"], platform.settings.scheduling_risk_max_age_h)
        if warnings:
            used["warnings"] = warnings
    threshold = model.manifest.get("threshold")
    if isinstance(threshold, int | float) and not isinstance(threshold, bool) and 0 <= threshold <= 1:
        used["threshold"] = float(threshold)  # the model's own: from it, it answers failure_predicted 1
    return used


def _reading_time(row: dict) -> datetime:
    """An online row's time (the store answers ISO text, ``...Z``) as a UTC datetime."""
    at = row[TIMESTAMP]
    return as_utc(datetime.fromisoformat(at) if isinstance(at, str) else at)


def stale_readings(by_id: dict, taken: dict[str, datetime], risks: dict, view: str, max_age_h: float, *,
                   what: str = "risk", unit: str = "") -> list[str]:
    """A warning per plan machine whose readings in the online store are older than ``max_age_h`` hours: its risk
    is the machine's then, not now (a machine mapped to an entity the MES stopped sending, or to the wrong one, had
    planned on a reading of years before without a word)."""
    now, out = utcnow(), []
    for machine, entity in by_id.items():
        at = taken[machine]
        hours = (now - at).total_seconds() / 3600
        if hours > max_age_h:
            age = f"{hours / 24:,.0f} days" if hours >= 48 else f"{hours:,.0f} hours"
            value = f"{risks[machine]:.3f}" if not unit else f"{risks[machine]:,.0f}{unit}"
            out.append(f"machine {machine}: its readings ({entity!r} in {view}) are from {utc_text(at)}, {age} before "
                       f"this plan, so its {what} ({value}) is the machine's then: send fresh readings "
                       f"(POST /v1/ingest/{view})" + (" or give its record inline" if not unit else ""))
    return out


@contextmanager
def _field(name: str) -> Iterator[None]:
    """A model's refusal of the records in a plan's ``name`` field, prefixed with the field: "start 2018-11-01 is
    after the last row" alone did not say which part of the plan request it was about."""
    try:
        yield
    except (InvalidInput, NotFound) as e:
        if e.message.startswith(f"{name}:"):
            raise
        raise type(e)(f"{name}: {e.message}", code=e.code, status=e.status, headers=e.headers) from None


def _named_errors(score, name: str):  # noqa: ANN001, ANN202
    def scored(*a, **k):  # noqa: ANN002, ANN003, ANN202
        with _field(name):
            return score(*a, **k)

    return scored


def _failure_risk(problem: dict) -> tuple[dict, dict]:
    """A copy of the problem's ``failure_risk`` block and of its ``risks``, checked: a partner model's risks go in
    there (5, [1, 2], "ab" or true: a 422, never a TypeError; risks that are no object are not replaced by the
    model's without a word)."""
    given = problem.get("failure_risk")
    if given is not None and not isinstance(given, dict):
        raise InvalidInput(f"failure_risk must be an object (risks, threshold, policy, ...), got {given!r:.40}")
    given = dict(given or {})
    risks = given.get("risks")
    if risks is not None and not isinstance(risks, dict):
        raise InvalidInput(f"failure_risk.risks must be an object machine -> probability, got {risks!r:.40}")
    return given, dict(risks or {})


def with_machine_risk(request: dict, risk: dict) -> dict:
    """``request`` whose problem takes the model's risks (``machine_risk``) as ``failure_risk.risks``; a machine
    the problem gives a risk itself keeps it. The answer's ``linked.maintenance_model`` says what was used."""
    problem = dict(request["problem"])
    given, own = _failure_risk(problem)
    given["risks"] = {**risk["risks"], **own}
    if "threshold" not in given and "threshold" in risk:
        # the model's decision threshold, not the planner's default 0.5: a machine the model calls failing (at
        # 0.37 for the AI4I model) gets its window
        given["threshold"] = risk["threshold"]
    problem["failure_risk"] = given
    kept = sorted(m for m in own if m in risk["risks"])
    # the threshold the windows were decided by: the planner's where the problem gives one, else the model's (the
    # answer's "threshold" is the model's, and a planner who set 0.5 read 0.707 as the one used: planner's audit)
    from optimization.problem import FailureRisk

    used = given.get("threshold", FailureRisk.threshold)
    return {**request, "problem": problem, "maintenance": {**risk, "planner_risks_kept": kept,
                                                           "threshold_used": used}}


def machine_life(platform, tenant: str, spec: dict) -> dict:  # noqa: ANN001
    """The remaining useful life of each plan machine from the tenant's rul model (the maintenance module's):
    ``spec["machines"]`` maps a machine to its entity id in ``spec["view"]``, whose cycles are read from the offline
    store as a remaining-life prediction by entity id reads them. Returns what the plan used: the model, the view,
    each machine's life in cycles and in plan units, and when its latest cycle was recorded."""
    from serving.predictions import ENTITY_ID, entity_rows, records_frame, scorer

    machines = spec["machines"]
    with _field("remaining_life"):
        model = platform.models.champion(tenant, "rul", spec.get("model"), refresh=True)
        rows = entity_rows(platform.feature_store(tenant), spec["view"], list(machines.values()))
        out = scorer("rul")(model, records_frame("rul", rows))
    by_entity = {str(e): float(r) for e, r in zip(out[ENTITY_ID], out["rul"], strict=True)}
    taken = {m: _reading_time(row) for m, row in zip(machines, rows, strict=True)}
    cycles = {m: by_entity[str(e)] for m, e in machines.items()}
    per = float(spec["units_per_cycle"])
    used = {"model": f"{model.name}@{model.version}", "view": spec["view"], "units_per_cycle": per,
            "rul_cycles": cycles, "life_units": {m: round(c * per, 3) for m, c in cycles.items()},
            "readings_at": {m: utc_text(t) for m, t in taken.items()}}
    warnings = stale_readings(machines, taken, cycles, spec["view"], platform.settings.scheduling_risk_max_age_h,
                              what="remaining life", unit=" cycles")
    warnings += list(out.attrs.get("warnings", []))
    if warnings:
        used["warnings"] = warnings
    return used


def with_machine_life(request: dict, life: dict) -> dict:
    """``request`` whose problem's ``failure_risk`` flags each machine whose remaining life (``machine_life``) ends
    within the plan: its risk is the threshold where the life ends at the plan's end, rising to 1.0 where it ends at
    time 0, so the machine gets its window (policy ``window``, serviced first) and, with fewer crews than machines,
    the shortest life is serviced first. A risk the problem or the failure model gives the machine that is higher
    is kept. The answer's ``linked.remaining_life_model`` says what was used."""
    from optimization.problem import FailureRisk

    problem = dict(request["problem"])
    given, risks = _failure_risk(problem)
    threshold = given.get("threshold", FailureRisk.threshold)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise InvalidInput(f"failure_risk.threshold must be a number from 0 to 1, got {threshold!r:.40}")
    span = max(plan_span(problem), 1.0)
    flagged = {}
    for m, units in life["life_units"].items():
        if units <= span:
            risk = round(threshold + (1 - threshold) * (1 - units / span), 6)
            flagged[m] = risk
            current = risks.get(m)
            if not isinstance(current, int | float) or isinstance(current, bool) or current < risk:
                risks[m] = risk
    given["risks"] = risks
    problem["failure_risk"] = given
    return {**request, "problem": problem,
            "remaining_life": {**life, "plan_span": span, "flagged": flagged, "threshold_used": threshold}}


def load_period_minutes(energy: object) -> float:
    """The minutes of one energy period of the plan (``energy``: the problem's settings, in plan units), checked
    before the energy model runs. The forecast's day is cut into such periods, one load value each: a day of more
    than ``MAX_LOAD_PERIODS`` is refused (1e-9 hours per unit made billions of periods, a request that never
    ended); a period of a second still passes (86,400 a day), and no meter or tariff is finer than that."""
    if not isinstance(energy, dict):
        raise InvalidInput('energy_forecast needs the problem\'s "energy" settings (its period and hours_per_unit, '
                           "and the prices or the peak_cap_kw the load counts against)")
    period, hours = energy.get("period", 60), energy.get("hours_per_unit", 1 / 60)
    if any(isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < 1e9 for v in (period, hours)):
        raise InvalidInput(f"energy.period and energy.hours_per_unit must be positive numbers; got {period!r} and "
                           f"{hours!r}")
    minutes = float(period) * float(hours) * 60
    if not minutes or DAY_MINUTES / minutes > MAX_LOAD_PERIODS:  # 0.0: a product below the smallest float
        raise InvalidInput(
            f"energy_forecast: one energy period (energy.period x energy.hours_per_unit) is {minutes * 60:.3g} s, "
            f"which cuts the forecast's day into more than {MAX_LOAD_PERIODS:,} periods; the period must be at "
            f"least {DAY_MINUTES * 60 / MAX_LOAD_PERIODS:g} s"
        )
    return minutes


def shown_minutes(minutes: float) -> float:
    """``minutes`` for the answer, without the float noise of ``period * hours_per_unit * 60`` (60 x 0.016667 is
    60.00120000000001, shown 60.0012): 12 significant digits, far below any meter's resolution. The load is computed
    from the exact value."""
    return float(f"{minutes:.12g}")


MAX_FORECAST_DAYS = 7  # days of the plan the energy model forecasts, one after another


def _plan_times(problem: dict):  # noqa: ANN202 - a function of (value, rounding) -> float | None
    """Reads a raw problem's time fields as plan units before it is parsed: numbers as they are, and ISO times through
    the problem's ``clock`` (``optimization.io.Times``); anything else (wrong, or for the parser to refuse) None."""
    from optimization.io import Times, clock_of

    try:
        when = Times(clock_of(problem))
    except (ValueError, TypeError):
        when = Times(None)

    def units(value: object, rounding: str = "floor", day: str = "start") -> float | None:
        try:
            value = when(value, "time", rounding, day)
        except (ValueError, TypeError):
            return None
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    return units


def plan_span(problem: dict) -> float:
    """The plan's length in its time units, before it is solved: its ``horizon`` where it gives one, else the end of
    its work done one operation after another (each on its fastest machine, after the latest release or pin): no
    plan ends later, and most end sooner. Times sent as ISO dates (with the problem's ``clock``) count as theirs."""
    units = _plan_times(problem)
    bound = units(problem.get("horizon"), day="end")  # a date alone: the end of that day, as the parser reads it
    if bound is not None and bound > 0:
        return bound
    bound = work = 0.0
    for job in problem.get("jobs") or ():
        if not isinstance(job, dict):
            continue
        bound = max(bound, units(job.get("release", 0), "ceil") or 0.0)
        for op in job.get("operations") or ():
            durations = op.get("machines") if isinstance(op, dict) else None
            if isinstance(durations, dict):
                work += min((d for d in durations.values() if isinstance(d, int | float)), default=0)
                pin = op.get("pinned") or op.get("started")
                if isinstance(pin, dict):
                    bound = max(bound, units(pin.get("start"), "ceil") or 0.0)
    return float(bound + work)


def plan_minutes(problem: dict, energy: dict | None) -> float:
    """``plan_span`` in minutes, at the energy settings' unit (``load_period_minutes`` checks them)."""
    return plan_span(problem) * load_period_minutes(energy) / float(energy.get("period", 60))


def forecast_days(minutes: float) -> int:
    """The days of forecast that cover ``minutes`` from a day's 00:00 (1 to ``MAX_FORECAST_DAYS``), forgiving the
    rounding of hours_per_unit: 0.016667 h (a minute as the docs write it) made a horizon of 2,880 units 2,880.06
    minutes, and 3 days forecast for a 2-day plan."""
    if minutes >= 1e15:
        return MAX_FORECAST_DAYS
    return max(1, min(MAX_FORECAST_DAYS, math.ceil(minutes / DAY_MINUTES * (1 - 1e-4))))


def plan_days(problem: dict, energy: dict | None) -> int:
    """The days from the plan's time 0 that its load forecast must cover (1 to ``MAX_FORECAST_DAYS``): the plan's
    ``horizon`` where it gives one, else the end of its work done one operation after another (each on its fastest
    machine, after the latest release or pin): no plan ends later, and most end sooner. A plan that runs past the
    days forecast gets the last forecast value (``EnergyModel.base_at``), and its answer says so."""
    return forecast_days(plan_minutes(problem, energy))


def _forecast_days(model, frame, start: str, days: int):  # noqa: ANN001, ANN202
    """The p50 (and CO2) of ``days`` days from ``start`` 00:00: the first from the meter's rows, each next one
    from those rows and the days forecast before it (the model reads the day before its origin; the rows after
    the meter's last are its own forecasts). Returns one frame of ``days * 96`` steps."""
    import numpy as np
    import pandas as pd

    from models.energy.features import series_from_frame
    from serving.predictions import scorer

    score = scorer("energy")
    out = score(model, frame, start=start, horizon=96)
    # the first origin is the forecaster's own reading of start (its first 00:00), the plan's time 0: the
    # forecaster leaves no origin out, so it is never another day's
    parts = [out[out["origin"] == out["origin"].iloc[0]]]
    warnings = list(out.attrs.get("warnings", []))
    if days > 1:
        # the meter's readings as the forecaster read them (its clock: a UTC date is Korea's; rows with no cell
        # skipped; 24:00 the next day's 00:00)
        series = series_from_frame(frame)
        read = ~np.isnan(series.kwh)
        stamps = series.stamps[read]
        if series.tz is not None:
            stamps = stamps.tz_localize(series.tz)
        meter = pd.DataFrame({"date": stamps, "Usage_kWh": series.kwh[read]})
        for _ in range(days - 1):
            day = parts[-1]
            ends = pd.DatetimeIndex(pd.to_datetime(day["timestamp"]))
            if stamps.tz is not None:
                ends = ends.tz_localize(stamps.tz) if ends.tz is None else ends
            meter = pd.concat([meter[meter["date"] < ends[0]],
                               pd.DataFrame({"date": ends, "Usage_kWh": day["p50"].to_numpy(float)})])
            iso = pd.DataFrame({"date": [t.isoformat() for t in meter["date"]], "Usage_kWh": meter["Usage_kWh"]})
            nxt = str((pd.Timestamp(day["origin"].iloc[0]) + pd.Timedelta(days=1)).date())
            out = score(model, iso, start=nxt, horizon=96)
            parts.append(out[out["origin"] == out["origin"].iloc[0]])
    days = pd.concat(parts, ignore_index=True)
    days.attrs["warnings"] = warnings  # about the meter's rows (the later days read forecasts, not rows)
    return days


def check_plant_load(spec: dict, limit: int) -> None:
    """``energy_forecast`` reads the meter's rows from ``records`` or from the store (``entity_id`` with ``view``),
    one or the other."""
    from serving.predictions import check_batch

    has_records, has_id = spec.get("records") is not None, spec.get("entity_id") is not None
    if has_records == has_id:
        raise InvalidInput('energy_forecast takes the meter\'s rows as "records", or its "entity_id" with "view" '
                           "(its history read from the offline store): one of the two")
    if has_id and not spec.get("view"):
        raise InvalidInput('energy_forecast.entity_id needs "view", the feature view that holds the meter\'s '
                           "readings (steel_energy_features for sfai ingest steel-energy)")
    if has_records and spec.get("view"):
        raise InvalidInput('energy_forecast.view names where "entity_id" is read from: send "records" or '
                           '"entity_id" with "view", not both')
    if has_records:
        check_batch(len(spec["records"]), limit, "energy_forecast records")


def _meter_clock(clock, frame, spec: dict) -> tuple[str, float, str | None]:  # noqa: ANN001 - a PlanClock
    """(the forecast's first day, minutes from its 00:00 to the plan's time 0, a note) for a plan with a ``clock``:
    its start on the meter's clock (its dates' UTC offset; dates without one are the plant's local time, Korea's
    for a start that has one). ``spec["start"]``, where given, must be that day."""
    from datetime import datetime

    from models.energy.features import KOREA, series_from_frame

    start, note = clock.start, None
    if start.tzinfo is not None:
        tz = series_from_frame(frame).tz
        if tz is None:
            tz = KOREA
            note = (f"the meter's dates have no UTC offset: read as the plant's local time, Korea's (+09:00), against "
                    f"clock.start {clock.at(0)}")
        import pandas as pd

        try:
            start = pd.Timestamp(start).tz_convert(tz).tz_localize(None).to_pydatetime()
        except (NotImplementedError, OverflowError, ValueError):  # pandas' range: 1677 to 2262
            raise InvalidInput(f"clock.start {clock.at(0)} is outside the dates an energy forecast reads "
                               "(1677-2262)") from None
    day = start.date().isoformat()
    given = spec.get("start")
    if given is not None and str(given).strip()[:10] != day:
        raise InvalidInput(f"energy_forecast.start ({given}) is not the day of the plan's clock.start ({clock.at(0)}, "
                           f"{day} on the meter's clock): leave energy_forecast.start out, the clock's day is taken")
    offset = (start - datetime.combine(start.date(), datetime.min.time())).total_seconds() / 60
    return day, offset, note


def plant_load(platform, tenant: str, spec: dict, energy: dict | None, days: int = 1, *,  # noqa: ANN001
               clock=None, plan_minutes: float | None = None) -> dict:  # noqa: ANN001 - a PlanClock
    """The plant's forecast load for the plan's ``days`` days from the tenant's energy model (the energy module's):
    the p50 kWh of each 15 minutes from ``spec["start"]`` 00:00, as the mean kW of each of the plan's energy
    periods (``energy``: the problem's settings, in plan units), and the kWh and tCO2 it implies. A day after the
    first is forecast from the days before it: the model forecasts one day ahead of the rows it reads.

    With the problem's ``clock``, time 0 is its start, not a day's 00:00: the forecast begins on its day, the
    load from its time of day on, and the days cover ``plan_minutes`` from there."""
    import numpy as np

    from serving.predictions import METER, entity_rows, meter_history, records_frame

    minutes = load_period_minutes(energy)
    with _field("energy_forecast"):  # no energy model trained: a 404 naming the request's field
        model = platform.models.champion(tenant, "energy", spec.get("model"), refresh=True)
    with _field("energy_forecast"):
        if spec.get("entity_id") is not None:  # the meter's history from the offline store, as a forecast by id
            rows = entity_rows(platform.feature_store(tenant), spec["view"], [spec["entity_id"]])
            rows.first_day = spec.get("start") or (clock.at(0) if clock is not None else None)
            frame = meter_history(rows).drop(columns=METER)
        else:
            frame = records_frame("energy", spec["records"])
        first, offset, note = spec.get("start"), 0.0, None
        if clock is not None:
            first, offset, note = _meter_clock(clock, frame, spec)
            if plan_minutes is not None:
                days = forecast_days(offset + plan_minutes)
        elif first is None:
            raise InvalidInput('energy_forecast needs "start", the plan\'s day (YYYY-MM-DD: time 0 is its 00:00), or '
                               'the problem\'s "clock" (its start is time 0)')
        days = max(1, min(days, MAX_FORECAST_DAYS, MAX_LOAD_PERIODS * minutes // DAY_MINUTES or 1))
        day = _forecast_days(model, frame, first, int(days))
    quantile = spec.get("quantile") or "p50"
    # past the forecast's last day (a plan longer than MAX_FORECAST_DAYS), the forecast week again: the same weekday
    # and time (the last forecast value had stood for every later hour: Sunday night's load for the next Monday)
    steps = len(day)  # 15-minute steps from the origin's 00:00
    if days >= MAX_FORECAST_DAYS and plan_minutes is not None:  # from the origin: the plan's offset included
        steps = max(steps, min(math.ceil((offset + plan_minutes) / 15 - 1e-9), MAX_REPEATED_DAYS * 96))

    def periods(column: str):  # noqa: ANN202 - kWh in 15 minutes -> mean kW of each plan period
        return _period_means(_week_repeated(day[column].to_numpy(dtype=float) * 4.0, steps), minutes, offset)

    load = periods(quantile)
    forecast_periods = len(_period_means(np.zeros(len(day)), minutes, offset))
    used = {"model": f"{model.name}@{model.version}", "origin": str(day["origin"].iloc[0]),
            "period_minutes": shown_minutes(minutes), "days": int(days), "base_load_kw": np.round(load, 3).tolist(),
            "kwh_p50": round(float(day["p50"].sum()), 3), "co2_t_p50": round(float(day["co2_p50"].sum()), 6),
            "quantile": quantile}
    if len(load) > forecast_periods:
        used["repeated_week_periods"] = len(load) - forecast_periods
    if quantile != "p50":  # the cap counts the quantile's load; the plan's kWh and CO2 stay the median's
        used["base_load_kw_p50"] = np.round(periods("p50"), 3).tolist()
    if clock is not None:
        used["plan_start"] = clock.at(0)
        used["offset_minutes"] = shown_minutes(offset)  # from the origin's 00:00 to the plan's time 0
    if day.attrs.get("warnings") or note:  # the meter's gaps: the planner sees them as a forecast's caller does
        used["warnings"] = [*day.attrs.get("warnings", []), *([note] if note else [])]
    return used


MAX_REPEATED_DAYS = 28  # a plan longer than the forecast days gets the forecast week again, up to this many days


def _week_repeated(kw, steps: int):  # noqa: ANN001, ANN202 - numpy arrays
    """``kw`` (one value per 15-minute step from the first forecast day's 00:00) extended to ``steps`` by its last
    week again, each later step the one a week (672 steps) before it: the same weekday and time of day, whatever
    the plan's period or the clock's time of day."""
    import numpy as np

    n, week = len(kw), 7 * 96
    if steps <= n or n < week:
        return kw
    extra = np.arange(n, steps)
    return np.concatenate([kw, kw[n - week + (extra - n) % week]])


def _period_means(kw, minutes: float, offset: float):  # noqa: ANN001, ANN202 - numpy arrays
    """The mean of ``kw`` (one value per 15-minute step from the origin's 00:00) over each plan period of
    ``minutes`` from ``offset`` minutes after the origin (the plan's time 0) to the steps' end."""
    import numpy as np

    n, end = len(kw), len(kw) * 15.0
    lo = offset + np.arange(max(1, int(-(-(end - offset) // minutes)))) * minutes
    lo = lo[lo < end]  # not a last period starting at the day's end by rounding (1440 / (60 / 3600)): a load of 0
    # each plan period: the mean of the 15-minute steps it covers, weighted by their overlap, for all periods at
    # once: its first and last step's share plus the whole steps between, over the sum of those weights (a
    # difference of the day's running total would lose the digits of a period a sliver wide)
    hi = np.minimum(lo + minutes, end)
    first = np.minimum(lo // 15, n - 1).astype(int)
    last = np.maximum(np.ceil(hi / 15).astype(int) - 1, first)
    same = first == last
    w_first = np.maximum(np.where(same, hi, (first + 1) * 15.0) - lo, 0.0)
    w_last = np.where(same, 0.0, np.maximum(hi - last * 15.0, 0.0))
    whole = np.concatenate(([0.0], np.cumsum(kw)))  # kW summed over the steps before each step
    inner = np.where(same, 0.0, whole[last] - whole[np.minimum(first + 1, last)]) * 15.0
    weight = w_first + np.maximum(last - first - 1, 0) * 15.0 + w_last
    total = kw[first] * w_first + inner + kw[last] * w_last
    return np.divide(total, weight, out=np.zeros(len(lo)), where=weight > 0)


def with_plant_load(request: dict, load: dict) -> dict:
    """``request`` whose problem takes the forecast load (``plant_load``) as ``energy.base_load_kw``, unless the
    problem gives its own; the answer's ``linked.energy_model`` says what was used."""
    problem = dict(request["problem"])
    energy = dict(problem["energy"])
    own = bool(energy.get("base_load_kw"))
    if not own:
        energy["base_load_kw"] = load["base_load_kw"]
    problem["energy"] = energy
    return {**request, "problem": problem, "energy_forecast": {**load, "planner_base_load_kept": own}}


# the request fields that run another module's model, and that module
LINKED_FIELDS = {"maintenance": "maintenance", "remaining_life": "maintenance", "energy_forecast": "energy"}


@dataclass
class Linked:
    """A request whose linked fields are checked (:func:`check_linked`) and may run (:func:`run_linked`)."""

    request: dict
    problem: object  # the parsed problem (optimization.problem.SchedulingProblem)
    fields: tuple[str, ...]  # the linked fields to run, in LINKED_FIELDS' order


def check_linked(request: dict, modules: set[str], limit: int) -> Linked | None:
    """What can refuse ``request``'s linked fields, checked before any model is admitted or runs: their sizes (as
    the partner module's own endpoint takes them: ``limit`` rows), the forecast's records and periods, and the whole
    problem as it stands. None where no linked model runs (none given, or its module is not held: ``prepare`` then
    notes it). Blocking (the problem is parsed): the API calls it in a worker thread, ``sfai schedule solve`` too."""
    from serving.predictions import check_batch

    fields = tuple(f for f, module in LINKED_FIELDS.items() if request.get(f) is not None and module in modules)
    if not fields:
        return None
    for f in ("maintenance", "remaining_life"):
        if f in fields:
            check_batch(len(request[f]["machines"]), limit, f"{f} machines")
    if "energy_forecast" in fields:
        check_plant_load(request["energy_forecast"], limit)
        load_period_minutes(request["problem"].get("energy"))
    return Linked(request, prepare(request, modules)[0], fields)


def run_linked(platform, tenant: str, linked: Linked, calendar: Callable[[], object],  # noqa: ANN001
               on_model: Callable[[str, str], None] | None = None) -> dict:
    """The request with its linked fields run, one after another: the failure model's risks, the rul model's lives,
    the energy model's load on the tenant's plant calendar (``calendar()``, read only for a load and set in this
    thread, the one that forecasts, as the energy route sets it). ``on_model(field, "name@version")`` hears each
    model used. Blocking: the API runs it in the tenant's scoring turn."""
    from models.energy.calendar import PLANT

    out = linked.request
    if "maintenance" in linked.fields:
        risks = machine_risk(platform, tenant, out["maintenance"])
        out = with_machine_risk(out, risks)
        if on_model is not None:
            on_model("maintenance", risks["model"])
    if "remaining_life" in linked.fields:
        lives = machine_life(platform, tenant, out["remaining_life"])
        out = with_machine_life(out, lives)
        if on_model is not None:
            on_model("remaining_life", lives["model"])
    if "energy_forecast" in linked.fields:
        problem = linked.problem
        energy = out["problem"].get("energy")
        if problem.energy is not None:  # its unit as parsed: the clock's where the problem gives only that
            energy = {**energy, "hours_per_unit": problem.energy.hours_per_unit}
        span = plan_minutes(out["problem"], energy)  # the plan's length, walked once
        token = PLANT.set(calendar())
        try:
            forecast = plant_load(platform, tenant, out["energy_forecast"], energy, forecast_days(span),
                                  clock=problem.clock, plan_minutes=span)
        finally:
            PLANT.reset(token)
        out = with_plant_load(out, forecast)
        if on_model is not None:
            on_model("energy_forecast", forecast["model"])
    return out


def plan_size(doc: dict) -> tuple[int, int, int]:
    """(machines, operations, eligible (operation, machine) pairs) of a JSON problem, counted before it is parsed:
    a part without the expected shape counts nothing here (``problem_from_dict`` names it)."""
    machines = doc.get("machines")
    jobs = doc.get("jobs")
    operations = alternatives = 0
    for job in jobs if isinstance(jobs, list) else ():
        ops = job.get("operations") if isinstance(job, dict) else None
        if isinstance(ops, list):
            operations += len(ops)
            alternatives += sum(len(o["machines"]) for o in ops
                                if isinstance(o, dict) and isinstance(o.get("machines"), dict))
    return (len(machines) if isinstance(machines, list) else 0), operations, alternatives


def check_plan_size(doc: dict, settings: Settings, *, background: bool) -> None:
    """422 for a plan past the server's caps (``Settings.scheduling_max_*``), checked before the problem is parsed
    or a partner model runs: the solver's time limit does not bound building the model, which grows with the
    operations, their eligible machines and the machines."""
    machines, operations, alternatives = plan_size(doc)
    most, most_now = settings.scheduling_max_operations, settings.scheduling_max_solve_operations
    if background and operations > most:
        raise InvalidInput(f"the plan has {operations:,} operations; a background solve takes at most {most:,} "
                           "here: split the plan (by line or by week)")
    if not background and operations > most_now:
        instead = (f"submit it as a background job (POST /v1/scheduling/jobs, up to {most:,} operations)"
                   if operations <= most else f"split the plan (background jobs take up to {most:,} operations)")
        raise InvalidInput(f"the plan has {operations:,} operations; a synchronous solve takes at most "
                           f"{most_now:,} here: {instead}")
    if machines > settings.scheduling_max_machines:
        raise InvalidInput(f"the plan has {machines:,} machines; at most {settings.scheduling_max_machines:,} per "
                           "plan here: split the plan (by line or by area)")
    if alternatives > settings.scheduling_max_alternatives:
        raise InvalidInput(f"the plan's operations name {alternatives:,} eligible machines in all (each operation's "
                           f"'machines'); at most {settings.scheduling_max_alternatives:,} per plan here: list only "
                           "the machines that can run each operation, or split the plan")


def prepare(request: dict, modules: set[str]) -> tuple[object, object, dict]:
    """(problem, params, linked) from an API request, dropping what the tenant's subscriptions don't cover."""
    from optimization.io import problem_from_dict
    from optimization.service import make_params

    doc = dict(request["problem"])
    linked: dict = {mod: key in doc and mod in modules for key, mod in PARTNERS}
    ignored = [(key, mod) for key, mod in PARTNERS if key in doc and mod not in modules]
    if request.get("maintenance") is not None:
        if "maintenance" in modules and "risks" in request["maintenance"]:
            linked["maintenance_model"] = request["maintenance"]
        elif "maintenance" not in modules:
            ignored.append(("maintenance", "maintenance"))
    if request.get("remaining_life") is not None:
        if "maintenance" in modules and "rul_cycles" in request["remaining_life"]:
            linked["remaining_life_model"] = request["remaining_life"]
        elif "maintenance" not in modules:
            ignored.append(("remaining_life", "maintenance"))
    if request.get("energy_forecast") is not None:
        if "energy" in modules and "base_load_kw" in request["energy_forecast"]:
            linked["energy_model"] = request["energy_forecast"]
        elif "energy" not in modules:
            ignored.append(("energy_forecast", "energy"))
    for key, _ in ignored:
        doc.pop(key, None)  # ("maintenance" and "remaining_life" are the request's, not the problem's)
    objective, weights, order = request.get("objective"), request.get("weights"), request.get("order")
    fallback = None
    try:
        problem = problem_from_dict(doc)
        if any(key == "energy" for key, _ in ignored) and _energy_only(objective, weights, order):
            # the plain behaviour without the energy module: the default objective, and the answer says so
            fallback = f"objective {objective!r} (needs the 'energy' module): solved for the default objective"
            objective, weights, order = None, None, None
        params = make_params(
            problem,
            time_limit_s=request["time_limit_s"],
            workers=request["workers"],
            seed=request["seed"],
            objective=objective,
            strategy=request.get("strategy", "auto"),
            weights=weights,
            order=order,
        )
    except (ValueError, KeyError, TypeError, OverflowError) as e:
        raise InvalidInput(f"invalid scheduling problem: {e}") from None
    if ignored:
        linked["ignored"] = [f"{key} (needs the '{mod}' module)" for key, mod in ignored]
        linked[DROPPED] = dropped_notes(request, ignored)
    if fallback:
        linked["ignored"].append(f"{fallback} {params.objective!r} instead")
    return problem, params, linked


DROPPED = "_dropped_notes"  # linked's private key: the notes of what was dropped, moved to the answer's notes
# what the plan leaves out, for each part a missing module drops
DROPPED_MEANS = {
    "energy": "the plan keeps no peak power cap (energy.peak_cap_kw), prices no tariff and counts no base load",
    "failure_risk": "the plan places no maintenance windows and weighs no failure risk",
    "maintenance": "no failure model gives the machines' risks",
    "remaining_life": "no remaining-life model gives the machines' risks",
    "energy_forecast": "no forecast gives the plant's base load",
}


def dropped_notes(request: dict, ignored: list[tuple[str, str]]) -> list[dict]:
    """A note (``type`` ``needs_module``) per module whose fields the plan was made without: the fields dropped
    (``energy.peak_cap_kw``, ``failure_risk.risks``, ``energy_forecast``...), the ``module`` and what the plan
    therefore leaves out. A planner's own hard limit (a peak cap) dropped only in ``linked.ignored`` was missed."""
    problem = request.get("problem") or {}
    out = []
    for module in dict.fromkeys(mod for _, mod in ignored):
        fields, means = [], []
        for key, mod in ignored:
            if mod != module:
                continue
            part = problem.get(key) if key in PARTNER_KEYS else request.get(key)
            given = [k for k, v in part.items() if v is not None] if isinstance(part, dict) else []
            fields += [f"{key}.{k}" for k in given] if key in PARTNER_KEYS and given else [key]
            means.append(DROPPED_MEANS.get(key, f"{key} is not used"))
        cap = problem["energy"].get("peak_cap_kw") if isinstance(problem.get("energy"), dict) else None
        if module == "energy" and isinstance(cap, int | float) and not isinstance(cap, bool):
            means.append(f"its operations may draw more than the cap of {cap:g} kW")
        named = ", ".join(fields[:12]) + (f" ({len(fields) - 12} more)" if len(fields) > 12 else "")
        out.append({"type": "needs_module", "module": module, "fields": fields, "message": (
            f"{named} {'was' if len(fields) == 1 else 'were'} left out of the plan: "
            f"{'it needs' if len(fields) == 1 else 'they need'} the '{module}' module, which this tenant does not "
            f"hold, so {'; '.join(means)}")})
    return out


def _energy_only(objective: str | None, weights: dict | None, order: list | None) -> bool:
    """Whether the requested objective weighs nothing but the energy cost."""
    if objective == "energy":
        return True
    if objective == "weighted" and weights:
        return {t for t, w in weights.items() if w} == {"energy"}
    if objective == "lex" and order:
        return set(order) == {"energy"}
    return False


def solve_prepared(problem, params, linked: dict, stop: threading.Event | None = None,  # noqa: ANN001
                   resume: SavedPlan | None = None, on_plan=None) -> dict:  # noqa: ANN001
    """The answer of a solve (the API's document). ``resume``: a background job's plan saved when its server
    stopped; the solve goes on from it for ``params.time_limit_s`` (the job's time left) and the answer's
    ``resumed`` says so; never worse than that plan. Without it ``resumed`` is null. ``on_plan``: called with each
    better plan between the solver's stages (``optimization.solver.solve``)."""
    from optimization.service import solve_document

    linked = dict(linked)
    dropped = linked.pop(DROPPED, [])
    _, doc = solve_document(problem, params, stop=stop, start=resume.schedule() if resume is not None else None,
                            on_plan=on_plan)
    doc["resumed"] = resume.resumed(doc, params.time_limit_s) if resume is not None else None
    if dropped:  # where a client looks for what the plan left out, beside the problem's own notes
        doc["notes"] = [*dropped, *doc["notes"]]
    used = linked.get("energy_model")
    if used and doc.get("makespan") is not None and not used.get("planner_base_load_kept"):
        # the plant's forecast over the plan itself (0 to its makespan), beside the forecast days' totals, and the
        # planned operations' energy on top of it: the plan's total and its CO2
        used = {**used, **_span_load(used, problem.energy, doc["makespan"])}
        linked["energy_model"] = used = {**used, **_plan_energy(used, problem, doc["gantt"])}
    if used and not used.get("planner_base_load_kept") and problem.energy.peak_cap_kw is not None and \
            used.get("period_minutes", 0) > PEAK_MINUTES + 1e-6:
        linked["energy_model"] = used = {**used, "peak_cap_note": (
            f"the peak cap ({problem.energy.peak_cap_kw:g} kW) is checked on each "
            f"{round(used['period_minutes'], 1):g}-minute period's mean forecast load, so within a period the "
            "plant's 15-minute demand (what KEPCO bills) can exceed it; plan with energy.period of 15 minutes "
            "(energy.period x energy.hours_per_unit = 0.25 h) to cap 15-minute demand")}
    if used and not used.get("planner_base_load_kept") and doc.get("makespan") is not None:
        covered = len(used["base_load_kw"]) * problem.energy.period  # plan units the forecast covers
        days = used.get("days", 1)  # a job queued by a release that forecast one day had no "days"
        repeated = used.get("repeated_week_periods", 0)
        if doc["makespan"] > covered:
            linked["energy_model"] = {**used, "note": (
                f"the plan runs to t={doc['makespan']}, past the {days} forecast day(s)"
                f"{' and the forecast week repeated' if repeated else ''} (to t={covered}): after that, the last "
                "value stands for the plant's load")}
        elif repeated and doc["makespan"] > covered - repeated * problem.energy.period:
            linked["energy_model"] = {**used, "note": (
                f"the plan runs past the {days} forecast days (to t={covered - repeated * problem.energy.period}): "
                "after them, the plant's load is the forecast week's again, the same weekday and time, not a "
                "forecast")}
    return {**doc, "linked": linked}


def _plan_energy(used: dict, problem, gantt: list[dict]) -> dict:  # noqa: ANN001 - a SchedulingProblem
    """The planned operations' kWh (each operation's ``power_kw`` x its hours on the machine, ``start`` to ``end``
    of its Gantt row, as ``optimization.solution.energy_profile`` counts its energy cost; setups and maintenance
    draw nothing there), and the plan's total: the plant's forecast base load over the plan (``plan_kwh_p50``) plus
    the operations, with its tCO2 at the forecast's emission factor."""
    unit_h = problem.energy.hours_per_unit
    ops = 0.0
    for row in gantt:
        if row.get("job") is None:  # a maintenance window
            continue
        power = problem.op((row["job"], row["operation"])).power_kw
        if power > 0 and row["end"] > row["start"]:
            ops += power * (row["end"] - row["start"]) * unit_h
    total = used.get("plan_kwh_p50", 0.0) + ops
    factor = used["co2_t_p50"] / used["kwh_p50"] if used.get("kwh_p50") else 0.0
    return {"plan_operations_kwh": round(ops, 3), "plan_total_kwh_p50": round(total, 3),
            "plan_total_co2_t_p50": round(total * factor, 6)}


def _span_load(used: dict, energy, makespan: int) -> dict:  # noqa: ANN001 - optimization.problem.EnergySettings
    """The plant's forecast kWh and tCO2 (p50) from the plan's time 0 to ``makespan``: the forecast periods' mean kW
    over the plan, the last one standing for the time after them (as the solver reads it), and the forecast's own
    emission factor. ``kwh_p50`` and ``co2_t_p50`` are the forecast days', which can be longer than the plan."""
    loads, unit_h = used.get("base_load_kw_p50", used["base_load_kw"]), energy.hours_per_unit
    kwh = 0.0
    for i, kw in enumerate(loads):
        lo = i * energy.period
        if lo >= makespan:
            break
        kwh += kw * (min(lo + energy.period, makespan) - lo) * unit_h
    end = len(loads) * energy.period
    if makespan > end and loads:
        kwh += loads[-1] * (makespan - end) * unit_h
    factor = used["co2_t_p50"] / used["kwh_p50"] if used.get("kwh_p50") else 0.0
    return {"plan_kwh_p50": round(kwh, 3), "plan_co2_t_p50": round(kwh * factor, 6)}


def solve_now(request: dict, modules: set[str]) -> dict:
    return solve_prepared(*prepare(request, modules))


class SyncSolves:
    """The gate of synchronous solves (``POST /v1/scheduling/solve``) in one process. Each holds a thread of the
    pool every plain route shares, for up to 30 s: one tenant sending 45 at once had every other tenant's calls
    wait seconds for a thread (security audit). A tenant runs at most ``per_tenant`` at once (more: 429
    ``too_many_solves``, the background jobs being the way for more), and the process at most ``total``: the
    others wait their turn holding no thread.

    The route takes the tenant's place (:meth:`slot`) before the plan's linked models run, so a solve refused with
    ``too_many_solves`` has run no model (it had run them all first, and its 429 gave the partner modules' quota
    back: 8 of 10 energy forecasts at once ran for free, security audit)."""

    def __init__(self, per_tenant: int, total: int) -> None:
        self.per_tenant, self.total = per_tenant, total
        self._running: dict[int, int] = {}
        self._lock = threading.Lock()
        self._loop: object | None = None
        self._turns: asyncio.Semaphore | None = None

    @asynccontextmanager
    async def slot(self, tenant_id: int) -> AsyncIterator[Callable[..., Awaitable]]:
        """One of the tenant's ``per_tenant`` places (429 ``too_many_solves`` where none is free), held until the
        block ends; yields ``solve(fn, *args)``: ``fn(*args)`` in a worker thread, in the process' turn (at most
        ``total`` at once)."""
        with self._lock:
            running = self._running.get(tenant_id, 0)
            if running >= self.per_tenant:
                raise TooManyRequests(
                    f"{running} synchronous solves of this tenant are running (at most {self.per_tenant} at once): "
                    "wait for one to finish, or send the plans as background jobs (POST /v1/scheduling/jobs)",
                    code="too_many_solves", retry_after_s=5)
            self._running[tenant_id] = running + 1

        async def solve(fn, *args):  # noqa: ANN001, ANN202
            loop = asyncio.get_running_loop()
            if self._loop is not loop:  # one semaphore per event loop (tests start several)
                self._loop, self._turns = loop, asyncio.Semaphore(self.total)
            async with self._turns:
                return await run_in_threadpool(fn, *args)

        try:
            yield solve
        finally:
            with self._lock:
                self._running[tenant_id] -= 1
                if not self._running[tenant_id]:
                    del self._running[tenant_id]

    async def run(self, tenant_id: int, fn, *args):  # noqa: ANN001, ANN202
        async with self.slot(tenant_id) as solve:
            return await solve(fn, *args)


MIN_RESUME_S = 5.0  # a resumed job solves at least this long (its whole limit where that is shorter)


def time_left(limit_s: float, spent_s: float) -> float:
    """The time limit of a resumed solve: the job's limit less the time its stopped solves spent, at least
    ``MIN_RESUME_S`` (a plan stopped a second before its limit still gets a short search, and its answer built)."""
    return max(min(MIN_RESUME_S, limit_s), limit_s - spent_s)


def _number(v: object, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"{what} is no number: {v!r:.40}")
    return float(v)


def _integer(v: object, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{what} is no integer: {v!r:.40}")
    return v


@dataclass(frozen=True)
class SavedPlan:
    """A running job's best plan when its server stopped gracefully, and the time spent on the job so far
    (``scheduling_jobs.saved_plan``, JSON text). The process that takes the job next solves from it for the time
    left (:func:`time_left`); a job stopped again adds its time and keeps the better plan."""

    objective: str  # the solve's objective (params.objective): a plan saved for another is not resumed
    score: tuple[float, ...]  # the solver's score of the plan, per stage (optimization.solver.score)
    objective_values: dict
    makespan: int | None
    assignments: tuple[tuple[str, str, str, int, int], ...]  # job, operation, machine, start, end
    maintenance: tuple[tuple[str, int, int, str], ...]  # machine, start, end, reason
    time_limit_s: float  # the job's own limit
    spent_s: float  # wall seconds its solves ran before
    cpu_s: float  # CPU seconds of the serving process meanwhile (all its threads; CP-SAT's included)
    stops: int  # graceful stops the job met
    saved_at: str

    @classmethod
    def from_doc(cls, doc: object, *, time_limit_s: float, spent_s: float, cpu_s: float,
                 stops: int) -> SavedPlan | None:
        """The plan of a stopped solve's answer (``solve_prepared``'s document); None where it has none (stopped
        before its first plan) or where it is no checked plan."""
        try:
            if doc.get("status") not in ("OPTIMAL", "FEASIBLE") or doc.get("violations"):
                return None
            rows = doc["gantt"]
            assignments = tuple((r["job"], r["operation"], r["machine"], r["start"], r["end"]) for r in rows
                                if r.get("job") is not None)
            maintenance = tuple((r["machine"], r["start"], r["end"], r.get("reason") or "failure risk")
                                for r in rows if r.get("job") is None)
            score = tuple(float(v) for v in doc["stats"]["score"])
            objective = str(doc["objective"])
        except (AttributeError, KeyError, TypeError, ValueError):
            return None
        if not assignments:
            return None
        return cls(objective=objective, score=score, objective_values=dict(doc.get("objective_values") or {}),
                   makespan=doc.get("makespan"), assignments=assignments, maintenance=maintenance,
                   time_limit_s=time_limit_s, spent_s=spent_s, cpu_s=cpu_s, stops=stops,
                   saved_at=utc_text(utcnow()))

    @classmethod
    def from_schedule(cls, plan, score: tuple, *, objective: str, time_limit_s: float, spent_s: float,  # noqa: ANN001
                      cpu_s: float, stops: int) -> SavedPlan:
        """A plan the solver handed between its stages (``on_plan``: checked, better than the one before), kept
        while the job runs against a crash of its process."""
        return cls(objective=objective, score=tuple(float(v) for v in score),
                   objective_values=dict(plan.objective or {}),
                   makespan=max((a.end for a in plan.assignments), default=None),
                   assignments=tuple((a.job, a.op, a.machine, a.start, a.end) for a in plan.assignments),
                   maintenance=tuple((w.machine, w.start, w.end, w.reason or "failure risk") for w in plan.maintenance),
                   time_limit_s=time_limit_s, spent_s=spent_s, cpu_s=cpu_s, stops=stops, saved_at=utc_text(utcnow()))

    def to_json(self) -> str:
        return json.dumps({"version": 1, "objective": self.objective, "score": list(self.score),
                           "objective_values": self.objective_values, "makespan": self.makespan,
                           "assignments": [list(a) for a in self.assignments],
                           "maintenance": [list(w) for w in self.maintenance], "time_limit_s": self.time_limit_s,
                           "spent_s": self.spent_s, "cpu_s": self.cpu_s, "stops": self.stops,
                           "saved_at": self.saved_at})

    @classmethod
    def from_json(cls, text: str) -> SavedPlan:
        """ValueError where ``text`` is not a saved plan as :meth:`to_json` writes it (a corrupted column)."""
        try:
            d = json.loads(text)
            if not isinstance(d, dict) or d.get("version") != 1:
                raise ValueError("not a saved plan of version 1")
            assignments = tuple((str(j), str(o), str(m), _integer(a, "a start"), _integer(b, "an end"))
                                for j, o, m, a, b in d["assignments"])
            maintenance = tuple((str(m), _integer(a, "a window's start"), _integer(b, "a window's end"), str(r))
                                for m, a, b, r in d["maintenance"])
            score = tuple(_number(v, "the score") for v in d["score"])
            values = d["objective_values"]
            if not isinstance(values, dict) or not score or not isinstance(d["objective"], str):
                raise ValueError("no objective")
            plan = cls(objective=d["objective"], score=score, objective_values=values,
                       makespan=d["makespan"] if d["makespan"] is None else _integer(d["makespan"], "the makespan"),
                       assignments=assignments, maintenance=maintenance,
                       time_limit_s=_number(d["time_limit_s"], "the time limit"),
                       spent_s=_number(d["spent_s"], "the time spent"), cpu_s=_number(d["cpu_s"], "the CPU time"),
                       stops=_integer(d["stops"], "the stops"), saved_at=str(d["saved_at"]))
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:  # JSONDecodeError: a ValueError
            raise ValueError(f"{type(e).__name__}: {e}"[:200]) from None
        if plan.spent_s < 0 or plan.stops < 1 or not plan.assignments:
            raise ValueError("a saved plan without operations, time spent or stop")
        return plan

    def schedule(self):  # noqa: ANN201 - an optimization.solution.Schedule (imported here: OR-Tools stays lazy)
        from optimization.solution import Assignment, MaintenanceWindow, Schedule

        return Schedule(assignments=[Assignment(*a) for a in self.assignments],
                        maintenance=[MaintenanceWindow(*w) for w in self.maintenance], status="FEASIBLE")

    def summary(self) -> dict:
        """What ``GET /v1/scheduling/jobs/{id}`` shows of a job handed back with this plan (the plan's rows are for
        the next solve, not the answer)."""
        return {"objective": self.score[0], "score": list(self.score), "objective_values": self.objective_values,
                "makespan": self.makespan, "operations": len(self.assignments), "time_limit_s": self.time_limit_s,
                "spent_s": round(self.spent_s, 3), "cpu_s": round(self.cpu_s, 3), "times_stopped": self.stops,
                "saved_at": self.saved_at}

    def resumed(self, doc: dict, time_left_s: float) -> dict:
        """The answer's ``resumed``: the saved plan resumed from, the time spent before and now."""
        return {"times_stopped": self.stops, "spent_before_s": round(self.spent_s, 3),
                "cpu_before_s": round(self.cpu_s, 3), "time_limit_s": self.time_limit_s,
                "time_left_s": round(time_left_s, 3), "objective": self.score[0], "score": list(self.score),
                "objective_values": self.objective_values, "makespan": self.makespan, "saved_at": self.saved_at,
                "kept_saved_plan": bool((doc.get("stats") or {}).get("resumed_plan_kept")),
                "total_s": round(self.spent_s + float(doc.get("wall_s") or 0.0), 3)}

    def fits(self, problem, params) -> bool:  # noqa: ANN001
        """Whether this plan can be resumed for ``problem`` and ``params`` (the job's, prepared again): the same
        objective, and still a valid plan of the problem (a log warning where not: the job is solved from
        scratch, with its whole time limit)."""
        from optimization.solver import checked_start

        if self.objective != params.objective:
            log.warning("the saved plan was made for the objective %r, the job now solves for %r: solving from "
                        "scratch", self.objective, params.objective)
            return False
        return checked_start(problem, self.schedule()) is not None


def _saved_summary(job_id: str, text: str | None) -> dict | None:
    """A job's saved plan as ``GET`` shows it (:meth:`SavedPlan.summary`); None where it has none or it is
    unreadable."""
    if not text:
        return None
    try:
        return SavedPlan.from_json(text).summary()
    except ValueError as e:
        log.warning("scheduling job %s: its saved plan is unreadable (%s)", job_id, e)
        return None


def _carried(before: SavedPlan | None, wall_s: float, cpu_s: float) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, stops) of a job whose solve ran ``wall_s`` and ``cpu_s`` from the plan it
    resumed (``before``; None: from scratch), counting the stop that hands it on."""
    if before is None:
        return wall_s, cpu_s, 1
    return wall_s + before.spent_s, cpu_s + before.cpu_s, 1 + before.stops


def _heartbeat(ref: weakref.ref, stop: threading.Event, period: float) -> None:
    """The heartbeat thread of a :class:`Jobs`: it holds the object weakly, so that one dropped without ``close``
    (a test's app) ends its thread instead of stamping a database that is gone."""
    while not stop.wait(period):
        jobs = ref()
        if jobs is None:
            return
        try:
            jobs.beat()
            jobs.write_checkpoints()
            jobs.adopt_stale()
        except Exception:  # noqa: BLE001 - a database that is away now is retried on the next beat
            log.warning("scheduling jobs: heartbeat failed", exc_info=True)
        del jobs


MAX_UNWANTED_SOLVES = 2  # cancelled solves running on per process beside the queue's own workers
CLOSE_WAIT_S = 10.0  # a stopping server waits this long at most for its stopped solves to return (~0.5 s)


class _Workers:
    """The background solves' threads: daemon threads taking tasks from a queue. ThreadPoolExecutor's threads are
    joined when Python exits, so a server stopped with SIGTERM while a solve ran (its job handed back to the queue by
    :meth:`Jobs.close`) said "stopped" and kept solving to the job's time limit at full CPU, beside the process that
    took the job over (operator's audit); a daemon thread ends with its process."""

    def __init__(self, workers: int, name: str) -> None:
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._name = name
        self._lock = threading.Lock()
        self._retiring: set[int] = set()  # threads that end once their task is done (a replacement took their place)
        self._made = 0
        self._threads: list[threading.Thread] = []
        for _ in range(workers):
            self._start()

    def _start(self) -> None:
        t = threading.Thread(target=self._loop, name=f"{self._name}_{self._made}", daemon=True)
        self._made += 1
        self._threads.append(t)
        t.start()

    def _loop(self) -> None:
        while (task := self._tasks.get()) is not None:
            try:
                task()
            except Exception:  # noqa: BLE001 - a task records its own failures; this keeps the worker alive
                log.exception("scheduling worker: a task failed")
            with self._lock:
                if threading.get_ident() in self._retiring:
                    self._retiring.discard(threading.get_ident())
                    self._threads.remove(threading.current_thread())
                    return

    def replace(self, ident: int) -> None:
        """Another thread takes the place of thread ``ident``, busy with a task whose result nobody wants any more
        (a cancelled job's solve, which cannot be stopped part-way): the queue goes on at once, and ``ident`` ends
        when its task does."""
        with self._lock:
            if ident in self._retiring or not any(t.ident == ident for t in self._threads):
                return
            if len(self._retiring) >= MAX_UNWANTED_SOLVES:
                # a tenant submitting and cancelling over and over would otherwise start solve after solve beside
                # the unwanted ones: past this many, the queue waits for them again
                return
            self._retiring.add(ident)
            self._start()

    def submit(self, task) -> None:  # noqa: ANN001
        self._tasks.put(task)

    def threads(self) -> list[threading.Thread]:
        with self._lock:
            return list(self._threads)

    def shutdown(self) -> None:
        """No task starts after this (those waiting are dropped); one under way runs on until the process ends."""
        while True:
            try:
                self._tasks.get_nowait()
            except queue.Empty:
                break
        for _ in self._threads:
            self._tasks.put(None)


class Jobs:
    """Background solves: one at a time per process (CP-SAT already uses the cores), state in the database.

    Limits: at most ``max_active`` queued or running jobs per tenant (more get 429), so that one tenant cannot
    fill the queue for everyone (the route caps each job's time limit: ``Settings.scheduling_max_job_s``).

    Fair between tenants: a worker that frees up takes the oldest queued job of the tenant with the fewest running
    jobs, among those the tenant whose last job started longest ago (round-robin), not the oldest job of all; so a
    tenant's job waits for at most one job per other waiting tenant, not for another tenant's whole queue."""

    def __init__(
        self,
        db: Database,
        workers: int = 1,
        *,
        max_job_s: float = 3600.0,
        max_active: int = 4,
        heartbeat_s: float = HEARTBEAT_S,
        stale_s: float = STALE_S,
    ) -> None:
        self.db = db
        self.max_job_s = max_job_s
        self.max_active = max_active
        self.heartbeat_s = heartbeat_s
        self.stale_s = stale_s
        self.owner = uuid.uuid4().hex  # this process, in the jobs it holds: a takeover writes another
        self._pool = _Workers(workers, "sfai-schedule")
        self._held: set[str] = set()  # the jobs this process has queued or running: it stamps them
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._lock = threading.Lock()
        # queued jobs per tenant, oldest first, (job id, prepared); running jobs and last start (a counter) per tenant
        self._queued: dict[int, deque[tuple[str, tuple]]] = {}
        self._running: dict[int, int] = {}
        self._last_start: dict[int, int] = {}
        self._starts = 0
        self._solving: dict[str, int] = {}  # running job -> the worker thread solving it
        self._stops: dict[str, threading.Event] = {}  # running job -> the event that stops its solve
        self._saved: dict[str, SavedPlan] = {}  # a job taken over with its saved plan -> that plan (adopt_stale)
        # running job -> its best plan so far, handed by the solver between its stages and not yet written: the
        # heartbeat writes it on the job (saved_plan), so that a killed process' job goes on from it (checkpoint)
        self._progress: dict[str, SavedPlan] = {}
        self._pending: dict[int, int] = {}  # calls admitted by reserve() whose job is not queued yet, per tenant
        self._pending_lock = threading.Lock()

    def active(self, tenant_id: int) -> int:
        """Queued or running jobs of a tenant. A job older than the whole queue's worth of time limits is not
        counted: its process stopped before it finished (it would never free its place otherwise)."""
        live_since = utcnow() - timedelta(seconds=self.max_active * self.max_job_s + 600)
        with self.db.session() as s:
            return s.scalar(
                select(func.count()).where(
                    SchedulingJob.tenant_id == tenant_id,
                    SchedulingJob.status.in_(("queued", "running")),
                    SchedulingJob.created_at >= live_since,
                )
            )

    def check_room(self, tenant_id: int, pending: int = 0, *, active: int | None = None) -> None:
        """429 ``too_many_jobs`` while the tenant has ``max_active`` jobs queued or running (with ``pending``: the
        calls of this process admitted and not queued yet, :meth:`reserve`). :meth:`submit` asks again, under the
        lock, as it queues the job."""
        if active is None:
            active = self.active(tenant_id)
        if active + pending >= self.max_active:
            more = f", and {pending} more being prepared" if pending else ""
            raise TooManyRequests(
                f"{active} background solves of this tenant are queued or running{more} (at most {self.max_active}); "
                "wait for one to finish, or solve smaller plans synchronously",
                code="too_many_jobs",
                retry_after_s=min(60.0, self.max_job_s),
            )

    def reserve(self, tenant_id: int) -> Callable[[], None]:
        """A place in the tenant's queue for a call whose linked models run before its job is submitted: 429
        ``too_many_jobs`` where its jobs queued or running and the calls of this process holding a place fill the
        ``max_active``, so that calls at once past the queue's room are refused before any of them runs a model
        (they had all passed :meth:`check_room`, run their models, and been refused by :meth:`submit`). Returns the
        place's release, for when the call ends (its job queued: :meth:`submit` releases it as it queues the job, in
        the same turn of its lock; or the call failed). The jobs are counted under that lock too, so that a job
        queued meanwhile is counted once: as a job or as a place, never neither nor both (review)."""
        with self._lock:
            active = self.active(tenant_id)
            with self._pending_lock:
                pending = self._pending.get(tenant_id, 0)
                self.check_room(tenant_id, pending, active=active)
                self._pending[tenant_id] = pending + 1
        released = False

        def release() -> None:
            nonlocal released
            with self._pending_lock:
                if released:
                    return
                released = True
                left = self._pending[tenant_id] - 1
                if left:
                    self._pending[tenant_id] = left
                else:
                    del self._pending[tenant_id]

        return release

    def replay(self, tenant_id: int, key: str, request_hash: str) -> dict | None:
        """The job this tenant made with the ``Idempotency-Key`` ``key`` within ``IDEMPOTENCY_S``, as :meth:`get`
        answers it; None where there is none (a key older than that is let go, and may make a new job). The same key
        with another request is a 409: which of the two did the caller mean?"""
        with self.db.session() as s:
            job = s.scalar(select(SchedulingJob).where(SchedulingJob.tenant_id == tenant_id,
                                                       SchedulingJob.idempotency_key == key))
            if job is None:
                return None
            if as_utc(job.created_at) < utcnow() - timedelta(seconds=IDEMPOTENCY_S):
                job.idempotency_key = None  # expired: the key is free again
                return None
            if job.request_hash != request_hash:
                raise reused(key, f"job {job.id}")
            job_id = job.id
        return self.get(tenant_id, job_id)

    def submit(self, tenant_id: int, request: dict, modules: set[str], *, key: str | None = None,
               request_hash: str | None = None, reserved: Callable[[], None] | None = None) -> dict:
        """Queue a background solve. With an ``Idempotency-Key`` (``key``, and ``request_hash``: the request's
        hash), at most one job per key and tenant: a concurrent call with the same key gets the job the first one
        made (the database's unique index decides which). ``reserved``: the release of the call's place
        (:meth:`reserve`), given back as the job is queued, under the lock the places are counted under; the
        queue's room is then checked with the other calls' places."""
        prepared = prepare(request, modules)  # a bad problem is a 422 now, not a failed job later
        job_id = uuid.uuid4().hex
        with self._lock:
            if key is not None and (done := self.replay(tenant_id, key, request_hash or "")) is not None:
                return done  # another call with this key made it meanwhile (in this process)
            with self._pending_lock:  # the other calls' places (this one's is in the count)
                others = self._pending.get(tenant_id, 0) - (reserved is not None)
            self.check_room(tenant_id, max(others, 0))
            try:
                with self.db.session() as s:
                    s.add(
                        SchedulingJob(
                            id=job_id,
                            tenant_id=tenant_id,
                            status="queued",
                            request=json.dumps(request),
                            created_at=utcnow(),
                            heartbeat_at=utcnow(),
                            owner=self.owner,
                            idempotency_key=key,
                            request_hash=request_hash if key is not None else None,
                        )
                    )
            except IntegrityError:  # another process made this key's job first
                if key is None:
                    raise
                done = self.replay(tenant_id, key, request_hash or "")
                if done is None:
                    raise
                return done
            self._queued.setdefault(tenant_id, deque()).append((job_id, prepared))
            self._held.add(job_id)
            if reserved is not None:  # the job counts from now on, its place no more: in one turn of the lock
                reserved()
        # one pool task per queued job; each runs whichever job is fairest when a worker takes it (see _next)
        self._pool.submit(self._run_next)
        return self.get(tenant_id, job_id)

    def _next(self) -> tuple[int, str, tuple] | None:
        """Takes the next job off the queue (the class docstring's rule) and counts it running; the caller holds
        the lock."""
        if not self._queued:
            return None
        tenant_id = min(self._queued, key=lambda t: (self._running.get(t, 0), self._last_start.get(t, -1)))
        queue = self._queued[tenant_id]
        job_id, prepared = queue.popleft()
        if not queue:
            del self._queued[tenant_id]
        self._running[tenant_id] = self._running.get(tenant_id, 0) + 1
        self._starts += 1
        self._last_start[tenant_id] = self._starts
        return tenant_id, job_id, prepared

    def _run_next(self) -> None:
        with self._lock:
            picked = self._next()
        if picked is None:
            return
        tenant_id, job_id, prepared = picked
        try:
            self._run(job_id, prepared, tenant_id)
        finally:
            with self._lock:
                self._held.discard(job_id)
                self._running[tenant_id] -= 1
                if not self._running[tenant_id]:
                    del self._running[tenant_id]

    def _run(self, job_id: str, prepared: tuple, tenant_id: int | None = None) -> None:
        if tenant_id is not None and "scheduling" not in active_subscriptions(self.db, tenant_id):
            # ended while the job waited: a job queued before the end is not started after it (it had been, and
            # its answer could only be read by subscribing again)
            self._update(job_id, status="failed", finished_at=utcnow(), was="queued",
                         error="the tenant's scheduling subscription ended before this job started: it was not run")
            return
        # the stop is registered before the job reads "running": a cancel that sees it running always finds it
        stop = threading.Event()
        with self._lock:
            self._solving[job_id] = threading.get_ident()
            self._stops[job_id] = stop
        if not self._update(job_id, status="running", started_at=utcnow(), was="queued"):
            with self._lock:
                self._solving.pop(job_id, None)
                self._stops.pop(job_id, None)
            return  # cancelled meanwhile, or taken over
        with self._lock:
            saved = self._saved.pop(job_id, None)
        limit = getattr(prepared[1], "time_limit_s", None)  # the job's own (a saved plan carries it on)
        extra: dict = {}
        try:
            if saved is not None and not saved.fits(prepared[0], prepared[1]):
                saved = None  # from scratch, as before: the whole time limit
            if saved is not None:
                limit = saved.time_limit_s
                left = time_left(limit, saved.spent_s)
                log.warning("scheduling job %s: going on from the plan saved when its server stopped (objective %g, "
                            "%.1f s of %g spent): %.1f s left", job_id, saved.score[0], saved.spent_s, limit, left)
                prepared = (prepared[0], replace(prepared[1], time_limit_s=left), *prepared[2:])
                extra["resume"] = saved
            t0, cpu0 = time.perf_counter(), time.process_time()
            if isinstance(limit, int | float):
                extra["on_plan"] = partial(self._checkpoint, job_id, prepared[0], prepared[1].objective,
                                           float(limit), saved, t0, cpu0)
            result = solve_prepared(*prepared, stop=stop, **extra)
        except Exception as e:  # noqa: BLE001 - recorded on the job
            log.exception("scheduling job %s failed", job_id)
            self._fail(job_id, e, was="running")
            return
        finally:
            with self._lock:
                self._solving.pop(job_id, None)
                self._stops.pop(job_id, None)
                self._progress.pop(job_id, None)
        if stop.is_set():  # cancelled, or the server is stopping: the plan of a cut-short solve is nobody's answer
            if self._stop.is_set():  # ... but the server's stop keeps it on the job, for the next process
                self._save(job_id, result, saved, limit, time.perf_counter() - t0, time.process_time() - cpu0)
            return
        self._update(job_id, status="done", result=json.dumps(result, default=str), finished_at=utcnow(),
                     saved_plan=None, was="running")

    def _checkpoint(self, job_id: str, problem, objective: str, limit: float, before: SavedPlan | None,  # noqa: ANN001
                    t0: float, cpu0: float, plan, plan_score: tuple) -> None:  # noqa: ANN001
        """``on_plan`` of a job's solve: its better plan, kept for the next heartbeat to write (the solver thread
        does no query)."""
        from optimization.solution import evaluate

        if not plan.objective:
            plan = replace(plan, objective=evaluate(problem, plan.assignments))
        spent, cpu, stops = _carried(before, time.perf_counter() - t0, time.process_time() - cpu0)
        kept = SavedPlan.from_schedule(plan, plan_score, objective=objective, time_limit_s=limit, spent_s=spent,
                                       cpu_s=cpu, stops=stops)  # stops: a crash that takes it up is the job's stop
        with self._lock:
            if job_id in self._solving:
                self._progress[job_id] = kept

    def write_checkpoints(self) -> None:
        """Writes each running job's best plan handed since the last beat on the job (``saved_plan``): where the
        process is killed, the process that takes the job over goes on from it (:meth:`adopt_stale`) instead of
        solving from scratch."""
        with self._lock:
            todo, self._progress = self._progress, {}
        for job_id, plan in todo.items():
            with self._lock:
                if job_id not in self._solving:  # ended meanwhile: its own end wrote what it keeps
                    continue
            self._update(job_id, saved_plan=plan.to_json(), was="running")

    def _save(self, job_id: str, result: object, before: SavedPlan | None, limit: float | None, wall_s: float,
              cpu_s: float) -> None:
        """Keeps a solve stopped by :meth:`close` on its job: its best plan (or, where it had none, the plan it
        was resumed from) and the time spent so far, for the process that takes the job next. A job stopped before
        its first plan keeps nothing: it is solved from scratch, as before."""
        if not isinstance(limit, int | float):
            return
        spent, cpu, stops = _carried(before, wall_s, cpu_s)
        plan = SavedPlan.from_doc(result, time_limit_s=float(limit), spent_s=spent, cpu_s=cpu, stops=stops)
        if before is not None and (plan is None or plan.score > before.score):
            plan = replace(before, spent_s=spent, cpu_s=cpu, stops=stops, saved_at=utc_text(utcnow()))
        if plan is None:
            return
        if self._update(job_id, saved_plan=plan.to_json(), was="running"):
            log.warning("scheduling job %s: stopped with the server; its best plan so far (objective %g, %.1f s of "
                        "%g spent) is kept for the process that takes it next", job_id, plan.score[0], spent, limit)

    def _fail(self, job_id: str, e: Exception, was: str | None = None) -> None:
        self._update(job_id, status="failed", error=f"{type(e).__name__}: {e}", finished_at=utcnow(), was=was)

    def _update(self, job_id: str, *, was: str | None = None, **values) -> bool:
        """Writes ``values`` on the job while this process owns it (and, with ``was``, while the job is in that
        state: a job cancelled meanwhile keeps "cancelled"); False (and nothing written) otherwise: another process
        took the job over (this one had stopped stamping it, and the other's answer stands), or it was cancelled."""
        cond = [SchedulingJob.id == job_id, SchedulingJob.owner == self.owner]
        if was is not None:
            cond.append(SchedulingJob.status == was)
        with self.db.session() as s:
            written = s.execute(update(SchedulingJob).where(*cond).values(**values)).rowcount
        if not written:
            log.warning("scheduling job %s was cancelled or taken over by another process; this one's %s is dropped",
                        job_id, values.get("status", "update"))
        return bool(written)

    def cancel(self, tenant_id: int, job_id: str) -> dict:
        """Cancel one of the tenant's jobs. A queued one is never started; a running one stops counting against the
        tenant's jobs at once, its solve is stopped (within about half a second where this process runs it, at the
        next heartbeat where another does) and its plan dropped. 409 ``job_finished`` for a job already done,
        failed or cancelled (another tenant's job: 404)."""
        with self._lock:
            for _ in range(3):  # the job may start or finish between the read and the write: read it again
                with self.db.session() as s:
                    job = s.scalar(select(SchedulingJob).where(SchedulingJob.id == job_id,
                                                               SchedulingJob.tenant_id == tenant_id))
                    if job is None:
                        raise NotFound(f"scheduling job {job_id!r} not found")
                    was = job.status
                    if was not in ("queued", "running"):
                        raise Conflict(f"scheduling job {job_id} is {was}: there is nothing to cancel",
                                       code="job_finished")
                    now = utcnow()
                    if was == "running":
                        error = "cancelled while running: its solve was stopped and its plan dropped"
                    else:
                        error = "cancelled before it started"
                    # written only while the job is still as read: a solve that finished meanwhile keeps "done"
                    written = s.execute(
                        update(SchedulingJob).where(SchedulingJob.id == job_id, SchedulingJob.status == was)
                        .values(status="cancelled", finished_at=now, error=error, saved_plan=None)
                    ).rowcount
                if written:
                    break
            else:
                raise Conflict(f"scheduling job {job_id} changed state while it was being cancelled: try again",
                               code="job_busy")
            self._saved.pop(job_id, None)
            if was == "running":
                self._let_go(job_id)  # where this process solves it; another process does at its next beat
            queue = self._queued.get(tenant_id)
            if queue is not None:  # this process holds it queued: off the queue, and no longer stamped
                kept = deque(x for x in queue if x[0] != job_id)
                if kept:
                    self._queued[tenant_id] = kept
                else:
                    del self._queued[tenant_id]
                if len(kept) < len(queue):
                    self._held.discard(job_id)
        return self.get(tenant_id, job_id)

    def recent(self, tenant_id: int, *, status: str | None = None, limit: int = 50,
               before: str | None = None) -> list[dict]:
        """The tenant's jobs, newest first, without their plans (one query of the summary columns; ``GET
        /v1/scheduling/jobs/{id}`` has each job's plan). ``before``: the last job of the previous page, whose
        successors in that order come next (only the newest 500 could be listed: MES integrator's audit)."""
        j = SchedulingJob
        stmt = select(j.id, j.status, j.created_at, j.started_at, j.finished_at, j.error)
        stmt = stmt.where(j.tenant_id == tenant_id)
        if status is not None:
            stmt = stmt.where(j.status == status)
        with self.db.session() as s:
            if before is not None:
                at = s.scalar(select(j.created_at).where(j.tenant_id == tenant_id, j.id == before))
                if at is None:
                    raise InvalidInput(f"before={before[:40]!r} is not one of this tenant's jobs: give the job_id of "
                                       "the last job of the previous page")
                stmt = stmt.where((j.created_at < at) | ((j.created_at == at) & (j.id > before)))
            rows = s.execute(stmt.order_by(j.created_at.desc(), j.id).limit(limit)).all()
        return [{"job_id": r.id, "status": r.status, "created_at": utc_text(r.created_at),
                 "started_at": utc_text(r.started_at), "finished_at": utc_text(r.finished_at), "error": r.error}
                for r in rows]

    def get(self, tenant_id: int, job_id: str) -> dict:
        with self.db.session() as s:
            job = s.scalar(
                select(SchedulingJob).where(SchedulingJob.id == job_id, SchedulingJob.tenant_id == tenant_id)
            )
            if job is None:
                raise NotFound(f"scheduling job {job_id!r} not found")
            return {
                "job_id": job.id,
                "status": job.status,
                "created_at": utc_text(job.created_at),
                "started_at": utc_text(job.started_at),
                "finished_at": utc_text(job.finished_at),
                "result": json.loads(job.result) if job.result else None,
                "error": job.error,
                "saved_plan": _saved_summary(job.id, job.saved_plan) if job.status in ("queued", "running") else None,
            }

    # jobs that outlive their process ---------------------------------------------------------------------------
    def start(self) -> None:
        """Stamps this process' jobs every ``heartbeat_s`` and takes over jobs whose process stopped (a serving
        process calls it; a CLI that only reads jobs does not)."""
        if self._beat is None:
            self._beat = threading.Thread(
                target=_heartbeat, args=(weakref.ref(self), self._stop, self.heartbeat_s),
                name="sfai-schedule-heartbeat", daemon=True,
            )
            self._beat.start()

    def beat(self) -> None:
        """Stamps every job this process holds (one statement), and gives up the workers of its running jobs that
        were cancelled through another process (:meth:`_let_go`)."""
        with self._lock:
            held = list(self._held)
            solving = list(self._solving)
        if held:
            with self.db.session() as s:
                s.execute(
                    update(SchedulingJob)
                    .where(SchedulingJob.id.in_(held), SchedulingJob.owner == self.owner)
                    .values(heartbeat_at=utcnow())
                )
        if solving:
            with self.db.session() as s:
                gone = s.scalars(select(SchedulingJob.id).where(SchedulingJob.id.in_(solving),
                                                                SchedulingJob.status == "cancelled")).all()
            with self._lock:
                for job_id in gone:
                    self._let_go(job_id)

    def _let_go(self, job_id: str) -> None:
        """A cancelled job's solve is stopped (it returns within about half a second), and its worker replaced, so
        the next job starts now, not after the stopped solve's last steps (building the answer of a 5,000-operation
        plan takes 0.1-0.3 s more). Before solves could be stopped, a cancelled hour-long job ran on to its time
        limit and, with one worker per process, held every tenant's queue for that hour (security audit). The
        caller holds the lock."""
        stop = self._stops.pop(job_id, None)
        if stop is not None:
            stop.set()
        ident = self._solving.pop(job_id, None)
        if ident is not None:
            self._pool.replace(ident)

    def _stale(self, now):  # noqa: ANN001, ANN202 - a SQL condition
        return stale_jobs(now, self.stale_s)

    def adopt_stale(self) -> list[str]:
        """Takes over the jobs whose process stopped stamping them (``stale_s``): each is claimed by a conditional
        update, so that of several live processes one gets it, and queued again here from its stored request, with
        the tenant's subscriptions of now. Returns the ids taken."""

        now = utcnow()
        with self.db.session() as s:
            candidates = s.execute(
                select(SchedulingJob.id, SchedulingJob.tenant_id, SchedulingJob.request, SchedulingJob.saved_plan)
                .where(self._stale(now))
            ).all()
        taken = []
        for job_id, tenant_id, request, saved_text in candidates:  # the request is stored once and never changes
            if self._stop.is_set():  # stopping: the jobs are for another process
                break
            with self.db.session() as s:
                claimed = s.execute(
                    update(SchedulingJob)
                    .where(SchedulingJob.id == job_id, self._stale(now))
                    .values(status="queued", started_at=None, heartbeat_at=utcnow(), owner=self.owner)
                ).rowcount
            if not claimed:
                continue
            log.warning("scheduling job %s: its server process stopped; solving it again here", job_id)
            try:
                prepared = prepare(json.loads(request), set(active_subscriptions(self.db, tenant_id)))
            except Exception as e:  # noqa: BLE001 - recorded on the job
                self._fail(job_id, e)
                continue
            saved = None
            if saved_text:  # handed back by a graceful stop with its best plan: solved on from it (_run)
                try:
                    saved = SavedPlan.from_json(saved_text)
                except ValueError as e:
                    log.warning("scheduling job %s: its saved plan is unreadable (%s): solving it from scratch",
                                job_id, e)
            with self._lock:
                if saved is not None:
                    self._saved[job_id] = saved
                self._queued.setdefault(tenant_id, deque()).append((job_id, prepared))
                self._held.add(job_id)
            self._pool.submit(self._run_next)
            taken.append(job_id)
        return taken

    def close(self) -> None:
        """Stops taking jobs, and hands back the ones this process holds unfinished (a graceful stop: a deploy, a
        scale-in): their stamp is cleared, so that another process (or this server once restarted) takes them at
        its next heartbeat, not after ``stale_s``. A solve still running here is stopped; it writes nothing."""
        self._stop.set()
        if self._beat is not None and self._beat is not threading.current_thread():
            self._beat.join(timeout=10)  # a beat under way could take back the jobs handed back below
        self._pool.shutdown()
        with self._lock:  # the solves under way stop too (their jobs are handed back below, to be solved again)
            held = list(self._held)  # as they are now: a stopped solve's job leaves the set when it returns
            for stop in self._stops.values():
                stop.set()
            solving = set(self._solving.values())
        # and return before the process ends: a solver's native threads torn down by the exit while they run abort
        # the process ("terminate called without an active exception", exit -6 instead of 0)
        deadline = time.monotonic() + CLOSE_WAIT_S
        for t in self._pool.threads():
            if t.ident in solving and t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
        if not held:
            return
        try:
            with self.db.session() as s:
                s.execute(
                    update(SchedulingJob)
                    .where(SchedulingJob.id.in_(held), SchedulingJob.owner == self.owner,
                           SchedulingJob.status.in_(("queued", "running")))
                    .values(heartbeat_at=RELEASED, owner=None)
                )
        except Exception:  # noqa: BLE001 - the database is away: the jobs are taken over once stale, as after a crash
            log.warning("scheduling jobs: could not hand back %d job(s) on stop", len(held), exc_info=True)
