"""Predictions by entity id: every answer row names the entity it answers (``entity_id``, the id as sent), so that
an MES matches answers to machines without relying on their order; an energy forecast by meter id reads the
meter's history from the offline store (the online store holds its latest reading only)."""

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from feature_store import FeatureView, Field, entities
from feature_store.store import FeatureStore
from models.registry import ModelRegistry
from tests.serving.helpers import bearer, make_tenant

PEPPER = "test-secret-0123456789"
ARROW = {"accept": "application/vnd.apache.arrow.stream"}
STAMP = "2026-12-01T00:00:00Z"
BY_ID = ("entity_id", "reading_at", "reading_age_s")  # what an answer by entity id adds to each row


def arrow_rows(r) -> list[dict]:
    assert r.status_code == 200, r.text
    return pa.ipc.open_stream(io.BytesIO(r.content)).read_all().to_pylist()


def ok(r) -> list[dict]:
    assert r.status_code == 200, r.text
    return r.json()["predictions"]


def tenant_with(db, settings, demo_models, *families, modules):
    """A tenant subscribed to ``modules`` with the demo's ``families`` models as champions, and its store."""
    acme = make_tenant(db, PEPPER, "acme", modules=modules)
    reg = ModelRegistry(db, settings.home, "acme")
    for family in families:
        reg.register(family, {"defect": "quality", "energy": "energy"}.get(family, "maintenance"),
                     demo_models[0] / family / "v1")
    return bearer(acme.mes), FeatureStore(settings, db, "acme")


def test_defect_predictions_by_entity_id_name_their_entity(client, db, settings, demo_models):
    """The audit's call: machines IMM-04 and IMM-03 were answered as row_id 1 and 2, nothing saying which is which.
    Each answer now carries its entity_id, whichever order the ids come in and however the answer is read;
    row_id is kept as it was (the contract's field)."""
    h, fs = tenant_with(db, settings, demo_models, "defect", modules=("quality",))
    wafers = pd.read_csv(demo_models[1] / "secom_demo.csv").drop(columns=["label", "row_id"]).head(3)
    measurements = list(wafers.columns)
    fs.apply(FeatureView(name="cycles_f", entity=entities.machine,
                         schema=[Field(name=m, dtype="float64") for m in measurements]))
    machines = ["IMM-03", "IMM-04", "IMM-05"]
    fs.ingest("cycles_f", pd.DataFrame([{"machine_id": m, "event_timestamp": STAMP, **w}
                                        for m, w in zip(machines, wafers.to_dict("records"), strict=True)]))
    fs.close()
    url = "/v1/quality/defect/predict"
    sent = ok(client.post(url, json={"records": wafers.to_dict("records")}, headers=h))
    risk = dict(zip(machines, (p["defect_probability"] for p in sent), strict=True))
    for ids in (["IMM-04", "IMM-03"], ["IMM-03", "IMM-05", "IMM-04"]):
        for answer in (ok(client.post(url, json={"entity_ids": ids, "view": "cycles_f"}, headers=h)),
                       arrow_rows(client.post(url, json={"entity_ids": ids, "view": "cycles_f"},
                                              headers={**h, **ARROW}))):
            assert [p["entity_id"] for p in answer] == ids
            assert [p["row_id"] for p in answer] == list(range(1, len(ids) + 1))
            assert [p["defect_probability"] for p in answer] == pytest.approx([risk[i] for i in ids], abs=1e-6)
    # records sent inline answer as before: no entity_id
    assert "entity_id" not in sent[0]


