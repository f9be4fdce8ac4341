"""``OfflineStore.recent_rows``: what a push into a history view reads (``pipelines/raw_ingest.py``), kept per view
in memory in step with the view's files, answers exactly what one scan of every file answered (the DuckDB query the
push ran before: the latest written version of each (entity, event time); rows at or after ``since``, or each
entity's latest ``last``), whatever was written, compacted or taken back between two calls, and reads only the
files it has not seen, and of those only the ones whose footer statistics can hold a row it keeps."""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from feature_store import Entity, FeatureView, Field
from feature_store import offline as offline_mod
from feature_store.offline import OfflineStore, clear_recent
from feature_store.pit import _q, connect, stored_columns
from feature_store.validate import conform, read_table

T0 = datetime(2026, 1, 1, 20, 0, tzinfo=UTC)  # times run over two midnights: three date partitions
C0 = datetime(2026, 2, 1, tzinfo=UTC)
STEP = timedelta(hours=3)
COLUMNS = ("x", "s", "n")


def _view(dtype: str, *, with_n: bool = True) -> FeatureView:
    entity = Entity(name="machine", join_key="machine_id", dtype=dtype)
    schema = [Field(name="x", dtype="float32"), Field(name="s", dtype="string")]
    if with_n:  # a feature the view gained later: files written before lack it (null when read)
        schema.append(Field(name="n", dtype="int64"))
    return FeatureView(name="v", entity=entity, schema=schema)


def _key(dtype: str, i: int):  # noqa: ANN202
    return 100 + i if dtype == "int64" else f"m{i}"


def reference(store: OfflineStore, view: FeatureView, keys: list, *, since=None, last=None) -> list[tuple]:  # noqa: ANN001
    """The push's history read before this change: one DuckDB scan of all the view's files."""
    files = store.files("t", view.name)
    if not files:
        return []
    key = view.join_key
    cols = [_q(key), _q("event_timestamp"), *stored_columns(view, list(COLUMNS), files)]
    file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    where, params = f"list_contains(?, {_q(key)})", [keys]
    if since is not None:
        where += f" AND {_q('event_timestamp')} >= ?"
        params.append(since)
    sql = (f"SELECT {', '.join(cols)} FROM read_parquet({file_list}, union_by_name = true) WHERE {where} "
           f"QUALIFY row_number() OVER (PARTITION BY {_q(key)}, {_q('event_timestamp')} ORDER BY {_q('created')} "
           "DESC) = 1")
    if last is not None:
        sql = (f"SELECT * FROM ({sql}) QUALIFY row_number() OVER (PARTITION BY {_q(key)} ORDER BY "
               f"{_q('event_timestamp')} DESC) <= {int(last)}")
    with connect("256MB", threads=1) as con:
        table = con.sql(sql, params=params).to_arrow_table()
    return _rows(table)


def _rows(table: pa.Table) -> list[tuple]:
    d = table.to_pydict()
    out = []
    for i in range(table.num_rows):
        x = d["x"][i]
        out.append((d["machine_id"][i], pd.Timestamp(d["event_timestamp"][i]).tz_convert("UTC"),
                    None if x is None or x != x else float(x), d["s"][i], d["n"][i]))
    return sorted(out, key=lambda r: (r[0], r[1]))


def _write(store: OfflineStore, view: FeatureView, rows: list[tuple], created: datetime) -> None:
    df = pd.DataFrame(rows, columns=["machine_id", "event_timestamp", *COLUMNS[: len(view.feature_names)]])
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
    df["created"] = created
    store.write("t", view, conform(view, read_table(df), max_skew_s=float("inf")), created_given=True)


cell = st.tuples(st.sampled_from([None, 1.5, 2.25]), st.sampled_from([None, "a", "b"]), st.sampled_from([None, 7, 8]))
batch = st.dictionaries(st.tuples(st.integers(0, 2), st.integers(0, 12)), cell, min_size=1, max_size=5)
keys = st.lists(st.integers(0, 2), min_size=1, max_size=2)
step = st.one_of(
    st.tuples(st.just("write"), batch, st.booleans()),  # the bool: written by the older declaration (no "n")
    st.tuples(st.just("since"), keys, st.integers(-2, 14)),
    st.tuples(st.just("last"), keys),
    st.tuples(st.just("drop"), st.integers(0, 50)),  # a file taken back (a failed write), or removed by hand
    st.tuples(st.just("compact"), st.integers(2, 4)),
)
ONE = {(0, 0): (1.5, "a", 7)}
LATER = {(0, 4): (2.25, "b", 8), (1, 5): (None, None, None)}


