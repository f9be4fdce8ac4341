"""Synthetic demo data for C22 (rubber and plastics): injection moulding machines, deterministic by seed.

No public data backs C22, so a fresh machine gets a working demo tenant from this generator instead of
``../shared``. The model, per machine (``machine_id = "imm-01"`` ...), 24/7 with planned stops:

- **Cycles.** One shot every ``cycle_s`` seconds (about 30 s) while the machine runs. Per cycle: melt
  temperature (°C, ~230), mould temperature (°C, ~60), injection pressure (bar, ~900), holding pressure (bar),
  injection, cooling and cycle time (s), screw speed (rpm), shot weight (g). Stops: a 30-minute tool
  change every day at 06:00 local and the Korean holidays off.
- **Wear.** Each machine's check ring wears linearly between services (every ``service_days`` days): shot
  weight drifts down and injection pressure up as it wears, which is what the maintenance module learns.
- **Defects.** Probability rises with melt-temperature deviation (burn / short shot), low holding pressure
  (sink marks), high injection pressure (flash) and wear; ``defect_type`` names the most likely cause.
- **Energy.** Each machine's meter gives kWh per 15 minutes: heater base load (~6 kW while on) plus
  ~0.02 kWh per shot scaled by injection pressure; ~0.4 kW idle when stopped.

Times are UTC instants of Korea-local schedules (Asia/Seoul). ``generate(seed=...)`` returns the same frames
for the same arguments on every machine.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.canonical import SOURCE_ROW, TIMESTAMP, Canonical, Column, Table, empty_rejects
from pipelines.transforms.calendar import KOREAN_HOLIDAYS
from serving.errors import InvalidInput

DATASET = "c22-demo"
KSIC = "C22"
TZ = "Asia/Seoul"

CYCLE_COLUMNS: dict[str, Column] = {
    "cycle_no": Column("1", 1, None, dtype="int64", description="shot counter of the machine"),
    "melt_temp_c": Column("degC", 150.0, 350.0),
    "mold_temp_c": Column("degC", 10.0, 150.0),
    "injection_pressure_bar": Column("bar", 0.0, 2500.0),
    "holding_pressure_bar": Column("bar", 0.0, 2000.0),
    "injection_time_s": Column("s", 0.0, 30.0),
    "cooling_time_s": Column("s", 0.0, 120.0),
    "cycle_time_s": Column("s", 1.0, 300.0),
    "screw_rpm": Column("rpm", 0.0, 400.0),
    "shot_weight_g": Column("g", 0.0, 5000.0),
}
LABEL_COLUMNS: dict[str, Column] = {
    "defect": Column("1", dtype="bool"),
    "defect_type": Column("1", dtype="string", description="none, short_shot, flash, sink_mark, burn"),
}
METER_COLUMNS: dict[str, Column] = {"usage_kwh": Column("kWh", 0.0, 100.0), "shots": Column("1", 0, None, "int64")}


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 0
    machines: int = 4
    start: str = "2018-03-05"  # a Monday, local date
    days: int = 7
    cycle_s: float = 30.0
    service_days: int = 10


def _running(local: pd.DatetimeIndex) -> np.ndarray:
    hol = np.isin(local.normalize().tz_localize(None).to_numpy().astype("datetime64[D]"),
                  np.array(sorted(np.datetime64(d, "D") for d in KOREAN_HOLIDAYS)))
    tool_change = (local.hour == 6) & (local.minute < 30)
    return ~hol & ~tool_change


MAX_SEED = 2**32 - 1
MAX_MACHINES = 99  # machine ids imm-01 .. imm-99
MAX_DAYS = 366
MAX_MACHINE_DAYS = 1_000  # machines x days: about 2,500 cycles each, so at most ~2.5M cycle rows


def _whole(name: str, value: object, lo: int, hi: int) -> int:
    """``value`` as an int in [lo, hi], or InvalidInput naming the option (``--machines``)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        n = operator.index(value)
    except TypeError:
        raise InvalidInput(f"{DATASET}: --{name} must be a whole number from {lo} to {hi:,}, not {value!r}") from None
    if not lo <= n <= hi:
        raise InvalidInput(f"{DATASET}: --{name} must be from {lo} to {hi:,}, not {n}")
    return n


def check_config(cfg: DemoConfig) -> DemoConfig:
    """Refuse options the generator cannot honour (a negative seed, more days than a timestamp holds, a
    billion machines) with a message naming the option, before any work is done."""
    _whole("seed", cfg.seed, 0, MAX_SEED)
    machines = _whole("machines", cfg.machines, 1, MAX_MACHINES)
    days = _whole("days", cfg.days, 1, MAX_DAYS)
    if machines * days > MAX_MACHINE_DAYS:
        raise InvalidInput(
            f"{DATASET}: --machines x --days is {machines * days:,} machine-days, more than the {MAX_MACHINE_DAYS:,} "
            "the demo generates; use fewer machines or days"
        )
    _whole("service_days", cfg.service_days, 1, MAX_DAYS)
    if not isinstance(cfg.cycle_s, int | float) or isinstance(cfg.cycle_s, bool) or not 1 <= cfg.cycle_s <= 300:
        raise InvalidInput(f"{DATASET}: cycle_s must be a number of seconds from 1 to 300, not {cfg.cycle_s!r}")
    try:
        pd.Timestamp(cfg.start, tz=TZ)
    except (TypeError, ValueError):
        raise InvalidInput(f"{DATASET}: start must be a date like 2018-03-05, not {cfg.start!r}") from None
    return cfg


