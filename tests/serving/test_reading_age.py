"""A prediction by entity id says how old its reading is: each answer row carries ``reading_at`` (the time of the
reading it stood on, UTC with Z) and ``reading_age_s`` (its age in whole seconds at answer time), and a reading
older than ``SFAI_STALE_READING_S`` (default 3600; 0: never) adds a warning naming the entity and its age, so an MES
operator sees a stalled sensor feed instead of trusting an old prediction (MES-integrator audit). The answer time
is ``serving.predictions.clock``, set here."""

import io
import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest

from feature_store import FeatureView, Field, entities
from serving import fastpath, predictions
from serving.settings import Settings
from tests.serving.test_entity_predictions import ARROW, steel_csv, tenant_with

NEW = ("reading_at", "reading_age_s")
FAILURE, RUL, ENERGY = "/v1/maintenance/failure/predict", "/v1/maintenance/rul/predict", "/v1/energy/forecast"
PUSHED = {"press-0": "2026-12-01T00:00:00Z", "press-1": "2026-12-01T05:30:00Z"}
NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)  # press-0's reading is 6 hours old, press-1's 30 minutes


@pytest.fixture
def at(monkeypatch):
    """Set the answer time: ``at(datetime)``."""
    def set_clock(now: datetime) -> None:
        monkeypatch.setattr(predictions, "clock", lambda: now, raising=False)  # (a failure below, not here, without it)

    set_clock(NOW)
    return set_clock


@pytest.fixture
def fast_answers(monkeypatch):
    """How many calls the fast path answered itself."""
    seen = {"answered": 0}
    inner = fastpath.answer

    def answer(*args, **kwargs):
        out = inner(*args, **kwargs)
        seen["answered"] += 1
        return out

    monkeypatch.setattr(fastpath, "answer", answer)
    return seen


def presses(client, db, settings, demo_models):
    """acme's failure model and two presses' readings pushed through POST /v1/ingest at ``PUSHED``'s times:
    (headers, the readings as records)."""
    from models.failure.features import STORE_NAMES

    h, fs = tenant_with(db, settings, demo_models, "failure", modules=("maintenance",))
    readings = {store: raw for store, raw in STORE_NAMES.items() if store != "udi"}
    fs.apply(FeatureView(name="press_readings", entity=entities.machine,
                         schema=[Field(name=n, dtype="string" if n == "type" else "float64") for n in readings]))
    fs.close()
    recs = pd.read_csv(demo_models[1] / "ai4i_demo.csv").head(2).to_dict("records")
    rows = [{"machine_id": m, "event_timestamp": t, **{store: r[raw] for store, raw in readings.items()}}
            for (m, t), r in zip(PUSHED.items(), recs, strict=True)]
    r = client.post("/v1/ingest/press_readings", content=json.dumps({"records": rows}),
                    headers={**h, "content-type": "application/json"})
    assert r.status_code == 200, r.text
    return h, recs


def by_id(client, h, ids, url=FAILURE, view="press_readings", **extra):
    r = client.post(url, json={"entity_ids": ids, "view": view, **extra}, headers=h)
    assert r.status_code == 200, r.text
    return r.json()


