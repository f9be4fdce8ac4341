"""A plant with only a kWh meter pushes its readings to the energy module.

``steel_energy_features`` (the view ``sfai ingest steel-energy`` builds, and the one an energy forecast by meter id
reads) took a pushed reading only with reactive power, power factors, CO2 and ``load_type`` beside the kWh: a push
of the time and ``usage_kwh`` was a 422 ``missing column 'lagging_kvarh'``, over REST, MQTT and ``sfai ingest csv``
alike, and the file pipeline refused a file of ``date`` and ``Usage_kWh`` (``not a steel-energy file; missing
columns [...]``), although the energy model forecasts from kWh alone. Sending the other columns as null did not
help either: a null ``load_type`` is refused as a reading the file pipeline sets aside.

Now a reading of the time and ``usage_kwh`` (``co2_t`` and the others where the meter has them) is stored with the
readings it leaves out as null, never filled from earlier rows, and a forecast by meter id on such a history
answers what the same kWh sent as records answers. Columns that are sent are checked as before, a reading without
``usage_kwh`` is refused saying so (a null ``usage_kwh`` is a gap, as it was), and full rows are stored exactly as
before (digests of the stored values, recorded on the code before this change).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_store.store import FeatureStore
from pipelines import views
from pipelines.adapters.steel_energy import LOAD_TYPES, METER_ID, TZ
from pipelines.canonical import TIMESTAMP
from pipelines.runner import run_pipeline
from serving import tenancy
from tests.serving.helpers import bearer, make_tenant
from tests.sfai_cli import run_sfai

VIEW = "steel_energy_features"
URL = f"/v1/ingest/{VIEW}"
PEPPER = "test-secret-0123456789"
READINGS = ("lagging_kvarh", "leading_kvarh", "co2_t", "lagging_pf", "leading_pf")  # besides usage_kwh
FILE_NAMES = {"usage_kwh": "Usage_kWh", "lagging_kvarh": "Lagging_Current_Reactive.Power_kVarh",
              "leading_kvarh": "Leading_Current_Reactive_Power_kVarh", "co2_t": "CO2(tCO2)",
              "lagging_pf": "Lagging_Current_Power_Factor", "leading_pf": "Leading_Current_Power_Factor",
              "load_type": "Load_Type"}
# the digests of the full-row scenario's stored values (``_full_scenario``), taken on the code before kWh-only
# readings were accepted: a full row stores exactly what it stored before, through the file and through pushes
FULL_FILE_DIGEST = "4bc2e00eeeb0365e6fe2d99ef860ca6bd450b90d7241892b10f9bb8586c5bf8d"
FULL_PUSH_DIGEST = FULL_FILE_DIGEST


def _meter(days: int, start: str = "2018-03-01 00:15") -> pd.DataFrame:
    """``days`` days of a meter's 15-minute readings (interval ends on the plant's clock), exact decimals made from
    whole numbers (no random numbers, no floating-point functions: the same on every machine)."""
    ends = pd.date_range(start, periods=days * 96, freq="15min")
    i = np.arange(len(ends))
    return pd.DataFrame({
        "end": ends,
        "usage_kwh": 5 + (i * 37 % 500) / 10,
        "lagging_kvarh": (i * 13 % 300) / 10,
        "leading_kvarh": (i * 7 % 50) / 10,
        "co2_t": (i * 3 % 20) / 1000,
        "lagging_pf": 50 + (i * 11 % 500) / 10,
        "leading_pf": 100 - (i * 5 % 400) / 10,
        "load_type": [LOAD_TYPES[k // 32 % 3] for k in i],
    })


def _csv(path, meter: pd.DataFrame, columns=tuple(FILE_NAMES)) -> None:  # noqa: ANN001
    """``meter``'s readings as the DAEWOO file writes them (``dd/mm/yyyy HH:MM``, a day's 24:00 as its own date's
    00:00), with the file's checks (NSM, WeekStatus, Day_of_week) where the full layout is written."""
    end = meter["end"]
    midnight = (end.dt.hour == 0) & (end.dt.minute == 0)
    out = pd.DataFrame({"date": (end - pd.to_timedelta(midnight.astype(int), unit="D")).dt.strftime("%d/%m/%Y %H:%M")})
    for c in columns:
        out[FILE_NAMES[c]] = meter[c]
    if tuple(columns) == tuple(FILE_NAMES):
        start = end - pd.Timedelta(minutes=15)
        out["NSM"] = end.dt.hour * 3600 + end.dt.minute * 60
        out["WeekStatus"] = (start.dt.day_of_week >= 5).map({True: "Weekend", False: "Weekday"})
        out["Day_of_week"] = start.dt.day_name()
    out.to_csv(path, index=False)


