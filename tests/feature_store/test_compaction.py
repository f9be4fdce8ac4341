"""Compaction drops the copies that pile up when the same rows arrive in another batch, and changes no answer.

A file is named by its batch's content, so only a byte-identical batch is recognised on write: a C-MAPSS folder
ingested and then one of its files (180,990 rows stored for 160,359), or a fixed file rerun seven times (3,489
rows for 500), stored the rows again. ``compact`` keeps the first of a run of identical versions of an (entity,
event time), never a value changed back, and every point-in-time answer (``as_known_at`` any time) stays."""

from datetime import timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_store.offline import FILE_META, OfflineStore, _content_hash, drop_repeats
from feature_store.validate import conform, read_table
from tests.feature_store.test_store import frame

C0 = pd.Timestamp("2026-03-10T00:00Z")
DAY = [(f"m{i % 3}", f"2026-03-01T{i:02d}:00Z", 60.0 + i, 1.0, i % 2 == 0, "run") for i in range(12)]
ENT = pd.DataFrame({
    "machine_id": ["m0", "m1", "m2", "m0", "m1", "m2", "m9", "m9", "m9"],
    "event_timestamp": pd.to_datetime(["2026-03-01T00:30Z", "2026-03-01T04:30Z", "2026-03-01T05:00Z",
                                       "2026-03-01T09:00Z", "2026-03-01T23:00Z", "2026-03-02T12:00Z",
                                       "2026-03-01T11:00Z", "2026-03-01T12:30Z", "2026-03-03T00:00Z"]),
})


def ingest(store, rows, hours: int) -> None:
    """One batch, learned ``hours`` after C0 (``created`` given: each batch is another batch)."""
    df = frame(rows)
    df["created"] = C0 + pd.Timedelta(hours=hours)
    store.ingest("machine_stats", df)


def cuts(store) -> list:
    """None, and every time a row was written and the microsecond before it."""
    files = store.offline.files("acme", "machine_stats")
    created = pa.concat_tables([pq.read_table(f, columns=["created"]) for f in files]).column("created")
    times = sorted({pd.Timestamp(t) for t in created.to_pylist()})
    return [None, *times, *(t - timedelta(microseconds=1) for t in times)]


def answers(store, at: list) -> list[pd.DataFrame]:
    return [store.get_training_frame(ENT, ["machine_stats:*"], as_known_at=c) for c in at]


def test_rows_sent_again_in_another_batch_are_dropped_and_no_answer_changes(store):
    ingest(store, DAY, 0)  # the folder
    ingest(store, DAY[:5], 1)  # one of its files again: the same rows, another batch
    ingest(store, DAY[3:8], 2)  # a fix-and-rerun overlapping both
    # a value changed and changed back: A = 1 at c3, B = 2 at c4, A' = 1 at c5; A' is no copy of B
    for hours, value in ((3, 1.0), (4, 2.0), (5, 1.0)):
        ingest(store, [("m9", "2026-03-01T12:00Z", value, 1.0, False, "run")], hours)
    ingest(store, [("m1", "2026-03-02T01:00Z", 90.0, 2.0, True, "idle")], 6)  # another day, one file
    assert store.offline.row_count("acme", "machine_stats") == 12 + 5 + 5 + 3 + 1
    at = cuts(store)
    before = answers(store, at)

    rep = store.compact("machine_stats")  # default min_files (8): the day has 6 files, but repeated rows
    assert (rep.partitions, rep.files_before, rep.files_after, rep.rows, rep.duplicates) == (1, 6, 1, 15, 10)
    assert store.offline.row_count("acme", "machine_stats") == 16
    for got, want in zip(answers(store, at), before, strict=True):
        pd.testing.assert_frame_equal(got, want)
    latest = store.get_training_frame(ENT, ["machine_stats:temp_mean"])["temp_mean"].tolist()
    assert latest[7] == 1.0  # A' written last wins
    between = store.get_training_frame(ENT, ["machine_stats:temp_mean"], as_known_at=C0 + pd.Timedelta(hours=4.5))
    assert between["temp_mean"].tolist()[7] == 2.0
    # each row kept is its first copy: known since the folder (c0), as before compaction
    merged = pq.read_table([f for f in store.offline.files("acme", "machine_stats") if "part-c" in f][0]).to_pandas()
    first = merged[merged["machine_id"].isin(["m0", "m1", "m2"])]
    assert len(first) == 12 and (first["created"] == C0).all()
    assert merged[merged["machine_id"] == "m9"]["temp_mean"].tolist() == [1.0, 2.0, 1.0]

    # nothing left to do; the batches sent again are recognised, not stored a third time
    assert store.compact("machine_stats").partitions == 0
    ingest(store, DAY[:5], 1)
    assert store.offline.row_count("acme", "machine_stats") == 16


