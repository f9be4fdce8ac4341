"""SQLite online store: one table, primary key (tenant, view, entity), WAL, a connection per thread.

Single-key reads (the MES's call for one machine) keep the decoded rows they read in a per-thread cache that is
valid while SQLite's ``data_version`` stays the same: the pragma changes on this connection as soon as any other
connection (another thread, process or host) commits to the file, so a cached row is never staler than the file.
Writes through this thread's own connection, which ``data_version`` does not count, clear the cache themselves.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from feature_store.online.base import OnlineRows, OnlineStore, decode, encode

_SCHEMA = """
CREATE TABLE IF NOT EXISTS online_features (
    tenant TEXT NOT NULL, view TEXT NOT NULL, entity TEXT NOT NULL, ts INTEGER NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (tenant, view, entity)
) WITHOUT ROWID
"""
_UPSERT = """
INSERT INTO online_features (tenant, view, entity, ts, payload) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (tenant, view, entity) DO UPDATE SET ts = excluded.ts, payload = excluded.payload
WHERE excluded.ts >= online_features.ts
"""


_SELECT_ONE = "SELECT payload FROM online_features WHERE tenant = ? AND view = ? AND entity = ?"
CACHE_ROWS = 4096  # decoded rows kept per thread (the hot machines of an MES); cleared when full
_MISS = object()


class SqliteOnlineStore(OnlineStore):
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conn().executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = c
            self._local.cache = {}
            self._local.version = None
        return c

    def write(self, tenant: str, view: str, rows: OnlineRows) -> int:
        c = self._conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            before = c.total_changes
            c.executemany(_UPSERT, ((tenant, view, k, ts, encode(ts, v)) for k, (ts, v) in rows.items()))
            c.execute("COMMIT")
            self._local.cache.clear()  # data_version does not count this connection's own commits
            return c.total_changes - before
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def read(self, tenant: str, view: str, keys: Sequence[str]) -> list[tuple[int, dict] | None]:
        c = self._conn()
        if len(keys) == 1:
            local = self._local
            version = c.execute("PRAGMA data_version").fetchone()[0]
            if version != local.version:  # someone committed since: nothing cached can be trusted
                local.cache.clear()
                local.version = version
            key = (tenant, view, keys[0])
            hit = local.cache.get(key, _MISS)
            if hit is _MISS:
                row = c.execute(_SELECT_ONE, key).fetchone()
                hit = decode(row[0]) if row else None
                if len(local.cache) >= CACHE_ROWS:
                    local.cache.clear()
                local.cache[key] = hit
            return [hit]
        found: dict[str, tuple[int, dict]] = {}
        for i in range(0, len(keys), 500):
            chunk = list(keys[i : i + 500])
            q = (
                "SELECT entity, payload FROM online_features WHERE tenant = ? AND view = ? AND entity IN "
                f"({','.join('?' * len(chunk))})"
            )
            for entity, payload in c.execute(q, (tenant, view, *chunk)):
                found[entity] = decode(payload)
        return [found.get(k) for k in keys]

    def delete_view(self, tenant: str, view: str) -> None:
        self._conn().execute("DELETE FROM online_features WHERE tenant = ? AND view = ?", (tenant, view))
        self._local.cache.clear()

    def close(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None
