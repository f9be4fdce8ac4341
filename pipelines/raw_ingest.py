"""Push ingest (REST ``POST /v1/ingest/{view}``, MQTT) into the feature views the pipelines build: an MES sends
the raw readings and the derived columns are computed here by the pipeline's own transforms, so the stored rows
are what ``sfai ingest <dataset>`` stores for the same readings.

- Row-local views (``ai4i_features``, ``secom_features``): derived columns left out are computed; derived columns
  sent are checked against the raw ones (float32 tolerance) and a contradiction is refused, naming the row and
  column. The stored values are always the computed ones.
- History views (``steel_energy_features``, ``cmapss_features``, ``c22_cycle_features``): lags and rolling
  statistics need each entity's preceding rows. They are read from the tenant's offline store, only as far back as
  the transform looks (its largest lag, or its largest window less one, in grid steps or rows), through the store's
  per-view cache (``OfflineStore.recent_rows``: a push reads the files written since the push before, not the
  view's every file), and the transform runs over those rows and the new ones. Rows must come in time order per
  entity: a row at or before the entity's latest stored row is refused, naming it (its lags were computed from the
  rows before it; storing it would leave the later rows' lags wrong). C-MAPSS regime normalisation uses the regimes
  fitted by the tenant's last ``sfai ingest cmapss`` (kept per FD subset, :func:`save_fit`).
- Readings a device does not measure (``Derivation.optional``; steel: everything but ``usage_kwh``, so a plant with a
  kWh meter only pushes its time and kWh) may be left out of a batch: they are stored null, never filled from the
  entity's earlier rows (the transform forward-fills a null that is sent, as the file pipeline fills a blank cell),
  and not checked (a null ``load_type`` that is sent is still refused). A batch without a required reading (a
  meter's ``usage_kwh``) is refused naming it; a null ``usage_kwh`` is a gap, as in the file.

Stored history holds float32 readings; the file pipeline computes windows from the file's float64 readings. A
float32 is read back as its shortest decimal (``3.17``), which is the file's float64 for any reading written with
at most 7 significant digits (meters and the C-MAPSS files are): then the features are bit-identical.

Views not built by the pipelines (a tenant's own ``sfai features apply``) never come here: ``FeatureStore.ingest``
asks only for views whose owner is ``pipelines`` and this module knows.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from feature_store.validate import conform, read_table
from feature_store.view import CREATED, TIMESTAMP, FeatureView, Field
from pipelines.adapters.ai4i import SENSOR_COLUMNS as AI4I_COLUMNS
from pipelines.adapters.ai4i import TYPES as AI4I_TYPES
from pipelines.adapters.cmapss import SENSOR_COLUMNS as CMAPSS_COLUMNS
from pipelines.adapters.cmapss import SENSORS as CMAPSS_SENSORS
from pipelines.adapters.cmapss import SETTINGS as CMAPSS_SETTINGS
from pipelines.adapters.secom import SENSOR_COLUMNS as SECOM_COLUMNS
from pipelines.adapters.steel_energy import LOAD_TYPES
from pipelines.adapters.steel_energy import METER_COLUMNS as STEEL_COLUMNS
from pipelines.adapters.steel_energy import TZ as STEEL_TZ
from pipelines.canonical import Column
from pipelines.demo import CYCLE_COLUMNS as C22_COLUMNS
from pipelines.transforms import injection, machining, semiconductor, steel, turbofan
from pipelines.transforms.regimes import RegimeModel, RegimeStats
from serving.errors import InvalidInput

OWNER = "pipelines"
# a derived column sent must match the computed one within this (float32 arithmetic on float32 readings passes; a
# value from other readings does not)
RTOL = ATOL = 1e-5


@dataclass(frozen=True)
class Derivation:
    """How a pipeline view's rows are made from raw readings."""

    view: str
    dataset: str
    raw: tuple[str, ...]  # the view's columns the sender gives (besides key and time)
    transform: Callable[..., pd.DataFrame]
    grid: str | None = None  # history views: "interval" (15-minute steps of the time), "cycle", "rows"
    lookback: int = 0  # history views: steps (or rows) before a new row that its features read
    history: tuple[str, ...] = ()  # stored columns read back as history (readings of the rows before)
    prepare: Callable[[pd.DataFrame], pd.DataFrame] | None = None  # view-shaped rows -> the transform's input
    fit: bool = False  # the transform takes the tenant's fitted parameters
    # the adapter's columns (ranges) and categories: a reading the file pipeline sets aside is refused
    columns: Mapping[str, Column] = field(default_factory=dict)
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # the clock of times sent without a UTC offset: the file pipeline's (a meter's dates are the plant's local time)
    local_tz: str = "UTC"
    # raw columns a sender may leave out, for a device that does not measure them (a plant with a kWh meter only):
    # stored as null, never filled from the entity's earlier rows; the others (``required``) must be sent
    optional: tuple[str, ...] = ()

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c for c in self.raw if c not in self.optional)

    @property
    def uses_history(self) -> bool:
        return self.grid is not None


