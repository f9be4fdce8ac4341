"""SQLite online store: one table, primary key (tenant, view, entity), WAL, a connection per thread.

Single-key reads (the MES's call for one machine) keep the decoded rows they read in a per-thread cache:
- a write or a dropped view through any store on the same file in this process (any thread, any store object)
  clears it at once, through a per-file generation counter in memory: a process reads its own writes;
- a commit by another process (another serving worker, ``sfai ingest mqtt``, a CLI ingest) shows through SQLite's
  ``data_version``, which the cache checks at most every ``recheck_s`` (``SFAI_ONLINE_RECHECK_MS``, default
  20 ms). So a cached row is at most that much staler than the file; ``recheck_s=0`` checks on every read.
The pragma is a read transaction on the file (~10-15 us on a busy server): checked on every read, it was the
largest single cost of an entity-id prediction after the model itself.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from feature_store.online.base import OnlineRows, OnlineStore, decode, encode
from serving.settings import private_file

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
WRITE_CHUNK = 5_000  # rows per write transaction (~30 ms of the file's one write lock)
CACHE_ROWS = 4096  # decoded rows kept per thread (the hot machines of an MES); cleared when full
_MISS = object()
RECHECK_S = 0.02  # how often a reading thread asks SQLite whether another process committed

# per database file: bumped by every write or view deletion in this process, so every thread's cache sees them
_GENERATIONS: dict[str, int] = {}
_GENERATION_LOCK = threading.Lock()


class SqliteOnlineStore(OnlineStore):
    def __init__(self, path: Path, *, recheck_s: float = RECHECK_S) -> None:
        self.path = Path(path)
        private_file(self.path)
        self.recheck_s = float(recheck_s)
        self._file = str(self.path.resolve())
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
            self._local.generation = None
            self._local.next_check = 0.0
        return c

    def _changed(self) -> None:
        """A write or deletion in this process: every thread's cache of this file is stale."""
        with _GENERATION_LOCK:
            _GENERATIONS[self._file] = _GENERATIONS.get(self._file, 0) + 1

    def write(self, tenant: str, view: str, rows: OnlineRows) -> int:
        """Upsert ``rows`` in transactions of ``WRITE_CHUNK`` rows, each encoded before its transaction begins.

        The file has one writer at a time for every tenant and process (API ingests, ``sfai ingest mqtt``,
        materialisation): one upload of 2 million entities held it 12 s in a single transaction, so other tenants'
        ingests waited behind it and, past the 30 s busy timeout, failed. Between chunks the lock is free. Each row is
        its entity's latest value on its own, so a write cut short leaves whole rows (as Redis does, 1,000 a script)."""
        c = self._conn()
        items = iter(rows.items())
        applied = 0
        while chunk := [(tenant, view, k, ts, encode(ts, v)) for k, (ts, v) in itertools.islice(items, WRITE_CHUNK)]:
            c.execute("BEGIN IMMEDIATE")
            try:
                before = c.total_changes
                c.executemany(_UPSERT, chunk)
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            finally:
                self._changed()  # every thread's cache; data_version would not count this connection's own commit
            applied += c.total_changes - before
        return applied

    def read(self, tenant: str, view: str, keys: Sequence[str]) -> list[tuple[int, dict] | None]:
        c = self._conn()
        if len(keys) == 1:
            local = self._local
            generation = _GENERATIONS.get(self._file, 0)
            now = time.monotonic()
            if generation != local.generation or now >= local.next_check:
                version = c.execute("PRAGMA data_version").fetchone()[0]
                local.next_check = now + self.recheck_s
                if version != local.version or generation != local.generation:  # nothing cached can be trusted
                    local.cache.clear()
                    local.version, local.generation = version, generation
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
        self._changed()

    def close(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None
