"""POST /v1/ingest/{view}: JSON records, CSV and Parquet uploads; errors name the row and column."""

import io

import pandas as pd
import pytest

from tests.feature_store.conftest import REC, STATS
from tests.serving.helpers import bearer, make_tenant

PEPPER = "test-secret-0123456789"


def nested(depth: int) -> dict:
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.fixture
def acme(app, db):
    keys = make_tenant(db, PEPPER, "acme")
    app.state.platform.feature_store("acme").apply(STATS)
    return keys


def test_json_records_land_offline_and_online(client, app, acme):
    r = client.post(
        "/v1/ingest/machine_stats", json={"records": [REC, {**REC, "machine_id": "m2"}]}, headers=bearer(acme.mes)
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "view": "machine_stats",
        "rows": 2,
        "files": 1,
        "partitions": ["date=2026-03-01"],
        "online_updated": 2,
        "online_skipped_older": 0,
    }
    fs = app.state.platform.feature_store("acme")
    assert fs.offline.row_count("acme", "machine_stats") == 2
    online = client.post(
        "/v1/features/online", json={"view": "machine_stats", "entity_ids": ["m1", "m9"]}, headers=bearer(acme.mes)
    ).json()
    assert online["rows"][0]["temp_mean"] == 70.5 and online["rows"][1]["temp_mean"] is None
    views = client.get("/v1/features/views", headers=bearer(acme.mes)).json()
    assert views[0]["name"] == "machine_stats" and views[0]["features"]["temp_mean"] == "float32"


def test_online_values_come_back_as_written(client, acme):
    """A float32 feature written as 65.2 was read back as 65.19999694824219 (the float32's float64 digits), so an MES
    comparing what it wrote with what it reads saw a change (MES audit): the online store keeps the float32's
    shortest decimal, which is the same float32."""
    written = [65.2, 1.2, 0.1, 123.456]
    rows = [{**REC, "machine_id": f"m{i}", "temp_mean": v} for i, v in enumerate(written)]
    assert client.post("/v1/ingest/machine_stats", json={"records": rows}, headers=bearer(acme.mes)).status_code == 200
    online = client.post("/v1/features/online", headers=bearer(acme.mes), json={
        "view": "machine_stats", "entity_ids": [r["machine_id"] for r in rows]}).json()
    assert [r["temp_mean"] for r in online["rows"]] == written


def test_csv_and_parquet_uploads(client, acme):
    csv = "machine_id,event_timestamp,temp_mean,vib_rms,alarm,mode\nm1,2026-03-02T00:00:00Z,1.5,0.5,true,idle\n"
    r = client.post("/v1/ingest/machine_stats", files={"file": ("rows.csv", csv, "text/csv")}, headers=bearer(acme.mes))
    assert r.status_code == 200 and r.json()["rows"] == 1
    df = pd.DataFrame([REC])
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"])
    buf = io.BytesIO()
    df.to_parquet(buf)
    r = client.post(
        "/v1/ingest/machine_stats",
        content=buf.getvalue(),
        headers={**bearer(acme.mes), "content-type": "application/vnd.apache.parquet"},
    )
    assert r.status_code == 200 and r.json()["rows"] == 1
    r = client.post(
        "/v1/ingest/machine_stats?format=csv",
        content=csv.encode(),
        headers={**bearer(acme.mes), "content-type": "application/octet-stream"},
    )
    assert r.status_code == 200


@pytest.mark.parametrize(
    "kwargs, status, message",
    [
        ({"json": {"records": [{**REC, "temp_mean": "hot"}]}}, 422, "row 1, column 'temp_mean'"),
        ({"json": {"records": [{**REC, "colour": "red"}]}}, 422, "unknown column 'colour'"),
        ({"json": {"records": []}}, 422, "records"),
        ({"json": {"rows": [REC]}}, 422, "records"),
        ({"json": {"records": [REC, 7]}}, 422, "records.1: Input should be a valid dictionary"),
        ({"json": {"records": [{**REC, "temp_mean": 1e39}]}}, 422, "1e+39 is out of the float32 range"),
        ({"json": {"records": [{**REC, "vib_rms": "inf"}]}}, 422, "'inf' is not a finite number"),
        ({"content": b'{"records": ' + b"[" * 5000 + b"]" * 5000 + b"}", "headers": {"content-type":
          "application/json"}}, 422, "nested too deeply"),
        ({"content": b"{nope", "headers": {"content-type": "application/json"}}, 422, "not valid JSON"),
        # json kept the last of the two values
        ({"content": b'{"records": [{"machine_id": "m1", "machine_id": "m2", "event_timestamp": "2026-03-01", '
                     b'"temp_mean": 1, "vib_rms": 1, "alarm": false, "mode": "run"}]}',
          "headers": {"content-type": "application/json"}}, 422, "names the key 'machine_id' twice in one object"),
        # the second row was stored with mode null
        ({"json": {"records": [REC, {k: v for k, v in REC.items() if k != "mode"} | {"machine_id": "m2"}]}}, 422,
         "row 2: missing column 'mode'"),
        # took Arrow 8 s to refuse
        ({"json": {"records": [{**REC, "mode": nested(900)}]}}, 422,
         "row 1, column 'mode': {'a': {'a': {...}}} is not a single value"),
        (
            {"content": b"\x00\x01garbage", "headers": {"content-type": "application/vnd.apache.parquet"}},
            422,
            "cannot read",
        ),
        ({"content": b"a,b\n1,2\n", "headers": {"content-type": "application/octet-stream"}}, 415, "format=csv"),
        ({"files": {"file": ("rows.xlsx", b"x", "application/octet-stream")}}, 422, "format"),
    ],
)
def test_bad_uploads_are_4xx_and_write_nothing(client, app, acme, kwargs, status, message):
    kwargs = dict(kwargs)  # the parameter dict is shared by the SQLite and PostgreSQL runs
    headers = {**bearer(acme.mes), **kwargs.pop("headers", {})}
    r = client.post("/v1/ingest/machine_stats", headers=headers, **kwargs)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]["message"] and "pydantic.dev" not in r.text
    assert app.state.platform.feature_store("acme").offline.files("acme", "machine_stats") == []