@pytest.mark.parametrize("dtype,scan_from", [("string", 24), ("int64", 24), ("string", 0)])  # 0: DuckDB scans
@given(plan=st.lists(step, min_size=2, max_size=12))
@example(plan=[("write", ONE, False), ("last", [0]), ("drop", 0), ("last", [0])])
@example(plan=[("write", ONE, False), ("since", [0], 0), ("drop", 0), ("since", [0], 0)])
@example(plan=[("write", ONE, False), ("write", LATER, True), ("last", [0, 1]), ("compact", 2), ("last", [0, 1]),
               ("write", {(0, 4): (3.0, "c", 9)}, False), ("last", [0])])
@example(plan=[("write", LATER, False), ("since", [0], 4), ("since", [0], -2), ("write", ONE, True),
               ("since", [0, 1], -1)])
@example(plan=[("write", {(0, 7): (1.5, "a", 1), (0, 6): (1.5, "a", 1), (0, 5): (1.5, "a", 1)}, False),
               ("write", {(0, 2): (2.25, "b", 2), (0, 6): (2.25, "b", 2)}, False), ("last", [0])])  # 6 corrected
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_recent_rows_answer_what_a_scan_of_every_file_answers(dtype, scan_from, plan):
    view, older = _view(dtype), _view(dtype, with_n=False)
    saved, offline_mod._SCAN_FROM = offline_mod._SCAN_FROM, scan_from
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = OfflineStore(Path(tmp))
            written = 0
            for op in plan:
                if op[0] == "write":
                    rows = [(_key(dtype, k), T0 + m * STEP, *c) for (k, m), c in sorted(op[1].items())]
                    decl = older if op[2] else view
                    _write(store, decl, [r[: 2 + len(decl.feature_names)] for r in rows], C0 + written * STEP)
                    written += 1
                elif op[0] == "compact":
                    store.compact("t", view, min_files=op[1])
                elif op[0] == "drop":
                    files = store.files("t", "v")
                    if files:
                        os.unlink(files[op[1] % len(files)])
                else:
                    keys = [_key(dtype, k) for k in op[1]]
                    if op[0] == "since":
                        since = T0 + op[2] * STEP
                        got = store.recent_rows("t", view, keys, COLUMNS, since=since, retain=3 * STEP)
                        want = reference(store, view, keys, since=since)
                    else:
                        got = store.recent_rows("t", view, keys, COLUMNS, last=3)
                        want = reference(store, view, keys, last=3)
                    assert got.column_names == ["machine_id", "event_timestamp", *COLUMNS]
                    assert got.schema.field("machine_id").type == view.arrow_schema().field("machine_id").type
                    assert _rows(got) == want, op
    finally:
        offline_mod._SCAN_FROM = saved


