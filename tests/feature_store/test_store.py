"""Feature store behaviour on the real backends: registry, validated ingest, joins, online reads."""

from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow.parquet as pq
import pytest

from feature_store import FeatureView, Field, entities
from feature_store.store import FeatureStore
from serving import tenancy
from serving.errors import Conflict, InvalidInput, NotFound
from tests.feature_store.conftest import REC, STATS


def frame(rows):
    df = pd.DataFrame(rows, columns=["machine_id", "event_timestamp", "temp_mean", "vib_rms", "alarm", "mode"])
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
    return df


ROWS = [
    ("m1", "2026-03-01T00:00Z", 70.5, 1.25, False, "run"),
    ("m1", "2026-03-01T06:00Z", 71.5, 1.5, False, "run"),
    ("m2", "2026-03-02T00:00Z", 65.0, 0.5, True, "idle"),
]


def test_registry_versions_and_incompatible_changes(store):
    assert store.apply(STATS)[0].status == "unchanged"
    evolved = FeatureView(
        name="machine_stats",
        entity=entities.machine,
        schema=[*STATS.schema, Field(name="current_max", dtype="float32")],
        description="more",
    )
    assert (store.apply(evolved)[0].status, store.apply(evolved)[0].version) == ("updated", 2)
    for bad, why in (
        (FeatureView(name="machine_stats", entity=entities.machine, schema=STATS.schema[:1]), "'vib_rms' is removed"),
        (
            FeatureView(
                name="machine_stats",
                entity=entities.machine,
                schema=[Field(name="temp_mean", dtype="string"), *evolved.schema[1:]],
            ),
            "changes dtype",
        ),
        (FeatureView(name="machine_stats", entity=entities.line, schema=evolved.schema), "entity changes"),
    ):
        with pytest.raises(Conflict, match=why):
            store.apply(bad)
    assert store.registry.history("machine_stats") == [1, 2]
    with pytest.raises(NotFound, match="'nope' not found; this tenant's views: machine_stats; declare "
                                       "another with 'sfai features apply FILE.py'$"):
        store.get_view("nope")
    with pytest.raises(NotFound, match="did you mean 'machine_stats'"):  # a typo: the near name
        store.get_view("machine_stat")


def test_a_feature_added_to_a_view_reads_as_null_where_the_data_predates_it(store):
    """A view may gain a feature (a new version); its files written before have no such column, and DuckDB could
    not bind it: the training frame, materialization (and so a full restore of a backup) failed with "Referenced
    column not found" until a row carrying it arrived. It now reads as null there."""
    store.ingest("machine_stats", frame(ROWS))
    evolved = FeatureView(name="machine_stats", entity=entities.machine,
                          schema=[*STATS.schema, Field(name="current_max", dtype="float32")])
    assert store.apply(evolved)[0].status == "updated"
    entity = pd.DataFrame({"machine_id": ["m1", "m2"],
                           "event_timestamp": pd.to_datetime(["2026-03-05", "2026-03-05"], utc=True)})
    got = store.get_training_frame(entity, ["machine_stats:current_max", "machine_stats:temp_mean"])
    assert got["current_max"].isna().all() and got["temp_mean"].notna().all()
    assert store.materialize("machine_stats", None, "2026-04-01") == 2
    assert store.online.read("acme", "machine_stats", ["m1"])[0][1]["current_max"] is None
    later = {**REC, "machine_id": "m1", "event_timestamp": "2026-03-06T00:00:00Z", "current_max": 4.5}
    store.ingest("machine_stats", [later])
    entity["event_timestamp"] = pd.to_datetime(["2026-03-07", "2026-03-07"], utc=True)
    got = store.get_training_frame(entity, ["machine_stats:current_max"])
    assert got["current_max"].iloc[0] == 4.5 and pd.isna(got["current_max"].iloc[1])


