"""REST and MQTT ingest into a view the pipelines build takes the raw readings: the derived columns are computed as
``sfai ingest <dataset>`` computes them, and derived columns sent that contradict the readings are refused."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from feature_store import FeatureView, Field, entities
from feature_store.mqtt import MqttIngestor, Quarantine
from pipelines import views
from pipelines.canonical import TIMESTAMP
from pipelines.runner import run_pipeline
from pipelines.transforms import semiconductor
from tests.feature_store.conftest import REC, STATS, online_write_fails_once
from tests.serving.helpers import bearer, make_tenant, need_ai4i

PEPPER = "test-secret-0123456789"
URL = "/v1/ingest/ai4i_features"
# what the MES sends: the readings only (the audit's record)
RAW = {"lot_id": "ai4i-L47181", "event_timestamp": "2020-01-01T00:00:00Z", "udi": 1, "type": "L", "air_temp_k": 298.9,
       "process_temp_k": 309.1, "rotational_speed_rpm": 1551.0, "torque_nm": 42.8, "tool_wear_min": 0.0}


@pytest.fixture
def acme(app, db):
    keys = make_tenant(db, PEPPER, "acme")
    app.state.platform.feature_store("acme").apply(*views.VIEWS.values(), STATS)
    return keys


def _stored(fs, view: str) -> pd.DataFrame:  # noqa: ANN001
    files = fs.offline.files(fs.tenant, view)
    if not files:
        return pd.DataFrame()
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True).drop(columns=["created"])
    return df.sort_values([views.VIEWS[view].join_key, TIMESTAMP], kind="stable").reset_index(drop=True)


def test_raw_readings_are_enough_and_the_derived_columns_are_computed(client, app, acme):
    r = client.post(URL, json={"records": [RAW]}, headers=bearer(acme.mes))
    assert r.status_code == 200, r.text
    row = _stored(app.state.platform.feature_store("acme"), "ai4i_features").iloc[0]
    assert (row["type_l"], row["type_m"], row["type_h"]) == (1, 0, 0)
    assert row["temp_rise_k"] == np.float32(309.1 - 298.9)
    assert row["power_w"] == np.float32(42.8 * 1551.0 * 2 * np.pi / 60)
    assert row["wear_torque_min_nm"] == 0.0
    online = client.post("/v1/features/online", headers=bearer(acme.mes), json={
        "view": "ai4i_features", "entity_ids": ["ai4i-L47181"], "features": ["temp_rise_k", "type_l"]}).json()
    assert online["rows"][0]["temp_rise_k"] == pytest.approx(10.2) and online["rows"][0]["type_l"] == 1


def test_derived_columns_that_contradict_the_readings_are_refused_naming_row_and_column(client, app, acme):
    bad = {**RAW, "type_m": 1, "temp_rise_k": 99, "power_w": 1}
    r = client.post(URL, json={"records": [
        RAW | {"udi": 2, "lot_id": "ai4i-L2", "type_m": None, "temp_rise_k": None, "power_w": None}, bad]},
        headers=bearer(acme.mes))
    assert r.status_code == 422, r.text
    msg = r.json()["error"]["message"]
    assert msg.startswith("row 2, column 'type_m': 1 contradicts the readings (they give 0)"), msg
    assert "leave the derived columns out" in msg
    assert _stored(app.state.platform.feature_store("acme"), "ai4i_features").empty  # nothing stored


@pytest.mark.parametrize(("change", "said"), [
    ({"type": "X"}, "row 2, column 'type': 'X' is not L, M, H (the ai4i pipeline sets such a reading aside)"),
    ({"type": None}, "row 2, column 'type': an empty cell is not L, M, H"),
    ({"air_temp_k": -5.0}, "row 2, column 'air_temp_k': -5 is outside 250 to 350 K (the ai4i pipeline sets"),
    ({"rotational_speed_rpm": 1e6}, "row 2, column 'rotational_speed_rpm': 1000000 is outside 0 to 10,000 rpm"),
])
def test_a_reading_the_file_pipeline_sets_aside_is_refused(client, app, acme, change, said):
    """A type other than L, M or H was stored with every type flag 0, and readings outside the adapter's ranges
    (-5 K, 10^6 rpm) were stored (review): the file pipeline sets such rows aside. Nothing is stored."""
    r = client.post(URL, json={"records": [RAW | {"lot_id": "ai4i-X1", "udi": 2}, RAW | change]},
                    headers=bearer(acme.mes))
    assert r.status_code == 422 and r.json()["error"]["message"].startswith(said), r.text
    assert _stored(app.state.platform.feature_store("acme"), "ai4i_features").empty


def test_derived_columns_that_agree_within_float32_are_accepted_and_the_computed_ones_stored(client, app, acme):
    f32 = np.float32
    rise = float(f32(309.1) - f32(298.9))  # an MES computing in float32: a few float32 steps off the pipeline's
    ok = {**RAW, "type_l": 1, "type_m": 0, "type_h": 0, "temp_rise_k": rise, "power_w": 6951.6, "wear_torque_min_nm": 0}
    r = client.post(URL, json={"records": [ok]}, headers=bearer(acme.mes))
    assert r.status_code == 200, r.text
    row = _stored(app.state.platform.feature_store("acme"), "ai4i_features").iloc[0]
    assert row["temp_rise_k"] == np.float32(309.1 - 298.9) != np.float32(rise)


def test_rest_rows_are_stored_as_the_file_pipeline_stores_them(client, app, db, acme, settings):
    src = need_ai4i()
    lines = src.read_text().splitlines()
    small = settings.home / "ai4i_small.csv"
    small.write_text("\n".join(lines[:201]) + "\n")
    make_tenant(db, PEPPER, "filed")
    filed = app.state.platform.feature_store("filed")
    run_pipeline("ai4i", small, store=filed)
    expected = _stored(filed, "ai4i_features")
    raw_cols = ["lot_id", TIMESTAMP, "udi", "type", "air_temp_k", "process_temp_k", "rotational_speed_rpm",
                "torque_nm", "tool_wear_min"]
    from pipelines.adapters import ai4i

    readings = ai4i.read(small).tables["sensor_readings"].data[raw_cols]  # the file's float64 readings
    recs = readings.assign(**{TIMESTAMP: readings[TIMESTAMP].map(lambda t: t.isoformat())}).to_dict("records")
    r = client.post(URL, json={"records": recs}, headers=bearer(acme.mes))
    assert r.status_code == 200, r.text
    pd.testing.assert_frame_equal(_stored(app.state.platform.feature_store("acme"), "ai4i_features"), expected,
                                  check_exact=True)


def test_secom_counts_the_missing_measurements(client, app, acme):
    rec = {"lot_id": "secom-0001", "event_timestamp": "2008-07-19T11:55:00Z", "row_id": 1,
           **{f: 1.5 for f in semiconductor.FEATURES if f not in ("row_id", "n_missing")}}
    rec["f003"] = rec["f010"] = None
    h = bearer(acme.mes)
    assert client.post("/v1/ingest/secom_features", json={"records": [rec]}, headers=h).status_code == 200
    assert _stored(app.state.platform.feature_store("acme"), "secom_features")["n_missing"].tolist() == [2]
    r = client.post("/v1/ingest/secom_features", json={"records": [{**rec, "n_missing": 0}]}, headers=h)
    assert r.status_code == 422 and "row 1, column 'n_missing': 0 contradicts" in r.text, r.text


def test_a_tenants_own_view_is_ingested_as_before(client, app, acme):
    """A view the tenant declared itself, even one named and shaped like a pipeline view, derives nothing."""
    own = FeatureView(name="milling", entity=entities.lot, owner="acme-team",
                      schema=[Field(name=f.name, dtype=f.dtype) for f in views.ai4i_features.schema])
    app.state.platform.feature_store("acme").apply(own)
    r = client.post("/v1/ingest/milling", json={"records": [RAW]}, headers=bearer(acme.mes))
    assert r.status_code == 422 and "missing column 'type_l' for feature view 'milling'" in r.text, r.text
    r = client.post("/v1/ingest/machine_stats", json={"records": [REC]}, headers=bearer(acme.mes))
    assert r.status_code == 200, r.text


def test_idempotent_retries_and_the_online_retry_of_raw_rows(client, app, acme, monkeypatch):
    store = app.state.platform.feature_store("acme")
    h = bearer(acme.mes)
    body = {"records": [RAW]}
    first = client.post(URL, json=body, headers={**h, "Idempotency-Key": "a1"})
    again = client.post(URL, json=body, headers={**h, "Idempotency-Key": "a1"})
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
    online_write_fails_once(monkeypatch, store)
    later = {"records": [{**RAW, "lot_id": "ai4i-M9", "udi": 9, "type": "M",
                          "event_timestamp": "2020-01-01T00:08:00Z"}]}
    assert client.post(URL, json=later, headers={**h, "Idempotency-Key": "b2"}).status_code == 503
    retry = client.post(URL, json=later, headers={**h, "Idempotency-Key": "b2"})
    assert retry.status_code == 200 and retry.json()["online_updated"] == 1, retry.text
    assert len(_stored(store, "ai4i_features")) == 2  # stored once
    row = store.get_online_features("ai4i_features", ["ai4i-M9"], ["type_m"])[0]
    assert row["type_m"] == 1


def test_mqtt_messages_of_raw_readings(app, acme, tmp_path):
    store = app.state.platform.feature_store("acme")
    ing = MqttIngestor(lambda t: store, Quarantine(tmp_path / "q"))
    ing.on_message("factory/acme/ai4i_features", json.dumps(RAW).encode())
    ing.on_message("factory/acme/ai4i_features", json.dumps({**RAW, "udi": 3, "temp_rise_k": 99}).encode())
    assert ing.drain() == 2
    assert (ing.stats.rows_written, ing.stats.bad) == (1, 1), ing.stats
    assert _stored(store, "ai4i_features")["type_l"].tolist() == [1]


def test_pushes_to_a_history_view_wait_outside_the_threadpool():
    """Each history-view push reads what the one before stored, so they run one at a time per tenant and view. They
    had waited on a lock inside the threadpool: 80 pushes at once held its threads and another tenant's calls
    waited up to 4 s (review). They now wait on an asyncio lock before taking a thread."""
    import asyncio
    import contextlib
    import time

    from starlette.concurrency import run_in_threadpool

    from serving.routers.ingest import _one_push_at_a_time

    assert isinstance(_one_push_at_a_time(1, "ai4i_features"), contextlib.nullcontext)  # row-local: no wait
    assert isinstance(_one_push_at_a_time(1, "machine_stats"), contextlib.nullcontext)  # a tenant's own view
    assert _one_push_at_a_time(1, "steel_energy_features") is _one_push_at_a_time(1, "steel_energy_features")
    assert _one_push_at_a_time(1, "steel_energy_features") is not _one_push_at_a_time(2, "steel_energy_features")
    inside = [0, 0]  # now, most at once

    def push() -> None:
        inside[0] += 1
        inside[1] = max(inside)
        time.sleep(0.02)
        inside[0] -= 1

    async def main() -> None:
        async def one() -> None:
            async with _one_push_at_a_time(3, "cmapss_features"):
                await run_in_threadpool(push)

        await asyncio.gather(*(one() for _ in range(10)))

    asyncio.run(main())
    assert inside[1] == 1  # one at a time; the nine others waited without a thread
