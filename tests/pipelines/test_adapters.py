"""Each adapter on the real files: row, entity and label counts as the dataset READMEs give them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.adapters import ai4i, cmapss, secom, steel_energy
from tests.datasets import need

CMAPSS = {"FD001": (20_631, 100), "FD002": (53_759, 260), "FD003": (24_720, 100), "FD004": (61_249, 249)}


@pytest.mark.parametrize("subset", list(CMAPSS))
def test_cmapss_files(subset):
    c = cmapss.read(need(f"cmapss/train_{subset}.txt"))
    rows, engines = CMAPSS[subset]
    r = c["sensor_readings"]
    assert c.source_rows == len(r) == rows and r.entities == engines and not len(c.rejects)
    assert r.data["unit_id"].str.startswith(f"{subset}-u").all()
    assert len(c["events"]) == engines and c["labels"].data["failed"].sum() == engines
    assert (c["labels"].data.groupby("unit_id")["rul"].min() == 0).all()
    assert r.units["t30"] == "degR" and r.units["p30"] == "psia" and r.units["nc"] == "rpm"
    first = r.data.iloc[0]
    assert first["cycle"] == 1 and first["event_timestamp"] == pd.Timestamp("2000-01-01T00:00:00Z")
    assert (r.data["event_timestamp"] - cmapss.CYCLE_EPOCH == pd.to_timedelta(r.data["cycle"] - 1, unit="h")).all()


def test_cmapss_folder_namespaces_units():
    c = cmapss.read(need("cmapss"))
    assert len(c["sensor_readings"]) == 160_359 and c["sensor_readings"].entities == 709


def test_ai4i_counts():
    c = ai4i.read(need("ai4i2020/ai4i2020_train.csv"))
    r, lab = c["sensor_readings"], c["labels"].data
    assert c.source_rows == len(r) == 8000 and r.entities == 8000
    assert lab["machine_failure"].sum() == 254
    assert {m: int(lab[m].sum()) for m in ("twf", "hdf", "pwf", "osf", "rnf")} == {
        "twf": 31, "hdf": 96, "pwf": 67, "osf": 68, "rnf": 15
    }
    assert r.data["type"].value_counts().to_dict() == {"L": 4794, "M": 2391, "H": 815}
    assert len(c["events"]) == 254
    assert r.units == {**r.units, "air_temp_k": "K", "torque_nm": "N*m", "tool_wear_min": "min"}


def test_secom_counts():
    c = secom.read(need("secom/secom_train.csv"))
    r, lab = c["sensor_readings"], c["labels"].data
    assert c.source_rows == len(r) == 1254 and r.entities == 1254
    assert lab["label"].value_counts().to_dict() == {-1: 1173, 1: 81} and lab["defect"].sum() == 81
    assert int(r.data[secom.FEATURES].isna().sum().sum()) == 33_498
    ts = r.data["event_timestamp"]
    assert ts.min() >= pd.Timestamp("2008-07-01", tz="UTC") and ts.max() < pd.Timestamp("2008-11-01", tz="UTC")


def test_steel_counts_and_the_midnight_row():
    c = steel_energy.read(need("steel_energy/steel_industry_2018_jan_oct.csv"))
    m = c["meter_readings"]
    d = m.data
    assert c.source_rows == len(m) == 29_184 and m.entities == 1
    assert round(d["usage_kwh"].mean(), 3) == 27.891
    assert d["load_type"].value_counts().to_dict() == {"Light_Load": 14960, "Medium_Load": 8128, "Maximum_Load": 6096}
    local = d["event_timestamp"].dt.tz_convert("Asia/Seoul")
    # 01/01/2018 00:15 ... 31/10/2018 24:00 (the last row, stamped 31/10/2018 00:00, closes 31 October)
    assert local.iloc[0] == pd.Timestamp("2018-01-01 00:15", tz="Asia/Seoul")
    assert local.iloc[-1] == pd.Timestamp("2018-11-01 00:00", tz="Asia/Seoul")
    assert local.iloc[95] == pd.Timestamp("2018-01-02 00:00", tz="Asia/Seoul")  # row 96: "01/01/2018 00:00"
    assert (np.diff(d["event_timestamp"].astype("int64")) > 0).all()
    assert d["event_timestamp"].diff().dropna().eq(pd.Timedelta(minutes=15)).all()
    start_local = d["interval_start"].dt.tz_convert("Asia/Seoul")
    assert (start_local.dt.day_name() == d["day_of_week"]).all()  # the 24:00 row counts for the day it closes
    assert m.units["usage_kwh"] == "kWh" and m.units["lagging_pf"] == "%" and m.units["co2_t"] == "tCO2"
