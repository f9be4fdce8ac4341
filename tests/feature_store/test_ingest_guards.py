"""What every ingest path (REST, CSV, MQTT) refuses before it is stored, and what a failed write leaves behind:
readings from a clock far ahead, text longer than a cell holds, partitions published before a later one fails."""

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from feature_store.store import FeatureStore
from feature_store.validate import MAX_CLOCK_SKEW_S, MAX_STRING_CHARS, conform, read_table
from serving import tenancy
from serving.errors import InvalidInput
from tests.feature_store.conftest import REC, STATS, online_write_fails_once
from tests.serving.helpers import bearer, make_tenant

PEPPER = "test-secret-0123456789"


def _at(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


# ------------------------------------------------------------------------------------------------ clock far ahead
def test_a_reading_stamped_past_the_clock_skew_is_refused_naming_row_and_time():
    """A plant clock a year ahead (2027-12-06 while it was 2026-12-06) made that reading the machine's newest: every
    correct one after it read ``online_updated: 0`` and predictions by entity id stayed on the wrong value."""
    assert MAX_CLOCK_SKEW_S == 3600
    rows = [REC, {**REC, "machine_id": "m2", "event_timestamp": _at(timedelta(days=365))}]
    with pytest.raises(InvalidInput) as e:
        conform(STATS, read_table(rows))
    msg = e.value.message
    assert msg.startswith("row 2, column 'event_timestamp': ") and "365 days ahead of this server's clock" in msg
    assert "without its UTC offset? send the offset, e.g. " in msg  # a naive local time is the usual cause
    assert "readings more than 1 hour ahead are refused" in msg and "\n" not in msg
    ok = conform(STATS, read_table([{**REC, "event_timestamp": _at(timedelta(minutes=50))}]))  # drift: accepted
    assert ok.num_rows == 1


@pytest.mark.parametrize("stamp", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_a_time_outside_the_years_1_to_9999_in_utc_is_refused_naming_its_row(stamp):
    """A time that parses but lies in the year 10000 (or 0) once in UTC overflowed when read back: a 500 on ingest
    over REST and CSV, a traceback-like line from the CLI (security audit). Refused, naming the row, even where the
    clock-skew check is off; the last and first instants that can be stored still are."""
    rows = [REC, {**REC, "machine_id": "m2", "event_timestamp": stamp}]
    for skew in (None, float("inf")):
        with pytest.raises(InvalidInput) as e:
            conform(STATS, read_table(rows), max_skew_s=skew)
        assert e.value.message == "row 2, column 'event_timestamp': the time lies outside the years 1 to 9999 in UTC"
    edge = [{**REC, "event_timestamp": "9999-12-31T23:59:59Z"}, {**REC, "event_timestamp": "0001-01-01T00:00:00Z"}]
    assert conform(STATS, read_table(edge), max_skew_s=float("inf")).num_rows == 2


def test_24_00_is_read_as_the_next_days_midnight_as_the_energy_readings_read_it(tmp_path):
    """ISO 8601 writes the end of a day as 24:00, and the energy forecast reads it so; ingest refused it (MES audit:
    the same meter rows were good for one and not the other). JSON, CSV and the per-row check read it alike."""
    stamps = ["2026-03-01T24:00:00+09:00", "2026-03-01 24:00Z", "2026-03-01T24:00:00.000"]
    rows = [{**REC, "machine_id": f"m{i}", "event_timestamp": t} for i, t in enumerate(stamps)]
    want = [datetime(2026, 3, 1, 15, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)]
    assert conform(STATS, read_table(rows), max_skew_s=float("inf"))["event_timestamp"].to_pylist() == want
    csv = tmp_path / "rows.csv"
    csv.write_text("machine_id,event_timestamp,temp_mean,vib_rms,alarm,mode\n"
                   + "".join(f"m{i},{t},70.5,1.2,false,run\n" for i, t in enumerate(stamps)))
    got = conform(STATS, read_table(csv), max_skew_s=float("inf"))["event_timestamp"].to_pylist()
    assert got == want
    with pytest.raises(InvalidInput) as e:  # 24:30 is no time; the row is still named
        conform(STATS, read_table([REC, {**REC, "event_timestamp": "2026-03-01T24:30:00Z"}]), max_skew_s=None)
    assert e.value.message.startswith("row 2, column 'event_timestamp'"), e.value.message


def test_the_clock_skew_is_a_setting(monkeypatch):
    later = [{**REC, "event_timestamp": _at(timedelta(hours=3))}]
    monkeypatch.setenv("SFAI_MAX_CLOCK_SKEW_S", "14400")
    assert conform(STATS, read_table(later)).num_rows == 1
    monkeypatch.setenv("SFAI_MAX_CLOCK_SKEW_S", "60")
    with pytest.raises(InvalidInput, match="more than 60 seconds ahead"):
        conform(STATS, read_table(later))
    assert conform(STATS, read_table(later), max_skew_s=float("inf")).num_rows == 1
    monkeypatch.setenv("SFAI_MAX_CLOCK_SKEW_S", "inf")  # synthetic clocks that run ahead on purpose
    assert conform(STATS, read_table([{**REC, "event_timestamp": "2114-01-01T00:00:00Z"}])).num_rows == 1


def test_a_bad_clock_skew_setting_is_refused_when_the_settings_load(monkeypatch, settings, db):
    """A bad value stops ``sfai`` at start (the settings), instead of failing every ingest with a 500; the store
    takes the setting's value."""
    from serving.settings import Settings

    for bad in ("an hour", "-5", "nan"):
        monkeypatch.setenv("SFAI_MAX_CLOCK_SKEW_S", bad)
        with pytest.raises(ValueError, match="max_clock_skew_s"):
            Settings(_env_file=None)
        with pytest.raises(ValueError, match="SFAI_MAX_CLOCK_SKEW_S must be a number of seconds"):
            conform(STATS, read_table([REC]))  # the Python API's default, outside a store
    monkeypatch.setenv("SFAI_MAX_CLOCK_SKEW_S", "inf")
    assert Settings(_env_file=None).max_clock_skew_s == float("inf")
    tenancy.create_tenant(db, "acme", "C29")
    assert FeatureStore(settings.model_copy(update={"max_clock_skew_s": 60.0}), db, "acme").max_clock_skew_s == 60


def test_a_refused_reading_from_the_future_leaves_the_online_values_moving(store):
    store.ingest("machine_stats", [{**REC, "event_timestamp": _at(-timedelta(hours=2)), "temp_mean": 1.0}])
    with pytest.raises(InvalidInput, match="ahead of this server's clock"):
        store.ingest("machine_stats", [{**REC, "event_timestamp": "2027-12-06T00:00:00Z", "temp_mean": 99.0}])
    rep = store.ingest("machine_stats", [{**REC, "event_timestamp": _at(-timedelta(hours=1)), "temp_mean": 2.0}])
    assert (rep.online_updated, rep.online_skipped_older) == (1, 0)
    assert store.get_online_features("machine_stats", ["m1"], ["temp_mean"])[0]["temp_mean"] == 2.0


def test_the_report_counts_rows_not_taken_online_because_a_newer_one_is_there(store):
    store.ingest("machine_stats", [{**REC, "event_timestamp": "2026-03-02T00:00:00Z"}])
    rep = store.ingest("machine_stats", [{**REC, "event_timestamp": "2026-03-01T00:00:00Z"},
                                         {**REC, "machine_id": "m2", "event_timestamp": "2026-03-01T00:00:00Z"}])
    assert (rep.rows, rep.online_updated, rep.online_skipped_older) == (2, 1, 1)


def test_a_csv_with_a_reading_from_the_future_is_refused(store, tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("machine_id,event_timestamp,temp_mean,vib_rms,alarm,mode\n"
                    f"m1,2026-03-01T00:00:00Z,1.5,0.5,true,idle\nm2,{_at(timedelta(days=2))},1.5,0.5,true,idle\n")
    with pytest.raises(InvalidInput, match=r"^row 2, column 'event_timestamp': .* 2 days ahead"):
        store.ingest("machine_stats", path)
    assert store.offline.files("acme", "machine_stats") == []


@pytest.fixture
def acme(app, db):
    keys = make_tenant(db, PEPPER, "acme")
    app.state.platform.feature_store("acme").apply(STATS)
    return keys


def test_rest_ingest_refuses_a_future_reading_and_overlong_text_with_a_422(client, acme):
    for record, words in (({**REC, "event_timestamp": "2027-12-06T00:00:00Z"}, "ahead of this server's clock"),
                          ({**REC, "mode": "x" * (MAX_STRING_CHARS + 1)}, "text of 10,001 characters")):
        r = client.post("/v1/ingest/machine_stats", json={"records": [record]}, headers=bearer(acme.mes))
        assert r.status_code == 422 and words in r.json()["error"]["message"], r.text


def test_a_storage_that_refuses_writes_is_a_503_and_readyz_says_so(client, acme, monkeypatch):
    """A read-only or full SFAI_HOME (a remount, a full disk) answered ingest with a 500 and a traceback in the log,
    and /readyz stayed ready (operator audit). It is a 503 ``storage_unavailable`` with Retry-After, without the
    server's paths, and /readyz reports the storage for a minute (and probes SFAI_HOME with a write itself)."""
    import errno
    import pathlib

    from serving import handlers

    monkeypatch.setattr(handlers, "storage_failed", [-float("inf")])
    assert client.get("/readyz").json()["storage"] is True
    real_mkdir = pathlib.Path.mkdir

    def refused(self, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        if self.name.startswith(".staging-"):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(pathlib.Path, "mkdir", refused)
    r = client.post("/v1/ingest/machine_stats", json={"records": [REC]}, headers=bearer(acme.mes))
    assert r.status_code == 503 and r.headers["retry-after"] == "30", r.text
    error = r.json()["error"]
    assert error["code"] == "storage_unavailable" and "(Read-only file system)" in error["message"]
    assert ".staging-" not in error["message"]
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["error"]["storage"] is False, ready.text
    monkeypatch.setattr(handlers, "storage_failed", [-float("inf")])  # a minute later, the disk writable again
    assert client.get("/readyz").status_code == 200
    from serving.routers.health import home_writable

    monkeypatch.undo()
    home = pathlib.Path(client.app.state.platform.settings.home)
    assert home_writable(home) and not list(home.glob(".readyz-*"))  # the probe leaves nothing
    assert not home_writable(home / "no-such-dir")


def test_rest_ingest_says_how_many_rows_were_older_than_the_online_ones(client, acme):
    """An MES that replays a late batch learns that the online values stayed (the rows are kept offline)."""
    h = bearer(acme.mes)
    client.post("/v1/ingest/machine_stats", json={"records": [{**REC, "event_timestamp": "2026-03-02T00:00:00Z"}]},
                headers=h)
    r = client.post("/v1/ingest/machine_stats", headers=h, json={"records": [
        {**REC, "event_timestamp": "2026-03-01T00:00:00Z"},
        {**REC, "machine_id": "m2", "event_timestamp": "2026-03-01T00:00:00Z"}]})
    assert r.status_code == 200, r.text
    assert (r.json()["rows"], r.json()["online_updated"], r.json()["online_skipped_older"]) == (2, 1, 1)


def test_rest_ingest_with_an_idempotency_key_stores_a_retried_batch_once(client, acme, app):
    """MES integrator's audit: a batch retried after another had landed in its day's data was stored again, and a
    retry that came after a correction of its readings undid the correction (the late copy read as the latest
    word). With an ``Idempotency-Key`` a retry gets the first answer and stores nothing; the same key with
    another batch is a 409; a batch that failed frees its key. A body of no type SFAI reads is a 415."""
    h = bearer(acme.mes)
    url = "/v1/ingest/machine_stats"
    first = {"records": [{**REC, "temp_mean": 1.0, "mode": "orig"}]}
    correction = {"records": [{**REC, "temp_mean": 2.0, "mode": "fixed"}]}
    a = client.post(url, json=first, headers={**h, "Idempotency-Key": "batch-a"})
    assert a.status_code == 200 and "idempotent-replayed" not in a.headers, a.text
    b = client.post(url, json=correction, headers={**h, "Idempotency-Key": "batch-b"})
    assert b.status_code == 200, b.text
    files = app.state.platform.feature_store("acme").offline.files("acme", "machine_stats")
    late = client.post(url, json=first, headers={**h, "Idempotency-Key": "batch-a"})  # the timed-out call, again
    assert late.status_code == 200 and late.headers["idempotent-replayed"] == "true" and late.json() == a.json()
    assert app.state.platform.feature_store("acme").offline.files("acme", "machine_stats") == files  # nothing new
    online = client.post("/v1/features/online", json={"view": "machine_stats", "entity_ids": ["m1"]}, headers=h)
    row = online.json()["rows"][0]
    assert (row["temp_mean"], row["mode"]) == (2.0, "fixed"), online.text  # the correction stands
    r = client.post(url, json=correction, headers={**h, "Idempotency-Key": "batch-a"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "idempotency_key_reused", r.text
    bad = {"records": [{**REC, "event_timestamp": "2027-12-06T00:00:00Z"}]}
    assert client.post(url, json=bad, headers={**h, "Idempotency-Key": "batch-c"}).status_code == 422
    ok = client.post(url, json={"records": [{**REC, "machine_id": "m3"}]}, headers={**h, "Idempotency-Key": "batch-c"})
    assert ok.status_code == 200 and "idempotent-replayed" not in ok.headers, ok.text  # the failed call freed it
    for key in ("", "a b", "x" * 101):
        r = client.post(url, json=first, headers={**h, "Idempotency-Key": key})
        assert r.status_code == 422 and "Idempotency-Key must be" in r.text, (key, r.text)
    r = client.post(url, content=b"machine_id,temp_mean\nm1,1\n", headers={**h, "content-type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type", r.text


def test_a_batch_stored_offline_whose_online_write_failed_is_finished_by_its_retry(client, acme, app, monkeypatch):
    """Reviewer: the online store failing after the offline write freed the key, and the retry stored the batch
    again and put the readings a later correction had fixed back online. The key now keeps what was stored: the
    retry writes the online rows only, from the offline store, where the correction of the same instant wins."""
    store = app.state.platform.feature_store("acme")
    online_write_fails_once(monkeypatch, store)
    h, url = bearer(acme.mes), "/v1/ingest/machine_stats"
    first = {"records": [{**REC, "temp_mean": 1.0, "mode": "orig"}, {**REC, "machine_id": "m2"}]}
    r = client.post(url, json=first, headers={**h, "Idempotency-Key": "k1"})
    assert r.status_code == 503, r.text
    files = store.offline.files("acme", "machine_stats")
    assert len(files) == 1  # stored offline
    fix = {"records": [{**REC, "temp_mean": 2.0, "mode": "fixed"}]}
    assert client.post(url, json=fix, headers={**h, "Idempotency-Key": "k2"}).status_code == 200
    again = client.post(url, json=first, headers={**h, "Idempotency-Key": "k1"})
    assert again.status_code == 200 and "idempotent-replayed" not in again.headers, again.text
    assert (again.json()["rows"], again.json()["files"]) == (2, 1)
    assert len(store.offline.files("acme", "machine_stats")) == 2  # the first batch and the correction, no copy
    rows = client.post("/v1/features/online", json={"view": "machine_stats", "entity_ids": ["m1", "m2"]},
                       headers=h).json()["rows"]
    assert (rows[0]["temp_mean"], rows[0]["mode"]) == (2.0, "fixed")  # the correction stands
    assert rows[1]["event_timestamp"] is not None  # m2, which only the first batch holds, is online now
    replay = client.post(url, json=first, headers={**h, "Idempotency-Key": "k1"})
    assert replay.headers["idempotent-replayed"] == "true" and replay.json() == again.json()


# ------------------------------------------------------------------------------------------------ long text
def test_text_is_stored_up_to_the_limit_in_every_text_column():
    """One MQTT message stored a 60 MB string; the same held for an id and for every ingest path."""
    assert MAX_STRING_CHARS == 10_000
    assert conform(STATS, read_table([{**REC, "mode": "한" * MAX_STRING_CHARS}])).num_rows == 1  # characters
    with pytest.raises(InvalidInput, match=r"^row 2, column 'mode': text of 10,001 characters; at most 10,000 are"):
        conform(STATS, read_table([REC, {**REC, "machine_id": "m2", "mode": "x" * 10_001}]))
    with pytest.raises(InvalidInput, match=r"^row 1, column 'machine_id': text of 20,000 characters"):
        conform(STATS, read_table([{**REC, "machine_id": "m" * 20_000}]))


# ------------------------------------------------------------------------------------------------ failed writes
def _two_days() -> pa.Table:
    return conform(STATS, read_table([REC, {**REC, "event_timestamp": "2026-03-02T00:00:00Z"}]))


def test_a_write_that_fails_for_one_partition_publishes_none(store):
    """With a plain file where a later partition's folder should be, the earlier partition's file was already in
    place when the write failed: a batch reported as failed was half stored."""
    base = store.offline.view_dir("acme", "machine_stats")
    base.mkdir(parents=True)
    (base / "date=2026-03-02").write_text("not a folder")
    with pytest.raises(OSError):
        store.offline.write("acme", STATS, _two_days())
    assert store.offline.files("acme", "machine_stats") == []
    assert sorted(p.name for p in base.iterdir()) == ["date=2026-03-01", "date=2026-03-02"]  # an empty folder at most


def test_a_rename_that_fails_takes_back_the_files_published_before_it(store, monkeypatch):
    import os

    from feature_store import offline

    calls, replace = [], os.replace

    def failing_replace(src, dst):  # noqa: ANN001, ANN202
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        return replace(src, dst)

    monkeypatch.setattr(offline.os, "replace", failing_replace)
    with pytest.raises(OSError, match="Input/output error"):
        store.offline.write("acme", STATS, _two_days())
    assert len(calls) == 2 and store.offline.files("acme", "machine_stats") == []
    monkeypatch.undo()
    assert store.offline.write("acme", STATS, _two_days()).files == 2  # and the same batch goes in afterwards