def test_each_row_says_when_its_reading_was_taken_and_how_old_it_is(client, db, settings, demo_models, at,
                                                                    fast_answers):
    """The failure model by machine id, on the fast path, the route (over 16 ids, in a worker thread) and as Arrow:
    each row's reading_at is the pushed reading's time, its age the seconds to the answer time; press-0's reading,
    6 hours old, is named in a warning with its age, press-1's (30 minutes) is not."""
    h, _ = presses(client, db, settings, demo_models)
    ids = ["press-1", "press-0"]
    first = by_id(client, h, ids)  # loads the model and the store: the route
    for _ in range(3):  # the fast path, once its caches are warm: a loaded CI machine may outlast their 2-s life
        before = fast_answers["answered"]
        again = by_id(client, h, ids)
        if fast_answers["answered"] > before:
            break
    assert fast_answers["answered"] == before + 1
    assert first == again
    rows = again["predictions"]
    assert [p["entity_id"] for p in rows] == ids
    assert [p["reading_at"] for p in rows] == [PUSHED["press-1"], PUSHED["press-0"]]
    assert [p["reading_age_s"] for p in rows] == [1800, 6 * 3600]
    (warning,) = again["warnings"]
    assert warning.startswith("stale readings: 1 entity's reading is older than 3,600 s (SFAI_STALE_READING_S): "
                              "'press-0' read at 2026-12-01T00:00:00Z (21,600 s, 6.0 hours ago). "), warning
    assert "press-1" not in warning and "POST /v1/ingest/press_readings" in warning
    # the contract's fields first, as before, then entity_id and the reading
    assert list(rows[0])[-3:] == ["entity_id", "reading_at", "reading_age_s"]

    many = by_id(client, h, ids * 10)  # past the fast path's 16: the route, in a worker thread
    assert [p["reading_age_s"] for p in many["predictions"]] == [1800, 21600] * 10
    assert many["warnings"] == [warning]  # each entity named once

    arrow = client.post(FAILURE, json={"entity_ids": ids, "view": "press_readings"}, headers={**h, **ARROW})
    got = pa.ipc.open_stream(io.BytesIO(arrow.content)).read_all()
    assert got.column("reading_at").to_pylist() == [PUSHED["press-1"], PUSHED["press-0"]]
    assert got.column("reading_age_s").to_pylist() == [1800, 21600]
    assert got.schema.field("reading_age_s").type == "int64"
    # the warning too: its count in a header, its text in the stream's metadata (it had been dropped)
    assert arrow.headers["x-sfai-warnings"] == "1"
    assert json.loads(got.schema.metadata[b"sfai.warnings"]) == [warning]
    fresh = client.post(FAILURE, json={"entity_ids": ["press-1"], "view": "press_readings"}, headers={**h, **ARROW})
    assert "x-sfai-warnings" not in fresh.headers
    assert b"sfai.warnings" not in (pa.ipc.open_stream(io.BytesIO(fresh.content)).schema.metadata or {})

    at(NOW + timedelta(days=2, seconds=7))  # the clock moves on: the ages with it
    later = by_id(client, h, ids)
    assert [p["reading_age_s"] for p in later["predictions"]] == [1800 + 172807, 21600 + 172807]
    assert "2 entities' readings are older" in later["warnings"][0] and "(194,407 s, 2.3 days ago)" in \
        later["warnings"][0]


def test_the_warning_comes_over_the_threshold_only_and_not_when_disabled(client, db, settings, demo_models, at):
    h, recs = presses(client, db, settings, demo_models)
    ids = ["press-0"]  # 21,600 s old
    for threshold, warned in ((21_599, True), (21_600, False), (86_400, False), (0, False), (1, True)):
        settings.stale_reading_s = threshold
        for _ in range(2):  # the route, then the fast path
            answer = by_id(client, h, ids)
            assert answer["predictions"][0]["reading_age_s"] == 21600  # the fields stay, whatever the threshold
            if warned:
                assert answer["warnings"][0].startswith(f"stale readings: 1 entity's reading is older than "
                                                        f"{threshold:,} s"), (threshold, answer)
            else:
                assert "warnings" not in answer, (threshold, answer)  # a failure answer as before: no warnings
    # records sent inline: no reading, no age, no warning
    sent = client.post(FAILURE, json={"records": [{k: v for k, v in r.items() if k not in (
        "UDI", "Machine failure", "TWF", "HDF", "PWF", "OSF", "RNF")} for r in recs]}, headers=h).json()
    assert "warnings" not in sent and not set(NEW) & set(sent["predictions"][0])


