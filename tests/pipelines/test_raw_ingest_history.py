"""Pushing raw readings of a history view (lags, rolling statistics) row by row stores what the pipeline stores
for the same readings from the file: the history is read back from the tenant's offline store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_store.store import FeatureStore
from pipelines import raw_ingest, views
from pipelines.canonical import TIMESTAMP
from pipelines.runner import run_pipeline
from serving import tenancy
from serving.errors import InvalidInput
from tests.datasets import need


def _store(settings, db, name: str) -> FeatureStore:
    tenancy.create_tenant(db, name, "C24")
    return FeatureStore(settings, db, name)


def _stored(fs: FeatureStore, view: str) -> pd.DataFrame:
    files = fs.offline.files(fs.tenant, view)
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True).drop(columns=["created"])
    key = views.VIEWS[view].join_key
    return df.sort_values([key, TIMESTAMP], kind="stable").reset_index(drop=True)


def _records(frame: pd.DataFrame, columns) -> list[dict]:  # noqa: ANN001
    out = frame[list(columns)].copy()
    out[TIMESTAMP] = out[TIMESTAMP].map(lambda t: t.isoformat())
    for c in out.columns:  # the readings as the meter sends them (3.17), not the stored float32's float64 digits
        if out[c].dtype == np.float32:
            out[c] = out[c].astype(str).astype(np.float64)
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in out.to_dict("records")]


def test_steel_day_pushed_row_by_row_equals_the_file(settings, db, tmp_path):
    src = need("steel_energy/steel_industry_2018_jan_oct.csv")
    lines = src.read_text().splitlines()
    # 16 days of the file: the first 15 from the file, the 16th pushed one reading at a time (a week of lags, 672)
    head, day = lines[1:1 + 96 * 15], lines[1 + 96 * 15:1 + 96 * 16]
    full_csv, head_csv = tmp_path / "full.csv", tmp_path / "head.csv"
    full_csv.write_text("\n".join([lines[0], *head, *day]) + "\n")
    head_csv.write_text("\n".join([lines[0], *head]) + "\n")
    whole, pushed = _store(settings, db, "whole"), _store(settings, db, "pushed")
    run_pipeline("steel-energy", full_csv, store=whole)
    run_pipeline("steel-energy", head_csv, store=pushed)
    expected = _stored(whole, "steel_energy_features")
    new = expected.iloc[96 * 15:]
    d = raw_ingest.DERIVATIONS["steel_energy_features"]
    for rec in _records(new, ["meter_id", TIMESTAMP, *d.raw]):
        pushed.ingest("steel_energy_features", [rec])
    got = _stored(pushed, "steel_energy_features")
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    online = pushed.get_online_features("steel_energy_features", ["daewoo-gwangyang"], ["usage_kwh_lag_96"])[0]
    assert online["usage_kwh_lag_96"] == pytest.approx(float(new["usage_kwh_lag_96"].iloc[-1]))


def test_a_meters_times_without_an_offset_are_the_plants_clock_as_in_the_file(settings, db, tmp_path):
    """The file's dates have no offset and are read as Korea time; a push of the same readings stamped without an
    offset (08:45, as an MES writes the meter's clock) was read as UTC: nine hours later, the day's shape moved in
    every forecast by id, and nothing said so. A push now reads them as the file does (the plant's clock); with an
    offset (+09:00, or Z) they are what they say."""
    src = need("steel_energy/steel_industry_2018_jan_oct.csv")
    lines = src.read_text().splitlines()
    head, day = lines[1:1 + 96 * 8], lines[1 + 96 * 8:1 + 96 * 9]
    full_csv, head_csv = tmp_path / "full.csv", tmp_path / "head.csv"
    full_csv.write_text("\n".join([lines[0], *head, *day]) + "\n")
    head_csv.write_text("\n".join([lines[0], *head]) + "\n")
    whole, naive, utc = _store(settings, db, "whole"), _store(settings, db, "naive"), _store(settings, db, "utc")
    run_pipeline("steel-energy", full_csv, store=whole)
    expected = _stored(whole, "steel_energy_features")
    d = raw_ingest.DERIVATIONS["steel_energy_features"]
    new = expected.iloc[96 * 8:]
    records = _records(new, ["meter_id", TIMESTAMP, *d.raw])
    local = [{**r, TIMESTAMP: pd.Timestamp(r[TIMESTAMP]).tz_convert("Asia/Seoul").tz_localize(None).isoformat()}
             for r in records]
    assert local[0][TIMESTAMP] == "2018-01-09T00:15:00"
    zulu = [{**r, TIMESTAMP: pd.Timestamp(r[TIMESTAMP]).strftime("%Y-%m-%dT%H:%M:%SZ")} for r in records]
    for store, sent in ((naive, local), (utc, zulu)):
        run_pipeline("steel-energy", head_csv, store=store)
        store.ingest("steel_energy_features", sent[:40])  # a batch, then one by one (the history read back)
        for rec in sent[40:]:
            store.ingest("steel_energy_features", [rec])
        pd.testing.assert_frame_equal(_stored(store, "steel_energy_features"), expected, check_exact=True)


def test_cmapss_cycles_pushed_row_by_row_equal_the_file(settings, db, tmp_path):
    src = need("cmapss/train_FD002.txt")
    rows = [r.split() for r in src.read_text().splitlines() if r.strip()]
    units = {"1", "2", "3"}
    rows = [r for r in rows if r[0] in units]
    last = {u: max(int(r[1]) for r in rows if r[0] == u) for u in units}
    tail = {u: set(range(last[u] - 23, last[u] + 1)) for u in units}  # a day of cycles (one an hour) pushed
    full_txt, head_txt = tmp_path / "a" / "train_FD002.txt", tmp_path / "b" / "train_FD002.txt"
    full_txt.parent.mkdir(), head_txt.parent.mkdir()
    full_txt.write_text("\n".join(" ".join(r) for r in rows) + "\n")
    head_txt.write_text("\n".join(" ".join(r) for r in rows if int(r[1]) not in tail[r[0]]) + "\n")
    whole, pushed = _store(settings, db, "whole"), _store(settings, db, "pushed")
    run_pipeline("cmapss", full_txt, store=whole)
    fit = raw_ingest.load_fit(settings.home, "whole", "cmapss")
    # the regimes the pushes normalise with are the tenant's: here the whole file's, as for the first tenant
    run_pipeline("cmapss", head_txt, store=pushed, fitted=fit)
    expected = _stored(whole, "cmapss_features")
    new = expected[expected.apply(lambda r: r["cycle"] in tail[r["unit_id"].split("u")[-1].lstrip("0")], axis=1)]
    assert len(new) == 72
    d = raw_ingest.DERIVATIONS["cmapss_features"]
    recs = _records(new.sort_values(TIMESTAMP, kind="stable"), ["unit_id", TIMESTAMP, *d.raw])
    for rec in recs:  # the three engines' cycles interleaved, as they arrive
        pushed.ingest("cmapss_features", [rec])
    pd.testing.assert_frame_equal(_stored(pushed, "cmapss_features"), expected, check_exact=True)


def _steel_rec(end: str, usage: float) -> dict:
    return {"meter_id": "m1", TIMESTAMP: end, "usage_kwh": usage, "lagging_kvarh": 1.0, "leading_kvarh": 0.0,
            "co2_t": 0.0, "lagging_pf": 90.0, "leading_pf": 100.0, "load_type": "Light_Load"}


def test_rows_of_a_lagged_view_come_in_time_order_per_entity(settings, db):
    fs = _store(settings, db, "acme")
    fs.apply(views.steel_energy_features)
    first = [_steel_rec(f"2018-01-01T00:{m:02d}:00Z", float(m)) for m in (15, 30, 45)]
    fs.ingest("steel_energy_features", first)
    fs.ingest("steel_energy_features", [_steel_rec("2018-01-01T01:00:00Z", 60.0)])
    row = fs.get_online_features("steel_energy_features", ["m1"], ["usage_kwh_lag_1", "usage_kwh_lag_4"])[0]
    assert (row["usage_kwh_lag_1"], row["usage_kwh_lag_4"]) == (45.0, None)  # 00:45 from the store; 00:00 none
    late = [_steel_rec("2018-01-01T01:15:00Z", 75.0), _steel_rec("2018-01-01T00:30:00Z", 31.0)]
    with pytest.raises(InvalidInput, match=r"^row 2: meter_id 'm1' at 2018-01-01T00:30:00\+00:00 is not after its "
                                           r"latest stored row \(2018-01-01T01:00:00\+00:00\); .* in time order"):
        fs.ingest("steel_energy_features", late)
    twice = [_steel_rec("2018-01-01T01:15:00Z", 75.0), _steel_rec("2018-01-01T01:15:00Z", 76.0)]
    with pytest.raises(InvalidInput, match=r"^row 2 repeats the 'meter_id' and 'event_timestamp' of row 1"):
        fs.ingest("steel_energy_features", twice)
    with pytest.raises(InvalidInput, match=r"is not on the 15-minute grid"):
        fs.ingest("steel_energy_features", [_steel_rec("2018-01-01T01:07:00Z", 1.0)])
    with pytest.raises(InvalidInput, match=r"row 1, column 'usage_kwh_lag_1': 3 contradicts the readings \(they give "
                                           r"60\).*leave the derived columns out"):
        fs.ingest("steel_energy_features", [{**_steel_rec("2018-01-01T01:15:00Z", 75.0), "usage_kwh_lag_1": 3.0}])
    # readings the file pipeline sets aside (review: a usage of -50 kWh was stored and fed the next rows' lags)
    for change, said in (({"usage_kwh": -50.0}, r"row 1, column 'usage_kwh': -50 is outside 0 to 10,000 kWh"),
                         ({"lagging_pf": 250.0}, r"row 1, column 'lagging_pf': 250 is outside 0 to 100 %"),
                         ({"load_type": "Bogus"}, r"row 1, column 'load_type': 'Bogus' is not Light_Load, ")):
        with pytest.raises(InvalidInput, match=said):
            fs.ingest("steel_energy_features", [{**_steel_rec("2018-01-01T01:15:00Z", 75.0), **change}])
    assert fs.offline.row_count("acme", "steel_energy_features") == 4  # nothing of the refused batches


def test_a_reading_delivered_again_is_stored_once_not_refused_as_late(settings, db):
    """MQTT delivers at least once, and a REST batch may be retried without an Idempotency-Key: a reading the store
    holds already, with the same values, was refused as a late row (the MQTT subscriber set the message aside). It
    is now skipped; the same time with other readings is still refused, and new rows beside a repeat are stored."""
    fs = _store(settings, db, "acme")
    fs.apply(views.steel_energy_features)
    first = [_steel_rec(f"2018-01-01T00:{m:02d}:00Z", float(m) + 0.1) for m in (15, 30, 45)]
    assert fs.ingest("steel_energy_features", first).rows == 3
    again = fs.ingest("steel_energy_features", first[1:])
    assert (again.rows, again.files) == (0, 0)
    with pytest.raises(InvalidInput, match=r"is not after its latest stored row"):
        fs.ingest("steel_energy_features", [{**first[2], "usage_kwh": 46.0}])  # a correction: not a repeat
    later = _steel_rec("2018-01-01T01:00:00Z", 60.0)
    assert fs.ingest("steel_energy_features", [first[2], later]).rows == 1
    assert fs.offline.row_count("acme", "steel_energy_features") == 4
    row = fs.get_online_features("steel_energy_features", ["m1"], ["usage_kwh_lag_1"])[0]
    assert row["usage_kwh_lag_1"] == pytest.approx(45.1)


def test_cmapss_pushes_need_the_tenants_regimes(settings, db):
    fs = _store(settings, db, "acme")
    fs.apply(views.cmapss_features)
    rec = {"unit_id": "FD001-u001", TIMESTAMP: "2000-01-01T00:00:00Z", "cycle": 1,
           **dict.fromkeys(raw_ingest.DERIVATIONS["cmapss_features"].raw[1:], 1.0), "op_setting_2": 0.5}
    with pytest.raises(InvalidInput, match=r"no operating regimes fitted for FD001 in this tenant; run sfai ingest "
                                           r"cmapss on a training file"):
        fs.ingest("cmapss_features", [rec])