def test_failure_predictions_by_entity_id_name_their_entity(client, db, settings, demo_models):
    """The failure model's answers by entity id (the fast path and the route, JSON and Arrow) carry entity_id,
    UDI kept; ids given as numbers come back as numbers."""
    from models.failure.features import STORE_NAMES

    h, fs = tenant_with(db, settings, demo_models, "failure", modules=("maintenance",))
    readings = {store: raw for store, raw in STORE_NAMES.items() if store != "udi"}
    recs = pd.read_csv(demo_models[1] / "ai4i_demo.csv").head(3).to_dict("records")
    fs.apply(FeatureView(name="press_readings", entity=entities.machine,
                         schema=[Field(name=n, dtype="string" if n == "type" else "float64") for n in readings]))
    fs.ingest("press_readings", pd.DataFrame(
        [{"machine_id": m, "event_timestamp": STAMP, **{store: r[raw] for store, raw in readings.items()}}
         for m, r in zip(["press-0", "press-1", "7"], recs, strict=True)]
    ))
    fs.close()
    url = "/v1/maintenance/failure/predict"
    ids = ["press-1", "press-0"]
    for _ in range(2):  # the first call loads the model and the store, the second is answered by the fast path
        answer = ok(client.post(url, json={"entity_ids": ids, "view": "press_readings"}, headers=h))
        assert [p["entity_id"] for p in answer] == ids and [p["UDI"] for p in answer] == [1, 2]
    by_route = ok(client.post(url, json={"entity_ids": ids * 10, "view": "press_readings"}, headers=h))  # > 16
    assert [p["entity_id"] for p in by_route] == ids * 10
    assert [p["failure_probability"] for p in by_route[:2]] == [p["failure_probability"] for p in answer]
    mixed = ["press-0", 7]  # an id sent as a number is answered as sent; in Arrow, one type: text
    assert [p["entity_id"] for p in ok(client.post(url, json={"entity_ids": mixed, "view": "press_readings"},
                                                   headers=h))] == mixed
    got = arrow_rows(client.post(url, json={"entity_ids": mixed, "view": "press_readings"}, headers={**h, **ARROW}))
    assert [p["entity_id"] for p in got] == ["press-0", "7"]


def test_rul_by_entity_id_names_the_entity_of_each_unit(client, db, settings, demo_models):
    """RUL answers one row per unit, in unit order: each unit is mapped back to the entity whose row holds it; two
    entities holding the same unit (scored as one engine) are refused, naming both."""
    from models.rul.data import SETTINGS, read_cmapss

    h, fs = tenant_with(db, settings, demo_models, "rul", modules=("maintenance",))
    cycles = read_cmapss(demo_models[1] / "cmapss_demo.txt")
    names = ["unit", "cycle", *SETTINGS, *[c for c in cycles.columns if c.startswith("sensor_")]]
    fs.apply(FeatureView(name="engine_state", entity=entities.unit,
                         schema=[Field(name=n, dtype="int64" if n in ("unit", "cycle") else "float64") for n in names]))
    latest = cycles.groupby("unit").tail(1).head(3)[names].to_dict("records")  # units 1, 2, 3
    rows = [{"unit_id": e, "event_timestamp": STAMP, **r, "unit": u}
            for e, r, u in zip(["eng-b", "eng-a", "eng-c"], latest, [7, 3, 7], strict=True)]
    fs.ingest("engine_state", pd.DataFrame(rows))
    fs.close()
    url = "/v1/maintenance/rul/predict"
    r = client.post(url, json={"entity_ids": ["eng-b", "eng-a"], "view": "engine_state"}, headers=h)
    answer = ok(r)
    assert [(p["unit"], p["entity_id"]) for p in answer] == [(3, "eng-a"), (7, "eng-b")]
    # each holds one late cycle: the short-history warning names the entities, not the unit numbers read inside
    # (then the stale-reading warning: STAMP is older than SFAI_STALE_READING_S, tests/serving/test_reading_age.py)
    warning, stale = r.json()["warnings"]
    assert stale.startswith("stale readings: 2 entities' readings are older than 3,600 s"), stale
    assert warning.startswith("units 'eng-a' (1 from cycle ") and ", 'eng-b' (1 from cycle " in warning, warning
    r = client.post(url, json={"entity_ids": ["eng-b", "eng-c"], "view": "engine_state"}, headers=h)
    assert r.status_code == 422 and "'eng-b' and 'eng-c' both hold unit 7" in r.json()["error"]["message"], r.text