def _records(meter: pd.DataFrame, columns, meter_id: str = METER_ID) -> list[dict]:  # noqa: ANN001
    """The readings as an MES pushes them: the interval end with the plant's UTC offset, the columns named."""
    out = []
    for r in meter.to_dict("records"):
        rec = {"meter_id": meter_id, TIMESTAMP: r["end"].tz_localize(TZ).isoformat()}
        rec.update({c: (None if isinstance(r[c], float) and r[c] != r[c] else r[c]) for c in columns})
        out.append(rec)
    return out


def _store(settings, db, name: str) -> FeatureStore:  # noqa: ANN001
    tenancy.create_tenant(db, name, "C24")
    fs = FeatureStore(settings, db, name)
    fs.apply(views.steel_energy_features)
    return fs


def _stored(fs: FeatureStore) -> pd.DataFrame:
    files = fs.offline.files(fs.tenant, VIEW)
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True).drop(columns=["created"])
    return df.sort_values(["meter_id", TIMESTAMP], kind="stable").reset_index(drop=True)


def _digest(fs: FeatureStore) -> str:
    """The stored rows' values (every column but ``created``, in (meter, time) order), their names and types."""
    files = fs.offline.files(fs.tenant, VIEW)
    table = pa.concat_tables([pq.read_table(f) for f in files]).drop_columns(["created"])
    table = table.sort_by([("meter_id", "ascending"), (TIMESTAMP, "ascending")])
    h = hashlib.sha256()
    for name, col in zip(table.column_names, table.columns, strict=True):
        h.update(f"{name}:{col.type}:{col.to_pylist()!r};".encode())
    return h.hexdigest()


def _full_scenario(settings, db, tmp_path):  # noqa: ANN001, ANN202
    """Nine days of a full meter with a few blank cells (readings the pipeline forward-fills, a usage kept as a
    gap): into one tenant from the file at once, into another eight days from the file and the ninth pushed (a
    batch of 40 readings, then one at a time)."""
    meter = _meter(9)
    meter.loc[8 * 96 + 5, ["lagging_kvarh", "co2_t"]] = np.nan
    meter.loc[8 * 96 + 10, "usage_kwh"] = np.nan
    meter.loc[8 * 96 + 50, "leading_pf"] = np.nan
    _csv(tmp_path / "full.csv", meter)
    _csv(tmp_path / "head.csv", meter.iloc[:8 * 96])
    filed, pushed = _store(settings, db, "filed"), _store(settings, db, "pushed")
    run_pipeline("steel-energy", tmp_path / "full.csv", store=filed)
    run_pipeline("steel-energy", tmp_path / "head.csv", store=pushed)
    recs = _records(meter.iloc[8 * 96:], FILE_NAMES)
    pushed.ingest(VIEW, recs[:40])
    for rec in recs[40:]:
        pushed.ingest(VIEW, [rec])
    return filed, pushed


def test_full_rows_are_stored_exactly_as_before(settings, db, tmp_path):
    filed, pushed = _full_scenario(settings, db, tmp_path)
    assert _digest(filed) == FULL_FILE_DIGEST
    assert _digest(pushed) == FULL_PUSH_DIGEST
    pd.testing.assert_frame_equal(_stored(pushed), _stored(filed), check_exact=True)


# -- a kWh meter alone: REST, MQTT, the CLI and the file pipeline -------------------------------------------------

