"""What the web console needs beyond the public API: sample request bodies for the factory dashboard.

``GET /v1/console/samples`` answers, for each prediction endpoint, a small JSON body the dashboard can send
as it is: rows of the caller's own demo training files (``$SFAI_HOME/demo/<tenant>/``, written by
``sfai demo``) where they exist, else a few built-in rows. The energy body holds nine days of 15-minute meter
readings, so that the first forecast (the eighth midnight) can be drawn against the actual readings, which the
answer adds under ``actuals``; where the tenant keeps a meter's readings in its feature store, the energy body asks
for that meter's next day instead (``source: "store"``). Where the tenant's defect champion reads measurements
those rows lack (a model trained on SECOM reads hundreds), the defect body is made from the champion's own
training statistics instead (``source: "model"``). Any role may call it; a tenant only ever sees its own files.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from models.demo import ENDPOINTS as DEMO_ENDPOINTS
from models.families import get_family
from serving.deps import CallerDep, PlatformDep, platform_call
from serving.errors import SfaiError
from serving.handlers import SfaiRoute

log = logging.getLogger("sfai.console")

router = APIRouter(route_class=SfaiRoute, prefix="/v1/console", tags=["tenant"], dependencies=[Depends(platform_call)])

# family -> (subscription module, endpoint): the demo's endpoint table and the families' modules
ENDPOINTS = {family: (get_family(family).module, path) for family, path in DEMO_ENDPOINTS.items()}
FAILURE_ROWS = 8
DEFECT_ROWS = 8
RUL_UNITS = 4
ENERGY_DAYS = 9

_FAILURE_DROP = ("Machine failure", "TWF", "HDF", "PWF", "OSF", "RNF")
_RUL_SENSORS = (2, 3, 4, 7, 8, 9, 11, 12, 13, 14, 15, 17, 20, 21)
_RUL_BASE = {2: 642.5, 3: 1590.0, 4: 1408.0, 7: 553.4, 8: 2388.05, 9: 9060.0, 11: 47.45, 12: 521.5,
             13: 2388.06, 14: 8140.0, 15: 8.43, 17: 392.5, 20: 38.82, 21: 23.29}
_RUL_DRIFT = {2: 0.004, 3: 0.12, 4: 0.2, 7: -0.01, 8: 0.0015, 9: 0.08, 11: 0.005, 12: -0.008,
              13: 0.0015, 14: 0.06, 15: 0.0008, 17: 0.03, 20: -0.003, 21: -0.002}


def _builtin_failure() -> list[dict]:
    rows = []
    for i in range(FAILURE_ROWS):
        wear = (i * 31) % 240
        torque = 35.0 + (i * 7) % 30
        rows.append({"UDI": i + 1, "Product ID": f"IMM-{i + 1:02d}", "Type": "LMH"[i % 3],
                     "Air temperature [K]": round(298.0 + (i % 5) * 0.9, 1),
                     "Process temperature [K]": round(308.5 + (i % 4) * 0.6, 1),
                     "Rotational speed [rpm]": 1300 + (i * 97) % 500, "Torque [Nm]": round(torque, 1),
                     "Tool wear [min]": wear})
    return rows


def _builtin_defect() -> list[dict]:
    rows = []
    for i in range(DEFECT_ROWS):
        d = (i % 4) - 1.5
        rows.append({"row_id": f"imm-{i % 3 + 1:02d}-{4700 + i}", "f001": round(231.0 + d, 1),
                     "f002": round(60.0 - d * 0.4, 1), "f003": round(905.0 + d * 40, 1),
                     "f004": round(600.0 - d * 30, 1), "f005": round(1.2 + d * 0.05, 2),
                     "f006": round(16.5 + d * 1.2, 1), "f007": round(30.0 + d * 2, 1),
                     "f008": round(120.0 + d, 1), "f009": round(85.0 + d * 4, 1)})
    return rows


def _builtin_rul() -> list[dict]:
    rows = []
    for unit in range(1, RUL_UNITS + 1):
        age = 20 + unit * 45  # older units drift further
        for k in range(5):
            cycle = age + k
            rec = {"unit": unit, "cycle": cycle, "op_setting_1": 0.0, "op_setting_2": 0.0, "op_setting_3": 100.0}
            for s in _RUL_SENSORS:
                rec[f"sensor_{s}"] = round(_RUL_BASE[s] + _RUL_DRIFT[s] * cycle, 4)
            rows.append(rec)
    return rows


def _builtin_energy() -> list[dict]:
    start = datetime(2026, 3, 2)
    rows = []
    for k in range(1, ENERGY_DAYS * 96 + 1):
        t = start + timedelta(minutes=15 * k)
        hour = (t.hour + t.minute / 60.0) % 24
        working = t.weekday() < 5
        shape = max(0.0, math.sin(math.pi * (hour - 6) / 14)) if 6 <= hour <= 20 else 0.0
        kwh = 8.0 + (30.0 if working else 6.0) * shape + 1.5 * math.sin(k * 0.7)
        # stamped as the plant's file is: the interval's end, the 00:00 that closes a day under that day's date
        day = (t - timedelta(minutes=15)).strftime("%d/%m/%Y")
        rows.append({"date": f"{day} {t:%H:%M}", "Usage_kWh": round(kwh, 3)})
    return rows


def _actuals(records: list[dict]) -> list[dict]:
    """The last two days of meter readings, stamped as the forecast's steps are (the interval's end: a file's
    ``dd/mm/yyyy 00:00``, which closes that day, is the next day's 00:00), for drawing against the forecast."""
    import pandas as pd

    from models.energy.features import parse_dates

    last = records[-(2 * 96 + 1):]
    stamps = parse_dates(pd.Series([r["date"] for r in last]))
    return [{"timestamp": t.strftime("%Y-%m-%d %H:%M:%S"), "kwh": float(r["Usage_kWh"])}
            for t, r in zip(stamps, last, strict=True)]


