"""Limits: per-subscription rate limits and monthly quotas (429 with Retry-After), request body size (413),
batch size, background solve limits, and the security headers and CORS policy every answer carries."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from models.registry import ModelRegistry
from serving import tenancy
from serving.access import next_month_start
from serving.app import create_app
from serving.db.tables import SchedulingJob
from serving.errors import InvalidInput
from serving.settings import Settings
from serving.usage import count_calls, query_usage
from tests.serving.helpers import bearer, make_tenant, need_ai4i, quick_failure_model
from tests.serving.test_api import assert_error

PEPPER = "test-secret-0123456789"
PREDICT = "/v1/maintenance/failure/predict"
PROBLEM = {"machines": ["M1"], "jobs": [{"id": "J1", "operations": [{"machines": {"M1": 2}}]}]}


def _client(settings, db, **update) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=update), db=db))


def test_rate_limit_per_subscription_answers_429_with_retry_after(settings, db):
    acme = make_tenant(db, PEPPER, "acme", modules=("quality",))
    tenancy.subscribe(db, "acme", "energy", plan="enterprise")
    h = bearer(acme.mes)
    # standard: 1 call/s with a 3 s burst -> 3 calls pass at once, the 4th waits about a second
    with _client(settings, db, rate_limits={"standard": 1.0, "enterprise": None}, rate_limit_burst_s=3) as client:
        assert [client.post("/v1/quality/defect/predict", json={"records": [{"x": 1}]}, headers=h).status_code
                for _ in range(3)] == [404] * 3  # no model: answered, and counted
        r = client.get("/v1/quality/status", headers={**h, "X-Request-ID": "limited-1"})
        err = assert_error(r, 429, "rate_limited")
        assert "quality" in err["message"] and "standard" in err["message"]
        assert r.headers["retry-after"] == "1"
        # another module of the same tenant has its own bucket; enterprise has no rate limit
        assert {client.get("/v1/energy/status", headers=h).status_code for _ in range(20)} == {200}
        time.sleep(1.05)
        assert client.get("/v1/quality/status", headers=h).status_code == 200
    tenant_id = tenancy.get_tenant(db, "acme").id
    log = {r["request_id"]: r["status"] for r in query_usage(db, tenant_id, limit=100)["records"]}
    assert log["limited-1"] == 429  # logged, but not counted against the monthly quota
    month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert count_calls(db, tenant_id, "quality", month) == 3  # the three 404s; the 429 and the statuses are not


def test_platform_endpoints_have_a_rate_limit_per_tenant(settings, db):
    """The endpoints no module's plan meters (tenant, keys, subscriptions, usage, ingest) share one bucket per
    tenant; another tenant and the modules keep their own."""
    acme = make_tenant(db, PEPPER, "acme", modules=("quality",))
    beta = make_tenant(db, PEPPER, "beta", modules=())
    a = bearer(acme.admin)
    with _client(settings, db, platform_rate_limit=1.0, rate_limit_burst_s=3) as client:
        paths = ["/v1/tenant", "/v1/apikeys", "/v1/usage"]
        assert [client.get(p, headers=a).status_code for p in paths] == [200] * 3
        for path in ("/v1/subscriptions", "/v1/usage/export", "/v1/features/online"):
            r = client.get(path, headers=a) if path != "/v1/features/online" else client.post(
                path, json={"view": "ai4i_features", "entity_ids": [1]}, headers=a)
            err = assert_error(r, 429, "rate_limited", "platform endpoints")
            assert r.headers["retry-after"] == "1"
        assert client.get("/v1/quality/status", headers=a).status_code == 200
        assert client.get("/v1/tenant", headers=bearer(beta.admin)).status_code == 200
        time.sleep(1.05)
        assert client.get("/v1/tenant", headers=a).status_code == 200
    with _client(settings, db, platform_rate_limit=None) as client:
        assert {client.get("/v1/tenant", headers=a).status_code for _ in range(30)} == {200}
    assert "tenant 'acme'" in err["message"]


def test_failed_key_lookups_are_limited_per_address_and_a_bad_key_is_looked_up_once(settings, db, monkeypatch):
    """Unknown keys cost a database lookup each: an address past its allowance answers 429 before the lookup,
    while keys already known to the process still pass; a key refused a moment ago is not looked up again."""
    from serving import access as access_module

    acme = make_tenant(db, PEPPER, "acme", modules=("quality",))
    lookups = []
    real = access_module.resolve_api_key_state
    monkeypatch.setattr(access_module, "resolve_api_key_state", lambda *a: lookups.append(a[2]) or real(*a))
    with _client(settings, db, failed_key_lookups_per_s=0.5) as client:  # 0.5/s, 10 s of burst: 5 failures
        good = bearer(acme.mes)
        assert client.get("/v1/quality/status", headers=good).status_code == 200
        for i in range(5):
            assert_error(client.get("/v1/quality/status", headers=bearer(f"sfai_k{i:012d}_nope")), 401)
        assert len(lookups) == 6
        r = client.get("/v1/quality/status", headers=bearer("sfai_kfffffffffff0_nope"))
        assert_error(r, 429, "too_many_failed_keys", "invalid API keys from this address")
        assert 1 <= int(r.headers["retry-after"]) <= 2
        assert len(lookups) == 6  # refused before the database
        assert client.get("/v1/quality/status", headers=good).status_code == 200  # cached: not held up
        # the same bad key again within the TTL: 401 from the cache, no lookup (and no 429: it costs nothing)
        assert_error(client.get("/v1/tenant", headers=bearer("sfai_k000000000000_nope")), 401)
        assert len(lookups) == 6
    lookups.clear()
    with _client(settings, db, failed_key_lookups_per_s=None) as client:
        for i in range(20):
            assert_error(client.get("/v1/quality/status", headers=bearer(f"sfai_k{i:012d}_nope")), 401)
    assert len(lookups) == 20


def test_usage_exports_streaming_at_once_are_limited_per_tenant(settings, db):
    acme = make_tenant(db, PEPPER, "acme", modules=())
    beta = make_tenant(db, PEPPER, "beta", modules=())
    with _client(settings, db, usage_exports_per_tenant=1) as client:
        access = client.app.state.platform.access
        for _ in range(3):  # each export gives its slot back when it ends
            r = client.get("/v1/usage/export", headers=bearer(acme.admin))
            assert r.status_code == 200 and r.text.startswith("seq,")
        ctx = access.resolve(acme.admin)
        release = access.export_slot(ctx, 1)  # an export still streaming
        r = client.get("/v1/usage/export?format=json", headers=bearer(acme.admin))
        assert_error(r, 429, "too_many_exports", "streaming")
        assert r.headers["retry-after"] == "5"
        assert client.get("/v1/usage/export", headers=bearer(beta.admin)).status_code == 200
        # a bad range is refused as before, without taking a slot
        assert_error(client.get("/v1/usage/export?from=2026-02-01&to=2026-01-01", headers=bearer(acme.admin)), 422)
        release()
        release()  # idempotent: the stream's end and the response's background task both release
        assert client.get("/v1/usage/export", headers=bearer(acme.admin)).status_code == 200
        assert access._exports == {}


def test_monthly_quota_says_when_it_resets(client, db):
    acme = make_tenant(db, PEPPER, "acme", modules=())
    tenancy.subscribe(db, "acme", "scheduling", plan="trial", request_quota=1)
    h = bearer(acme.mes)
    assert client.get("/v1/scheduling/jobs", headers=h).status_code == 200
    r = client.get("/v1/scheduling/jobs", headers=h)
    assert_error(r, 429, "quota_exceeded")
    now = datetime.now(UTC)
    expected = (next_month_start(now) - now).total_seconds()
    assert abs(int(r.headers["retry-after"]) - expected) < 60
    assert next_month_start(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)


def test_calls_refused_before_a_subscription_do_not_use_its_quota(client, db):
    """Four calls to a module the tenant had not subscribed to (403) used four of the quota it then subscribed
    with, once the count came from the usage log: the first call of a 2-call plan answered quota_exceeded."""
    acme = make_tenant(db, PEPPER, "acme", modules=())
    h = bearer(acme.mes)
    for _ in range(4):
        err = assert_error(client.get("/v1/scheduling/jobs", headers=h), 403, "not_subscribed")
    assert "POST /v1/subscriptions" in err["message"]
    tenancy.subscribe(db, "acme", "scheduling", plan="trial", request_quota=2)
    client.app.state.platform.access.invalidate()  # the count is read again from the usage log
    month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert count_calls(db, tenancy.get_tenant(db, "acme").id, "scheduling", month) == 0
    assert [client.get("/v1/scheduling/jobs", headers=h).status_code for _ in range(3)] == [200, 200, 429]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    need_ai4i()
    return quick_failure_model(tmp_path_factory.mktemp("limits"), rows=2000, epochs=2)


@pytest.mark.parametrize("fast", [True, False])
def test_rate_limit_on_the_prediction_fast_path_and_the_route(settings, db, model_dir, fast):
    import pandas as pd

    from tests.serving.helpers import AI4I

    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    ModelRegistry(db, settings.home, "acme").register("failure", "maintenance", model_dir)
    rows = pd.read_csv(AI4I).head(1).drop(columns=["Machine failure", "TWF", "HDF", "PWF", "OSF", "RNF"])
    body = {"records": rows.to_dict("records")}
    # 0.05 calls per second with a 60-s burst: 3 tokens, and a new one every 20 s
    limits = {"rate_limits": {"standard": 0.05}, "rate_limit_burst_s": 60, "predict_fast_path": fast}
    with _client(settings, db, **limits) as client:
        t0 = time.monotonic()
        statuses = [client.post(PREDICT, json=body, headers=bearer(acme.mes)) for _ in range(4)]
        took = time.monotonic() - t0
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert statuses[3].json()["error"]["code"] == "rate_limited"
    # the wait for the next token: 20 s less what the bucket refilled while the requests ran, rounded up
    retry = int(statuses[3].headers["retry-after"])
    assert 20 - took - 1 <= retry <= 20


def test_body_size_limit_413_by_content_length_and_by_stream(settings, db):
    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance", "scheduling"))
    h = bearer(acme.admin)
    big = json.dumps({"records": [{"x": "a" * 100}] * 40}).encode()  # ~4.5 KB
    with _client(settings, db, max_body_bytes=2048) as client:
        for path in (PREDICT, "/v1/apikeys", "/v1/scheduling/solve", "/v1/nowhere"):
            err = assert_error(
                client.post(path, content=big, headers={**h, "content-type": "application/json"}), 413
            )
            assert err["code"] == "payload_too_large" and "2,048 bytes" in err["message"]

        def chunks():  # no Content-Length: the limit applies to the bytes as they arrive
            for i in range(0, len(big), 512):
                yield big[i : i + 512]

        for path in (PREDICT, "/v1/apikeys"):
            r = client.post(path, content=chunks(), headers={**h, "content-type": "application/json"})
            assert_error(r, 413, "payload_too_large")
        # under the limit: answered as usual
        assert client.post("/v1/apikeys", json={"role": "mes"}, headers=h).status_code == 201


def test_batch_size_limit_is_configurable(settings, db):
    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    with _client(settings, db, max_batch_records=5) as client:
        records = [{"Type": "L"}] * 6
        err = assert_error(client.post(PREDICT, json={"records": records}, headers=bearer(acme.mes)), 422)
        assert "at most 5 records" in err["message"]
        ids = {"entity_ids": list(range(6)), "view": "ai4i_features"}
        err = assert_error(client.post(PREDICT, json=ids, headers=bearer(acme.mes)), 422)
        assert "at most 5 entity ids" in err["message"]
    with pytest.raises(ValidationError):
        Settings(max_batch_records=20_000)


def _arrow_bomb(batches: int = 10, rows: int = 1000, columns: int = 8000, *, file: bool = False) -> bytes:
    """An Arrow IPC body of ``batches * rows`` zeros in ``columns`` int64 columns, zstd-compressed: about 5 MB
    sent, 640 MB once decompressed (one 8 KB array stands for every column, so building it costs nothing)."""
    import numpy as np
    import pyarrow as pa

    zeros = pa.array(np.zeros(rows, dtype=np.int64))
    batch = pa.RecordBatch.from_arrays([zeros] * columns, names=[f"c{i}" for i in range(columns)])
    sink = pa.BufferOutputStream()
    opts = pa.ipc.IpcWriteOptions(compression="zstd")
    with (pa.ipc.new_file if file else pa.ipc.new_stream)(sink, batch.schema, options=opts) as w:
        for _ in range(batches):
            w.write_batch(batch)
    return sink.getvalue().to_pybytes()


def _parquet_bomb(rows: int = 600) -> bytes:
    """A Parquet body of ``rows`` copies of one 1 MiB string: a few hundred bytes sent (one dictionary page,
    zstd), 600 MiB once read. Written without the Arrow schema, so a reader sees a plain text column."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    col = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array(["a" * (1 << 20)]))
    buf = io.BytesIO()
    pq.write_table(pa.table({"Type": col}), buf, compression="zstd", store_schema=False)
    return buf.getvalue()


