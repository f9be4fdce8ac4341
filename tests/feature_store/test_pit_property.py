"""Property: the DuckDB point-in-time join equals a plain reference as-of join, exactly."""

from datetime import UTC, datetime, timedelta

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_store import FeatureView, Field, entities
from feature_store.offline import OfflineStore
from feature_store.pit import connect, training_frame
from feature_store.validate import conform, read_table

T0 = datetime(2026, 1, 1, tzinfo=UTC)
VIEWS = {
    "a": FeatureView(name="a", entity=entities.machine, schema=[Field(name="x", dtype="float64")]),
    "b": FeatureView(
        name="b", entity=entities.machine, ttl=timedelta(minutes=30), schema=[Field(name="y", dtype="int64")]
    ),
}

# a coarse grid of times, so that equal times (the ties the join must resolve) are common
minutes = st.integers(min_value=0, max_value=24).map(lambda x: x * 10)
delays = st.integers(min_value=0, max_value=6).map(lambda x: x * 10)
keys = st.sampled_from(["m1", "m2", "m3"])
feature_rows = st.lists(st.tuples(keys, minutes, delays, st.integers(-1000, 1000)), max_size=40)


def reference(entity_rows, feats, view, cut):
    """For each entity row: the latest (ts, created) feature row with ts <= t, within TTL, known by cut."""
    out = []
    for key, t in entity_rows:
        best = None
        for k, ts, created, value in feats:
            if k != key or ts > t or (cut is not None and created > cut):
                continue
            if view.ttl is not None and t - ts > view.ttl:
                continue
            if best is None or (ts, created) > (best[0], best[1]):
                best = (ts, created, value)
        out.append(None if best is None else best[2])
    return out


def write(tmp_path, name, rows, value_name, as_float):
    """One file per write delay, as separate ingests would make; within a file an (entity, time) is unique."""
    paths = []
    for delay in sorted({r[2] for r in rows}):
        batch = list({(r[0], r[1]): r for r in rows if r[2] == delay}.values())
        df = pd.DataFrame(
            {
                "machine_id": [r[0] for r in batch],
                "event_timestamp": [T0 + timedelta(minutes=r[1]) for r in batch],
                value_name: [float(r[3]) if as_float else r[3] for r in batch],
                "created": [T0 + timedelta(minutes=r[1] + r[2]) for r in batch],
            }
        )
        path = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}.parquet"
        conform(VIEWS[name], read_table(df)).to_pandas().to_parquet(path)
        paths.append(str(path))
    return paths


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    a_rows=feature_rows,
    b_rows=feature_rows,
    entity_rows=st.lists(st.tuples(keys, minutes), min_size=1, max_size=30),
    cut=st.one_of(st.none(), minutes),
)
def test_pit_join_equals_reference(tmp_path, a_rows, b_rows, entity_rows, cut):
    # one row per (key, time, write delay): "the latest written" is well defined, as in the store
    a_rows = list({(k, ts, ts + c): (k, ts, c, v) for k, ts, c, v in a_rows}.values())
    b_rows = list({(k, ts, ts + c): (k, ts, c, v) for k, ts, c, v in b_rows}.values())
    files = {
        "a": write(tmp_path, "a", a_rows, "x", True) if a_rows else [],
        "b": write(tmp_path, "b", b_rows, "y", False) if b_rows else [],
    }
    ent = pd.DataFrame(
        {
            "machine_id": [k for k, _ in entity_rows],
            "event_timestamp": [T0 + timedelta(minutes=t) for _, t in entity_rows],
        }
    )
    cut_ts = None if cut is None else T0 + timedelta(minutes=cut)
    con = connect("256MB")
    try:
        got = training_frame(
            ent,
            {"a": ["x"], "b": ["y"]},
            VIEWS,
            files,
            as_known_at=cut_ts,
            con=con,
            may_repeat_keys=OfflineStore(tmp_path).may_repeat_keys,
        )
    finally:
        con.close()

    as_td = [(k, timedelta(minutes=t)) for k, t in entity_rows]
    conv = [(k, timedelta(minutes=ts), timedelta(minutes=ts + c), v) for k, ts, c, v in a_rows]
    conv_b = [(k, timedelta(minutes=ts), timedelta(minutes=ts + c), v) for k, ts, c, v in b_rows]
    cut_td = None if cut is None else timedelta(minutes=cut)
    want_x = reference(as_td, conv, VIEWS["a"], cut_td)
    want_y = reference(as_td, conv_b, VIEWS["b"], cut_td)
    got_x = [None if pd.isna(v) else v for v in got["x"]]
    got_y = [None if pd.isna(v) else int(v) for v in got["y"]]
    assert got_x == [None if v is None else float(v) for v in want_x]
    assert got_y == want_y
    assert got["machine_id"].tolist() == [k for k, _ in entity_rows]  # the entity frame's order is kept