def _reach(lags: tuple[int, ...], windows: tuple[int, ...]) -> int:
    """How many steps before a row its lags and windows read: the largest lag, the largest window less one."""
    return max(max(lags, default=0), max(windows, default=1) - 1)


def _steel_prepare(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["interval_start"] = df[TIMESTAMP] - steel.INTERVAL  # as the adapter keeps it: calendar of the start
    return df


def _cmapss_prepare(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["subset"] = df[turbofan.KEY].astype(str).str.split("-", n=1).str[0]
    return df


def check_readings(d: Derivation, df: pd.DataFrame, absent: tuple[str, ...] = ()) -> None:
    """Refuse the first reading the file pipeline would set aside (``pipelines.validate``): a number outside its
    column's range or not finite, a category not among those allowed. Pushes had stored them (a usage of -50 kWh, a
    power factor of 250 %, an AI4I type 'X' with every type flag 0), and a history view carried the value into the
    next rows' lags and rolling statistics. ``absent``: optional columns the batch left out (null throughout, not
    readings: a null ``load_type`` sent is still refused)."""
    for name, col in d.columns.items():
        if name not in df.columns or name in absent:
            continue
        v = df[name]
        if name in d.categories:
            bad = ~v.isin(d.categories[name]).to_numpy()
            why = f"is not {', '.join(d.categories[name])}"
        elif col.dtype in ("float64", "int64"):
            x = pd.to_numeric(v, errors="coerce").to_numpy(float)
            low = -np.inf if col.lo is None else col.lo
            high = np.inf if col.hi is None else col.hi
            bad = ~np.isnan(x) & (~np.isfinite(x) | (x < low) | (x > high))
            why = _out_of_range(float(x[bad.argmax()]), col) if bad.any() else ""
        else:
            continue
        if bad.any():
            i = int(bad.argmax())
            raise InvalidInput(f"row {i + 1}, column {name!r}: {_show(v.iloc[i])} {why} (the {d.dataset} pipeline "
                               "sets such a reading aside)")


def _out_of_range(x: float, col: Column) -> str:
    """Why a number is refused: outside its column's range (``-5 is outside 250 to 350 K``; a range open above:
    ``0 is below 1``), or not finite. An open end had been printed blank: ``0 is outside 1 to``."""
    unit = "" if col.unit in ("1", "?") else f" {col.unit}"  # dimensionless, or not known
    lo = None if col.lo is None else f"{col.lo:,g}{unit}"
    hi = None if col.hi is None else f"{col.hi:,g}{unit}"
    if lo is not None and hi is not None:
        return f"is outside {col.lo:,g} to {hi}"
    if lo is not None:
        return f"is below {lo}" if x < col.lo else f"is not a finite number (it must be at least {lo})"
    if hi is not None:
        return f"is above {hi}" if x > col.hi else f"is not a finite number (it must be at most {hi})"
    return "is not a finite number"


_STEEL_RAW = (*steel.READINGS, "load_type")
# a meter's push needs its time and kWh only (what the energy model forecasts from): a plant with a kWh meter leaves
# the reactive power, power factors, CO2 and load type out
_STEEL_OPTIONAL = tuple(c for c in _STEEL_RAW if c != "usage_kwh")
_CMAPSS_RAW = ("cycle", *CMAPSS_SETTINGS, *CMAPSS_SENSORS)
_C22_RAW = ("cycle_no", *injection.SIGNALS)

DERIVATIONS: dict[str, Derivation] = {
    d.view: d
    for d in (
        Derivation("ai4i_features", "ai4i", ("udi", "type", "air_temp_k", "process_temp_k", "rotational_speed_rpm",
                                              "torque_nm", "tool_wear_min"), machining.features,
                   columns=AI4I_COLUMNS, categories={"type": AI4I_TYPES}),
        Derivation("secom_features", "secom", tuple(c for c in semiconductor.FEATURES if c != "n_missing"),
                   semiconductor.features, columns=SECOM_COLUMNS),
        Derivation("steel_energy_features", "steel-energy", _STEEL_RAW, steel.features, grid="interval",
                   lookback=_reach(steel.LAGS, steel.WINDOWS), history=_STEEL_RAW, prepare=_steel_prepare,
                   columns=STEEL_COLUMNS, categories={"load_type": LOAD_TYPES}, local_tz=STEEL_TZ,
                   optional=_STEEL_OPTIONAL),
        Derivation("cmapss_features", "cmapss", _CMAPSS_RAW, turbofan.features, grid="cycle",
                   lookback=_reach(turbofan.LAGS, turbofan.WINDOWS), history=_CMAPSS_RAW, prepare=_cmapss_prepare,
                   fit=True, columns=CMAPSS_COLUMNS),
        Derivation("c22_cycle_features", "c22-demo", _C22_RAW, injection.features, grid="rows",
                   lookback=_reach((1,), injection.WINDOWS), history=_C22_RAW, columns=C22_COLUMNS),
    )
}


def derivation_for(view: FeatureView) -> Derivation | None:
    """The derivation of a registered pipeline view; None for any other view (nothing changes for it)."""
    if view.owner != OWNER:
        return None
    d = DERIVATIONS.get(view.name)
    if d is None:
        return None
    if not set(d.raw) <= set(view.feature_names):  # a declaration this code does not know: ingest it as it is
        return None
    return d


def derived_columns(view: FeatureView, d: Derivation) -> tuple[str, ...]:
    return tuple(n for n in view.feature_names if n not in d.raw)


# -- fitted parameters (C-MAPSS regimes), per tenant --------------------------------------------------------------

def fit_path(home: Path, tenant: str, dataset: str) -> Path:
    return Path(home) / "pipelines" / tenant / f"{dataset}.fit.json"


def save_fit(home: Path, tenant: str, dataset: str, params: object) -> None:
    """Keep a run's fitted parameters (C-MAPSS regimes per FD subset) for the push ingest of its views; a subset
    the run did not see keeps its earlier fit."""
    if not isinstance(params, turbofan.TurbofanParams):
        return
    path = fit_path(home, tenant, dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(path.read_text()) if path.exists() else {}
    for subset, model in params.regimes.items():
        st = params.stats[subset]
        old[subset] = {"columns": list(model.columns), "scale": list(model.scale),
                       "centers": [list(c) for c in model.centers], "stat_columns": list(st.columns),
                       "mean": st.mean.tolist(), "std": st.std.tolist()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # two runs: two files
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(old))
    os.replace(tmp, path)


def load_fit(home: Path, tenant: str, dataset: str) -> turbofan.TurbofanParams | None:
    path = fit_path(home, tenant, dataset)
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    regimes, stats = {}, {}
    for subset, d in data.items():
        regimes[subset] = RegimeModel(tuple(d["columns"]), tuple(d["scale"]), tuple(tuple(c) for c in d["centers"]))
        stats[subset] = RegimeStats(tuple(d["stat_columns"]), np.asarray(d["mean"], dtype=np.float64),
                                    np.asarray(d["std"], dtype=np.float64))
    return turbofan.TurbofanParams(regimes, stats)


# -- checking and typing the rows sent ----------------------------------------------------------------------------

_RAW_VIEWS: dict[tuple[str, str, tuple[str, ...]], FeatureView] = {}


def _wide(dtype: str) -> str:
    return "float64" if dtype == "float32" else dtype  # the file's readings are float64 until stored


def _raw_view(view: FeatureView, columns: tuple[str, ...]) -> FeatureView:
    """``view`` with only ``columns`` as features, floats wide: typed and checked like the view, not yet rounded."""
    key = (view.name, view.fingerprint(), columns)
    hit = _RAW_VIEWS.get(key)
    if hit is None:
        schema = [Field(name=c, dtype=_wide(view.feature(c).dtype)) for c in columns]
        hit = FeatureView(name=view.name, entity=view.entity, schema=schema, owner=view.owner)
        if len(_RAW_VIEWS) > 256:
            _RAW_VIEWS.clear()
        _RAW_VIEWS[key] = hit
    return hit


def _floats_as_written(values: pd.Series) -> pd.Series:
    """Stored float32 readings as the float64 the sender wrote: each float32's shortest decimal."""
    arr = values.to_numpy(dtype=np.float32, na_value=np.nan)
    return pd.Series(arr.astype(str).astype(np.float64), index=values.index)


def _history(store, view: FeatureView, d: Derivation, new: pd.DataFrame) -> pd.DataFrame:  # noqa: ANN001 - FeatureStore
    """The stored rows of the batch's entities that the new rows' features read (each entity's last ``lookback``
    steps before its first new row) and, to refuse late rows, each entity's rows from its first new row on: the
    latest written version of each (entity, time). Steel: every row from ``lookback`` intervals before the batch's
    first new row; cycles and rows: each entity's latest ``lookback + 1`` (the look-back, and the latest one, which
    tells a late row). Read through the offline store's per-view cache (``OfflineStore.recent_rows``): a push reads
    the files written since the push before, not the view's every file."""
    key = view.join_key
    first = new.groupby(key, sort=False)[TIMESTAMP].min()
    ids = [int(k) for k in first.index] if view.entity.dtype == "int64" else [str(k) for k in first.index]
    if d.grid == "interval":  # the time is the grid: the look-back's intervals, from the batch's first row
        reach = d.lookback * steel.INTERVAL
        got = store.offline.recent_rows(store.tenant, view, ids, d.history, since=first.min() - reach, retain=reach)
    else:
        got = store.offline.recent_rows(store.tenant, view, ids, d.history, last=int(d.lookback) + 1)
    if got.num_rows == 0:
        return pd.DataFrame()
    df = _as_read(got)
    df[TIMESTAMP] = pd.to_datetime(df[TIMESTAMP], utc=True)
    return df.sort_values([key, TIMESTAMP], kind="stable").reset_index(drop=True)


_NULLABLE = {pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int32Dtype()}


def _as_read(table: pa.Table) -> pd.DataFrame:
    """The history as a frame typed as the DuckDB read that gave it before (the derived rows do not change): a
    whole-number column with a missing value is pandas' nullable integer, not float."""
    df = table.to_pandas()
    for f in table.schema:
        if f.type in _NULLABLE and table.column(f.name).null_count:
            df[f.name] = table.column(f.name).to_pandas(types_mapper=_NULLABLE.get)
    return df


ALREADY_STORED = object()  # ``derive``'s answer where every row sent is stored already, as it was sent


def _not_stored_yet(view: FeatureView, d: Derivation, new: pd.DataFrame, hist: pd.DataFrame) -> pd.DataFrame:
    """``new`` without the rows the store holds already with the same readings: an MQTT message delivered again (the
    broker delivers at least once) or a batch retried without an Idempotency-Key. They had been refused as late
    rows (the MQTT subscriber set the message aside); a row of a stored time with other readings still is one."""
    if hist.empty:
        return new
    key = view.join_key
    cols = [c for c in d.history if c in new.columns and c in hist.columns]
    both = new[["_row", key, TIMESTAMP, *cols]].merge(hist[[key, TIMESTAMP, *cols]], on=[key, TIMESTAMP],
                                                      suffixes=("", "_stored"))
    if both.empty:
        return new
    same = np.ones(len(both), dtype=bool)
    for c in cols:
        a, b = both[c], both[f"{c}_stored"]
        if view.feature(c).dtype in ("float32", "float64"):  # as stored: float32, read back as its shortest decimal
            a, b = _floats_as_written(a), _floats_as_written(b)
            same &= ((a == b) | (a.isna() & b.isna())).to_numpy()
        else:
            same &= ((a.astype(object) == b.astype(object)) | (a.isna() & b.isna())).to_numpy()
    repeated = set(both["_row"][same])
    return new[~new["_row"].isin(repeated)].reset_index(drop=True) if repeated else new


def _late_rows(view: FeatureView, new: pd.DataFrame, hist: pd.DataFrame) -> None:
    if hist.empty:
        return
    key = view.join_key
    latest = hist.groupby(key, sort=False)[TIMESTAMP].max()
    last = new[key].map(latest)
    late = last.notna() & (new[TIMESTAMP] <= last)
    if late.any():
        i = int(np.flatnonzero(late.to_numpy())[0])
        r = new.iloc[i]
        raise InvalidInput(
            f"row {int(r['_row']) + 1}: {key} {r[key]!r} at {r[TIMESTAMP].isoformat()} is not after its latest stored "
            f"row ({last.iloc[i].isoformat()}); {view.name} derives lags and rolling statistics from each entity's "
            "earlier rows, so an entity's rows must arrive in time order: send only newer rows (a late row or a "
            "correction: ingest the history again from its file with sfai ingest)"
        )


def _look_back(view: FeatureView, d: Derivation, new: pd.DataFrame, hist: pd.DataFrame) -> pd.DataFrame:
    """The history rows before each entity's first new row that its features read."""
    key = view.join_key
    first = new.groupby(key, sort=False)[TIMESTAMP].min()
    hist = hist[hist[TIMESTAMP] < hist[key].map(first)]
    if hist.empty:
        return hist
    if d.grid == "rows":
        return hist.groupby(key, sort=False).tail(d.lookback)
    if d.grid == "cycle":
        first_cycle = new.groupby(key, sort=False)["cycle"].min()
        return hist[hist["cycle"] >= hist[key].map(first_cycle) - d.lookback]
    return hist  # "interval": read from the look-back's start


def derive(store, view: FeatureView, data, *, fmt: str | None = None, history: bool = True):  # noqa: ANN001, ANN201
    """``data`` (what ``FeatureStore.ingest`` takes) as a table of the view's columns with the derived ones
    computed; ``data`` itself for a view the pipelines do not build. ``history=False``: no stored rows read and no
    derived column checked (the times of a batch stored already, for its online rows)."""
    d = derivation_for(view)
    if d is None:
        return data
    derived = derived_columns(view, d)
    table = read_table(data, fmt=fmt)
    cols = table.column_names
    absent = tuple(c for c in d.optional if c not in cols)  # not measured by the sender: stored null
    if d.optional:
        _refuse_without_required(view, d, cols)
    if absent:
        table = _with_nulls(_raw_view(view, absent), table, absent)
    if all(c in cols for c in derived) and not history:
        return table
    key = view.join_key
    sent = tuple(c for c in derived if c in cols)
    created = CREATED in cols
    check = _raw_view(view, (*d.raw, *sent))
    typed = conform(check, table, max_skew_s=store.max_clock_skew_s if history else float("inf"),
                    naive_tz=d.local_tz)
    if not created:
        typed = typed.drop_columns([CREATED])
    df = typed.to_pandas()
    df[TIMESTAMP] = pd.to_datetime(df[TIMESTAMP], utc=True)
    if history:
        check_readings(d, df, absent)
    df["_row"] = np.arange(len(df))
    new = df.sort_values([key, TIMESTAMP], kind="stable").reset_index(drop=True)
    params = None
    if d.fit:
        params = load_fit(store.settings.home, store.tenant, d.dataset)
        subsets = set(_cmapss_prepare(new[[key]])["subset"])
        missing = sorted(subsets - set(params.regimes if params else {}))
        if missing:
            raise InvalidInput(
                f"{view.name}: no operating regimes fitted for {', '.join(missing)} in this tenant; run "
                f"sfai ingest {d.dataset} on a training file of that subset first (its regimes normalise the sensors)")
    inputs = new.assign(_new=True)
    if d.uses_history:
        # two rows of one entity and time in a batch: refused by ``conform`` already
        if history:
            hist = _history(store, view, d, new)
            new = _not_stored_yet(view, d, new, hist)
            if new.empty:
                return ALREADY_STORED
            inputs = new.assign(_new=True)
            _late_rows(view, new, hist)
            hist = _look_back(view, d, new, hist) if not hist.empty else hist
            if not hist.empty:
                hist = hist[[key, TIMESTAMP, *d.history]].copy()
                for c in d.history:
                    if view.feature(c).dtype == "float32":
                        hist[c] = _floats_as_written(hist[c])
                inputs = pd.concat([hist.assign(_new=False), new[[key, TIMESTAMP, *d.raw]].assign(_new=True)],
                                   ignore_index=True)
                # history rows come before the new ones within each entity (late rows were refused)
                inputs = inputs.sort_values([key, TIMESTAMP], kind="stable").reset_index(drop=True)
    if d.prepare is not None:
        inputs = d.prepare(inputs)
    try:
        out = d.transform(inputs, params) if d.fit else d.transform(inputs)
    except ValueError as e:  # a time off the 15-minute grid, cycles not increasing with time
        raise InvalidInput(f"{view.name}: {e}") from None
    # the transforms sort by (entity, time) stably: their rows are ``inputs``' rows in order
    out = out[inputs["_new"].to_numpy()].reset_index(drop=True)
    if absent:  # not measured: null, not the entity's last reading (the transform forward-fills a gap)
        none = np.zeros(len(out), dtype=bool)
        for c in absent:
            out[c] = out[c].where(none)  # missing throughout, in the column's own type
    # out is in (entity, time) order, as ``new``
    if sent and history:
        _check_sent(view, d, derived, new, out, sent)
    out = out.iloc[np.argsort(new["_row"].to_numpy(), kind="stable")].reset_index(drop=True)
    if created:
        out[CREATED] = new.sort_values("_row")[CREATED].to_numpy()  # ``new``: the rows sent less those stored already
    return pa.Table.from_pandas(out, preserve_index=False)


def _refuse_without_required(view: FeatureView, d: Derivation, cols: list[str]) -> None:
    """A batch that leaves out a column its view's readings cannot do without (a meter's ``usage_kwh``), named with
    what may be left out instead."""
    missing = [c for c in d.required if c not in cols]
    if missing:
        need = [view.join_key, TIMESTAMP, *d.required]
        raise InvalidInput(
            f"missing column {missing[0]!r} for feature view {view.name!r}: a reading needs "
            f"{', '.join(need[:-1])} and {need[-1]} (send null for a reading that is missing); "
            f"{', '.join(d.optional[:-1])} and {d.optional[-1]} may be left out where they are not measured"
        )


def _with_nulls(raw: FeatureView, table: pa.Table, absent: tuple[str, ...]) -> pa.Table:
    """``table`` with the optional columns it left out, null, typed as ``raw`` (:func:`_raw_view`) types them."""
    schema = raw.arrow_schema()
    for c in absent:
        table = table.append_column(pa.field(c, schema.field(c).type), pa.nulls(table.num_rows, schema.field(c).type))
    return table


def _show(value: object) -> str:
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)):
        return "an empty cell"
    if isinstance(value, float | np.floating):
        return f"{float(value):.7g}"
    return repr(value.item() if isinstance(value, np.generic) else value)


def _check_sent(
    view: FeatureView, d: Derivation, derived: tuple[str, ...], new: pd.DataFrame, out: pd.DataFrame,
    sent: tuple[str, ...],
) -> None:
    """A derived column sent must be the one computed from the readings (a null: not sent for that row)."""
    for c in sent:
        given = new[c]
        has = given.notna().to_numpy()
        if not has.any():
            continue
        computed = out[c]
        dtype = view.feature(c).dtype
        if dtype in ("float32", "float64"):
            a = given.to_numpy(dtype=np.float64, na_value=np.nan)
            b = computed.to_numpy(dtype=np.float64, na_value=np.nan)
            with np.errstate(invalid="ignore"):
                ok = np.isclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True)
        else:
            ok = (given.astype(object).to_numpy() == computed.astype(object).to_numpy())
        bad = has & ~ok
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidInput(
                f"row {int(new['_row'].iloc[i]) + 1}, column {c!r}: {_show(given.iloc[i])} contradicts the readings "
                f"(they give {_show(computed.iloc[i])}); {view.name} is built by the {d.dataset} pipeline, which "
                f"computes "
                f"{', '.join(derived)} from the raw readings: leave the derived columns out"
            )


# one push at a time per (tenant, history view) in this process: two concurrent pushes of one entity would each read
# the history without the other's rows
_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def lock_for(tenant: str, view: FeatureView) -> threading.Lock | None:
    d = derivation_for(view)
    if d is None or not d.uses_history:
        return None
    with _LOCKS_GUARD:
        return _LOCKS.setdefault((tenant, view.name), threading.Lock())