def test_rul_by_unit_id_reads_the_units_cycles(client, db, settings, demo_models, tmp_path):
    """After `sfai ingest cmapss`, a remaining useful life by unit id was a 422 ("missing feature column 'unit'"):
    the online store holds a unit's last cycle, and cmapss_features names its sensors (t24, ...). The unit's cycles
    are now read from the offline store, and the answer is what the same cycles sent as records answer."""
    from models.rul.data import read_cmapss
    from pipelines.runner import run_pipeline

    h, fs = tenant_with(db, settings, demo_models, "rul", modules=("maintenance",))
    cycles = read_cmapss(demo_models[1] / "cmapss_demo.txt")
    cycles = cycles[cycles["unit"].isin([1, 2, 3])]
    cut = cycles[cycles["cycle"] <= cycles["unit"] * 25 + 20]  # each unit part-way through its life
    cut.to_csv(tmp_path / "train_FD001.txt", sep=" ", header=False, index=False)
    run_pipeline("cmapss", tmp_path / "train_FD001.txt", store=fs)
    fs.close()
    url = "/v1/maintenance/rul/predict"
    keys = ["FD001-u003", "FD001-u001"]
    answer = ok(client.post(url, json={"entity_ids": keys, "view": "cmapss_features"}, headers=h))
    # as stored: the feature store keeps readings as float32 (the demo's 9046.6042 is 9046.604 there)
    stored = cut.copy()
    for c in stored.columns[2:]:
        stored[c] = stored[c].to_numpy().astype("float32").astype(str).astype(float)
    sent = ok(client.post(url, json={"records": stored.to_dict("records")}, headers=h))
    by_unit = {p["unit"]: p["rul"] for p in sent}
    assert len(answer) == 2 and {p["entity_id"]: p["rul"] for p in answer} == {k: by_unit[int(k[-3:])] for k in keys}
    # each row's unit is the engine's number, as in the records' answer (it had been 1, 2 in the request's order)
    assert {p["entity_id"]: p["unit"] for p in answer} == {"FD001-u003": 3, "FD001-u001": 1}
    wrong = client.post(url, json={"entity_ids": ["daewoo"], "view": "cmapss_labels"}, headers=h)
    assert wrong.status_code in (404, 422), wrong.text


def steel_csv(path, energy: pd.DataFrame) -> None:
    """The demo plant's kWh (``date`` as the DAEWOO file writes it, ``Usage_kWh``) as a whole steel-energy CSV, the
    file ``sfai ingest steel-energy`` reads."""
    end = pd.to_datetime(energy["date"], format="%d/%m/%Y %H:%M")
    midnight = (end.dt.hour == 0) & (end.dt.minute == 0)
    start = end + pd.to_timedelta(midnight.astype(int), unit="D") - pd.Timedelta(minutes=15)  # the interval's day
    pd.DataFrame({
        "date": energy["date"], "Usage_kWh": energy["Usage_kWh"], "Lagging_Current_Reactive.Power_kVarh": 1.0,
        "Leading_Current_Reactive_Power_kVarh": 0.0, "CO2(tCO2)": 0.0, "Lagging_Current_Power_Factor": 90.0,
        "Leading_Current_Power_Factor": 100.0, "NSM": end.dt.hour * 3600 + end.dt.minute * 60,
        "WeekStatus": (start.dt.day_of_week >= 5).map({True: "Weekend", False: "Weekday"}),
        "Day_of_week": start.dt.day_name(), "Load_Type": "Light_Load",
    }).to_csv(path, index=False)


