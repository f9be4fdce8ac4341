"""Property: compaction changes no point-in-time answer, whatever was written when, and keeps no copy.

Random batches (the same rows sent again in other batches, values changed and changed back, missing values, two
days) are written as separate ingests would write them; every answer, for every ``as_known_at`` (each time a row
was written, the microsecond before, and none), is the same before and after compaction, and the same as a plain
reference join. Afterwards no row repeats the version of its (entity, event time) written before it."""

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from feature_store import FeatureView, Field, entities
from feature_store.offline import OfflineStore
from feature_store.pit import connect, training_frame
from feature_store.validate import conform, read_table

T0 = datetime(2026, 1, 1, 23, 0, tzinfo=UTC)  # the grid runs past midnight: two date partitions
VIEW = FeatureView(
    name="v",
    entity=entities.machine,
    schema=[Field(name="x", dtype="float64"), Field(name="s", dtype="string")],
)
KEYS = ["m1", "m2"]
MINUTES = [0, 30, 60, 90]

cells = st.tuples(st.sampled_from([None, 1.0, 2.0]), st.sampled_from([None, "a", "b"]))
batch = st.dictionaries(st.tuples(st.sampled_from(KEYS), st.sampled_from(MINUTES)), cells, min_size=1, max_size=8)
# a batch may repeat an earlier one's rows exactly: ("again", i) sends batch i's rows once more, later
plans = st.lists(st.one_of(batch, st.tuples(st.just("again"), st.integers(0, 7))), min_size=1, max_size=7)


def reference(rows, entity_rows, cut):
    out = []
    for key, t in entity_rows:
        best = None
        for (k, ts, created), cell in rows.items():
            if k == key and ts <= t and (cut is None or created <= cut) and (best is None or (ts, created) > best[0]):
                best = ((ts, created), cell)
        out.append((None, None) if best is None else best[1])
    return out


def frames(store, cuts, entity):
    con = connect("256MB", threads=1)
    try:
        files = {"v": store.files("t", "v")}
        return [training_frame(entity, {"v": ["x", "s"]}, {"v": VIEW}, files, as_known_at=c, con=con,
                               may_repeat_keys=store.may_repeat_keys) for c in cuts]
    finally:
        con.close()


def cell(v):
    return None if v is None or (isinstance(v, float) and pd.isna(v)) else v


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans, min_files=st.sampled_from([2, 100]))
def test_compaction_changes_no_answer(plan, min_files):
    batches = []
    for step in plan:
        if isinstance(step, tuple):
            if step[1] >= len(batches):
                continue
            step = batches[step[1]]
        batches.append(step)
    assume(batches)
    with tempfile.TemporaryDirectory() as tmp:
        store = OfflineStore(Path(tmp))
        written = {}  # (key, ts, created) -> (x, s)
        for i, rows in enumerate(batches):
            created = T0 + timedelta(hours=1 + i)
            df = pd.DataFrame({
                "machine_id": [k for k, _ in rows],
                "event_timestamp": [T0 + timedelta(minutes=m) for _, m in rows],
                "x": [c[0] for c in rows.values()],
                "s": [c[1] for c in rows.values()],
                "created": created,
            })
            store.write("t", VIEW, conform(VIEW, read_table(df)))
            written.update({(k, T0 + timedelta(minutes=m), created): c for (k, m), c in rows.items()})
        times = sorted({c for *_, c in written})
        cuts = [None, *times, *(t - timedelta(microseconds=1) for t in times)]
        entity_rows = [(k, T0 + timedelta(minutes=m)) for k in KEYS for m in (*MINUTES, 15, 200)]
        entity = pd.DataFrame({"machine_id": [k for k, _ in entity_rows],
                               "event_timestamp": [t for _, t in entity_rows]})
        rows_before = sum(pq.ParquetFile(f).metadata.num_rows for f in store.files("t", "v"))
        before = frames(store, cuts, entity)

        rep = store.compact("t", VIEW, min_files=min_files)
        fresh = OfflineStore(Path(tmp))  # what another process reads: footers, no cache
        for store_now in (store, fresh):
            for cut, got, want in zip(cuts, frames(store_now, cuts, entity), before, strict=True):
                expected = reference(written, entity_rows, cut)
                assert [(cell(x), cell(s)) for x, s in zip(got["x"], got["s"], strict=True)] == expected
                pd.testing.assert_frame_equal(got, want)
        assert fresh.row_count("t", "v") + rep.duplicates == rows_before

        # no row left that repeats the version written before it
        table = pa.concat_tables([pq.read_table(f) for f in fresh.files("t", "v")]).to_pandas()
        table = table.sort_values(["machine_id", "event_timestamp", "created"])
        prev = table.groupby(["machine_id", "event_timestamp"])[["x", "s"]].shift()
        same = ((table["x"] == prev["x"]) | (table["x"].isna() & prev["x"].isna())) & (
            (table["s"] == prev["s"]) | (table["s"].isna() & prev["s"].isna()))
        first = table.groupby(["machine_id", "event_timestamp"]).cumcount() == 0
        assert not (same & ~first).any()