def _tenant(app, db, name: str = "acme"):  # noqa: ANN001, ANN202
    """A C24 tenant subscribed to energy, its MES key's headers and its store (the steel view registered)."""
    keys = make_tenant(db, PEPPER, name, modules=("energy",), ksic="C24")
    fs = app.state.platform.feature_store(name)
    fs.apply(views.steel_energy_features)
    return bearer(keys.mes), fs


@pytest.mark.parametrize("columns", [("usage_kwh",), ("usage_kwh", "co2_t")], ids=["kwh", "kwh+co2"])
def test_a_kwh_meters_pushes_are_stored_as_its_file_is(client, app, db, settings, tmp_path, columns):
    """Two days of a kWh meter pushed over REST (a day in one batch, then one reading at a time: the lags read the
    stored history) store exactly what the file pipeline stores for a file of the same dates and kWh: the readings
    the meter does not give are null (never 'None' or a value from another row), the usage lags, windows and
    calendar are computed."""
    h, fs = _tenant(app, db)
    meter = _meter(2)
    recs = _records(meter, columns)
    r = client.post(URL, json={"records": recs[:96]}, headers=h)
    assert r.status_code == 200 and r.json()["rows"] == 96, r.text
    for rec in recs[96:110]:
        r = client.post(URL, json={"records": [rec]}, headers=h)
        assert r.status_code == 200 and r.json()["rows"] == 1, r.text
    pushed = _stored(fs)
    assert len(pushed) == 110
    left_out = [c for c in (*READINGS, "load_type") if c not in columns]
    assert pushed[left_out].isna().all().all()
    assert pushed["usage_kwh"].tolist() == meter["usage_kwh"].iloc[:110].astype(np.float32).tolist()
    last = pushed.iloc[-1]
    assert last["usage_kwh_lag_1"] == np.float32(meter["usage_kwh"].iloc[108])
    assert last["usage_kwh_lag_96"] == np.float32(meter["usage_kwh"].iloc[109 - 96])
    assert last["usage_kwh_mean_4"] == pytest.approx(meter["usage_kwh"].iloc[106:110].mean(), rel=1e-6)
    assert not pushed[["hour", "day_of_week", "is_holiday"]].isna().any().any()
    online = client.post("/v1/features/online", headers=h, json={
        "view": VIEW, "entity_ids": [METER_ID], "features": ["usage_kwh", "lagging_pf", "load_type"]}).json()
    assert online["rows"][0]["lagging_pf"] is None and online["rows"][0]["load_type"] is None, online
    # the file of the same dates and kWh (and CO2), through the file pipeline
    _csv(tmp_path / "kwh.csv", meter.iloc[:110], columns)
    filed = _store(settings, db, "filed")
    report = run_pipeline("steel-energy", tmp_path / "kwh.csv", store=filed)
    assert report.rows_ok == 110 and report.rows_quarantined == 0
    pd.testing.assert_frame_equal(pushed, _stored(filed), check_exact=True)


def test_the_cli_takes_a_kwh_only_file_and_kwh_only_rows(settings, db, sfai_env, tmp_path):
    """``sfai ingest steel-energy`` on a file of ``date`` and ``Usage_kWh`` (it was 'not a steel-energy file;
    missing columns [...]'), then ``sfai ingest csv`` of the next day's readings in the view's names: the stored
    rows are the file pipeline's for the nine days at once."""

    meter = _meter(9)
    meter.loc[8 * 96 + 7, "usage_kwh"] = np.nan  # a gap: kept as one
    _csv(tmp_path / "head.csv", meter.iloc[:8 * 96], ["usage_kwh"])
    day = pd.DataFrame(_records(meter.iloc[8 * 96:], ["usage_kwh"]))
    day.to_csv(tmp_path / "day.csv", index=False)
    assert day.columns.tolist() == ["meter_id", TIMESTAMP, "usage_kwh"]
    tenancy.create_tenant(db, "plant", "C24")
    for args in (("ingest", "steel-energy", str(tmp_path / "head.csv"), "--tenant", "plant", "-q"),
                 ("ingest", "csv", str(tmp_path / "day.csv"), "--view", VIEW, "--tenant", "plant")):
        p = run_sfai(*args, env=sfai_env, timeout=300)
        assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1])["rows"] == 96
    _csv(tmp_path / "all.csv", meter, ["usage_kwh"])
    filed = _store(settings, db, "filed")
    run_pipeline("steel-energy", tmp_path / "all.csv", store=filed)
    got = _stored(FeatureStore(settings, db, "plant"))
    pd.testing.assert_frame_equal(got, _stored(filed), check_exact=True)
    assert got["usage_kwh"].isna().sum() == 1 and got["lagging_kvarh"].isna().all()