def test_energy_forecast_by_meter_id_reads_its_history(client, db, settings, demo_models, tmp_path):
    """The audit's call answered 422 "input lacks the column 'date'": the online store holds the meter's latest
    reading only. After `sfai ingest steel-energy`, a forecast by meter id reads the meter's history from the
    offline store (UTC instants back to the plant's Korea-local dates) and answers what the same readings sent
    as records answer, for the day after the latest reading unless "start" says otherwise; a meter without a
    week of history is a 422 naming it and what a forecast needs."""
    from pipelines.runner import run_pipeline

    h, fs = tenant_with(db, settings, demo_models, "energy", modules=("energy",))
    energy = pd.read_csv(demo_models[1] / "energy_demo.csv").iloc[-10 * 96 :]  # ten days, the last ending at 24:00
    steel_csv(tmp_path / "steel.csv", energy)
    run_pipeline("steel-energy", tmp_path / "steel.csv", store=fs)
    fs.close()
    url = "/v1/energy/forecast"
    body = {"entity_ids": ["daewoo-gwangyang"], "view": "steel_energy_features", "horizon": 8}
    answer = ok(client.post(url, json=body, headers=h))
    # the file's last row, "dd/mm/yyyy 00:00", closes that day (24:00): the next day's forecast is wanted
    last = pd.to_datetime(energy["date"].iloc[-1], format="%d/%m/%Y %H:%M") + pd.Timedelta(days=1)
    assert f"{last:%H:%M}" == "00:00"
    assert {p["origin"] for p in answer} == {f"{last:%Y-%m-%d} 00:00:00"} and len(answer) == 8
    assert {p["entity_id"] for p in answer} == {"daewoo-gwangyang"}
    records = energy.to_dict("records")
    sent = ok(client.post(url, json={"records": records, "horizon": 8, "start": f"{last:%Y-%m-%d}"}, headers=h))
    assert [{k: v for k, v in p.items() if k not in BY_ID} for p in answer] == sent
    # a start of the plant's local day: the forecasts from it, as the records answer them
    start = f"{last - pd.Timedelta(days=2):%Y-%m-%d}"
    again = ok(client.post(url, json={**body, "start": start}, headers=h))
    same = ok(client.post(url, json={"records": records, "horizon": 8, "start": start}, headers=h))
    assert [{k: v for k, v in p.items() if k not in BY_ID} for p in again] == same and len(same) == 3 * 8
    arrow = arrow_rows(client.post(url, json=body, headers={**h, **ARROW}))
    assert [p["p50"] for p in arrow] == [p["p50"] for p in answer]


def test_a_backtest_by_meter_id_reads_the_history_before_its_start(client, db, settings, demo_models, tmp_path):
    """A forecast by meter id read the 151 days up to the meter's latest reading only: on a store holding the year,
    "start" two months in was refused ("the first possible start is ..."), a start the readings allow (energy
    manager's audit). With "start", the history from 151 days before it is read: the backtest answers what the
    model answers on the same readings."""
    from models.energy.predict import score
    from pipelines.runner import run_pipeline
    from serving.runtime import OnnxModel

    h, fs = tenant_with(db, settings, demo_models, "energy", modules=("energy",))
    demo = pd.read_csv(demo_models[1] / "energy_demo.csv")
    days = 170
    ends = pd.date_range("2018-01-01 00:15", periods=days * 96, freq="15min")
    usage = np.resize(demo["Usage_kWh"].to_numpy(), days * 96)
    dmy = [(t - pd.Timedelta(days=1) if (t.hour, t.minute) == (0, 0) else t).strftime("%d/%m/%Y %H:%M") for t in ends]
    energy = pd.DataFrame({"date": dmy, "Usage_kWh": usage})
    steel_csv(tmp_path / "steel.csv", energy)
    run_pipeline("steel-energy", tmp_path / "steel.csv", store=fs)
    fs.close()
    start = "2018-01-20"  # 150 days before the latest reading's day, a week and more after the first
    body = {"entity_ids": ["daewoo-gwangyang"], "view": "steel_energy_features", "horizon": 8, "start": start}
    answer = ok(client.post("/v1/energy/forecast", json=body, headers=h))
    assert answer[0]["origin"] == f"{start} 00:00:00"
    want = score(OnnxModel(demo_models[0] / "energy" / "v1"), energy, start=start, horizon=8)
    first = want[want["origin"] == want["origin"].iloc[0]]
    assert [p["p50"] for p in answer[:8]] == pytest.approx(first["p50"].tolist(), abs=1e-4)