def generate(config: DemoConfig | None = None, **overrides) -> Canonical:  # noqa: ANN003
    """Cycle sensor readings, defect labels and 15-minute machine energy for ``config.machines`` machines."""
    fields = DemoConfig.__dataclass_fields__
    unknown = sorted(k for k in overrides if k not in fields)
    if unknown:
        raise InvalidInput(f"{DATASET}: unknown option {unknown[0]!r}; expected one of {', '.join(fields)}")
    cfg = check_config(DemoConfig(**{**(config.__dict__ if config else {}), **overrides}))
    rng = np.random.default_rng(cfg.seed)
    start = pd.Timestamp(cfg.start, tz=TZ)
    end = start + pd.Timedelta(days=cfg.days)
    readings, labels, meters = [], [], []
    for m in range(cfg.machines):
        mid = f"imm-{m + 1:02d}"
        nominal = cfg.cycle_s * (1 + 0.15 * m)  # machines make different parts
        n = int((end - start).total_seconds() / nominal)
        jitter = rng.uniform(-0.5, 0.5, n)
        t_local = start + pd.to_timedelta(np.arange(n) * nominal + jitter + 0.5 * nominal, unit="s").round("ms")
        run = _running(pd.DatetimeIndex(t_local))
        t_local = t_local[run]
        k = len(t_local)
        age_days = ((t_local - start).total_seconds().to_numpy() / 86400 + m * 2.5) % cfg.service_days
        wear = age_days / cfg.service_days  # 0 after a service, 1 just before the next
        melt = 230 + 3 * m + rng.normal(0, 2.5, k)
        mold = 60 + rng.normal(0, 1.5, k)
        inj_p = 900 + 60 * wear + rng.normal(0, 15, k)
        hold_p = 600 + rng.normal(0, 25, k)
        inj_t = 1.2 + 0.1 * wear + rng.normal(0, 0.05, k)
        cool_t = nominal * 0.55 + rng.normal(0, 0.3, k)
        cyc_t = np.r_[nominal, np.diff((t_local - start).total_seconds().to_numpy())]
        cyc_t = np.clip(cyc_t, 1.0, 300.0)
        screw = 120 + rng.normal(0, 4, k)
        weight = 85 * (1 + 0.15 * m) * (1 - 0.02 * wear) + rng.normal(0, 0.4, k)
        risk = {
            "burn": 1 / (1 + np.exp(-(melt - (238 + 3 * m)) / 1.5)),
            "short_shot": 1 / (1 + np.exp(-((222 + 3 * m) - melt) / 1.5)) + 0.03 * wear,
            "sink_mark": 1 / (1 + np.exp(-(540 - hold_p) / 12)),
            "flash": 1 / (1 + np.exp(-(inj_p - 985) / 10)),
        }
        names = list(risk)
        r = np.column_stack([risk[x] for x in names]) * 0.5
        p_def = 1 - np.prod(1 - r, axis=1) + 0.004
        defect = rng.random(k) < p_def
        dtype = np.where(defect, np.array(names)[r.argmax(axis=1)], "none")
        ts = t_local.tz_convert("UTC")
        base = pd.DataFrame({"machine_id": mid, TIMESTAMP: ts})
        readings.append(base.assign(
            cycle_no=np.arange(1, k + 1), melt_temp_c=melt, mold_temp_c=mold, injection_pressure_bar=inj_p,
            holding_pressure_bar=hold_p, injection_time_s=inj_t, cooling_time_s=cool_t, cycle_time_s=cyc_t,
            screw_rpm=screw, shot_weight_g=weight,
        ))
        labels.append(base.assign(defect=defect, defect_type=dtype))
        # energy per 15 minutes, stamped at the interval end
        grid = pd.date_range(start + pd.Timedelta(minutes=15), end, freq="15min")
        slot = np.searchsorted(grid.as_unit("ns").asi8, t_local.as_unit("ns").asi8, side="left")
        shots = np.bincount(slot, minlength=len(grid) + 1)[: len(grid)]
        on = _running(grid - pd.Timedelta(minutes=15))
        kwh = np.where(on, 6.0 / 4, 0.4 / 4) + shots * 0.02 * (1 + 0.05 * m) + rng.normal(0, 0.05, len(grid))
        meters.append(pd.DataFrame({"machine_id": mid, TIMESTAMP: grid.tz_convert("UTC"),
                                    "usage_kwh": np.clip(kwh, 0, None), "shots": shots.astype("int64")}))
    frames = {"sensor_readings": readings, "labels": labels, "meter_readings": meters}
    cols = {"sensor_readings": CYCLE_COLUMNS, "labels": LABEL_COLUMNS, "meter_readings": METER_COLUMNS}
    notes = {"time": "synthetic, Korea-local schedule stored as UTC", "entity": "machine_id = imm-NN"}
    tables = {}
    for kind, parts in frames.items():
        df = pd.concat(parts, ignore_index=True)
        df.insert(2, SOURCE_ROW, np.arange(1, len(df) + 1, dtype=np.int64))
        df.insert(3, "file", "meter" if kind == "meter_readings" else "cycles")
        tables[kind] = Table(kind, "machine_id", cols[kind], df, notes)
    n = len(tables["sensor_readings"])
    return Canonical(DATASET, KSIC, f"pipelines.demo seed={cfg.seed}", tables, empty_rejects(), n)


def read(path=None, **overrides) -> Canonical:  # noqa: ANN001, ANN003
    """Adapter-shaped entry point: ``path`` is ignored (the data are generated)."""
    return generate(**overrides)