def test_a_correction_compacted_with_the_value_it_corrects_still_wins(store):
    """A compacted file holds a correction next to the value it corrects. The join skips its "written last wins"
    step where no file can repeat an (entity, time), and took the compacted file for one that cannot: it then
    read either version."""
    keys = [f"m{i}" for i in range(6)]
    for hours, value in enumerate((1.0, 4.0, 2.0, 5.0, 3.0)):
        ingest(store, [(k, "2026-03-01T00:00Z", value + i, 1.0, False, "run") for i, k in enumerate(keys)], hours)
    ent = pd.DataFrame({"machine_id": keys, "event_timestamp": pd.to_datetime(["2026-03-01T01:00Z"] * 6)})
    want = [3.0 + i for i in range(6)]
    assert store.get_training_frame(ent, ["machine_stats:temp_mean"])["temp_mean"].tolist() == want
    rep = store.compact("machine_stats", min_files=2)
    assert store.get_training_frame(ent, ["machine_stats:temp_mean"])["temp_mean"].tolist() == want
    assert store.offline.may_repeat_keys(store.offline.files("acme", "machine_stats"))
    assert (rep.files_after, rep.rows, rep.duplicates) == (1, 30, 0)


def test_a_file_compacted_before_duplicates_were_dropped_is_compacted_once_more(store):
    ingest(store, DAY, 0)
    ingest(store, DAY[:4], 1)
    store.offline.compact("acme", store.get_view("machine_stats"), min_files=2)
    (path,) = store.offline.files("acme", "machine_stats")
    old = pq.read_table(path)  # what an older compaction wrote: the copies kept, no word in the footer
    old = pa.concat_tables([old, old.slice(0, 4)]).replace_schema_metadata(
        {k: v for k, v in (old.schema.metadata or {}).items() if k != FILE_META})
    pq.write_table(old, path)
    fresh = OfflineStore(store.offline.root)  # no cached footer
    assert fresh.may_repeat_keys([path])  # it may repeat keys: the join resolves them
    rep = fresh.compact("acme", store.get_view("machine_stats"))  # one file, fewer than min_files: merged anyway
    assert (rep.partitions, rep.rows, rep.duplicates) == (1, 12, 4)
    assert not fresh.may_repeat_keys(fresh.files("acme", "machine_stats"))
    assert fresh.compact("acme", store.get_view("machine_stats")).partitions == 0


def _versions(rows):
    return pa.table({
        "machine_id": [r[0] for r in rows],
        "event_timestamp": pa.array([pd.Timestamp("2026-03-01T00:00Z")] * len(rows), pa.timestamp("us", tz="UTC")),
        "x": pa.array([r[1] for r in rows], pa.float64()),
        "created": pa.array([C0 + pd.Timedelta(hours=r[2]) for r in rows], pa.timestamp("us", tz="UTC")),
    })


@pytest.mark.parametrize(("rows", "kept"), [
    ([("m", 1.0, 0), ("m", 1.0, 1), ("m", 1.0, 2)], [0]),  # copies: the first stays
    ([("m", 1.0, 0), ("m", 2.0, 1), ("m", 1.0, 2)], [0, 1, 2]),  # changed back: each stays
    ([("m", None, 0), ("m", None, 1), ("m", float("nan"), 2)], [0]),  # missing equals missing
    ([("m", 1.0, 0), ("n", 1.0, 0), ("m", 1.0, 1)], [0, 1]),  # another entity is no copy
    ([("m", 1.0, 0), ("m", 1.0, 0)], [0]),  # the same row twice, the same time written
    # two values written at the same time: which is latest is undecided, so the row after them stays (its copy
    # goes: the latest known is 1 with or without it)
    ([("m", 1.0, 0), ("m", 2.0, 0), ("m", 1.0, 1), ("m", 1.0, 2)], [0, 1, 2]),
    ([("m", 1.0, 0), ("m", 1.0, 1), ("m", 2.0, 1)], [0, 1, 2]),
])
def test_drop_repeats(rows, kept):
    table, dropped, repeats = drop_repeats(_versions(rows), "machine_id")
    got = list(zip(table.column("machine_id").to_pylist(), table.column("x").to_pylist(), strict=True))
    want = sorted(((rows[i][0], rows[i][1], rows[i][2]) for i in kept), key=lambda r: (r[0], r[2]))
    assert len(got) == len(kept) and dropped == len(rows) - len(kept)
    assert [g[0] for g in got] == [w[0] for w in want]
    assert repeats == (len({r[0] for r in want}) < len(want))


def test_a_batch_whose_hash_begins_with_c_is_still_recognised_after_compaction(store):
    """Compacted files are named ``part-c<hash>`` and batches ``part-<hash>``: a batch whose hash began with "c"
    (one in 16) was taken for a compacted file, left out of ``compacted.json``, and stored again when sent after
    compaction."""
    view = store.get_view("machine_stats")
    for i in range(500):
        rows = [("m5", "2026-03-01T05:30Z", 50.0 + i, 1.0, False, "run")]
        if _content_hash(conform(view, read_table(frame(rows))), skip="created").startswith("c"):
            break
    store.ingest("machine_stats", frame(rows))
    store.ingest("machine_stats", frame(DAY[:2]))
    assert store.compact("machine_stats", min_files=2).files_before == 2
    store.ingest("machine_stats", frame(rows))
    assert store.offline.row_count("acme", "machine_stats") == 3
    assert len(store.offline.files("acme", "machine_stats")) == 1