def test_a_plan_reads_the_plants_load_by_meter_id_as_the_forecast_endpoint_does(client, db, settings, demo_models,
                                                                                tmp_path):
    """``energy_forecast`` took inline records only: ``{"entity_id", "view"}``, which POST /v1/energy/forecast takes,
    was a 422 "Extra inputs are not permitted" (integration audit). The plan now reads the meter's history from the
    offline store, and plans on the load the same rows sent as records give; records and an id together, or an id
    without its view, are refused in one line."""
    from pipelines.runner import run_pipeline

    h, fs = tenant_with(db, settings, demo_models, "energy", modules=("energy", "scheduling"))
    energy = pd.read_csv(demo_models[1] / "energy_demo.csv").iloc[-10 * 96:]
    steel_csv(tmp_path / "steel.csv", energy)
    run_pipeline("steel-energy", tmp_path / "steel.csv", store=fs)
    fs.close()
    start = f"{pd.to_datetime(energy['date'].iloc[-1], format='%d/%m/%Y %H:%M') + pd.Timedelta(days=1):%Y-%m-%d}"
    problem = {"machines": ["M1"], "jobs": [{"id": "A", "operations": [{"machines": {"M1": 120}, "power_kw": 5}]}],
               "energy": {"period": 60, "prices": [1.0] * 24, "peak_cap_kw": 1e6}}

    def plan(forecast: dict):  # noqa: ANN202
        return client.post("/v1/scheduling/solve", json={"problem": problem, "time_limit_s": 2,
                                                         "energy_forecast": {**forecast, "start": start}}, headers=h)

    by_id = plan({"entity_id": "daewoo-gwangyang", "view": "steel_energy_features"})
    assert by_id.status_code == 200, by_id.text
    sent = plan({"records": energy.to_dict("records")})
    assert sent.status_code == 200, sent.text
    used, want = by_id.json()["linked"]["energy_model"], sent.json()["linked"]["energy_model"]
    assert used["base_load_kw"] == want["base_load_kw"] and len(used["base_load_kw"]) == 24
    assert used["origin"] == want["origin"] and used["kwh_p50"] == want["kwh_p50"]
    for bad, said in (({"entity_id": "daewoo-gwangyang"}, 'energy_forecast.entity_id needs "view"'),
                      ({"entity_id": "daewoo-gwangyang", "view": "steel_energy_features",
                        "records": energy.head(3).to_dict("records")}, "one of the two"),
                      ({}, "one of the two")):
        r = plan(bad)
        assert r.status_code == 422 and said in r.json()["error"]["message"], r.text
    r = plan({"entity_id": "no-such-meter", "view": "steel_energy_features"})
    assert r.status_code == 404 and r.json()["error"]["message"].startswith("energy_forecast: no online features")