def test_a_kwh_only_push_retried_after_the_online_store_failed(client, app, db, monkeypatch):
    """The online rows of a stored kWh-only batch come from the offline store on its retry (the retry reads the
    batch's times from its raw rows, which leave the other readings out); the batch sent again is recognised as
    stored (its left-out readings null on both sides), not refused as late rows."""
    from tests.feature_store.conftest import online_write_fails_once

    h, fs = _tenant(app, db)
    body = {"records": _records(_meter(1).iloc[:3], ["usage_kwh"])}
    online_write_fails_once(monkeypatch, fs)
    assert client.post(URL, json=body, headers={**h, "Idempotency-Key": "k1"}).status_code == 503
    retry = client.post(URL, json=body, headers={**h, "Idempotency-Key": "k1"})
    assert retry.status_code == 200 and retry.json()["online_updated"] == 1, retry.text
    assert len(_stored(fs)) == 3
    again = client.post(URL, json=body, headers=h)  # sent again without its key (an MQTT redelivery): skipped
    assert again.status_code == 200 and again.json()["rows"] == 0, again.text
    row = fs.get_online_features(VIEW, [METER_ID], ["usage_kwh", "usage_kwh_lag_1", "co2_t"])[0]
    assert (row["usage_kwh_lag_1"], row["co2_t"]) == (pytest.approx(_meter(1)["usage_kwh"].iloc[1]), None)


def test_mqtt_takes_a_kwh_only_message_beside_full_ones(app, db, tmp_path):
    """MQTT hands the subscriber's batch to the same ingest: a kWh meter's message and a full meter's, taken in one
    batch, are both stored (the batch of two shapes is written message by message)."""
    from feature_store.mqtt import MqttIngestor, Quarantine

    _, fs = _tenant(app, db)
    meter = _meter(1)
    small = _records(meter.iloc[:2], ["usage_kwh"], "small")
    full = _records(meter.iloc[:2], FILE_NAMES, "full")
    ing = MqttIngestor(lambda t: fs, Quarantine(tmp_path / "q"))
    for rec in (small[0], full[0], small[1], full[1]):
        ing.on_message(f"factory/acme/{VIEW}", json.dumps(rec).encode())
    assert ing.drain() == 4
    assert (ing.stats.rows_written, ing.stats.bad) == (4, 0), ing.stats
    stored = _stored(fs).set_index("meter_id")
    assert stored.loc["small", "lagging_kvarh"].isna().all() and stored.loc["full", "lagging_kvarh"].notna().all()
    assert stored.loc["small", "usage_kwh_lag_1"].tolist()[1] == np.float32(meter["usage_kwh"].iloc[0])