def test_the_setting_is_read_from_the_environment(monkeypatch):
    assert Settings().stale_reading_s == 3600
    monkeypatch.setenv("SFAI_STALE_READING_S", "0")
    assert Settings().stale_reading_s == 0
    monkeypatch.setenv("SFAI_STALE_READING_S", "-5")
    with pytest.raises(ValueError, match="stale_reading_s"):
        Settings()


def test_a_defect_answer_adds_the_stale_warning_after_its_own(client, db, settings, demo_models, at):
    """The defect model by machine id (the frame scorer): its rows carry the reading, and its own warnings come
    first, the stale-reading warning after them."""
    h, fs = tenant_with(db, settings, demo_models, "defect", modules=("quality",))
    wafers = pd.read_csv(demo_models[1] / "secom_demo.csv").drop(columns=["label", "row_id"]).head(2)
    fs.apply(FeatureView(name="cycles_f", entity=entities.machine,
                         schema=[Field(name=m, dtype="float64") for m in wafers.columns]))
    fs.ingest("cycles_f", pd.DataFrame([{"machine_id": m, "event_timestamp": t, **w} for (m, t), w in zip(
        (("IMM-03", "2026-11-30T06:00:00Z"), ("IMM-04", "2026-12-01T05:59:00Z")), wafers.to_dict("records"),
        strict=True)]))
    fs.close()
    url = "/v1/quality/defect/predict"
    answer = by_id(client, h, ["IMM-04", "IMM-03"], url=url, view="cycles_f")
    assert [(p["reading_at"], p["reading_age_s"]) for p in answer["predictions"]] == [
        ("2026-12-01T05:59:00Z", 60), ("2026-11-30T06:00:00Z", 86400)]
    own = client.post(url, json={"records": wafers.to_dict("records")[::-1]}, headers=h).json()["warnings"]
    assert answer["warnings"][:-1] == own
    assert answer["warnings"][-1].startswith("stale readings: 1 entity's reading is older than 3,600 s "
                                             "(SFAI_STALE_READING_S): 'IMM-03' read at 2026-11-30T06:00:00Z "
                                             "(86,400 s, 24.0 hours ago)"), answer["warnings"]


def test_remaining_life_by_unit_id_is_aged_from_its_latest_cycle(client, db, settings, demo_models, tmp_path, at):
    """Remaining life reads each unit's cycles from the offline store: its reading is the latest cycle read, the
    online store's time for the unit."""
    from models.rul.data import read_cmapss
    from pipelines.runner import run_pipeline

    h, fs = tenant_with(db, settings, demo_models, "rul", modules=("maintenance",))
    cycles = read_cmapss(demo_models[1] / "cmapss_demo.txt")
    cut = cycles[cycles["unit"].isin([1, 2]) & (cycles["cycle"] <= cycles["unit"] * 25 + 20)]
    cut.to_csv(tmp_path / "train_FD001.txt", sep=" ", header=False, index=False)
    run_pipeline("cmapss", tmp_path / "train_FD001.txt", store=fs)
    fs.close()
    keys = ["FD001-u002", "FD001-u001"]
    online = client.post("/v1/features/online", json={"entity_ids": keys, "view": "cmapss_features"}, headers=h)
    stamps = {row["unit_id"]: row["event_timestamp"] for row in online.json()["rows"]}
    last = {k: datetime.fromisoformat(stamps[k]) for k in keys}
    at(last["FD001-u002"] + timedelta(minutes=10))
    answer = by_id(client, h, keys, url=RUL, view="cmapss_features")
    rows = {p["entity_id"]: p for p in answer["predictions"]}
    assert {k: rows[k]["reading_at"] for k in keys} == {k: stamps[k] for k in keys}
    assert rows["FD001-u002"]["reading_age_s"] == 600
    age = int((last["FD001-u002"] - last["FD001-u001"]).total_seconds()) + 600
    assert rows["FD001-u001"]["reading_age_s"] == age > 3600
    stale = [w for w in answer["warnings"] if w.startswith("stale readings")]
    assert len(stale) == 1 and f"'FD001-u001' read at {stamps['FD001-u001']} ({age:,} s" in stale[0]
    assert "FD001-u002" not in stale[0]