def test_a_machine_whose_remaining_life_ends_within_the_plan_is_serviced_first(client, db, settings, demo_models,
                                                                                tmp_path):
    """The maintenance module's remaining useful life fed no plan: only the failure probability did (integration
    audit). With ``remaining_life``, each machine's life from the tenant's rul model (its cycles read by entity id, as
    POST /v1/maintenance/rul/predict reads them) becomes plan time; a machine whose life ends within the plan gets a
    risk from the threshold (life ending at the plan's end) to 1.0 (at time 0), so it is serviced first, the shortest
    life first with one crew; the answer says what was used. Without the maintenance module the field is ignored."""
    from models.rul.data import read_cmapss
    from pipelines.runner import run_pipeline

    h, fs = tenant_with(db, settings, demo_models, "rul", modules=("maintenance", "scheduling"))
    cycles = read_cmapss(demo_models[1] / "cmapss_demo.txt")
    cycles = cycles[cycles["unit"].isin([1, 2, 3])]
    cut = cycles[cycles["cycle"] <= cycles["unit"] * 25 + 20]
    cut.to_csv(tmp_path / "train_FD001.txt", sep=" ", header=False, index=False)
    run_pipeline("cmapss", tmp_path / "train_FD001.txt", store=fs)
    fs.close()
    keys = {"M1": "FD001-u001", "M2": "FD001-u002", "M3": "FD001-u003"}
    ruls = {p["entity_id"]: p["rul"] for p in ok(client.post(
        "/v1/maintenance/rul/predict", json={"entity_ids": list(keys.values()), "view": "cmapss_features"},
        headers=h))}
    life = {m: ruls[e] for m, e in keys.items()}
    order = sorted(life, key=life.get)
    per = 10.0  # plan units per cycle
    span = int((sorted(life.values())[1] + 1) * per)  # the two shortest lives end within the plan, the longest after it
    jobs = [{"id": f"J{i}", "operations": [{"machines": {"M1": 10, "M2": 10, "M3": 10}}]} for i in range(3)]
    problem = {"machines": ["M1", "M2", "M3"], "jobs": jobs, "horizon": span,
               "failure_risk": {"policy": "window", "window_duration": 30, "crews": 1, "threshold": 0.6}}
    body = {"problem": problem, "time_limit_s": 2,
            "remaining_life": {"machines": keys, "view": "cmapss_features", "units_per_cycle": per}}
    r = client.post("/v1/scheduling/solve", json=body, headers=h)
    assert r.status_code == 200, r.text
    doc = r.json()
    used = doc["linked"]["remaining_life_model"]
    assert used["model"].startswith("rul") and used["rul_cycles"] == life and used["units_per_cycle"] == per
    assert used["life_units"] == {m: round(v * per, 3) for m, v in life.items()} and used["plan_span"] == span
    assert set(used["flagged"]) == set(order[:2]) and used["threshold_used"] == 0.6
    assert 1.0 >= used["flagged"][order[0]] > used["flagged"][order[1]] >= 0.6
    windows = sorted(doc["maintenance"], key=lambda w: w["start"])
    assert [w["machine"] for w in windows] == order[:2], windows  # one crew: the shortest life first
    assert windows[0]["start"] == 0 and windows[1]["start"] >= windows[0]["end"]
    # a tenant without the maintenance module: planned without it, and said
    bravo = make_tenant(db, PEPPER, "bravo", modules=("scheduling",))
    plain = client.post("/v1/scheduling/solve", json=body, headers=bearer(bravo.mes)).json()
    assert "remaining_life_model" not in plain["linked"] and plain["maintenance"] == []
    assert any(n.startswith("remaining_life") for n in plain["linked"]["ignored"]), plain["linked"]
    bad = client.post("/v1/scheduling/solve", json={**body, "remaining_life": {**body["remaining_life"],
                                                                               "units_per_cycle": 0}}, headers=h)
    assert bad.status_code == 422, bad.text
    none = client.post("/v1/scheduling/solve", json={**body, "remaining_life": {
        **body["remaining_life"], "machines": {"M1": "FD001-u099"}}}, headers=h)
    assert none.status_code == 404 and none.json()["error"]["message"].startswith("remaining_life: "), none.text