def test_a_meter_that_stops_sending_a_reading_stores_it_null_not_its_last_value(settings, db):
    """A meter whose reactive-power meter is taken away: its kWh-only readings after full ones store the left-out
    readings null; a null sent for a reading is a gap of a meter that measures it, forward-filled as the file
    pipeline fills a blank cell (as before)."""
    fs = _store(settings, db, "acme")
    meter = _meter(1)
    fs.ingest(VIEW, _records(meter.iloc[:4], FILE_NAMES))
    fs.ingest(VIEW, _records(meter.iloc[4:6], ["usage_kwh", "co2_t"]))
    nulls = _records(meter.iloc[6:7], FILE_NAMES)
    nulls[0].update(lagging_kvarh=None, leading_pf=None)
    fs.ingest(VIEW, nulls)
    got = _stored(fs)
    assert got.loc[4:5, ["lagging_kvarh", "leading_kvarh", "lagging_pf", "leading_pf", "load_type"]].isna().all().all()
    assert got.loc[4:5, "co2_t"].tolist() == meter["co2_t"].iloc[4:6].astype(np.float32).tolist()
    assert got.loc[4:5, "usage_kwh_lag_4"].tolist() == meter["usage_kwh"].iloc[0:2].astype(np.float32).tolist()
    assert got.loc[6, "lagging_kvarh"] == np.float32(meter["lagging_kvarh"].iloc[3])  # sent null: filled, as before
    assert got.loc[6, "leading_pf"] == np.float32(meter["leading_pf"].iloc[3])
    assert got.loc[6, "load_type"] == meter["load_type"].iloc[6]


def test_columns_sent_are_checked_as_before_and_a_reading_needs_its_kwh(client, app, db, tmp_path):
    h, fs = _tenant(app, db)
    rec = _records(_meter(1).iloc[:1], ["usage_kwh"])[0]
    for change, said in (
        ({"usage_kwh": -50.0}, "row 1, column 'usage_kwh': -50 is outside 0 to 10,000 kWh (the steel-energy "
                               "pipeline sets such a reading aside)"),
        ({"lagging_pf": 250.0}, "row 1, column 'lagging_pf': 250 is outside 0 to 100 %"),
        ({"co2_t": -1.0}, "row 1, column 'co2_t': -1 is below 0 tCO2"),
        ({"load_type": "Bogus"}, "row 1, column 'load_type': 'Bogus' is not Light_Load, Medium_Load, Maximum_Load"),
        ({"load_type": None}, "row 1, column 'load_type': an empty cell is not Light_Load, Medium_Load"),
        ({"usage_kwh": "lots"}, "row 1, column 'usage_kwh': 'lots' is not a valid float64"),  # as before
        ({"kwh": 3.0}, "unknown column 'kwh' for feature view 'steel_energy_features'"),
    ):
        r = client.post(URL, json={"records": [{**rec, **change}]}, headers=h)
        assert r.status_code == 422 and said in r.json()["error"]["message"], (change, r.text)
    no_kwh = {k: v for k, v in rec.items() if k != "usage_kwh"}
    full_but_kwh = {k: v for k, v in _records(_meter(1).iloc[:1], FILE_NAMES)[0].items() if k != "usage_kwh"}
    for body in (no_kwh, {**no_kwh, "co2_t": 0.01}, full_but_kwh):
        r = client.post(URL, json={"records": [body]}, headers=h)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["message"] == (
            "missing column 'usage_kwh' for feature view 'steel_energy_features': a reading needs meter_id, "
            "event_timestamp and usage_kwh (send null for a reading that is missing); lagging_kvarh, leading_kvarh, "
            "co2_t, lagging_pf, leading_pf and load_type may be left out where they are not measured")
    assert not fs.offline.files("acme", VIEW)  # nothing of the refused batches
    # a null kWh is a gap, as it was: stored, and read as a gap
    r = client.post(URL, json={"records": [{**rec, "usage_kwh": None}]}, headers=h)
    assert r.status_code == 200 and r.json()["rows"] == 1, r.text
    assert _stored(fs)[["usage_kwh", "lagging_kvarh", "usage_kwh_mean_4"]].isna().all().all()
    # and so is a file without the kWh column
    from pipelines.adapters import steel_energy

    with pytest.raises(ValueError, match=r"not a steel-energy file; missing columns \['Usage_kWh'\]"):
        steel_energy.read(_write(tmp_path / "co2.csv", "date,CO2(tCO2)\n01/03/2018 00:15,0.01\n"))


def _write(path, text: str):  # noqa: ANN001, ANN202
    path.write_text(text)
    return path


# -- an energy forecast by meter id on a kWh meter's pushed history ------------------------------------------------

