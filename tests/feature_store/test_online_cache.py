"""The SQLite online store's single-key read cache is never staler than the file: a commit by another connection
(another thread, process or store object), by this thread's own connection, or a dropped view shows at once."""

import subprocess
import sys
import threading
from pathlib import Path

from feature_store.online.sqlite import CACHE_ROWS, SqliteOnlineStore


def _row(ts: int, temp: float) -> dict:
    return {"m1": (ts, {"temp_mean": temp})}


def test_reads_follow_every_writer(tmp_path):
    path = tmp_path / "online.db"
    reader, other = SqliteOnlineStore(path), SqliteOnlineStore(path)
    try:
        assert reader.read("acme", "stats", ["m1"]) == [None]
        other.write("acme", "stats", _row(1, 70.0))  # another connection
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
        code = (
            "import sys; from feature_store.online.sqlite import SqliteOnlineStore as S; "
            f"S({str(path)!r}).write('acme', 'stats', {{'m1': (4, {{'temp_mean': 73.0}})}})"
        )
        root = Path(__file__).resolve().parents[2]
        subprocess.run([sys.executable, "-c", code], check=True, cwd=root)  # another process
        assert reader.read("acme", "stats", ["m1"]) == [(4, {"temp_mean": 73.0})]
        assert reader.read("other", "stats", ["m1"]) == [None]  # tenants stay apart in the cache too
        reader.delete_view("acme", "stats")
        assert reader.read("acme", "stats", ["m1"]) == [None]
    finally:
        reader.close()
        other.close()


def test_cache_stays_bounded(tmp_path):
    store = SqliteOnlineStore(tmp_path / "online.db")
    try:
        store.write("acme", "stats", {f"m{i}": (1, {"v": i}) for i in range(CACHE_ROWS + 10)})
        for i in range(CACHE_ROWS + 10):
            assert store.read("acme", "stats", [f"m{i}"]) == [(1, {"v": i})]
        assert len(store._local.cache) <= CACHE_ROWS
    finally:
        store.close()