def test_energy_forecast_by_meter_id_needs_a_week_of_history(client, db, settings, demo_models, tmp_path):
    from pipelines.runner import run_pipeline

    h, fs = tenant_with(db, settings, demo_models, "energy", modules=("energy",))
    energy = pd.read_csv(demo_models[1] / "energy_demo.csv").iloc[-2 * 96 :]
    steel_csv(tmp_path / "steel.csv", energy)
    run_pipeline("steel-energy", tmp_path / "steel.csv", store=fs)
    fs.close()
    url = "/v1/energy/forecast"
    r = client.post(url, json={"entity_ids": ["daewoo-gwangyang"], "view": "steel_energy_features"}, headers=h)
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert "'daewoo-gwangyang' (192 readings" in message and "674 rows" in message, message
    r = client.post(url, json={"entity_ids": ["no-such-meter"], "view": "steel_energy_features"}, headers=h)
    assert r.status_code == 404 and "no-such-meter" in r.json()["error"]["message"]
    r = client.post(url, json={"entity_ids": ["daewoo-gwangyang"] * 17, "view": "steel_energy_features"}, headers=h)
    assert r.status_code == 422 and "at most 16 meters" in r.json()["error"]["message"], r.text


def test_openapi_documents_the_entity_id_of_each_answer_row(client):
    spec = client.get("/openapi.json").json()
    for path, id_field in (("/v1/quality/defect/predict", "row_id"), ("/v1/maintenance/failure/predict", "UDI"),
                           ("/v1/maintenance/rul/predict", "unit"), ("/v1/energy/forecast", "p50")):
        op = spec["paths"][path]["post"]
        rows = op["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["predictions"]
        assert {"entity_id", id_field} <= set(rows["items"]["properties"]), path
        body = op["requestBody"]["content"]["application/json"]["schema"]["properties"]
        assert "entity_id" in body["entity_ids"]["description"], path


def test_the_console_forecasts_the_plants_own_meter(client, db, settings, demo_models, tmp_path):
    """The dashboard's energy card forecast a built-in sample's day although the plant's meter readings were in its
    feature store (energy-manager audit). With a meter view holding readings, the console's sample asks for that
    meter's next day (source "store"), and that body answers; without one, the sample stays."""
    from pipelines.runner import run_pipeline

    h, fs = tenant_with(db, settings, demo_models, "energy", modules=("energy",))
    before = client.get("/v1/console/samples", headers=h).json()["samples"]["energy"]
    assert before["source"] == "builtin" and "records" in before["body"]
    energy = pd.read_csv(demo_models[1] / "energy_demo.csv").iloc[-10 * 96 :]
    steel_csv(tmp_path / "steel.csv", energy)
    run_pipeline("steel-energy", tmp_path / "steel.csv", store=fs)
    fs.close()
    sample = client.get("/v1/console/samples", headers=h).json()["samples"]["energy"]
    assert sample["source"] == "store" and sample["entity"] == "daewoo-gwangyang" and sample["actuals"] == []
    assert sample["body"] == {"view": "steel_energy_features", "entity_ids": ["daewoo-gwangyang"], "horizon": 96}
    answer = ok(client.post(sample["endpoint"], json=sample["body"], headers=h))
    last = pd.to_datetime(energy["date"].iloc[-1], format="%d/%m/%Y %H:%M") + pd.Timedelta(days=1)
    assert {p["origin"] for p in answer} == {f"{last:%Y-%m-%d} 00:00:00"} and len(answer) == 96


def test_engine_numbers_come_from_the_ids_where_each_names_its_own():
    from serving.predictions import _engine_numbers

    assert _engine_numbers(["FD001-u003", "FD001-u007", "FD003-t012"]) == [3, 7, 12]
    # two subsets' engine 3, or an id without a number: numbered in the request's order (entity_id tells them apart)
    assert _engine_numbers(["FD001-u003", "FD003-u003"]) == [1, 2]
    assert _engine_numbers(["FD001-u003", "press-7"]) == [1, 2]
    assert _engine_numbers(["FD001-u000"]) == [1]