def _parquet(table, **kwargs) -> bytes:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", **kwargs)
    return buf.getvalue()


def _rle_zeros(batches: int = 80, rows: int = 1 << 20) -> bytes:
    """80 Mi zeros in one int64 column: 1.5 MB of Parquet (run-length encoded), 640 MiB once read."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.table({"temp_mean": pa.array(np.zeros(rows, dtype=np.int64))})
    buf = io.BytesIO()
    with pq.ParquetWriter(buf, t.schema, compression="zstd") as w:
        for _ in range(batches):
            w.write_table(t)
    return buf.getvalue()


def test_uploads_that_decode_to_more_than_the_limit_are_refused_before_they_are_read(client, app, acme):
    """One call could take gigabytes: a Parquet file of one 1 MiB text repeated (a few hundred bytes; 600 MiB, and
    with 10,000 rows 10 GB, once read), a run of zeros, a CSV or a record of 20,000 columns (300,000 columns in
    1.2 MB of CSV took 3 GB and 9 s to read, before the first unknown column was named). Each is refused from its
    metadata or header, and nothing is written."""
    import pyarrow as pa

    raw = {"content-type": "application/vnd.apache.parquet"}
    text = pa.DictionaryArray.from_arrays(pa.array([0] * 600, pa.int32()), pa.array(["a" * (1 << 20)]))
    wide = ",".join(f"c{i}" for i in range(20_000))
    cases = [
        ({"content": _parquet(pa.table({"machine_id": text}), store_schema=False), "headers": raw}, "once decoded"),
        ({"content": _parquet(pa.table({"machine_id": text})), "headers": raw}, "once decoded"),  # a dictionary
        ({"content": _rle_zeros(), "headers": raw}, "once decoded"),
        ({"files": {"file": ("rows.parquet", _rle_zeros(), "application/octet-stream")}}, "once decoded"),
        ({"content": (wide + "\n" + wide + "\n").encode(), "headers": {"content-type": "text/csv"}},
         "20,000 columns; at most 10,000"),
        ({"content": ('"a\nb",' + wide + "\n").encode(), "headers": {"content-type": "text/csv"}},
         "20,001 columns"),  # a quoted line break in the header
        ({"json": {"records": [dict.fromkeys(wide.split(","), 1)]}}, "20,000 columns"),
    ]
    for kwargs, message in cases:
        headers = {**bearer(acme.mes), **kwargs.pop("headers", {})}
        if "content" in kwargs:
            assert len(kwargs["content"]) < 4 << 20
        r = client.post("/v1/ingest/machine_stats", headers=headers, **kwargs)
        assert r.status_code == 422 and message in r.json()["error"]["message"], r.text
    assert app.state.platform.feature_store("acme").offline.files("acme", "machine_stats") == []
    # a Parquet upload within the limits, its text dictionary-encoded or not, still lands
    df = pd.DataFrame([REC, {**REC, "machine_id": "m2", "mode": "idle"}])
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"])
    for table in (pa.Table.from_pandas(df), pa.Table.from_pandas(df.astype({"mode": "category"}))):
        r = client.post("/v1/ingest/machine_stats", content=_parquet(table), headers={**bearer(acme.mes), **raw})
        assert r.status_code == 200 and r.json()["rows"] == 2, r.text
    online = client.post("/v1/features/online", json={"view": "machine_stats", "entity_ids": ["m2"]},
                         headers=bearer(acme.mes)).json()
    assert online["rows"][0]["mode"] == "idle"


def test_views_are_per_tenant_and_roles_apply(client, app, db, acme):
    other = make_tenant(db, PEPPER, "other")
    r = client.post("/v1/ingest/machine_stats", json={"records": [REC]}, headers=bearer(other.mes))
    assert r.status_code == 404 and "machine_stats" in r.json()["error"]["message"]
    assert client.get("/v1/features/views", headers=bearer(other.mes)).json() == []
    r = client.post(
        "/v1/features/online", json={"view": "machine_stats", "entity_ids": ["m1"]}, headers=bearer(other.mes)
    )
    assert r.status_code == 404
    planner = client.post("/v1/apikeys", json={"role": "planner"}, headers=bearer(acme.admin)).json()["api_key"]
    r = client.post("/v1/ingest/machine_stats", json={"records": [REC]}, headers=bearer(planner))
    assert r.status_code == 403
    assert client.post("/v1/ingest/machine_stats", json={"records": [REC]}).status_code == 401
