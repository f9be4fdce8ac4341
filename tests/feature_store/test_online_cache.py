"""The SQLite online store's single-key read cache: a write in this process (another thread, another store object
on the same file, this thread's own connection) or a dropped view shows at once; a commit by another process
shows within ``recheck_s``."""

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from feature_store.online.sqlite import CACHE_ROWS, SqliteOnlineStore

ROOT = Path(__file__).resolve().parents[2]


def _row(ts: int, temp: float) -> dict:
    return {"m1": (ts, {"temp_mean": temp})}


def _write_in_another_process(path: Path, ts: int, temp: float) -> None:
    code = (
        "from feature_store.online.sqlite import SqliteOnlineStore as S; "
        f"S({str(path)!r}).write('acme', 'stats', {{'m1': ({ts}, {{'temp_mean': {temp}}})}})"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_reads_follow_every_writer_in_the_process_at_once(tmp_path):
    path = tmp_path / "online.db"
    # an hour between checks of the file: what shows here shows through the process's own bookkeeping
    reader, other = SqliteOnlineStore(path, recheck_s=3600), SqliteOnlineStore(path)
    try:
        assert reader.read("acme", "stats", ["m1"]) == [None]
        other.write("acme", "stats", _row(1, 70.0))  # another store object on the file
        assert reader.read("acme", "stats", ["m1"]) == [(1, {"temp_mean": 70.0})]
        assert reader.read("acme", "stats", ["m1"]) == [(1, {"temp_mean": 70.0})]  # cached
        reader.write("acme", "stats", _row(2, 71.0))  # this thread's own connection
        assert reader.read("acme", "stats", ["m1"]) == [(2, {"temp_mean": 71.0})]

        def write_in_thread() -> None:  # the same store object, another thread's connection
            reader.write("acme", "stats", _row(3, 72.0))

        t = threading.Thread(target=write_in_thread)
        t.start()
        t.join()
        assert reader.read("acme", "stats", ["m1"]) == [(3, {"temp_mean": 72.0})]
        assert reader.read("other", "stats", ["m1"]) == [None]  # tenants stay apart in the cache too
        other.delete_view("acme", "stats")
        assert reader.read("acme", "stats", ["m1"]) == [None]
    finally:
        reader.close()
        other.close()


def test_another_processs_commit_shows_within_the_recheck_interval(tmp_path):
    path = tmp_path / "online.db"
    exact, bounded, lazy = (SqliteOnlineStore(path, recheck_s=r) for r in (0.0, 0.3, 3600))
    try:
        SqliteOnlineStore(path).write("acme", "stats", _row(1, 70.0))
        for store in (exact, bounded, lazy):
            assert store.read("acme", "stats", ["m1"]) == [(1, {"temp_mean": 70.0})]  # now cached
        _write_in_another_process(path, 2, 71.0)
        assert exact.read("acme", "stats", ["m1"]) == [(2, {"temp_mean": 71.0})]  # checks on every read
        assert lazy.read("acme", "stats", ["m1"]) == [(1, {"temp_mean": 70.0})]  # within its hour: the cached row
        time.sleep(0.35)
        assert bounded.read("acme", "stats", ["m1"]) == [(2, {"temp_mean": 71.0})]
    finally:
        for store in (exact, bounded, lazy):
            store.close()


def test_cache_stays_bounded(tmp_path):
    store = SqliteOnlineStore(tmp_path / "online.db")
    try:
        store.write("acme", "stats", {f"m{i}": (1, {"v": i}) for i in range(CACHE_ROWS + 10)})
        for i in range(CACHE_ROWS + 10):
            assert store.read("acme", "stats", [f"m{i}"]) == [(1, {"v": i})]
        assert len(store._local.cache) <= CACHE_ROWS
    finally:
        store.close()


def test_a_large_write_leaves_the_file_to_other_writers_between_its_chunks(tmp_path, monkeypatch):
    """The online file has one writer at a time for every tenant: one upload of 2 million entities held it 12 s in a
    single transaction, and other tenants' ingests queued behind it (past the 30 s busy timeout: a 503). Rows are
    now written a few thousand to a transaction; while the next ones are prepared, another writer gets in."""
    from feature_store.online import sqlite as online_sqlite

    path = tmp_path / "online.db"
    store = SqliteOnlineStore(path)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)  # no waiting: locked is an error at once
    encode, calls, got_in = online_sqlite.encode, [0], []

    def encode_and_try_another_writer(ts, values):  # noqa: ANN001, ANN202
        calls[0] += 1
        if calls[0] == 8_000:  # well into the write
            other.execute("BEGIN IMMEDIATE")
            other.execute("INSERT INTO online_features VALUES ('other', 'stats', 'x', 1, '[1,{}]')")
            other.execute("COMMIT")
            got_in.append(True)
        return encode(ts, values)

    monkeypatch.setattr(online_sqlite, "encode", encode_and_try_another_writer)
    rows = {f"m{i}": (i, {"temp_mean": float(i)}) for i in range(12_000)}
    assert store.write("acme", "stats", rows) == 12_000
    assert got_in == [True]
    assert store.read("acme", "stats", ["m0", "m11999"]) == [(0, {"temp_mean": 0.0}), (11_999, {"temp_mean": 11999.0})]
    assert store.read("other", "stats", ["x"]) == [(1, {})]
    other.close()
    store.close()