def test_an_energy_forecast_by_meter_id_is_aged_from_its_latest_row(client, db, settings, demo_models, tmp_path,
                                                                     at):
    """An energy forecast by meter id stands on the meter's latest row read from the offline store (the file's last
    row, 24:00 in Korea: 15:00 UTC): every forecast row carries it, the forecast numbers are those of the same
    readings sent as records, and a day-old row is warned of."""
    from pipelines.runner import run_pipeline

    h, fs = tenant_with(db, settings, demo_models, "energy", modules=("energy",))
    energy = pd.read_csv(demo_models[1] / "energy_demo.csv").iloc[-10 * 96:]
    steel_csv(tmp_path / "steel.csv", energy)
    run_pipeline("steel-energy", tmp_path / "steel.csv", store=fs)
    fs.close()
    day = pd.to_datetime(energy["date"].iloc[-1], format="%d/%m/%Y %H:%M")  # "dd/mm/yyyy 00:00": that day's 24:00
    taken = (day + pd.Timedelta(days=1)).tz_localize("Asia/Seoul").tz_convert("UTC")
    reading_at = f"{taken:%Y-%m-%dT%H:%M:%S}Z"
    at(taken.to_pydatetime() + timedelta(hours=25))
    body = {"entity_ids": ["daewoo-gwangyang"], "view": "steel_energy_features", "horizon": 8}
    answer = by_id(client, h, body["entity_ids"], url=ENERGY, view=body["view"], horizon=8)
    assert {(p["reading_at"], p["reading_age_s"]) for p in answer["predictions"]} == {(reading_at, 25 * 3600)}
    assert answer["warnings"][-1].startswith("stale readings: 1 entity's reading is older than 3,600 s "
                                             f"(SFAI_STALE_READING_S): 'daewoo-gwangyang' read at {reading_at} "
                                             "(90,000 s, 25.0 hours ago)"), answer["warnings"]
    start = f"{day + pd.Timedelta(days=1):%Y-%m-%d}"
    sent = client.post(ENERGY, json={"records": energy.to_dict("records"), "horizon": 8, "start": start}, headers=h)
    assert sent.status_code == 200, sent.text
    stripped = [{k: v for k, v in p.items() if k not in ("entity_id", *NEW)} for p in answer["predictions"]]
    assert stripped == sent.json()["predictions"]  # the forecast numbers, exactly
    assert answer["warnings"][:-1] == [f"entity 'daewoo-gwangyang': {w}" for w in sent.json()["warnings"]]
    settings.stale_reading_s = 0
    quiet = by_id(client, h, body["entity_ids"], url=ENERGY, view=body["view"], horizon=8)
    assert quiet["warnings"] == answer["warnings"][:-1] and quiet["predictions"] == answer["predictions"]
    arrow = pa.ipc.open_stream(io.BytesIO(client.post(ENERGY, json=body, headers={**h, **ARROW}).content)).read_all()
    assert set(arrow.column("reading_at").to_pylist()) == {reading_at}
    assert set(arrow.column("reading_age_s").to_pylist()) == {90000}


def test_openapi_describes_the_reading_and_the_warning(client):
    spec = client.get("/openapi.json").json()["paths"]
    for path in (FAILURE, RUL, "/v1/quality/defect/predict", ENERGY):
        answer = spec[path]["post"]["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
        rows = answer["predictions"]["items"]["properties"]
        assert rows["reading_at"]["type"] == "string" and rows["reading_at"]["format"] == "date-time", path
        assert rows["reading_age_s"]["type"] == "integer", path
        assert "SFAI_STALE_READING_S" in answer["warnings"]["description"], path