# -- reads ---------------------------------------------------------------------------------------------------------
class Reads:
    """The Parquet files read for their rows, and those opened for their footers alone."""

    def __init__(self, monkeypatch) -> None:  # noqa: ANN001
        self.rows: list[str] = []
        self.footers: list[str] = []
        real_read, real_meta = offline_mod._Recent._read, pq.read_metadata
        reads = self

        def read(self, files, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
            reads.rows.extend(path for path, _ in files)
            return real_read(self, files, *a, **k)

        def meta(path, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
            reads.footers.append(str(path))
            return real_meta(path, *a, **k)

        monkeypatch.setattr(offline_mod._Recent, "_read", read)
        monkeypatch.setattr(offline_mod.pq, "read_metadata", meta)

    def clear(self) -> None:
        self.rows.clear()
        self.footers.clear()


def test_a_call_reads_only_the_files_written_since_the_one_before(tmp_path, monkeypatch):
    """300 single-row files of two entities: the first call reads the rows of the files whose footer can hold its
    entity's look-back (not the other entity's, not older ones); a call after one more file reads that one file."""
    clear_recent()
    view = _view("string")
    store = OfflineStore(tmp_path)
    for i in range(150):
        for k in ("m0", "m1"):
            _write(store, view, [(k, T0 + i * timedelta(minutes=15), float(i), "a", i)], C0 + i * STEP)
    reads = Reads(monkeypatch)
    since = T0 + 100 * timedelta(minutes=15)
    got = store.recent_rows("t", view, ["m0"], COLUMNS, since=since)
    assert got.num_rows == 50
    assert len(reads.rows) == 50, "the files of m0 at or after since, nothing else"
    assert all("date=" in f for f in reads.rows)
    reads.clear()
    _write(store, view, [("m0", T0 + 150 * timedelta(minutes=15), 150.0, "a", 150)], C0 + 200 * STEP)
    got = store.recent_rows("t", view, ["m0"], COLUMNS, since=since + timedelta(minutes=15))
    assert got.num_rows == 50 and got.column("x")[-1].as_py() == 150.0
    assert (len(reads.rows), len(reads.footers)) == (1, 1), "the one new file"
    reads.clear()
    got = store.recent_rows("t", view, ["m0"], COLUMNS, last=3)  # another reader of the view: cycles, rows
    assert [v.as_py() for v in got.column("x")] == [148.0, 149.0, 150.0]
    assert len(reads.rows) <= 4, reads.rows  # newest first, stopped where older files cannot matter
    reads.clear()
    _write(store, view, [("m1", T0 + 150 * timedelta(minutes=15), 150.0, "a", 150)], C0 + 201 * STEP)
    store.recent_rows("t", view, ["m0"], COLUMNS, last=3)
    assert reads.rows == [], "another entity's new file: its footer says so"
    # an entity with fewer rows than ``last`` kept, then 100 files of it written by another writer: newest first
    _write(store, view, [("m7", T0, 0.0, "a", 0)], C0)
    store.recent_rows("t", view, ["m7"], COLUMNS, last=3)
    for i in range(1, 101):
        _write(store, view, [("m7", T0 + i * timedelta(minutes=15), float(i), "a", i)], C0 + i * STEP)
    reads.clear()
    got = store.recent_rows("t", view, ["m7"], COLUMNS, last=3)
    assert [v.as_py() for v in got.column("x")] == [98.0, 99.0, 100.0]
    assert len(reads.rows) <= 4, reads.rows  # newest first (the 3 latest and one more), not the 100


def test_a_file_compacted_away_between_listing_and_reading_is_read_again(tmp_path, monkeypatch):
    """Compaction in another process removes the small files a call has just listed: the call reads the view again
    (it had failed with a missing file), and answers as a scan would."""
    clear_recent()
    view = _view("string")
    store = OfflineStore(tmp_path)
    for i in range(12):
        _write(store, view, [("m0", T0 + i * STEP, float(i), "a", i)], C0 + i * STEP)
    real_list, done = offline_mod._Recent._list, []

    def listed_then_compacted(self, floor):  # noqa: ANN001, ANN202
        out = real_list(self, floor)
        if not done:
            done.append(OfflineStore(tmp_path).compact("t", view, min_files=2))
        return out

    monkeypatch.setattr(offline_mod._Recent, "_list", listed_then_compacted)
    got = store.recent_rows("t", view, ["m0"], COLUMNS, last=4)
    assert done and done[0].partitions >= 1
    assert _rows(got) == reference(store, view, ["m0"], last=4)


def test_an_unchanged_partition_is_not_listed_again_and_a_change_is_seen(tmp_path, monkeypatch):
    """A partition folder whose mtime has not changed since it was listed (and had settled before) is not listed
    again; a file added to it changes the mtime and is found."""
    clear_recent()
    view = _view("string")
    store = OfflineStore(tmp_path)
    for i in range(4):
        _write(store, view, [("m0", T0 + i * STEP, float(i), "a", i)], C0 + i * STEP)
    old = time.time() - 60
    for part in (tmp_path / "t" / "v").glob("date=*"):
        os.utime(part, (old, old))
    store.recent_rows("t", view, ["m0"], COLUMNS, last=3)
    scans: list[str] = []
    real = os.scandir

    def counting(path="."):  # noqa: ANN001, ANN202
        scans.append(str(path))
        return real(path)

    monkeypatch.setattr(offline_mod.os, "scandir", counting)
    store.recent_rows("t", view, ["m0"], COLUMNS, last=3)
    assert [s for s in scans if "date=" in s] == [], scans  # only the view's folder
    _write(store, view, [("m0", T0 + 4 * STEP, 4.0, "a", 4)], C0 + 9 * STEP)
    got = store.recent_rows("t", view, ["m0"], COLUMNS, last=3)
    assert [v.as_py() for v in got.column("x")] == [2.0, 3.0, 4.0]


def test_tenants_and_views_keep_apart(tmp_path):
    """One entity id in two tenants and two views: each answer holds its own rows only."""
    clear_recent()
    view = _view("string")
    store = OfflineStore(tmp_path)
    other = FeatureView(name="w", entity=view.entity, schema=view.schema)
    for i in range(3):
        _write(store, view, [("m0", T0 + i * STEP, float(i), "a", i)], C0 + i * STEP)
        store.write("u", view, conform(view, read_table(pd.DataFrame({
            "machine_id": ["m0"], "event_timestamp": [T0 + i * STEP], "x": [10.0 + i], "s": ["b"], "n": [i],
            "created": [C0]}))), created_given=True)
        store.write("t", other, conform(other, read_table(pd.DataFrame({
            "machine_id": ["m0"], "event_timestamp": [T0 + i * STEP], "x": [20.0 + i], "s": ["c"], "n": [i],
            "created": [C0]}))), created_given=True)
    for _ in range(2):  # cold, then kept
        assert [v.as_py() for v in store.recent_rows("t", view, ["m0"], COLUMNS, last=2).column("x")] == [1.0, 2.0]
        assert [v.as_py() for v in store.recent_rows("u", view, ["m0"], COLUMNS, last=2).column("x")] == [11.0, 12.0]
        assert [v.as_py() for v in store.recent_rows("t", other, ["m0"], COLUMNS, last=2).column("x")] == [21.0, 22.0]