def test_ingest_writes_partitioned_parquet_and_online(store):
    rep = store.ingest("machine_stats", frame(ROWS))
    assert (rep.rows, rep.files, rep.partitions, rep.online_updated) == (
        3,
        2,
        ["date=2026-03-01", "date=2026-03-02"],
        2,
    )
    files = store.offline.files("acme", "machine_stats")
    assert len(files) == 2 and all("/acme/machine_stats/date=2026-03-0" in f for f in files)
    t = pq.read_table(files[0])
    assert (
        t.schema.field("temp_mean").type == "float" and str(t.schema.field("created").type) == "timestamp[us, tz=UTC]"
    )
    # idempotent: the same rows again change nothing
    store.ingest("machine_stats", frame(ROWS))
    assert store.offline.row_count("acme", "machine_stats") == 3
    got = store.get_online_features("machine_stats", ["m1", "m2", "m9"])
    assert (
        got[0]["temp_mean"] == 71.5
        and got[0]["mode"] == "run"
        and got[0]["event_timestamp"].startswith("2026-03-01T06")
    )
    assert got[1]["alarm"] is True and got[2]["temp_mean"] is None
    # an older row never overwrites the online value
    store.ingest("machine_stats", frame([("m1", "2026-02-01T00:00Z", 1.0, 1.0, False, "old")]))
    assert store.get_online_features("machine_stats", ["m1"], ["mode"])[0]["mode"] == "run"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda df: df.assign(extra=1), "unknown column 'extra'"),
        (lambda df: df.drop(columns=["vib_rms"]), "missing column 'vib_rms'"),
        (lambda df: df.drop(columns=["machine_id"]), "missing column 'machine_id'"),
        (lambda df: df.assign(temp_mean=[1.0, "hot", 2.0]), "row 2, column 'temp_mean': 'hot' is not a valid float32"),
        (
            lambda df: df.assign(event_timestamp=[df.event_timestamp[0], None, df.event_timestamp[2]]),
            "row 2, column 'event_timestamp': missing timestamp",
        ),
        (lambda df: df.assign(machine_id=["m1", None, "m2"]), "row 2, column 'machine_id': missing key"),
        (lambda df: df.assign(event_timestamp=["2026-03-01", "not a date", "2026-03-02"]), "event_timestamp"),
    ],
)
def test_bad_rows_are_refused_and_nothing_is_written(store, mutate, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        store.ingest("machine_stats", mutate(frame(ROWS)))
    assert store.offline.files("acme", "machine_stats") == []
    assert store.get_online_features("machine_stats", ["m1"])[0]["temp_mean"] is None


def test_records_csv_and_parquet_inputs(store, tmp_path):
    store.ingest(
        "machine_stats",
        [
            {
                "machine_id": "m1",
                "event_timestamp": "2026-03-01T00:00:00Z",
                "temp_mean": 70,
                "vib_rms": 1,
                "alarm": False,
                "mode": "run",
            }
        ],
    )
    csv = tmp_path / "rows.csv"
    csv.write_text(
        "machine_id,event_timestamp,temp_mean,vib_rms,alarm,mode\nm2,2026-03-01 01:00:00,60.5,0.5,true,idle\n"
    )
    store.ingest("machine_stats", csv)
    pq_path = tmp_path / "rows.parquet"
    frame([("m3", "2026-03-01T02:00Z", 50.0, 0.1, False, "run")]).to_parquet(pq_path)
    store.ingest("machine_stats", pq_path)
    assert store.offline.row_count("acme", "machine_stats") == 3
    with pytest.raises(InvalidInput, match="unknown file type"):
        store.ingest("machine_stats", tmp_path / "rows.xlsx")


def test_a_csv_is_typed_by_the_view_not_guessed(store):
    """Ids and text are kept as written (a guess made machine 00123 machine 123, while the same row sent as JSON
    kept 00123: one machine under two ids); numbers, booleans and missing values read as the view's types say."""
    store.apply(FeatureView(name="lots", entity=entities.machine, schema=[
        Field(name="count", dtype="int64"), Field(name="ok", dtype="bool"), Field(name="note", dtype="string"),
        Field(name="temp", dtype="float32"),
    ]))
    rows = (
        "machine_id,event_timestamp,count,ok,note,temp\n"
        "00123,2026-03-01T00:00:00Z,1e5,TRUE,12:30,1.50\n"
        "NA,2026-03-01T00:00:00Z,7,FALSE,1.50,NA\n"
        "1e5,2026-03-01T00:00:00Z,,0,NA,\n"
    )
    store.ingest("lots", b"\xef\xbb\xbf" + rows.encode(), fmt="csv")  # with the BOM Excel's "CSV UTF-8" writes
    store.ingest("lots", [{"machine_id": "00123", "event_timestamp": "2026-03-02T00:00:00Z", "count": 2, "ok": True,
                           "note": "json", "temp": 2.0}])
    got = {r["machine_id"]: r for r in store.get_online_features("lots", ["00123", "123", "NA", "1e5"])}
    assert got["00123"]["note"] == "json" and got["123"]["event_timestamp"] is None  # one machine, one id
    assert got["NA"]["note"] == "1.50" and got["1e5"]["note"] == "NA"  # ids as written, the first column too
    day1 = pd.DataFrame({"machine_id": ["00123", "NA", "1e5"], "event_timestamp": pd.to_datetime(["2026-03-01"] * 3,
                                                                                                 utc=True)})
    out = store.get_training_frame(day1, ["lots:*"])
    assert out["count"].tolist()[:2] == [100000, 7] and pd.isna(out["count"][2])
    assert out["ok"].tolist() == [True, False, False]
    assert out["note"].tolist() == ["12:30", "1.50", "NA"]  # text as written, NA included
    assert out["temp"][0] == 1.5 and out["temp"][1:].isna().all()  # NA and an empty cell: missing numbers
    bom = b"\xef\xbb\xbfmachine_id,event_timestamp,count,ok,note,temp\n007,2026-03-03T00:00:00Z,1,1,a,1\n"
    store.ingest("lots", bom, fmt="csv")  # a first column of digits only, behind the BOM: still the id as written
    assert store.get_online_features("lots", ["007"])[0]["note"] == "a"
    with pytest.raises(InvalidInput, match="row 1, column 'count': '1.5' is not a valid int64"):
        store.ingest("lots", b"machine_id,event_timestamp,count,ok,note,temp\nm,2026-03-01T00:00:00Z,1.5,1,a,1\n",
                     fmt="csv")


def test_training_frame_is_point_in_time_with_ttl_and_as_known_at(store, settings, db, online):
    ttl_view = FeatureView(
        name="energy_15m", entity=entities.machine, ttl=timedelta(hours=1), schema=[Field(name="kwh", dtype="float64")]
    )
    store.apply(ttl_view)
    on_time = frame(ROWS)
    on_time["created"] = on_time["event_timestamp"] + pd.Timedelta(minutes=5)  # learned 5 minutes later
    store.ingest("machine_stats", on_time)
    late = frame([("m1", "2026-03-01T03:00Z", 99.0, 9.0, True, "late")])
    late["created"] = pd.Timestamp("2026-03-05T00:00Z")  # learned days later
    store.ingest("machine_stats", late)
    store.ingest(
        "energy_15m",
        pd.DataFrame({"machine_id": ["m1"], "event_timestamp": pd.to_datetime(["2026-03-01T00:00Z"]), "kwh": [12.5]}),
    )
    ent = pd.DataFrame(
        {
            "machine_id": ["m1", "m1", "m1", "m2", "m3"],
            "event_timestamp": pd.to_datetime(
                [
                    "2026-03-01T00:30Z",
                    "2026-03-01T04:00Z",
                    "2026-02-28T00:00Z",
                    "2026-03-03T00:00Z",
                    "2026-03-03T00:00Z",
                ]
            ),
            "label": [0, 1, 0, 1, 0],
        }
    )
    out = store.get_training_frame(ent, ["machine_stats:temp_mean", "machine_stats:mode", "energy_15m:kwh"])
    assert list(out.columns) == ["machine_id", "event_timestamp", "label", "temp_mean", "mode", "kwh"]
    assert out["temp_mean"].tolist()[:2] == [70.5, 99.0] and pd.isna(out["temp_mean"][2])
    assert out["mode"][3] == "idle" and pd.isna(out["mode"][4])
    assert out["kwh"].tolist()[0] == 12.5 and pd.isna(out["kwh"][1])  # 4 h later: beyond the 1 h TTL
    known = store.get_training_frame(ent, ["machine_stats:temp_mean"], as_known_at="2026-03-04T00:00Z")
    assert known["temp_mean"].tolist()[1] == 70.5  # the late row was not known yet
    with pytest.raises(InvalidInput, match="view:feature"):
        store.get_training_frame(ent, ["temp_mean"])
    with pytest.raises(InvalidInput, match="no feature"):
        store.get_training_frame(ent, ["machine_stats:nope"])
    with pytest.raises(InvalidInput, match="needs an 'event_timestamp'"):
        store.get_training_frame(ent.drop(columns=["event_timestamp"]), ["machine_stats:*"])


def test_materialize_and_incremental(store):
    store.ingest("machine_stats", frame(ROWS), write_online=False)
    assert store.get_online_features("machine_stats", ["m1"])[0]["temp_mean"] is None
    assert store.materialize("machine_stats", None, "2026-03-01T03:00Z") == 1
    assert store.get_online_features("machine_stats", ["m1"])[0]["temp_mean"] == 70.5
    assert store.materialize_incremental("machine_stats", "2026-03-10T00:00Z") == 2
    assert store.get_online_features("machine_stats", ["m1"])[0]["temp_mean"] == 71.5
    store.ingest("machine_stats", frame([("m3", "2026-03-11T00:00Z", 1.0, 1.0, False, "run")]), write_online=False)
    assert store.materialize_incremental("machine_stats", "2026-03-12T00:00Z") >= 1
    assert store.get_online_features("machine_stats", ["m3"])[0]["temp_mean"] == 1.0
    # a row stamped after --end waits for the run whose end passes it
    store.ingest("machine_stats", frame([("m4", "2026-03-20T00:00Z", 2.0, 1.0, False, "run")]), write_online=False)
    store.materialize_incremental("machine_stats", "2026-03-15T00:00Z")
    assert store.get_online_features("machine_stats", ["m4"])[0]["temp_mean"] is None
    store.materialize_incremental("machine_stats")
    assert store.get_online_features("machine_stats", ["m4"])[0]["temp_mean"] == 2.0


def test_incremental_materialize_takes_history_loaded_after_the_last_run(store):
    """History ingested offline after a run (a backfill, the steel-energy ``--no-online`` flow) is stamped before
    where that run stopped: selected by event time alone it was never loaded, and the online store kept the old
    value for good."""
    store.ingest("machine_stats", frame(ROWS[:1]), write_online=False)
    assert store.materialize_incremental("machine_stats") == 1
    store.ingest("machine_stats", frame(ROWS[1:]), write_online=False)  # event times long before this run
    assert store.materialize_incremental("machine_stats") == 2
    assert [r["temp_mean"] for r in store.get_online_features("machine_stats", ["m1", "m2"])] == [71.5, 65.0]


def test_a_batch_sent_again_keeps_when_it_was_first_known(store):
    """An MES retry or a rerun sends the same rows again: the store keeps the first copy, so a training frame
    ``as_known_at`` a time between the two still finds them (the retry had replaced the file with one stamped
    later, and the value read as missing there)."""
    entity = pd.DataFrame({"machine_id": ["m1"], "event_timestamp": pd.to_datetime(["2026-03-05"], utc=True)})
    store.ingest("machine_stats", frame(ROWS))
    between = datetime.now(UTC)
    assert store.get_training_frame(entity, ["machine_stats:temp_mean"], as_known_at=between)["temp_mean"][0] == 71.5
    again = store.ingest("machine_stats", frame(ROWS))
    assert again.files == 0
    assert store.get_training_frame(entity, ["machine_stats:temp_mean"], as_known_at=between)["temp_mean"][0] == 71.5


def test_a_value_changed_back_is_the_latest_offline_and_online(store):
    """1, then 2, then the first batch again (byte for byte, no ``created`` sent): the third is the latest word.
    Skipping it as a retry of the first left the training frame at 2 while the online store said 1."""
    entity = pd.DataFrame({"machine_id": ["m1"], "event_timestamp": pd.to_datetime(["2026-03-05"], utc=True)})
    one, two = frame(ROWS[:1]), frame(ROWS[:1]).assign(temp_mean=99.0)
    for batch in (one, two, one):
        store.ingest("machine_stats", batch)
    assert store.get_training_frame(entity, ["machine_stats:temp_mean"])["temp_mean"][0] == 70.5
    assert store.get_online_features("machine_stats", ["m1"])[0]["temp_mean"] == 70.5
    store.compact("machine_stats", min_files=2)  # the three versions stay: none repeats the one before it
    assert store.get_training_frame(entity, ["machine_stats:temp_mean"])["temp_mean"][0] == 70.5
    store.ingest("machine_stats", two)  # after compaction too
    assert store.get_training_frame(entity, ["machine_stats:temp_mean"])["temp_mean"][0] == 99.0


def test_a_missing_view_is_not_taken_for_another_datasets_view(store):
    """A defect prediction by entity id for a tenant without secom_features was answered "did you mean
    'cmapss_features'?", the engines' view (the shared '_features' made them look alike); and `sfai ingest csv
    line_temps.csv` for a view not yet declared listed the views without saying how to declare one."""
    store.apply(FeatureView(name="cmapss_features", entity=entities.machine, schema=STATS.schema))
    with pytest.raises(NotFound) as e:
        store.get_view("secom_features")
    assert "did you mean" not in str(e.value)
    assert str(e.value).endswith("this tenant's views: cmapss_features, machine_stats; declare another with "
                                 "'sfai features apply FILE.py'")
    with pytest.raises(NotFound, match="did you mean 'cmapss_features'"):  # a typo still gets the near name
        store.get_view("cmapss_feature")


def test_tenants_never_see_each_other(store, settings, db, online):
    store.ingest("machine_stats", frame(ROWS))
    tenancy.create_tenant(db, "other", "C29")
    other = FeatureStore(settings, db, "other", online=online)
    with pytest.raises(NotFound, match="has no views yet") as e:  # and not the other tenant's names
        other.get_view("machine_stats")
    assert "did you mean" not in str(e.value)
    other.apply(STATS)  # same view name, its own data
    assert other.offline.files("other", "machine_stats") == []
    assert other.get_online_features("machine_stats", ["m1"])[0]["temp_mean"] is None
    ent = pd.DataFrame({"machine_id": ["m1"], "event_timestamp": [datetime(2026, 3, 2, tzinfo=UTC)]})
    assert pd.isna(other.get_training_frame(ent, ["machine_stats:temp_mean"])["temp_mean"][0])
    assert store.get_training_frame(ent, ["machine_stats:temp_mean"])["temp_mean"][0] == 71.5


def test_a_batch_may_not_repeat_an_entity_time(store):
    rows = [*ROWS, ("m1", "2026-03-01T06:00Z", 1.0, 1.0, True, "dup")]
    with pytest.raises(InvalidInput, match="row 4 repeats the 'machine_id' and 'event_timestamp' of row 2"):
        store.ingest("machine_stats", frame(rows))


def test_overlapping_files_are_detected(store):
    store.ingest("machine_stats", frame(ROWS[:1]))
    files = store.offline.files("acme", "machine_stats")
    assert not store.offline.may_repeat_keys(files)
    store.ingest("machine_stats", frame(ROWS[1:2]))  # same day, later time: no overlap
    assert not store.offline.may_repeat_keys(store.offline.files("acme", "machine_stats"))
    store.ingest("machine_stats", frame([("m1", "2026-03-01T00:00Z", 5.0, 5.0, False, "fix")]))  # a correction
    assert store.offline.may_repeat_keys(store.offline.files("acme", "machine_stats"))
    ent = pd.DataFrame({"machine_id": ["m1"], "event_timestamp": pd.to_datetime(["2026-03-01T01:00Z"])})
    assert store.get_training_frame(ent, ["machine_stats:mode"])["mode"][0] == "fix"  # written last wins


def test_compaction_merges_small_files_and_changes_no_answer(store):
    """An MES pushing one row per call makes one file per call; compaction merges each partition into one file,
    keeps every row and every point-in-time answer, and a batch sent again afterwards is still not duplicated."""
    batches = [frame([(f"m{i % 3}", f"2026-03-01T{i:02d}:00Z", 60.0 + i, 1.0, i % 2 == 0, "run")]) for i in range(12)]
    batches.append(frame([("m1", "2026-03-02T01:00Z", 90.0, 2.0, True, "idle")]))
    for b in batches:
        store.ingest("machine_stats", b)
    files = store.offline.files("acme", "machine_stats")
    assert len(files) == 13
    ent = pd.DataFrame({"machine_id": ["m0", "m1", "m2", "m1"],
                        "event_timestamp": pd.to_datetime(["2026-03-01T05:30Z", "2026-03-01T10:30Z",
                                                           "2026-03-01T23:00Z", "2026-03-02T02:00Z"])})
    # every answer: as known now, and as known when each batch (and the microsecond before it) was written
    written = sorted({pd.Timestamp(t) for f in files for t in pq.read_table(f, columns=["created"])[0].to_pylist()})
    cuts = [None, *written, *(t - pd.Timedelta(microseconds=1) for t in written)]
    before = [store.get_training_frame(ent, ["machine_stats:*"], as_known_at=c) for c in cuts]
    rep = store.compact("machine_stats", min_files=4)
    assert (rep.partitions, rep.files_before, rep.files_after, rep.rows) == (1, 12, 1, 12)  # 03-02 has one file
    assert rep.duplicates == 0  # no row came twice
    files = store.offline.files("acme", "machine_stats")
    assert len(files) == 2 and any("part-c" in f for f in files)
    assert store.offline.row_count("acme", "machine_stats") == 13
    for cut, want in zip(cuts, before, strict=True):
        pd.testing.assert_frame_equal(store.get_training_frame(ent, ["machine_stats:*"], as_known_at=cut), want)
    assert store.materialize("machine_stats", None, "2026-03-05T00:00Z") == 3
    # the same batches again: recognised, nothing new
    for b in batches[:5]:
        store.ingest("machine_stats", b)
    assert store.offline.row_count("acme", "machine_stats") == 13
    assert len(store.offline.files("acme", "machine_stats")) == 2
    # a new row lands next to the compacted file; a second compaction merges it in
    store.ingest("machine_stats", frame([("m2", "2026-03-01T23:30Z", 55.0, 1.0, False, "run")]))
    assert store.compact("machine_stats", min_files=2).files_after == 1
    assert store.offline.row_count("acme", "machine_stats") == 14
    for b in batches[:3]:
        store.ingest("machine_stats", b)
    assert store.offline.row_count("acme", "machine_stats") == 14


def test_values_a_column_cannot_hold_are_refused_not_stored_changed(store, tmp_path):
    """A float past float32, an infinity, an integer past int64 or int32, a list as a key, text that is not UTF-8:
    each is a 422 naming row and column, and nothing is written. NaN is a missing value and stored as one."""
    counts = FeatureView(
        name="machine_counts",
        entity=entities.machine,
        schema=[Field(name="shots", dtype="int64"), Field(name="cavities", dtype="int32"), *STATS.schema],
    )
    store.apply(counts)
    rec = {**REC, "shots": 5, "cavities": 2}
    cases = [
        ({"temp_mean": 1e39}, "row 2, column 'temp_mean': 1e+39 is out of the float32 range"),
        ({"vib_rms": float("inf")}, "row 2, column 'vib_rms': inf is not a finite number"),
        ({"shots": 2**63}, "row 2, column 'shots': 9223372036854775808 is not a valid int64"),
        ({"cavities": 2**31}, "row 2, column 'cavities': 2147483648 is not a valid int32"),
        ({"machine_id": ["m1"]}, "row 2, column 'machine_id': ['m1'] is not a single value"),
        ({"shots": 2**64}, "row 2, column 'shots': '18446744073709551616' is not a valid int64"),
        ({"machine_id": ""}, "row 2, column 'machine_id': missing key (a blank id)"),
        ({"machine_id": "  "}, "row 2, column 'machine_id': missing key (a blank id)"),
        ({"machine_id": True}, "row 2, column 'machine_id': True is not a value of this column's type"),
        ({"shots": True}, "row 2, column 'shots': True is not a value of this column's type"),
    ]
    for change, message in cases:
        records = [{**rec, "event_timestamp": "2026-02-01T00:00:00Z"}, {**rec, **change}]
        with pytest.raises(InvalidInput) as e:
            store.ingest("machine_counts", records)
        assert e.value.message == message, (change, e.value.message)
    with pytest.raises(InvalidInput, match="row 1, column 'machine_id': True is not a valid key"):
        store.ingest("machine_counts", [{**rec, "machine_id": True}])
    for column in ("shots", "temp_mean"):  # a column of booleans where numbers belong: not stored as 1 and 0
        with pytest.raises(InvalidInput, match=f"row 1, column '{column}': True is not a valid"):
            store.ingest("machine_counts", [{**rec, column: True}, {**rec, "machine_id": "m2", column: False}])
    latin = tmp_path / "latin.csv"
    latin.write_bytes(
        "machine_id,event_timestamp,shots,cavities,temp_mean,vib_rms,alarm,mode\n"
        "Presse-Größe,2026-03-01 00:00:00,1,1,1.0,1.0,false,run\n".encode("latin-1")
    )
    with pytest.raises(InvalidInput, match=r"latin.csv: line 2 is not UTF-8 text \(byte 0xf6\)"):
        store.ingest("machine_counts", latin)
    assert store.offline.files("acme", "machine_counts") == []
    csv = tmp_path / "nan.csv"
    csv.write_text(
        "machine_id,event_timestamp,shots,cavities,temp_mean,vib_rms,alarm,mode\n"
        "m1,2026-03-01 00:00:00,1,1,NaN,0.5,false,run\n"
    )
    store.ingest("machine_counts", csv)
    got = store.get_online_features("machine_counts", ["m1"])[0]
    assert got["temp_mean"] is None and got["vib_rms"] == 0.5 and got["shots"] == 1


def test_times_finer_than_a_microsecond_are_kept_to_the_microsecond(store, tmp_path):
    """Nanosecond times (pandas' default unit; OPC UA and .NET write 100 ns) were refused whole: "its values of type
    timestamp[ns, tz=UTC] cannot be read as timestamp". The store keeps microseconds; the finer digits are dropped."""
    df = frame([("m1", "2026-03-01T00:00:00.123456789Z", 70.5, 1.0, False, "run")])
    assert str(df.event_timestamp.dtype) == "datetime64[ns, UTC]"
    store.ingest("machine_stats", df)
    path = tmp_path / "ns.parquet"
    frame([("m2", "2026-03-01T00:00:00.999999999Z", 70.5, 1.0, False, "run")]).to_parquet(path)
    store.ingest("machine_stats", path)
    store.ingest("machine_stats", [{**REC, "machine_id": "m3", "event_timestamp": "2026-03-01T09:00:00.1234567+09:00"}])
    got = store.get_online_features("machine_stats", ["m1", "m2", "m3"])
    assert [g["event_timestamp"] for g in got] == [
        "2026-03-01T00:00:00.123456Z",
        "2026-03-01T00:00:00.999999Z",
        "2026-03-01T00:00:00.123456Z",
    ]
    assert store.offline.row_count("acme", "machine_stats") == 3


def test_a_conformed_batch_is_ingested_without_a_second_check(store, monkeypatch):
    import feature_store.store as store_module

    batch = FeatureStore.conform(STATS, frame(ROWS))  # checked before anything touches the store

    def checked_again(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        pytest.fail("the conformed batch was checked a second time")

    monkeypatch.setattr(store_module, "conform", checked_again)
    rep = store.ingest("machine_stats", batch)
    assert (rep.rows, rep.online_updated) == (3, 2)
    files = store.offline.files("acme", "machine_stats")
    monkeypatch.undo()
    store.ingest("machine_stats", frame(ROWS))  # the same rows unconformed: the same files (created not hashed)
    assert store.offline.files("acme", "machine_stats") == files
    assert store.offline.row_count("acme", "machine_stats") == 3


def test_a_batch_conformed_to_an_older_declaration_is_checked_again(store):
    batch = FeatureStore.conform(STATS, frame(ROWS))
    store.apply(FeatureView(name="machine_stats", entity=entities.machine,
                            schema=[*STATS.schema, Field(name="current_max", dtype="float32")]))
    with pytest.raises(InvalidInput, match="missing column 'current_max'"):
        store.ingest("machine_stats", batch)
    assert store.offline.row_count("acme", "machine_stats") == 0


LABELS = pd.DataFrame({"machine_id": ["m1"], "event_timestamp": pd.to_datetime(["2026-03-05"], utc=True)})


BAD_READS = [
    # ids of another type than the view's key: DuckDB's ConversionException, with SQL text
    (lambda fs: fs.get_training_frame(LABELS.assign(machine_id=[17]), ["machine_stats:*"]),
     "the entity frame's 'machine_id' column holds int64 values, but feature view 'machine_stats' keys its machine "
     "entities by text ids; pass them as text: df['machine_id'].astype(str)"),
    (lambda fs: fs.get_training_frame(LABELS.assign(machine_id=[1.0]), ["machine_stats:*"]),
     "the entity frame's 'machine_id' column holds double values"),
    (lambda fs: fs.get_training_frame(pd.DataFrame({"machine_id": ["m1", 2],
                                                    "event_timestamp": [LABELS.event_timestamp[0]] * 2}),
                                      ["machine_stats:*"]),
     "column 'machine_id' of the entity frame cannot be read (Expected bytes, got a 'int' object)"),
    # as_known_at that is not a time: pandas' DateParseError, or a silent 1970 for a number
    (lambda fs: fs.get_training_frame(LABELS, ["machine_stats:*"], as_known_at="yesterday"),
     "as_known_at 'yesterday' is not a time: pass a datetime or ISO 8601 text such as '2026-03-01T00:00:00Z'"),
    (lambda fs: fs.get_training_frame(LABELS, ["machine_stats:*"], as_known_at="now"), "as_known_at 'now' is not a"),
    (lambda fs: fs.get_training_frame(LABELS, ["machine_stats:*"], as_known_at=5), "not int 5"),
    (lambda fs: fs.get_training_frame(LABELS, ["machine_stats:*"], as_known_at=pd.NaT), "as_known_at is missing"),
    # times in the entity frame: missing (NaT read no features, silently), text, of mixed kinds, far out
    (lambda fs: fs.get_training_frame(pd.concat([LABELS, LABELS.assign(event_timestamp=pd.NaT)]),
                                      ["machine_stats:*"]),
     "row 2 of the entity frame has no 'event_timestamp' (NaT)"),
    (lambda fs: fs.get_training_frame(LABELS.assign(event_timestamp=["2026-03-05"]), ["machine_stats:*"]),
     "'event_timestamp' of the entity frame must be a timestamp column, not "),
    (lambda fs: fs.get_training_frame(pd.DataFrame({"machine_id": ["m1", "m2"],
                                                    "event_timestamp": [LABELS.event_timestamp[0], "2026-03-05"]}),
                                      ["machine_stats:*"]),
     "column 'event_timestamp' of the entity frame cannot be read"),
    (lambda fs: fs.get_training_frame(pa_table({"machine_id": ["m1"], "event_timestamp": (2**62, "s")}),
                                      ["machine_stats:*"]),
     "'event_timestamp' of the entity frame holds a time too far from 1970"),  # was read as 1970, silently
    # the frame itself, and its columns
    (lambda fs: fs.get_training_frame([{"machine_id": "m1"}], ["machine_stats:*"]),
     "the entity frame must be a pandas DataFrame or an Arrow table, not list"),
    (lambda fs: fs.get_training_frame(pd.DataFrame([["m1", LABELS.event_timestamp[0], 1, 2]],
                                                   columns=["machine_id", "event_timestamp", "a", "a"]),
                                      ["machine_stats:*"]),
     "the entity frame has two columns named 'a'"),
    (lambda fs: fs.get_training_frame(LABELS.drop(columns=["machine_id"]), ["machine_stats:*"]),
     "the entity frame needs a 'machine_id' column for feature view 'machine_stats'"),
    # feature references: a string iterated letter by letter, an int, nothing at all
    (lambda fs: fs.get_training_frame(LABELS, "machine_stats:*"),
     "features must be a list of 'view:feature' or 'view:*' references, such as ['machine_stats:*'], not "
     "'machine_stats:*'"),
    (lambda fs: fs.get_training_frame(LABELS, [3]), "feature reference 3 must be text like 'view:feature'"),
    (lambda fs: fs.get_training_frame(LABELS, None), "features must be a list"),
    (lambda fs: fs.get_training_frame(LABELS, []), "features is empty"),
    (lambda fs: fs.get_training_frame(LABELS, ["machine_stats:zz"]),
     "feature view 'machine_stats' has no feature 'zz'; it has temp_mean, vib_rms, alarm, mode"),
    # online reads: an unknown feature was a KeyError; one string was read letter by letter
    (lambda fs: fs.get_online_features("machine_stats", ["m1"], ["zz"]),
     "feature view 'machine_stats' has no feature 'zz'; it has temp_mean, vib_rms, alarm, mode"),
    (lambda fs: fs.get_online_features("machine_stats", ["m1"], "temp_mean"),
     "features must be a list of feature names, such as ['temp_mean'], not one string"),
    (lambda fs: fs.get_online_features("machine_stats", "m1"),
     "entity_ids must be a list of ids, such as ['m1'], not one string"),
    (lambda fs: fs.get_online_features("machine_stats", ["m1", None]),
     "entity id 2 must be text or a whole number, not None"),  # was looked up as the id 'None'
    (lambda fs: fs.get_online_features("machine_stats", [1.5]), "entity id 1 must be text or a whole number"),
]


def test_bad_input_to_reads_is_one_clear_line(store):
    """Training frames and online reads answer bad input as ingest does: InvalidInput (HTTP 422, a one-line CLI
    error) naming the problem, never DuckDB's ConversionException with SQL text, pandas' DateParseError, a KeyError
    or an AttributeError, nor a silently wrong answer."""
    store.ingest("machine_stats", frame(ROWS))
    for call, message in BAD_READS:
        with pytest.raises(InvalidInput) as e:
            call(store)
        text = e.value.message
        assert message in text, (message, text)
        assert "\n" not in text and "SELECT" not in text and "LINE 1" not in text


def pa_table(columns: dict):
    import pyarrow as pa

    ts, unit = columns["event_timestamp"]
    return pa.table({"machine_id": columns["machine_id"], "event_timestamp": pa.array([ts], pa.timestamp(unit))})


def test_reads_that_are_fine_stay_fine(store):
    store.ingest("machine_stats", frame(ROWS))
    labels = LABELS.assign(machine_id=pd.Categorical(["m1"]))  # a categorical of ids, a time in Seoul
    labels["event_timestamp"] = labels["event_timestamp"].dt.tz_convert("Asia/Seoul")
    out = store.get_training_frame(labels, ["machine_stats:temp_mean"], as_known_at=" 2030-01-01 ")
    assert out["temp_mean"].tolist() == [71.5]
    import numpy as np

    assert store.get_online_features("machine_stats", np.array(["m1"]), ["mode"])[0]["mode"] == "run"
    assert store.get_online_features("machine_stats", [np.int64(7)])[0]["machine_id"] == "7"
    no_id = store.get_training_frame(LABELS.assign(machine_id=[None]), ["machine_stats:temp_mean"])
    assert pd.isna(no_id["temp_mean"][0])  # a missing id reads no features


def test_an_entitys_history_in_a_time_range(store):
    """What an energy forecast by meter id reads: one entity's rows in (since, until], oldest first, the latest
    written version of each time, nothing of other entities, and no row where none was ingested."""
    store.ingest("machine_stats", frame([*ROWS, ("m1", "2026-03-01T12:00Z", 72.5, 1.0, False, "run")]))
    store.ingest("machine_stats", frame([("m1", "2026-03-01T06:00Z", 99.0, 1.5, False, "run")]))  # a correction

    def history(since: str, until: str) -> list:
        t = store.entity_history("machine_stats", "m1", datetime.fromisoformat(since), datetime.fromisoformat(until),
                                 ["temp_mean"])
        return [(ts.strftime("%H:%M"), v) for ts, v in zip(t["event_timestamp"].to_pylist(),
                                                             t["temp_mean"].to_pylist(), strict=True)]

    assert history("2026-02-28T00:00+00:00", "2026-03-01T12:00+00:00") == [
        ("00:00", 70.5), ("06:00", 99.0), ("12:00", 72.5)]
    assert history("2026-03-01T00:00+00:00", "2026-03-01T06:00+00:00") == [("06:00", 99.0)]  # (since, until]
    assert history("2026-03-05T00:00+00:00", "2026-03-06T00:00+00:00") == []