def _ends(dmy: pd.Series) -> pd.Series:
    """The DAEWOO file's dates (``dd/mm/yyyy HH:MM``, a day's 24:00 as its own date's 00:00) as interval ends."""
    t = pd.to_datetime(dmy, format="%d/%m/%Y %H:%M")
    midnight = (t.dt.hour == 0) & (t.dt.minute == 0)
    return t + pd.to_timedelta(midnight.astype(int), unit="D")


@pytest.mark.parametrize("with_co2", [False, True], ids=["kwh", "kwh+co2"])
def test_a_forecast_by_meter_id_of_a_kwh_meter_answers_what_its_records_answer(client, app, db, settings,
                                                                                 demo_models, with_co2):
    """Ten days of a kWh meter (one reading missing, sent as null: a gap) pushed over REST a day at a time; the
    forecast by meter id reads them back and answers what the same dates and kWh sent as records answer."""
    from models.registry import ModelRegistry

    h, fs = _tenant(app, db)
    ModelRegistry(db, settings.home, "acme").register("energy", "energy", demo_models[0] / "energy" / "v1")
    energy = pd.read_csv(demo_models[1] / "energy_demo.csv").iloc[-10 * 96:].reset_index(drop=True)
    energy.loc[500, "Usage_kWh"] = np.nan
    meter = pd.DataFrame({"end": _ends(energy["date"]), "usage_kwh": energy["Usage_kWh"]})
    columns = ["usage_kwh"]
    if with_co2:
        energy["CO2(tCO2)"] = (energy.index % 7) / 1000
        meter["co2_t"] = energy["CO2(tCO2)"]
        columns.append("co2_t")
    recs = _records(meter, columns, "small-plant")
    for day in range(10):
        r = client.post(URL, json={"records": recs[day * 96:(day + 1) * 96]}, headers=h)
        assert r.status_code == 200 and r.json()["rows"] == 96, r.text
    url = "/v1/energy/forecast"
    by_id = client.post(url, json={"entity_ids": ["small-plant"], "view": VIEW, "horizon": 8}, headers=h)
    assert by_id.status_code == 200, by_id.text
    answer = by_id.json()["predictions"]
    start = f"{meter['end'].iloc[-1]:%Y-%m-%d}"  # the last reading is the 24:00 of the day before
    assert {p["origin"] for p in answer} == {f"{start} 00:00:00"} and len(answer) == 8
    assert {p["entity_id"] for p in answer} == {"small-plant"}
    records = json.loads(energy.to_json(orient="records"))  # the gap as null
    sent = client.post(url, json={"records": records, "horizon": 8, "start": start}, headers=h)
    assert sent.status_code == 200, sent.text
    added = ("entity_id", "reading_at", "reading_age_s")  # what an answer by entity id adds to each row
    assert [{k: v for k, v in p.items() if k not in added} for p in answer] == sent.json()["predictions"]
    assert by_id.json().get("filled_intervals") == sent.json().get("filled_intervals")


def test_the_cli_stores_a_plants_file_under_its_own_meter_id(settings, db, sfai_env, tmp_path):
    """``--meter-id`` names the plant's meter (every file had gone under the DAEWOO file's ``daewoo-gwangyang``); an
    id a push could not name is refused in one line."""

    _csv(tmp_path / "kwh.csv", _meter(2), ["usage_kwh"])
    tenancy.create_tenant(db, "plant", "C24")
    run = ["ingest", "steel-energy", str(tmp_path / "kwh.csv"), "--tenant", "plant", "-q"]
    p = run_sfai(*run, "--meter-id", "line-2-main", env=sfai_env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert set(_stored(FeatureStore(settings, db, "plant"))["meter_id"]) == {"line-2-main"}
    p = run_sfai(*run, "--meter-id", "line 2/main", env=sfai_env, timeout=300)
    assert p.returncode == 1 and p.stderr.strip().splitlines() == [
        "error: --meter-id 'line 2/main': use 1 to 100 letters, digits and . _ : - , starting with a letter or digit"]
