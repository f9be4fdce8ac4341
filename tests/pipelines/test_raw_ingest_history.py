"""Pushing raw readings of a history view (lags, rolling statistics) row by row stores what the pipeline stores
for the same readings from the file: the history is read back from the tenant's offline store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_store.store import FeatureStore
from pipelines import raw_ingest, views
from pipelines.canonical import TIMESTAMP
from pipelines.runner import run_pipeline
from serving import tenancy
from serving.errors import InvalidInput
from tests.datasets import need


def _store(settings, db, name: str) -> FeatureStore:
    tenancy.create_tenant(db, name, "C24")
    return FeatureStore(settings, db, name)


def _stored(fs: FeatureStore, view: str) -> pd.DataFrame:
    files = fs.offline.files(fs.tenant, view)
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True).drop(columns=["created"])
    key = views.VIEWS[view].join_key
    return df.sort_values([key, TIMESTAMP], kind="stable").reset_index(drop=True)


def _records(frame: pd.DataFrame, columns) -> list[dict]:  # noqa: ANN001
    out = frame[list(columns)].copy()
    out[TIMESTAMP] = out[TIMESTAMP].map(lambda t: t.isoformat())
    for c in out.columns:  # the readings as the meter sends them (3.17), not the stored float32's float64 digits
        if out[c].dtype == np.float32:
            out[c] = out[c].astype(str).astype(np.float64)
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in out.to_dict("records")]


def test_steel_day_pushed_row_by_row_equals_the_file(settings, db, tmp_path):
    src = need("steel_energy/steel_industry_2018_jan_oct.csv")
    lines = src.read_text().splitlines()
    # 16 days of the file: the first 15 from the file, the 16th pushed one reading at a time (a week of lags, 672)
    head, day = lines[1:1 + 96 * 15], lines[1 + 96 * 15:1 + 96 * 16]
    full_csv, head_csv = tmp_path / "full.csv", tmp_path / "head.csv"
    full_csv.write_text("\n".join([lines[0], *head, *day]) + "\n")
    head_csv.write_text("\n".join([lines[0], *head]) + "\n")
    whole, pushed = _store(settings, db, "whole"), _store(settings, db, "pushed")
    run_pipeline("steel-energy", full_csv, store=whole)
    run_pipeline("steel-energy", head_csv, store=pushed)
    expected = _stored(whole, "steel_energy_features")
    new = expected.iloc[96 * 15:]
    d = raw_ingest.DERIVATIONS["steel_energy_features"]
    for rec in _records(new, ["meter_id", TIMESTAMP, *d.raw]):
        pushed.ingest("steel_energy_features", [rec])
    got = _stored(pushed, "steel_energy_features")
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    online = pushed.get_online_features("steel_energy_features", ["daewoo-gwangyang"], ["usage_kwh_lag_96"])[0]
    assert online["usage_kwh_lag_96"] == pytest.approx(float(new["usage_kwh_lag_96"].iloc[-1]))


def test_a_meters_times_without_an_offset_are_the_plants_clock_as_in_the_file(settings, db, tmp_path):
    """The file's dates have no offset and are read as Korea time; a push of the same readings stamped without an
    offset (08:45, as an MES writes the meter's clock) was read as UTC: nine hours later, the day's shape moved in
    every forecast by id, and nothing said so. A push now reads them as the file does (the plant's clock); with an
    offset (+09:00, or Z) they are what they say."""
    src = need("steel_energy/steel_industry_2018_jan_oct.csv")
    lines = src.read_text().splitlines()
    head, day = lines[1:1 + 96 * 8], lines[1 + 96 * 8:1 + 96 * 9]
    full_csv, head_csv = tmp_path / "full.csv", tmp_path / "head.csv"
    full_csv.write_text("\n".join([lines[0], *head, *day]) + "\n")
    head_csv.write_text("\n".join([lines[0], *head]) + "\n")
    whole, naive, utc = _store(settings, db, "whole"), _store(settings, db, "naive"), _store(settings, db, "utc")
    run_pipeline("steel-energy", full_csv, store=whole)
    expected = _stored(whole, "steel_energy_features")
    d = raw_ingest.DERIVATIONS["steel_energy_features"]
    new = expected.iloc[96 * 8:]
    records = _records(new, ["meter_id", TIMESTAMP, *d.raw])
    local = [{**r, TIMESTAMP: pd.Timestamp(r[TIMESTAMP]).tz_convert("Asia/Seoul").tz_localize(None).isoformat()}
             for r in records]
    assert local[0][TIMESTAMP] == "2018-01-09T00:15:00"
    zulu = [{**r, TIMESTAMP: pd.Timestamp(r[TIMESTAMP]).strftime("%Y-%m-%dT%H:%M:%SZ")} for r in records]
    for store, sent in ((naive, local), (utc, zulu)):
        run_pipeline("steel-energy", head_csv, store=store)
        store.ingest("steel_energy_features", sent[:40])  # a batch, then one by one (the history read back)
        for rec in sent[40:]:
            store.ingest("steel_energy_features", [rec])
        pd.testing.assert_frame_equal(_stored(store, "steel_energy_features"), expected, check_exact=True)


def test_cmapss_cycles_pushed_row_by_row_equal_the_file(settings, db, tmp_path):
    src = need("cmapss/train_FD002.txt")
    rows = [r.split() for r in src.read_text().splitlines() if r.strip()]
    units = {"1", "2", "3"}
    rows = [r for r in rows if r[0] in units]
    last = {u: max(int(r[1]) for r in rows if r[0] == u) for u in units}
    tail = {u: set(range(last[u] - 23, last[u] + 1)) for u in units}  # a day of cycles (one an hour) pushed
    full_txt, head_txt = tmp_path / "a" / "train_FD002.txt", tmp_path / "b" / "train_FD002.txt"
    full_txt.parent.mkdir(), head_txt.parent.mkdir()
    full_txt.write_text("\n".join(" ".join(r) for r in rows) + "\n")
    head_txt.write_text("\n".join(" ".join(r) for r in rows if int(r[1]) not in tail[r[0]]) + "\n")
    whole, pushed = _store(settings, db, "whole"), _store(settings, db, "pushed")
    run_pipeline("cmapss", full_txt, store=whole)
    fit = raw_ingest.load_fit(settings.home, "whole", "cmapss")
    # the regimes the pushes normalise with are the tenant's: here the whole file's, as for the first tenant
    run_pipeline("cmapss", head_txt, store=pushed, fitted=fit)
    expected = _stored(whole, "cmapss_features")
    new = expected[expected.apply(lambda r: r["cycle"] in tail[r["unit_id"].split("u")[-1].lstrip("0")], axis=1)]
    assert len(new) == 72
    d = raw_ingest.DERIVATIONS["cmapss_features"]
    recs = _records(new.sort_values(TIMESTAMP, kind="stable"), ["unit_id", TIMESTAMP, *d.raw])
    for rec in recs:  # the three engines' cycles interleaved, as they arrive
        pushed.ingest("cmapss_features", [rec])
    pd.testing.assert_frame_equal(_stored(pushed, "cmapss_features"), expected, check_exact=True)


def _steel_rec(end: str, usage: float) -> dict:
    return {"meter_id": "m1", TIMESTAMP: end, "usage_kwh": usage, "lagging_kvarh": 1.0, "leading_kvarh": 0.0,
            "co2_t": 0.0, "lagging_pf": 90.0, "leading_pf": 100.0, "load_type": "Light_Load"}


def test_rows_of_a_lagged_view_come_in_time_order_per_entity(settings, db):
    fs = _store(settings, db, "acme")
    fs.apply(views.steel_energy_features)
    first = [_steel_rec(f"2018-01-01T00:{m:02d}:00Z", float(m)) for m in (15, 30, 45)]
    fs.ingest("steel_energy_features", first)
    fs.ingest("steel_energy_features", [_steel_rec("2018-01-01T01:00:00Z", 60.0)])
    row = fs.get_online_features("steel_energy_features", ["m1"], ["usage_kwh_lag_1", "usage_kwh_lag_4"])[0]
    assert (row["usage_kwh_lag_1"], row["usage_kwh_lag_4"]) == (45.0, None)  # 00:45 from the store; 00:00 none
    late = [_steel_rec("2018-01-01T01:15:00Z", 75.0), _steel_rec("2018-01-01T00:30:00Z", 31.0)]
    with pytest.raises(InvalidInput, match=r"^row 2: meter_id 'm1' at 2018-01-01T00:30:00\+00:00 is not after its "
                                           r"latest stored row \(2018-01-01T01:00:00\+00:00\); .* in time order"):
        fs.ingest("steel_energy_features", late)
    twice = [_steel_rec("2018-01-01T01:15:00Z", 75.0), _steel_rec("2018-01-01T01:15:00Z", 76.0)]
    with pytest.raises(InvalidInput, match=r"^row 2 repeats the 'meter_id' and 'event_timestamp' of row 1"):
        fs.ingest("steel_energy_features", twice)
    with pytest.raises(InvalidInput, match=r"is not on the 15-minute grid"):
        fs.ingest("steel_energy_features", [_steel_rec("2018-01-01T01:07:00Z", 1.0)])
    with pytest.raises(InvalidInput, match=r"row 1, column 'usage_kwh_lag_1': 3 contradicts the readings \(they give "
                                           r"60\).*leave the derived columns out"):
        fs.ingest("steel_energy_features", [{**_steel_rec("2018-01-01T01:15:00Z", 75.0), "usage_kwh_lag_1": 3.0}])
    # readings the file pipeline sets aside (review: a usage of -50 kWh was stored and fed the next rows' lags)
    for change, said in (({"usage_kwh": -50.0}, r"row 1, column 'usage_kwh': -50 is outside 0 to 10,000 kWh"),
                         ({"lagging_pf": 250.0}, r"row 1, column 'lagging_pf': 250 is outside 0 to 100 %"),
                         ({"load_type": "Bogus"}, r"row 1, column 'load_type': 'Bogus' is not Light_Load, ")):
        with pytest.raises(InvalidInput, match=said):
            fs.ingest("steel_energy_features", [{**_steel_rec("2018-01-01T01:15:00Z", 75.0), **change}])
    assert fs.offline.row_count("acme", "steel_energy_features") == 4  # nothing of the refused batches


def test_a_reading_delivered_again_is_stored_once_not_refused_as_late(settings, db):
    """MQTT delivers at least once, and a REST batch may be retried without an Idempotency-Key: a reading the store
    holds already, with the same values, was refused as a late row (the MQTT subscriber set the message aside). It
    is now skipped; the same time with other readings is still refused, and new rows beside a repeat are stored."""
    fs = _store(settings, db, "acme")
    fs.apply(views.steel_energy_features)
    first = [_steel_rec(f"2018-01-01T00:{m:02d}:00Z", float(m) + 0.1) for m in (15, 30, 45)]
    assert fs.ingest("steel_energy_features", first).rows == 3
    again = fs.ingest("steel_energy_features", first[1:])
    assert (again.rows, again.files) == (0, 0)
    with pytest.raises(InvalidInput, match=r"is not after its latest stored row"):
        fs.ingest("steel_energy_features", [{**first[2], "usage_kwh": 46.0}])  # a correction: not a repeat
    later = _steel_rec("2018-01-01T01:00:00Z", 60.0)
    assert fs.ingest("steel_energy_features", [first[2], later]).rows == 1
    assert fs.offline.row_count("acme", "steel_energy_features") == 4
    row = fs.get_online_features("steel_energy_features", ["m1"], ["usage_kwh_lag_1"])[0]
    assert row["usage_kwh_lag_1"] == pytest.approx(45.1)


def test_cmapss_pushes_need_the_tenants_regimes(settings, db):
    fs = _store(settings, db, "acme")
    fs.apply(views.cmapss_features)
    rec = {"unit_id": "FD001-u001", TIMESTAMP: "2000-01-01T00:00:00Z", "cycle": 1,
           **dict.fromkeys(raw_ingest.DERIVATIONS["cmapss_features"].raw[1:], 1.0), "op_setting_2": 0.5}
    with pytest.raises(InvalidInput, match=r"no operating regimes fitted for FD001 in this tenant; run sfai ingest "
                                           r"cmapss on a training file"):
        fs.ingest("cmapss_features", [rec])


# -- a push reads its entities' look-back, not the view's files (performance audit 2026-12-07) ---------------------
# A push had scanned every file of the view for the look-back: 125 / 322 / 913 ms with 69 / 375 / 981 files of a week
# of single-row pushes, C-MAPSS 741 -> 1,434 ms as the view grew from 58 to 110 files. It reads, through the offline
# store's per-view cache (``OfflineStore.recent_rows``), the files written since the push before.

def _steel_scenario(settings, db, tmp_path, days: int, *names: str):  # noqa: ANN001, ANN202
    """``days`` days of the steel file ingested from the file into each tenant named, and the rows of the next day
    as the file pipeline stores them (with the 14 days before: the reference)."""
    src = need("steel_energy/steel_industry_2018_jan_oct.csv")
    lines = src.read_text().splitlines()
    full_csv, head_csv = tmp_path / "full.csv", tmp_path / "head.csv"
    full_csv.write_text("\n".join([lines[0], *lines[1:1 + 96 * (days + 1)]]) + "\n")
    head_csv.write_text("\n".join([lines[0], *lines[1:1 + 96 * days]]) + "\n")
    whole = _store(settings, db, "whole")
    run_pipeline("steel-energy", full_csv, store=whole)
    stores = []
    for name in names:
        fs = _store(settings, db, name)
        run_pipeline("steel-energy", head_csv, store=fs)
        stores.append(fs)
    return _stored(whole, "steel_energy_features"), stores


def _one_row_files(fs: FeatureStore, view_name: str, rows: pd.DataFrame) -> None:
    """Each row stored as its own file, as a single-row push stores it."""
    import pyarrow as pa

    from feature_store.store import Conformed

    view = fs.get_view(view_name)
    for i in range(len(rows)):
        table = pa.Table.from_pandas(rows.iloc[i:i + 1], preserve_index=False)
        fs.ingest(view_name, Conformed(view, fs.conform(view, table).table, False))


class _Reads:
    """The files a push reads rows from (footers aside)."""

    def __init__(self, monkeypatch) -> None:  # noqa: ANN001
        from feature_store import offline

        self.paths: list[str] = []
        real = offline._Recent._read

        def read(rec, files, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
            self.paths.extend(path for path, _ in files)
            return real(rec, files, *a, **k)

        monkeypatch.setattr(offline._Recent, "_read", read)


def test_a_push_reads_the_files_written_since_the_push_before_not_the_views_every_file(settings, db, tmp_path,
                                                                                        monkeypatch):
    """A week of single-row files: after one push, every file stored before it is overwritten in place with bytes
    that are no Parquet (a push that opened one would fail; the scan of every file did), and the next pushes still
    store exactly the file pipeline's rows, each reading one file: the one the push before it wrote."""
    from feature_store.offline import clear_recent

    expected, (pushed,) = _steel_scenario(settings, db, tmp_path, 8, "pushed")
    d = raw_ingest.DERIVATIONS["steel_energy_features"]
    tail = expected.iloc[96 * 8:].reset_index(drop=True)
    _one_row_files(pushed, "steel_energy_features", tail.iloc[:80])
    recs = _records(tail.iloc[80:], ["meter_id", TIMESTAMP, *d.raw])
    clear_recent()  # as after a restart
    reads = _Reads(monkeypatch)
    stored_before = set(pushed.offline.files("pushed", "steel_energy_features"))
    assert len(stored_before) > 80
    assert pushed.ingest("steel_energy_features", [recs[0]]).rows == 1
    assert 80 <= len(reads.paths) <= 80 + 8, "the week's files of the meter (and the pipeline's of those dates)"
    before = set(pushed.offline.files("pushed", "steel_energy_features"))
    for f in stored_before:  # same inode, unreadable
        with open(f, "r+b") as fh:
            fh.write(b"not a parquet file" * 4)
    for rec in recs[1:6]:
        reads.paths.clear()
        assert pushed.ingest("steel_energy_features", [rec]).rows == 1
        assert len(reads.paths) == 1, reads.paths
    new = [f for f in pushed.offline.files("pushed", "steel_energy_features") if f not in before]
    got = pd.concat([pd.read_parquet(f) for f in new]).drop(columns=["created"]).sort_values(TIMESTAMP)
    want = tail.iloc[81:86].reset_index(drop=True)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_exact=True)


def test_a_cmapss_push_after_a_restart_reads_its_engines_latest_files_only(settings, db, tmp_path, monkeypatch):
    """Cycles have no time window to cut the files by: a push after a restart reads, newest first, the files that can
    hold its engine's 20 latest cycles (their footers say which), not the 300 files of the view."""
    from feature_store.offline import clear_recent

    src = need("cmapss/train_FD002.txt")
    rows = [r.split() for r in src.read_text().splitlines() if r.strip()]
    units = {"1", "2", "3"}
    rows = [r for r in rows if r[0] in units]
    last = {u: max(int(r[1]) for r in rows if r[0] == u) for u in units}
    held = {u: set(range(last[u] - 99, last[u] + 1)) for u in units}
    full_txt, head_txt = tmp_path / "a" / "train_FD002.txt", tmp_path / "b" / "train_FD002.txt"
    full_txt.parent.mkdir(), head_txt.parent.mkdir()
    full_txt.write_text("\n".join(" ".join(r) for r in rows) + "\n")
    head_txt.write_text("\n".join(" ".join(r) for r in rows if int(r[1]) not in held[r[0]]) + "\n")
    whole, pushed = _store(settings, db, "whole"), _store(settings, db, "pushed")
    run_pipeline("cmapss", full_txt, store=whole)
    run_pipeline("cmapss", head_txt, store=pushed, fitted=raw_ingest.load_fit(settings.home, "whole", "cmapss"))
    expected = _stored(whole, "cmapss_features")
    is_held = [c in held[u.split("u")[-1].lstrip("0")] for u, c in zip(expected["unit_id"], expected["cycle"],
                                                                         strict=True)]
    new = expected[is_held].sort_values([TIMESTAMP, "unit_id"], kind="stable").reset_index(drop=True)
    _one_row_files(pushed, "cmapss_features", new.iloc[:-6])
    assert len(pushed.offline.files("pushed", "cmapss_features")) > 300
    d = raw_ingest.DERIVATIONS["cmapss_features"]
    clear_recent()
    reads = _Reads(monkeypatch)
    for i, rec in enumerate(_records(new.iloc[-6:], ["unit_id", TIMESTAMP, *d.raw])):
        reads.paths.clear()
        pushed.ingest("cmapss_features", [rec])
        if i < 3:  # each engine's first push since the restart: its latest files
            assert len(reads.paths) <= 22, len(reads.paths)
        else:  # then the file of the push before
            assert len(reads.paths) <= 3, reads.paths
    pd.testing.assert_frame_equal(_stored(pushed, "cmapss_features"), expected, check_exact=True)


def test_pushes_around_compaction_and_other_writers_store_the_files_rows(settings, db, tmp_path, monkeypatch):
    """Compaction between pushes, compaction by another process between a push's listing and its read (the files
    it listed are gone: it reads again), and rows of the same meter ingested from a file by another writer: the
    pushes store what the file pipeline stores, and a reading stored by the other writer is no new row."""
    from feature_store import offline

    expected, (pushed,) = _steel_scenario(settings, db, tmp_path, 8, "pushed")
    d = raw_ingest.DERIVATIONS["steel_energy_features"]
    recs = _records(expected.iloc[96 * 8:], ["meter_id", TIMESTAMP, *d.raw])
    for rec in recs[:20]:
        pushed.ingest("steel_energy_features", [rec])
    assert pushed.compact("steel_energy_features", min_files=2).partitions >= 1
    for rec in recs[20:30]:
        pushed.ingest("steel_energy_features", [rec])
    real, calls = offline._Recent._list, []

    def compacted_meanwhile(self, floor):  # noqa: ANN001, ANN202
        out = real(self, floor)
        if not calls:
            calls.append(FeatureStore(settings, db, "pushed").compact("steel_energy_features", min_files=2))
        return out

    monkeypatch.setattr(offline._Recent, "_list", compacted_meanwhile)
    pushed.ingest("steel_energy_features", [recs[30]])
    assert calls[0].files_before > 1
    monkeypatch.undo()
    # another writer stores intervals 31-49 from a file (the whole of the day, as a file ingest of it would)
    table = expected.iloc[96 * 8 + 31:96 * 8 + 50]
    pushed.ingest("steel_energy_features", pushed.conform(pushed.get_view("steel_energy_features"), table))
    assert pushed.ingest("steel_energy_features", [recs[40]]).rows == 0  # stored already, the same readings
    for rec in recs[50:]:
        pushed.ingest("steel_energy_features", [rec])
    pd.testing.assert_frame_equal(_stored(pushed, "steel_energy_features"), expected, check_exact=True)


def test_a_push_whose_write_failed_or_was_taken_back_is_not_lost_or_duplicated(settings, db, tmp_path, monkeypatch):
    """A push whose offline write fails stores nothing and can be sent again; a push's file taken back after later
    pushes read it (a failed write undone, a file removed by hand) is not taken for stored: the reading sent again
    is stored, not skipped as a repeat; one whose online write failed is stored once (its retry: rows 0)."""
    from feature_store import offline

    expected, (pushed,) = _steel_scenario(settings, db, tmp_path, 8, "pushed")
    d = raw_ingest.DERIVATIONS["steel_energy_features"]
    recs = _records(expected.iloc[96 * 8:], ["meter_id", TIMESTAMP, *d.raw])
    for rec in recs[:10]:
        pushed.ingest("steel_energy_features", [rec])
    real = offline._write_parquet

    def disk_full(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(offline, "_write_parquet", disk_full)
    with pytest.raises(OSError, match="No space left"):
        pushed.ingest("steel_energy_features", [recs[10]])
    monkeypatch.setattr(offline, "_write_parquet", real)
    before = set(pushed.offline.files("pushed", "steel_energy_features"))
    assert pushed.ingest("steel_energy_features", [recs[10]]).rows == 1
    (taken,) = set(pushed.offline.files("pushed", "steel_energy_features")) - before
    assert pushed.ingest("steel_energy_features", [recs[11]]).rows == 1
    import os

    os.unlink(taken)  # recs[10] is no longer stored; recs[11]'s lag 1 read it
    os.unlink(max(set(pushed.offline.files("pushed", "steel_energy_features")) - before))
    assert pushed.ingest("steel_energy_features", [recs[10]]).rows == 1
    assert pushed.ingest("steel_energy_features", [recs[11]]).rows == 1

    def online_down(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise ConnectionError("online store down")

    monkeypatch.setattr(type(pushed.online), "write", online_down)
    with pytest.raises(ConnectionError):
        pushed.ingest("steel_energy_features", [recs[12]])
    monkeypatch.undo()
    assert pushed.ingest("steel_energy_features", [recs[12]]).rows == 0  # the offline write had succeeded
    for rec in recs[13:]:
        pushed.ingest("steel_energy_features", [rec])
    pd.testing.assert_frame_equal(_stored(pushed, "steel_energy_features"), expected, check_exact=True)


def test_tenants_pushing_one_meter_id_at_once_read_their_own_history(settings, db, tmp_path):
    """Two tenants push the same meter's readings at the same time (one push at a time per tenant and view, the two
    tenants in parallel): each tenant's rows are its own file pipeline's, none taken for the other's."""
    import threading

    expected, stores = _steel_scenario(settings, db, tmp_path, 8, "east", "west")
    d = raw_ingest.DERIVATIONS["steel_energy_features"]
    recs = _records(expected.iloc[96 * 8:], ["meter_id", TIMESTAMP, *d.raw])
    errors: list[BaseException] = []

    def push(fs: FeatureStore) -> None:
        try:
            for rec in recs:  # ``ingest`` takes the tenant's lock of the view
                assert fs.ingest("steel_energy_features", [rec]).rows == 1
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=push, args=(fs,)) for fs in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for fs in stores:
        pd.testing.assert_frame_equal(_stored(fs, "steel_energy_features"), expected, check_exact=True)


def test_a_range_open_above_is_said_as_below_its_least_value(settings, db):
    """A column with a least value and no greatest had its range printed with a blank end: "0 is outside 1 to"."""
    fs = _store(settings, db, "acme")
    fs.apply(views.ai4i_features, views.steel_energy_features)
    rec = {"lot_id": "ai4i-L1", TIMESTAMP: "2020-01-01T00:00:00Z", "udi": 0, "type": "L", "air_temp_k": 298.9,
           "process_temp_k": 309.1, "rotational_speed_rpm": 1551, "torque_nm": 42.8, "tool_wear_min": 0}
    with pytest.raises(InvalidInput, match=r"^row 1, column 'udi': 0 is below 1 \(the ai4i pipeline sets such a "
                                           r"reading aside\)$"):
        fs.ingest("ai4i_features", [rec])
    with pytest.raises(InvalidInput, match=r"^row 1, column 'co2_t': -0.5 is below 0 tCO2 \(the steel-energy "):
        fs.ingest("steel_energy_features", [{**_steel_rec("2018-01-01T00:15:00Z", 1.0), "co2_t": -0.5}])
    d = raw_ingest.DERIVATIONS["secom_features"]
    frame = pd.DataFrame({"f001": [float("inf")]})
    with pytest.raises(InvalidInput, match=r"^row 1, column 'f001': inf is not a finite number \(the secom "):
        raw_ingest.check_readings(d, frame)
    frame = pd.DataFrame({"udi": [float("inf")]})
    with pytest.raises(InvalidInput, match=r"'udi': inf is not a finite number \(it must be at least 1\) \(the ai4i"):
        raw_ingest.check_readings(raw_ingest.DERIVATIONS["ai4i_features"], frame)


def _scanned_history(store, view, d, new):  # noqa: ANN001, ANN202
    """The history read this change replaced: one DuckDB scan of every file of the view (of the look-back's dates
    for steel), for comparison."""
    from pathlib import Path

    from feature_store.pit import _q, connect, stored_columns
    from pipelines.transforms import steel

    key = view.join_key
    files = store.offline.files(store.tenant, view.name)
    first = new.groupby(key, sort=False)[TIMESTAMP].min()
    if d.grid == "interval":
        since = first.min() - d.lookback * steel.INTERVAL
        files = [f for f in files if Path(f).parent.name >= f"date={since:%Y-%m-%d}"]
    if not files:
        return pd.DataFrame()
    cols = [_q(key), _q(TIMESTAMP), *stored_columns(view, list(d.history), files)]
    file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    where, params = f"list_contains(?, {_q(key)})", [[str(k) for k in first.index]]
    if d.grid == "interval":
        where += f" AND {_q(TIMESTAMP)} >= ?"
        params.append(since.to_pydatetime())
    sql = (f"SELECT {', '.join(cols)} FROM read_parquet({file_list}, union_by_name = true) WHERE {where} "
           f"QUALIFY row_number() OVER (PARTITION BY {_q(key)}, {_q(TIMESTAMP)} ORDER BY created DESC) = 1")
    if d.grid != "interval":
        sql = (f"SELECT * FROM ({sql}) QUALIFY row_number() OVER (PARTITION BY {_q(key)} ORDER BY {_q(TIMESTAMP)} "
               f"DESC) <= {int(d.lookback) + 1}")
    with connect("256MB", threads=1) as con:
        got = con.sql(sql, params=params).df()
    if got.empty:
        return got
    got[TIMESTAMP] = pd.to_datetime(got[TIMESTAMP], utc=True)
    return got.sort_values([key, TIMESTAMP], kind="stable").reset_index(drop=True)


def test_the_history_read_is_the_scan_it_replaces_values_and_types(settings, db):
    """Shot by shot into C22 (two machines, a shot without its number stored as null: a whole-number column with a
    missing value) and interval by interval into steel (two meters, a correction stored by another writer): after
    each push, the history the next one reads equals, value and dtype, what the scan of every file read."""
    fs = _store(settings, db, "acme")
    fs.apply(views.c22_cycle_features, views.steel_energy_features)
    from pipelines import demo

    c22 = raw_ingest.DERIVATIONS["c22_cycle_features"]
    shots = demo.generate(machines=2, days=1).tables["sensor_readings"].data
    shots = shots[["machine_id", TIMESTAMP, *c22.raw]].sort_values(TIMESTAMP, kind="stable")
    shots = pd.concat([shots[shots["machine_id"] == "imm-01"].iloc[:128],  # past the look-back (120 + 1)
                       shots[shots["machine_id"] == "imm-02"].iloc[:10]]).sort_values(TIMESTAMP, kind="stable")
    for i, rec in enumerate(shots.to_dict("records")):
        machine = rec["machine_id"]
        rec = {**rec, TIMESTAMP: rec[TIMESTAMP].isoformat(), "cycle_no": None if i == 7 else rec["cycle_no"]}
        nxt = pd.DataFrame({"machine_id": [machine], TIMESTAMP: [pd.Timestamp("2018-03-07T00:00:00Z")]})
        if i % 9 == 0 or i > 125:
            pd.testing.assert_frame_equal(raw_ingest._history(fs, fs.get_view("c22_cycle_features"), c22, nxt),
                                          _scanned_history(fs, fs.get_view("c22_cycle_features"), c22, nxt))
        fs.ingest("c22_cycle_features", [rec])
    both = pd.DataFrame({"machine_id": ["imm-01", "imm-02"], TIMESTAMP: [pd.Timestamp("2018-03-07T00:00:00Z")] * 2})
    hist = raw_ingest._history(fs, fs.get_view("c22_cycle_features"), c22, both)
    pd.testing.assert_frame_equal(hist, _scanned_history(fs, fs.get_view("c22_cycle_features"), c22, both))
    assert str(hist["cycle_no"].dtype) == "Int64" and hist["cycle_no"].isna().sum() == 1
    steel_d = raw_ingest.DERIVATIONS["steel_energy_features"]
    view = fs.get_view("steel_energy_features")
    start = pd.Timestamp("2018-01-01T00:15:00Z")
    for i in range(60):
        for meter in ("m1", "m2"):
            fs.ingest("steel_energy_features", [{**_steel_rec((start + i * pd.Timedelta(minutes=15)).isoformat(),
                                                              float(i % 17)), "meter_id": meter}])
        if i == 40:  # a correction of m2's interval 30, written by another writer: the latest written wins
            stored = _stored(fs, "steel_energy_features")
            row = stored[(stored["meter_id"] == "m2")].iloc[[30]].copy()
            row["usage_kwh"] = np.float32(99.5)
            fs.ingest("steel_energy_features", fs.conform(view, row))
        nxt = pd.DataFrame({"meter_id": ["m1", "m2"], TIMESTAMP: [start + (i + 1) * pd.Timedelta(minutes=15)] * 2})
        if i % 11 == 0 or i == 41:
            pd.testing.assert_frame_equal(raw_ingest._history(fs, view, steel_d, nxt),
                                          _scanned_history(fs, view, steel_d, nxt))
    assert 99.5 in raw_ingest._history(fs, view, steel_d, nxt)["usage_kwh"].tolist()