def test_compressed_prediction_bodies_are_measured_before_they_are_decoded(client, db):
    """A few KB of compressed Arrow or Parquet decoded to gigabytes in the prediction route (33 KB: 1 GB; 318
    bytes of Parquet: 10 GB), before the record count was checked: one call could exhaust the server's memory. The
    size the body's metadata declares is checked first; within the limits, both formats are read as before."""
    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    h = bearer(acme.mes)
    for ctype, body in (
        ("application/vnd.apache.arrow.stream", _arrow_bomb()),
        ("application/vnd.apache.arrow.file", _arrow_bomb(file=True)),
        ("application/vnd.apache.parquet", _parquet_bomb()),
    ):
        assert len(body) < 8 << 20
        err = assert_error(client.post(PREDICT, content=body, headers={**h, "content-type": ctype}), 422)
        assert "once decoded" in err["message"] and "536,870,912" in err["message"], (ctype, err)
    # rows past the batch limit are refused from the metadata too (10,001 rows of zeros)
    many = _arrow_bomb(batches=1, rows=10_001, columns=1)
    err = assert_error(client.post(PREDICT, content=many, headers={
        **h, "content-type": "application/vnd.apache.arrow.stream"}), 422)
    assert "at most 10000 records" in err["message"]
    # a small compressed body is read as before (no model here: the answer says so)
    small = _arrow_bomb(batches=1, rows=3, columns=2)
    for ctype, body in (("application/vnd.apache.arrow.stream", small), ("application/vnd.apache.arrow.file",
                                                                          _arrow_bomb(1, 3, 2, file=True))):
        r = client.post(PREDICT, content=body, headers={**h, "content-type": ctype})
        assert r.status_code == 404 and "sfai train failure" in r.json()["error"]["message"], r.text
    # lists are no readings: refused before they are read
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    nested = pa.table({"Type": [[1, 2]]})
    with pa.ipc.new_stream(sink, nested.schema) as w:
        w.write_table(nested)
    err = assert_error(client.post(PREDICT, content=sink.getvalue().to_pybytes(), headers={
        **h, "content-type": "application/vnd.apache.arrow.stream"}), 422)
    assert "column 'Type' is of type list" in err["message"]


