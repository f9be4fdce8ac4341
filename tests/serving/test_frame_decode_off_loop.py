"""An Arrow or Parquet prediction body is decoded in a worker thread, in the calling tenant's scoring turn, and what
its schema shows to be unacceptable is refused before a value is decoded: a 0.42-MB zstd Arrow stream of
10,000 x 3,300 columns had been decoded on the event loop (1.8 s), and another tenant's status call and /healthz
waited as long (security audit)."""

import asyncio
import io
import threading
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from models.registry import ModelRegistry
from serving import predictions
from tests.serving.helpers import bearer, make_tenant

PEPPER = "test-secret-0123456789"
URL = "/v1/maintenance/failure/predict"
ARROW = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"


def arrow_body(frame: pd.DataFrame, compression: str | None = None) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def parquet_body(frame: pd.DataFrame) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), out)
    return out.getvalue()


@pytest.fixture
def failure_tenant(client, db, settings, demo_models):
    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    ModelRegistry(db, settings.home, "acme").register("failure", "maintenance", demo_models[0] / "failure" / "v1")
    records = pd.read_csv(demo_models[1] / "ai4i_demo.csv").head(20).drop(columns=["Machine failure"],
                                                                          errors="ignore")
    return bearer(acme.mes), records


@pytest.fixture
def decodes(client, monkeypatch):
    """Each binary body decoded: (whether on the event loop, the calls holding or awaiting a scoring turn)."""
    seen = []
    turns = client.app.state.platform.turns
    real_ipc, real_parquet = predictions.read_ipc_bytes, predictions.read_parquet_bytes

    def record():
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        seen.append((on_loop, sum(turns._queued.values())))

    def ipc(*a, **k):
        table = real_ipc(*a, **k)  # refused from the metadata: raises before a value is decoded
        record()
        return table

    def parquet(*a, **k):
        table = real_parquet(*a, **k)
        record()
        return table

    monkeypatch.setattr(predictions, "read_ipc_bytes", ipc)
    monkeypatch.setattr(predictions, "read_parquet_bytes", parquet)
    return seen


def test_binary_bodies_are_decoded_off_the_loop_in_the_tenants_turn(client, failure_tenant, decodes):
    h, records = failure_tenant
    for ctype, body in ((ARROW, arrow_body(records)), (PARQUET, parquet_body(records)),
                        (ARROW, arrow_body(records, "zstd"))):
        r = client.post(URL, content=body, headers={**h, "content-type": ctype})
        assert r.status_code == 200, r.text
        assert r.json()["count"] == len(records)
    assert decodes == [(False, 1)] * 3  # in a worker thread, this tenant's one turn held


def test_a_body_the_model_cannot_read_is_refused_from_its_schema(client, failure_tenant, decodes):
    """The audit's body, smaller: zero columns the failure model does not know, compressed. Refused from the schema
    and the metadata's row count, before a value is decoded, as a 422 naming what is wrong."""
    h, records = failure_tenant
    wide = pd.DataFrame(0.0, index=range(200), columns=[f"c{i}" for i in range(1_200)])
    unknown = pd.concat([records] * 500).assign(**{"Torque [Nm] ": 1.0})  # a misspelt reading, 10,000 rows
    for ctype, body, said in (
        (ARROW, arrow_body(wide, "zstd"), "1,200 columns: at most 1,000"),
        (PARQUET, parquet_body(wide), "1,200 columns: at most 1,000"),
        (ARROW, arrow_body(unknown, "zstd"), "unknown feature 'Torque [Nm] '"),
        (PARQUET, parquet_body(unknown), "unknown feature 'Torque [Nm] '"),
        (ARROW, arrow_body(wide.iloc[:, :600]), "unknown feature 'c0'"),
    ):
        r = client.post(URL, content=body, headers={**h, "content-type": ctype})
        assert r.status_code == 422, r.text
        assert said in r.json()["error"]["message"]
    assert decodes == []


def test_a_filtered_frames_stored_index_is_no_unknown_feature(client, failure_tenant):
    """A frame filtered in pandas keeps its row labels, stored as ``__index_level_0__``, which decoding makes the
    index again: read from the schema, it had been refused as an unknown feature above 50,000 cells only (review)."""
    h, records = failure_tenant
    many = pd.concat([records] * 400, ignore_index=True)  # 8,000 rows: over 50,000 cells
    filtered = many[many.index % 3 != 0]  # row labels 1, 2, 4, 5, ...: no range, so pandas stores them as a column
    assert "__index_level_0__" in pa.Table.from_pandas(filtered).schema.names
    for ctype, body in ((ARROW, _with_index(filtered, "arrow")), (PARQUET, _with_index(filtered, "parquet"))):
        r = client.post(URL, content=body, headers={**h, "content-type": ctype})
        assert r.status_code == 200, r.text
        assert r.json()["count"] == len(filtered)


def _with_index(frame: pd.DataFrame, kind: str) -> bytes:
    table = pa.Table.from_pandas(frame)  # the index kept, as pandas' own to_parquet and to_feather keep it
    if kind == "parquet":
        out = io.BytesIO()
        pq.write_table(table, out)
        return out.getvalue()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def test_a_column_named_twice_and_too_many_cells_are_refused_before_decoding():
    twice = pa.table([pa.array([1.0]), pa.array([2.0])], names=["Torque [Nm]", "Torque [Nm]"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, twice.schema) as w:
        w.write_table(twice)
    with pytest.raises(predictions.InvalidInput, match="names column 'Torque \\[Nm\\]' twice"):
        predictions.decode_frame(sink.getvalue().to_pybytes(), "arrow", 10_000, "failure")
    many = pd.DataFrame(0.0, index=range(10_000), columns=[f"c{i}" for i in range(700)])  # an unchecked family
    with pytest.raises(predictions.InvalidInput, match="10,000 rows of 700 columns: at most 6,000,000 cells"):
        predictions.decode_frame(arrow_body(many, "zstd"), "arrow", 10_000, "rul")


def test_healthz_answers_while_a_body_is_decoded(client, failure_tenant, monkeypatch):
    """A decode that takes long (here: held until /healthz has answered, at most 5 s) holds a worker thread, not the
    event loop: /healthz answers meanwhile."""
    h, records = failure_tenant
    started, release = threading.Event(), threading.Event()
    real = predictions.read_ipc_bytes

    def slow(*a, **k):
        started.set()
        release.wait(5)
        return real(*a, **k)

    monkeypatch.setattr(predictions, "read_ipc_bytes", slow)
    answers = []
    caller = threading.Thread(target=lambda: answers.append(
        client.post(URL, content=arrow_body(records), headers={**h, "content-type": ARROW})))
    caller.start()
    try:
        assert started.wait(5)
        t0 = time.monotonic()
        health = client.get("/healthz")
        took = time.monotonic() - t0
    finally:
        release.set()
        caller.join(10)
    assert health.status_code == 200 and took < 2.0, took
    assert answers and answers[0].status_code == 200, answers[0].text