def _from_demo(directory: Path, family: str) -> list[dict] | None:
    """Rows of the tenant's demo training file for ``family`` (labels dropped), or None if it has none."""
    import pandas as pd

    from models.demo import FILES

    path = directory / FILES[family]
    if not path.is_file():
        return None
    if family == "failure":
        frame = pd.read_csv(path).head(400)
        # a spread of risks: the highest tool wear and the lowest, interleaved
        frame = frame.sort_values("Tool wear [min]")
        frame = pd.concat([frame.head(FAILURE_ROWS // 2), frame.tail(FAILURE_ROWS // 2)])
        return frame.drop(columns=[c for c in _FAILURE_DROP if c in frame]).to_dict("records")
    if family == "defect":
        frame = pd.read_csv(path).tail(DEFECT_ROWS)
        return frame.drop(columns=[c for c in ("label",) if c in frame]).to_dict("records")
    if family == "rul":
        from models.rul.data import read_cmapss

        frame = read_cmapss(path)
        frame = frame[frame["unit"] <= RUL_UNITS]
        # each unit at a different age: its cycles up to a cut-off, of which the last five are sent
        parts = [g[g["cycle"] <= 30 + unit * 40].tail(5) for unit, g in frame.groupby("unit")]
        return pd.concat(parts).to_dict("records")
    return pd.read_csv(path).head(ENERGY_DAYS * 96 + 1).to_dict("records")


def _defect_rows_for(manifest: dict) -> list[dict] | None:
    """Wafers the tenant's defect champion can score: each measurement it reads, at its training median moved by
    up to 1.2 of its robust scale (a different mix per wafer), or None when the manifest lacks the statistics."""
    stats = manifest.get("feature_stats") or {}
    names, median, scale = stats.get("measurements"), stats.get("median"), stats.get("scale")
    if not (isinstance(names, list) and isinstance(median, list) and isinstance(scale, list)):
        return None
    if not names or not len(names) == len(median) == len(scale):
        return None
    # each sample its own mix of moves (-1.2 to +1.2 scales), the same on every call; the pattern of (i * 7 + j * 3)
    # % 5 had repeated every five samples (the sixth was the first again)
    moves = np.random.default_rng(0).integers(-2, 3, size=(DEFECT_ROWS, len(names)))
    rows = []
    for i in range(DEFECT_ROWS):
        row: dict = {"row_id": f"sample-{i + 1:02d}"}
        for j, (name, m, s) in enumerate(zip(names, median, scale, strict=True)):
            row[name] = float(f"{m + int(moves[i, j]) * 0.6 * s:.5g}")
        rows.append(row)
    return rows


def _fits(rows: list[dict], manifest: dict | None) -> bool:
    """Whether ``rows`` hold every measurement the defect champion (``manifest``; None: none) reads."""
    needed = ((manifest or {}).get("feature_stats") or {}).get("measurements") or []
    return all(name in rows[0] for name in needed) if rows else False


def build_samples(home: Path, tenant: str, defect_manifest: dict | None = None,
                  meter: tuple[str, str] | None = None) -> dict:
    """``defect_manifest``: the tenant's defect champion's, whose measurements the defect sample must hold (a model
    trained on SECOM reads hundreds, the demo's and the built-in rows nine). ``meter``: a (view, meter id) of the
    tenant's own meter readings in its feature store, whose next day the energy card then forecasts (``source:
    "store"``) instead of a sample."""
    directory = home / "demo" / tenant
    builtin = {"failure": _builtin_failure, "rul": _builtin_rul, "defect": _builtin_defect, "energy": _builtin_energy}
    out = {}
    for family, (module, endpoint) in ENDPOINTS.items():
        rows = None
        try:
            rows = _from_demo(directory, family)
        except (OSError, ValueError, KeyError):
            rows = None
        source = "demo" if rows is not None else "builtin"
        if rows is None:
            rows = builtin[family]()
        if family == "defect" and defect_manifest is not None and not _fits(rows, defect_manifest):
            fitted = _defect_rows_for(defect_manifest)
            if fitted is not None:
                rows, source = fitted, "model"
        body: dict = {"records": rows}
        entry = {"family": family, "module": module, "endpoint": endpoint, "source": source, "body": body}
        if family == "energy" and meter is not None:  # the plant's own meter: its next day, no readings to draw yet
            view, meter_id = meter
            entry.update(source="store", entity=meter_id,
                         body={"view": view, "entity_ids": [meter_id], "horizon": 96}, actuals=[])
        elif family == "energy":
            body["horizon"] = 96
            try:
                entry["actuals"] = _actuals(rows)
            except (SfaiError, ValueError, KeyError):  # dates the model would refuse too: no chart line
                entry["actuals"] = []
        out[family] = entry
    return out


@router.get("/samples")
async def read_samples(ctx: CallerDep, platform: PlatformDep) -> dict:
    """Small request bodies for each prediction endpoint, from this tenant's demo files or built in."""
    samples = await run_in_threadpool(_samples, platform, ctx.tenant)
    return {"tenant": ctx.tenant, "samples": samples}


def _samples(platform, tenant: str) -> dict:  # noqa: ANN001
    try:
        manifest = platform.models.champion(tenant, "defect").manifest
    except SfaiError:  # no defect model (yet), or its file is damaged: the sample is for the model to come
        manifest = None
    return build_samples(platform.settings.home, tenant, manifest, _store_meter(platform, tenant))


def _store_meter(platform, tenant: str) -> tuple[str, str] | None:  # noqa: ANN001
    """(view, meter id) of a meter whose 15-minute kWh the tenant keeps in its feature store (a view of the ``meter``
    entity with ``usage_kwh``, as ``sfai ingest steel-energy`` declares): the meter of its newest stored file. None
    where it keeps none (the card then shows a sample, marked as one: an energy manager had seen a built-in sample's
    day though the plant's meter was in the store)."""
    import pyarrow.parquet as pq

    try:
        fs = platform.feature_store(tenant)
        for view, _version in fs.list_views():
            if view.entity.name != "meter" or "usage_kwh" not in view.feature_names:
                continue
            files = fs.offline.files(tenant, view.name)
            if files:
                keys = pq.read_table(files[-1], columns=[view.join_key]).column(0)
                if len(keys):
                    return view.name, str(keys[len(keys) - 1].as_py())
    except Exception:  # noqa: BLE001 - the store failing or a file unreadable: the sample, as before
        log.warning("console samples: the feature store's meters could not be read", exc_info=True)
    return None