def _thrift(*fields: tuple[int, str, object]) -> bytes:
    """A Thrift compact-protocol struct: (id, kind, value) with kind i32 / i64 / bin / struct (bytes) / list of
    structs or strings (a list of bytes, each an element)."""
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    def zz(n: int) -> bytes:
        return varint((n << 1) ^ (n >> 63))

    out, last = bytearray(), 0
    for fid, kind, value in fields:
        code = {"i32": 5, "i64": 6, "bin": 8, "list": 9, "struct": 12}[kind]
        out.append(((fid - last) << 4) | code)
        last = fid
        if kind in ("i32", "i64"):
            out += zz(value)
        elif kind == "bin":
            out += varint(len(value)) + value
        elif kind == "struct":
            out += value
        else:
            elem, items = value
            out.append((len(items) << 4) | elem)
            for item in items:
                out += varint(len(item)) + item if elem == 8 else item
    return bytes(out) + b"\0"


def _forged_parquet(values: int, claimed_rows: int) -> bytes:
    """A Parquet file whose footer says ``claimed_rows`` int64 rows of 8 bytes each, while its one page (zstd frames
    of zeros, concatenated: no need to build the zeros here) decompresses to ``values`` of them."""
    import pyarrow as pa

    frame_values = 1 << 20
    assert values % frame_values == 0
    page_data = pa.Codec("zstd").compress(b"\0" * 8 * frame_values, asbytes=True) * (values // frame_values)
    header = _thrift((1, "i32", 0), (2, "i32", 8 * values), (3, "i32", len(page_data)),
                     (5, "struct", _thrift((1, "i32", values), (2, "i32", 0), (3, "i32", 3), (4, "i32", 3))))
    page = header + page_data
    meta = _thrift((1, "i32", 2), (2, "list", (5, [b"\0"])), (3, "list", (8, [b"Type"])), (4, "i32", 6),
                   (5, "i64", claimed_rows), (6, "i64", 8 * claimed_rows), (7, "i64", len(page)), (9, "i64", 4))
    footer = _thrift(
        (1, "i32", 1),
        (2, "list", (12, [_thrift((4, "bin", b"schema"), (5, "i32", 1)),
                          _thrift((1, "i32", 2), (3, "i32", 0), (4, "bin", b"Type"))])),
        (3, "i64", claimed_rows),
        (4, "list", (12, [_thrift((1, "list", (12, [_thrift((2, "i64", 4), (3, "struct", meta))])),
                                  (2, "i64", 8 * claimed_rows), (3, "i64", claimed_rows))])))
    return b"PAR1" + page + footer + len(footer).to_bytes(4, "little") + b"PAR1"


def test_a_parquet_footer_that_understates_its_pages_is_measured_by_the_pages(client, db, monkeypatch):
    """The footer is the writer's word: 64 KB whose footer said 10 rows of 8 bytes held a page that decompresses to
    800 MB, which the reader allocated (and a page per column, read in parallel). The pages' own headers are
    measured now, at every Parquet entry (predictions and ingest); an honest file reads as before."""
    import io

    import pyarrow.parquet as pq

    from feature_store import validate

    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    h = {**bearer(acme.mes), "content-type": "application/vnd.apache.parquet"}
    forged = _forged_parquet(100 << 20, 10)
    assert len(forged) < 1 << 20 and pq.ParquetFile(io.BytesIO(forged)).metadata.num_rows == 10
    err = assert_error(client.post(PREDICT, content=forged, headers=h), 422)
    assert "838,860,880 bytes once decoded" in err["message"], err
    small = _forged_parquet(1 << 20, 1 << 20)  # an honest one of the same make: read, then refused for its size
    assert validate.read_parquet_bytes(small).num_rows == 1 << 20
    monkeypatch.setattr(validate, "MAX_DECODED_BYTES", 1 << 20)
    with pytest.raises(InvalidInput, match="once decoded"):
        validate.read_parquet_bytes(_forged_parquet(1 << 20, 10))
    with pytest.raises(InvalidInput, match="a page header is damaged"):
        validate.read_parquet_bytes(forged[:4] + b"\x0f" + forged[5:])


def test_a_parquet_page_header_walk_ends_and_empty_row_groups_read():
    """The page-header walk (the review of its first version): a map of 2**62 boolean entries in a 1.2 KB file read
    no byte per entry and never ended; an empty row group (a chunk of no values, whose data page offset is 0) was
    refused as damaged. A file with both kinds of row group reads as pyarrow reads it."""
    import io
    import time

    import pyarrow as pa
    import pyarrow.parquet as pq

    from feature_store import validate

    buf = io.BytesIO()
    pq.write_table(pa.table({"x": list(range(100))}), buf, compression="none", use_dictionary=False)
    data = bytearray(buf.getvalue())
    off = pq.ParquetFile(io.BytesIO(bytes(data))).metadata.row_group(0).column(0).data_page_offset
    crafted = bytes([(9 << 4) | 11]) + bytes([0xFF] * 8 + [0x3F]) + bytes([0x11])  # field 9: map, 2**62, bool: bool
    data[off:off + len(crafted)] = crafted
    t0 = time.perf_counter()
    with pytest.raises(InvalidInput, match="a page header is damaged"):
        validate.read_parquet_bytes(bytes(data))
    assert time.perf_counter() - t0 < 5
    table = pa.table({"machine": ["M1", "M2"], "value": [1.0, 2.0]})
    buf = io.BytesIO()
    with pq.ParquetWriter(buf, table.schema) as w:  # dictionary-encoded text, then an empty row group
        w.write_table(table)
        w.write_table(table.slice(0, 0))
    assert [rg.num_rows for rg in map(pq.ParquetFile(io.BytesIO(buf.getvalue())).metadata.row_group, (0, 1))] == [2, 0]
    assert validate.read_parquet_bytes(buf.getvalue()).equals(table)


def test_a_delta_encoded_parquet_text_column_is_named_with_how_to_write_it():
    """A Parquet v2 writer's delta-encoded text (Spark with parquet.writer.version=v2) was refused with Arrow's own
    "Not yet implemented: DecodeArrow of DictAccumulator for DeltaByteArrayDecoder"; it names the column and the
    writer settings that work. The same file written plainly reads."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from feature_store import validate

    table = pa.table({"machine_id": [f"m-{i}" for i in range(50)], "note": ["ok"] * 50, "v": list(range(50))})
    for enc in ("DELTA_BYTE_ARRAY", "DELTA_LENGTH_BYTE_ARRAY"):
        buf = io.BytesIO()
        pq.write_table(table, buf, use_dictionary=False, column_encoding={"machine_id": enc, "note": "PLAIN"},
                       data_page_version="2.0")
        with pytest.raises(InvalidInput, match=r"text column\(s\) 'machine_id' use delta encoding.*parquet.writer"):
            validate.read_parquet_bytes(buf.getvalue())
    buf = io.BytesIO()
    pq.write_table(table, buf, use_dictionary=False, data_page_version="2.0")
    assert validate.read_parquet_bytes(buf.getvalue()).equals(table)


def test_background_solves_are_limited_per_tenant(settings, db):
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    other = make_tenant(db, PEPPER, "other", modules=("scheduling",))
    acme_id = tenancy.get_tenant(db, "acme").id
    now = datetime.now(UTC)
    with db.session() as s:  # one solve still running, and one left 'running' by a process that died a day ago
        s.add(SchedulingJob(id="a" * 32, tenant_id=acme_id, status="running", request="{}", created_at=now))
        s.add(SchedulingJob(id="b" * 32, tenant_id=acme_id, status="running", request="{}",
                            created_at=now - timedelta(days=1)))
    limits = {"scheduling_max_active_jobs": 1, "scheduling_max_job_s": 120}
    with _client(settings, db, **limits) as client:
        job = {"problem": PROBLEM, "time_limit_s": 1}
        r = client.post("/v1/scheduling/jobs", json=job, headers=bearer(acme.mes))
        err = assert_error(r, 429, "too_many_jobs")
        assert "at most 1" in err["message"] and int(r.headers["retry-after"]) > 0
        # another tenant's queue is its own
        assert client.post("/v1/scheduling/jobs", json=job, headers=bearer(other.mes)).status_code == 202
        long = {"problem": PROBLEM, "time_limit_s": 600}
        err = assert_error(client.post("/v1/scheduling/jobs", json=long, headers=bearer(other.mes)), 422)
        assert "at most 120 s" in err["message"]


def test_security_headers(client, db):
    acme = make_tenant(db, PEPPER, "acme")
    console = client.get("/")
    csp = console.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
    assert client.get("/static/console.js").headers["content-security-policy"] == csp
    api = client.get("/v1/tenant", headers=bearer(acme.mes))
    assert api.headers["cache-control"] == "no-store"
    assert api.headers["content-security-policy"].startswith("default-src 'none'")
    for r in (console, api, client.get("/v1/tenant"), client.get("/healthz"), client.get("/docs")):
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
    docs = client.get("/docs").headers["content-security-policy"]  # Swagger UI from this origin, started inline
    assert docs.startswith("default-src 'self'") and "script-src 'self' 'unsafe-inline'" in docs
    assert "http" not in docs and "frame-ancestors 'none'" in docs


def test_cors_is_closed_by_default_and_opens_to_listed_origins(settings, db):
    preflight = {"Origin": "https://mes.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    with _client(settings, db) as client:
        r = client.options(PREDICT, headers=preflight)
        assert r.status_code >= 400 and "access-control-allow-origin" not in r.headers
        r = client.get("/healthz", headers={"Origin": "https://mes.example"})
        assert "access-control-allow-origin" not in r.headers
    with _client(settings, db, cors_origins=["https://mes.example"]) as client:
        r = client.options(PREDICT, headers=preflight)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://mes.example"
        r = client.options(PREDICT, headers={**preflight, "Origin": "https://elsewhere.example"})
        assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
        # refused in SFAI's JSON error shape (it was Starlette's plain text, security audit)
        assert r.json()["error"]["code"] == "cors_refused" and "Disallowed CORS origin" in r.json()["error"]["message"]
        # a browser client may send an Idempotency-Key (the retry-safe job and ingest calls) and read the answer's
        r = client.options(PREDICT, headers={**preflight, "Access-Control-Request-Headers": "idempotency-key"})
        assert r.status_code == 200, r.text
    with pytest.raises(ValidationError, match="cors_origins"):
        Settings(cors_origins=["*"])
    with pytest.raises(ValidationError, match="rate_limits"):
        Settings(rate_limits={"trial": 0})


def test_solver_time_limits_by_scheduling_plan(settings, db):
    tenancy.create_tenant(db, "small", "C29")
    tenancy.subscribe(db, "small", "scheduling", plan="trial")
    small = tenancy.create_api_key(db, PEPPER, "small", "planner").token
    big = make_tenant(db, PEPPER, "big", modules=("scheduling",))  # standard plan
    with _client(settings, db, scheduling_plan_max_s={"trial": 5}) as client:
        for path, limit in (("/v1/scheduling/solve", 8), ("/v1/scheduling/jobs", 60)):
            err = assert_error(client.post(path, json={"problem": PROBLEM, "time_limit_s": limit},
                                           headers=bearer(small)), 422)
            assert "at most 5 s" in err["message"] and "trial plan" in err["message"]
        ok = client.post("/v1/scheduling/solve", json={"problem": PROBLEM, "time_limit_s": 2}, headers=bearer(small))
        assert ok.status_code == 200 and ok.json()["makespan"] == 2
        assert client.post("/v1/scheduling/solve", json={"problem": PROBLEM, "time_limit_s": 8},
                           headers=bearer(big.mes)).status_code == 200
    with pytest.raises(ValidationError, match="scheduling_plan_max_s"):
        Settings(scheduling_plan_max_s={"trial": 0})


def test_rate_limit_shared_through_redis_across_processes(settings, db):
    """Two serving processes (two apps) on one Redis bucket: together they allow the plan's rate, not twice it.
    With Redis unreachable, calls go through (a limiter must not take the API down)."""
    import uuid

    import redis

    from serving.usage import deployment_id
    from tests.conftest import require_service
    from tests.feature_store.conftest import REDIS_URL, redis_problem

    require_service(redis_problem())
    acme = make_tenant(db, PEPPER, "acme", modules=("quality",))
    prefix = f"sfai-test:{uuid.uuid4().hex[:8]}:"
    shared = {"rate_limits": {"standard": 0.2}, "rate_limit_burst_s": 15, "rate_limit_redis": REDIS_URL,
              "redis_prefix": prefix}  # 3 calls in the bucket, then one every 5 s
    try:
        with _client(settings, db, **shared) as a, _client(settings, db, **shared) as b:
            got = [c.get("/v1/quality/status", headers=bearer(acme.mes)).status_code for c in (a, b, a, b)]
            assert got == [200, 200, 200, 429]
        # one bucket, named by this deployment's database (its id: two deployments on one Redis keep theirs apart)
        rate_keys = f"{prefix}{deployment_id(db)}:rate:*"
        assert sum(1 for _ in redis.Redis.from_url(REDIS_URL).scan_iter(match=rate_keys)) == 1
        down = {**shared, "rate_limit_redis": "redis://127.0.0.1:1/0"}
        with _client(settings, db, **down) as c:
            assert {c.get("/v1/quality/status", headers=bearer(acme.mes)).status_code for _ in range(5)} == {200}
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        for k in client.scan_iter(match=prefix + "*"):
            client.delete(k)


def test_cors_answers_carry_the_allowed_origin_on_predictions_too(settings, db, model_dir):
    """A browser page on a listed origin gets Access-Control-Allow-Origin on a prediction as on any call (the
    fast path leaves such calls to the CORS middleware); other origins never do."""
    import pandas as pd

    from tests.serving.helpers import AI4I

    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    ModelRegistry(db, settings.home, "acme").register("failure", "maintenance", model_dir)
    rows = pd.read_csv(AI4I).head(1).drop(columns=["Machine failure", "TWF", "HDF", "PWF", "OSF", "RNF"])
    body = {"records": rows.to_dict("records")}
    with _client(settings, db, cors_origins=["https://mes.example"]) as client:
        for _ in range(2):  # the second call finds every cache warm: the plain fast-path case
            r = client.post(PREDICT, json=body, headers={**bearer(acme.mes), "Origin": "https://mes.example"})
            assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://mes.example"
        r = client.post(PREDICT, json=body, headers={**bearer(acme.mes), "Origin": "https://elsewhere.example"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        assert client.post(PREDICT, json=body, headers=bearer(acme.mes)).status_code == 200  # no browser: fast


def test_calls_failed_on_sfais_side_do_not_use_the_quota(client, db, monkeypatch):
    """A 503 (a store SFAI needs is down) says "retry shortly": it had spent one call of the quota each time, so the
    retries it asks for used the quota up (tenant-admin audit). Neither the process's count nor the log's counts it."""
    from sqlalchemy.exc import OperationalError

    acme = make_tenant(db, PEPPER, "acme", modules=())
    tenancy.subscribe(db, "acme", "scheduling", plan="trial", request_quota=2)
    h = bearer(acme.mes)
    jobs = client.app.state.platform.jobs

    def down(*_a, **_k):
        raise OperationalError("SELECT", {}, Exception("the database is restarting"))

    with monkeypatch.context() as m:
        m.setattr(jobs, "recent", down)
        for _ in range(3):
            assert_error(client.get("/v1/scheduling/jobs", headers=h), 503, "database_unavailable")
    assert [client.get("/v1/scheduling/jobs", headers=h).status_code for _ in range(3)] == [200, 200, 429]
    month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert count_calls(db, tenancy.get_tenant(db, "acme").id, "scheduling", month) == 2
    client.app.state.platform.access.invalidate()  # counted again from the log: the 503s are not in it
    assert_error(client.get("/v1/scheduling/jobs", headers=h), 429, "quota_exceeded")
