"""The usage log: every authenticated call, append-only, hash-chained, kept at least three years.

Writes go through :class:`UsageWriter`, a group-commit writer: request handlers hand their record to one
writer thread and wait; the thread commits everything queued so far in one transaction and then wakes
them all. The API sends a response only after its record is committed, so a call answered 2xx is in the
log even if the process is killed right after.

Each row's ``hash`` is HMAC-SHA256, keyed by a key derived from ``SFAI_SECRET_KEY``, over the previous row's
hash and the row's own fields; ``verify`` walks the chain and names the first row that was edited, inserted or
deleted. Without the key, someone who can write the database cannot rewrite the chain so that it verifies.
Rows written before SFAI keyed the chain (``usage_chain.keyed_from``) keep their plain SHA-256.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import hashlib
import hmac
import io
import json
import logging
import queue
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from serving.db import Database
from serving.db.tables import ApiKey, Tenant, UsageChain, UsageRecord, UsageTenantHead
from serving.errors import InvalidInput, Unavailable
from serving.settings import MIN_USAGE_RETENTION_DAYS
from serving.tenancy import MODULES, as_utc, utcnow

log = logging.getLogger("sfai.usage")

GENESIS = "0" * 64
CHAIN_ID = 1
FAILING_WINDOW_S = 30.0  # /readyz: not ready while the last usage write failed within this
EXPORT_COLUMNS = (
    "seq",
    "ts",
    "tenant",
    "key_id",
    "module",
    "method",
    "endpoint",
    "status",
    "latency_ms",
    "model_version",
    "request_id",
    "hash",
    "key_name",  # from here on: added later, after the columns before them, which keep their places for readers
    "calls",  # by position
    "quota_counted",
)


@dataclass(slots=True)
class UsageEntry:
    ts: datetime
    tenant_id: int
    key_id: str
    module: str | None
    method: str
    endpoint: str
    status: int
    latency_us: int
    request_id: str
    model_version: str | None = None
    calls: int = 1  # how many calls the record stands for: more for refusals collapsed into one (Refusals)
    counted: bool = True  # whether the quota counts it: not a read of the module's status (serving.deps)


def _ts_text(ts: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (what the chain hashes and the export shows); isoformat, not the slower
    strftime, on every usage commit."""
    return as_utc(ts).isoformat(timespec="microseconds")[:26] + "Z"


class ChainKey:
    """The usage chain's key: HMAC-SHA256 with a key derived from the server secret (``SFAI_SECRET_KEY``), so
    that one secret does not serve two purposes (it also peppers the API key hashes)."""

    __slots__ = ("_mac",)

    def __init__(self, secret: str) -> None:
        key = hmac.new(secret.encode(), b"sfai-usage-chain-v1", hashlib.sha256).digest()
        self._mac = hmac.new(key, digestmod=hashlib.sha256)  # copied per record: the key is not hashed again

    def hex(self, payload: bytes) -> str:
        m = self._mac.copy()
        m.update(payload)
        return m.hexdigest()

    def mark(self, keyed_from: int) -> str:
        """What ``usage_chain.keyed_mark`` holds: where keyed hashes start, signed, so that nobody without the key
        can move the start past rows and rewrite them as plain SHA-256."""
        return self.hex(f"keyed-from\x1f{keyed_from}".encode())

    def signed(self, keyed_from: int, mark: str) -> bool:
        """Whether ``mark`` is this key's signature of the keyed start ``keyed_from``."""
        return hmac.compare_digest(mark, self.mark(keyed_from))

    def anchor_mark(self, seq: int, chain_hash_hex: str, ts: datetime) -> str:
        """What ``usage_chain.anchor_mark`` holds: the anchor a purge left (the last purged row, its hash and
        time), signed, so that deleting the log's first rows and moving the anchor does not pass as a purge."""
        return self.hex(f"anchor\x1f{seq}\x1f{chain_hash_hex}\x1f{_ts_text(ts)}".encode())


def chain_hash(
    prev_hash: str, seq: int, e: UsageEntry | UsageRecord, ts_text: str | None = None, *, key: ChainKey | None
) -> str:
    """A record's hash: keyed (HMAC) with ``key``, plain SHA-256 for records from before the chain was keyed.
    ``calls`` is hashed where it is not 1 (a record of collapsed refusals) and ``counted`` where it is false, so the
    records of single counted calls, those written before the columns among them, hash as they always did."""
    payload = (
        f"{prev_hash}\x1e{seq}\x1f{ts_text or _ts_text(e.ts)}\x1f{e.tenant_id}\x1f{e.key_id}\x1f{e.module or ''}"
        f"\x1f{e.method}\x1f{e.endpoint}\x1f{e.status}\x1f{e.latency_us}\x1f{e.model_version or ''}"
        f"\x1f{e.request_id}" + ("" if e.calls == 1 else f"\x1f{e.calls}") + ("" if e.counted else "\x1funcounted")
    ).encode()
    return key.hex(payload) if key is not None else hashlib.sha256(payload).hexdigest()


_COLUMNS = ("seq", "ts", "tenant_id", "key_id", "module", "method", "endpoint", "status", "latency_us",
            "model_version", "request_id", "prev_hash", "hash", "tenant_seq", "calls", "counted")


_HEAD = "last_seq, last_hash, keyed_from, keyed_mark"
_HEAD_SQLITE = f"SELECT {_HEAD} FROM usage_chain WHERE id = {CHAIN_ID}"
_HEAD_LOCKING = f"UPDATE usage_chain SET last_seq = last_seq WHERE id = {CHAIN_ID} RETURNING {_HEAD}"
_WRITES = {  # is_sqlite -> (insert the rows, advance the head, start a tenant's head, mark the keyed start)
    sqlite: (
        f"INSERT INTO usage_log ({', '.join(_COLUMNS)}) VALUES ({', '.join([mark] * len(_COLUMNS))})",
        f"UPDATE usage_chain SET last_seq = {mark}, last_hash = {mark} WHERE id = {CHAIN_ID}",
        f"INSERT INTO usage_tenant_heads (tenant_id, last_seq) VALUES ({mark}, {mark}) ON CONFLICT DO NOTHING",
        f"UPDATE usage_chain SET keyed_mark = {mark} WHERE id = {CHAIN_ID}",
    )
    for sqlite, mark in ((True, "?"), (False, "%s"))
}


class ChainKeyMismatch(Unavailable):
    """The usage chain was keyed with another ``SFAI_SECRET_KEY`` than this process holds."""

    code = "usage_chain_key_mismatch"

    def __init__(self) -> None:
        super().__init__(
            "the usage log's hash chain is keyed with another SFAI_SECRET_KEY than this one: set the secret "
            "this deployment was started with (records written with another key would not verify)"
        )


def check_chain_key(db: Database, key: ChainKey) -> None:
    """Raise :class:`ChainKeyMismatch` when the chain's keyed records were written with another key (a server
    started with the wrong ``SFAI_SECRET_KEY``); run once at start, so the operator hears it at once."""
    with db.engine.connect() as conn:
        keyed_from, mark = conn.execute(
            select(UsageChain.keyed_from, UsageChain.keyed_mark).where(UsageChain.id == CHAIN_ID)
        ).one()
    refuse_other_key(key, keyed_from, mark)


def refuse_other_key(key: ChainKey, keyed_from: int, mark: str | None) -> None:
    """Raise :class:`ChainKeyMismatch` where the chain's keyed start is signed, but not by ``key``."""
    if mark is not None and not key.signed(keyed_from, mark):
        raise ChainKeyMismatch()
_ADVANCE_TENANTS: dict[tuple[bool, int], str] = {}


def _advance_tenants(sqlite: bool, tenants: int) -> str:
    """One statement that moves the heads of ``tenants`` tenants on by their record counts and returns them
    (``tenant_id, last_seq``); cached per count."""
    key = (sqlite, tenants)
    sql = _ADVANCE_TENANTS.get(key)
    if sql is None:
        mark = "?" if sqlite else "%s"
        sql = _ADVANCE_TENANTS[key] = (
            "INSERT INTO usage_tenant_heads (tenant_id, last_seq) VALUES "
            + ", ".join([f"({mark}, {mark})"] * tenants)
            + " ON CONFLICT (tenant_id) DO UPDATE SET last_seq = usage_tenant_heads.last_seq + excluded.last_seq "
            "RETURNING tenant_id, last_seq"
        )
    return sql


def append_entries(
    db: Database, entries: list[UsageEntry], raw=None, *,  # noqa: ANN001
    key: ChainKey, first_numbers: dict[int, int] | None = None,
) -> int:
    """Append ``entries`` to the chain in one transaction, hashed with ``key``; returns the last sequence number.

    The chain head is read under a lock (SQLite: ``BEGIN IMMEDIATE``, the database's write lock; PostgreSQL: an
    update of the head row that returns it, a row lock), so several processes append one after another without
    forking the chain. Each record also gets the next number of its tenant's own log (``tenant_seq``), from
    that tenant's head, advanced in the same transaction.
    ``first_numbers`` (a tenant restore) gives the number a tenant's log starts from when it has none yet.
    This runs for every authenticated call, so it talks to the driver (DB-API) directly: ``raw`` is a
    DB-API connection the caller keeps (the usage writer's own), or one is borrowed from the pool.
    """
    if raw is None:
        borrowed = db.engine.raw_connection()
        try:
            return append_entries(db, entries, borrowed.driver_connection, key=key, first_numbers=first_numbers)
        finally:
            borrowed.close()
    sqlite = db.is_sqlite
    cur = raw.cursor()
    try:
        if sqlite:  # BEGIN IMMEDIATE takes the write lock: the head can be read plainly
            cur.execute("BEGIN IMMEDIATE")
            cur.execute(_HEAD_SQLITE)
        else:
            cur.execute(_HEAD_LOCKING)
        seq, prev, keyed_from, keyed_mark = cur.fetchone()
        insert, advance, start_tenant, mark_keyed = _WRITES[sqlite]
        if keyed_mark is None:  # the first keyed record: sign where keyed records start
            cur.execute(mark_keyed, (key.mark(keyed_from),))
        else:
            refuse_other_key(key, keyed_from, keyed_mark)
        for tenant_id, first in (first_numbers or {}).items():
            cur.execute(start_tenant, (tenant_id, first - 1))
        per_tenant: dict[int, int] = {}
        for e in entries:
            per_tenant[e.tenant_id] = per_tenant.get(e.tenant_id, 0) + 1
        cur.execute(_advance_tenants(sqlite, len(per_tenant)), [v for item in per_tenant.items() for v in item])
        next_number = {tenant_id: last - per_tenant[tenant_id] for tenant_id, last in cur.fetchall()}
        rows = []
        for e in entries:
            seq += 1
            next_number[e.tenant_id] += 1
            ts = as_utc(e.ts)
            text = ts.isoformat(timespec="microseconds")[:26]  # YYYY-MM-DDTHH:MM:SS.ffffff (UTC)
            h = chain_hash(prev, seq, e, text + "Z", key=key)  # seq > last_seq >= keyed_from - 1: keyed
            rows.append((
                seq, f"{text[:10]} {text[11:]}" if sqlite else ts, e.tenant_id,
                e.key_id, e.module, e.method, e.endpoint, e.status, e.latency_us, e.model_version, e.request_id,
                prev, h, next_number[e.tenant_id], e.calls, e.counted,
            ))
            prev = h
        cur.executemany(insert, rows)
        cur.execute(advance, (seq, prev))
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        cur.close()
    return seq


# ------------------------------------------------------------------------------------------ group commit
@dataclass(slots=True)
class _Pending:
    entry: UsageEntry
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future | None
    done: threading.Event | None = None
    error: list = field(default_factory=list)


_STOP = object()
# refusals of one kind after the first one written are collapsed into a record for so long: short, so that the record
# comes soon after its calls (the log is in the order records are written, and a range's counts settle within it)
REFUSAL_WINDOW_S = 10.0
REFUSAL_KINDS = 10_000  # kinds held at once per process (past that, refusals are written one by one, as before)
REFUSAL_FLUSH_EVERY_S = 2.0


@dataclass(slots=True)
class _Collapsed:
    until: float  # monotonic end of the kind's window
    calls: int = 0  # refusals since its first record was written
    latency_us: int = 0  # their latencies' sum
    last: UsageEntry | None = None


class Refusals:
    """Refused calls (403, 429) collapsed per kind: the same tenant, key, module, method, endpoint and status.

    The first refusal of a kind is written as a record of its own (and answered once it is committed, as any call);
    the refusals of that kind in the next ``REFUSAL_WINDOW_S`` are counted here and written as one record when the
    window ends: the last one's time, request id and fields, ``calls`` = how many, ``latency`` their mean. A client
    retrying a refusal hundreds of times a second had written a record for each, kept three years (~40 M a day).
    Refused calls are not counted against a quota, and this process's counts for the window are all that a kill
    can lose; the usage writer's ``close`` writes them."""

    def __init__(self, window_s: float = REFUSAL_WINDOW_S, max_kinds: int = REFUSAL_KINDS) -> None:
        self.window_s = window_s
        self.max_kinds = max_kinds
        self._kinds: dict[tuple, _Collapsed] = {}
        self._lock = threading.Lock()

    @staticmethod
    def kind(e: UsageEntry) -> tuple:
        return (e.tenant_id, e.key_id, e.module, e.method, e.endpoint, e.status)

    def absorb(self, e: UsageEntry, now: float | None = None) -> bool:
        """True where ``e`` is counted into its kind's window (not to be written now); False where it is to be
        written now: the first of its kind in a window, or one past ``max_kinds``."""
        now = time.monotonic() if now is None else now
        k = self.kind(e)
        with self._lock:
            c = self._kinds.get(k)
            if c is None or (c.until <= now and c.calls == 0):
                if c is None and len(self._kinds) >= self.max_kinds:
                    return False
                self._kinds[k] = _Collapsed(now + self.window_s)
                return False
            c.calls += 1
            c.latency_us += e.latency_us
            c.last = e
            return True

    def due(self, now: float | None = None, *, every: bool = False) -> list[UsageEntry]:
        """The records of the windows that ended by ``now`` (``every``: of all windows), taken out; a kind whose
        window ended with no refusal in it is forgotten."""
        now = time.monotonic() if now is None else now
        out = []
        with self._lock:
            for k in [k for k, c in self._kinds.items() if every or c.until <= now]:
                c = self._kinds.pop(k)
                if c.calls:
                    out.append(dataclasses.replace(c.last, calls=c.calls, latency_us=c.latency_us // c.calls))
        return out

    def put_back(self, e: UsageEntry) -> None:
        """A record that could not be written: its calls are counted into its kind again, for the next try."""
        with self._lock:
            c = self._kinds.setdefault(self.kind(e), _Collapsed(time.monotonic()))
            c.calls += e.calls
            c.latency_us += e.latency_us * e.calls
            c.last = c.last or e

    def __len__(self) -> int:
        return len(self._kinds)
CHECKPOINT_EVERY_S = 0.25  # SQLite, commits on the loop: how often the writer thread checkpoints the WAL
LOOP_CHECKPOINT_PAGES = 20_000  # ... and how many WAL pages the loop's connection lets pass before it does
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes the WAL file is trimmed to after a restart


def _settle(futures: list[asyncio.Future], error: BaseException | None) -> None:
    for f in futures:
        if not f.done():
            if error is None:
                f.set_result(None)
            else:
                f.set_exception(error)


class UsageWriter:
    """One writer thread per process; ``await writer.submit(entry)`` returns once the entry is committed."""

    def __init__(
        self, db: Database, *, key: ChainKey, max_batch: int = 512, max_wait_ms: float = 0.0,
        inline: bool | None = None, collapse_refusals: bool = True,
    ) -> None:
        self.db = db
        self.key = key
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # SQLite commits are local and short: done on the event loop (see submit); PostgreSQL's go to the thread
        self.inline = db.is_sqlite if inline is None else inline
        self._inline: list[tuple[UsageEntry, asyncio.Future]] = []
        self._inline_scheduled = False
        self._inline_conn = None
        self._inline_seen = 0
        self._inline_since = 0.0
        self._to_checkpoint = False  # commits on the loop since the writer thread last checkpointed the WAL
        self.batches = 0
        self.records = 0
        self.failures = 0
        self._failed_at = 0.0  # monotonic time of the last failed write, and of the last good one
        self._written_at = 0.0
        # (batches, records, failures) Prometheus counters where the workers' metrics are added up across processes
        # (serving.metrics: the counts above are this process's only)
        self.counters: tuple | None = None
        self.refusals = Refusals(max_kinds=REFUSAL_KINDS if collapse_refusals else 0)  # 0: each one written
        self._flusher: threading.Thread | None = None
        self._flusher_stop = threading.Event()

    # lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sfai-usage-writer", daemon=True)
            self._thread.start()
        if self._flusher is None:
            self._flusher_stop.clear()
            self._flusher = threading.Thread(target=self._flush_refusals, name="sfai-usage-refusals", daemon=True)
            self._flusher.start()

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued and the collapsed refusals, then stop the threads."""
        if self._flusher is not None:
            self._flusher_stop.set()
            self._flusher.join(timeout)
            self._flusher = None
        if self._thread is not None:
            for e in self.refusals.due(every=True):  # queued before the stop: committed with the rest
                self._q.put(_Pending(e, None, None, threading.Event()))
            self._q.put(_STOP)
            self._thread.join(timeout)
            self._thread = None
        if self._inline_conn is not None:
            self._inline_conn.close()
            self._inline_conn = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def failing(self, window_s: float = FAILING_WINDOW_S) -> bool:
        """Whether the last write failed, within ``window_s``: calls are then answered 503 (nothing unlogged is
        answered), so ``/readyz`` says not ready and a load balancer sends them elsewhere; a disk full had left it
        ready while 28 of 30 calls failed (operator's audit). Past the window it is ready again, so that traffic
        (and the next write) shows whether the cause is gone."""
        return self._failed_at > self._written_at and time.monotonic() - self._failed_at < window_s

    def _wrote(self, ok: bool, records: int = 0) -> None:
        if ok:
            self._written_at = time.monotonic()
        else:
            self._failed_at = time.monotonic()
        if self.counters is not None:
            batches, committed, failures = self.counters
            if ok:
                batches.inc()
                committed.inc(records)
            else:
                failures.inc()

    # producers -------------------------------------------------------------------------------------
    def submit(self, entry: UsageEntry) -> asyncio.Future:
        """Queue ``entry`` from the event loop; the returned future resolves once it is committed."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if self.inline:
            # SQLite: commit on the loop itself; no thread hand-off or GIL contention is paid. A commit costs
            # ~40 us whatever it holds, so the batch waits while the loop keeps bringing new records: each loop
            # iteration that added one defers the commit by one more iteration, until an iteration adds none
            # (every request in flight is waiting for it), ``max_batch`` records or ``max_wait_ms`` have passed.
            # One request alone is committed one iteration later: no timer, no idle wait.
            self._inline.append((entry, fut))
            if not self._inline_scheduled:
                self._inline_scheduled = True
                self._inline_seen = 0
                self._inline_since = time.monotonic()
                loop.call_soon(self._flush_inline, loop)
            return fut
        self._q.put(_Pending(entry, loop, fut))
        return fut

    def _flush_inline(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        n = len(self._inline)
        if (
            loop is not None
            and n > self._inline_seen
            and n < self.max_batch
            and time.monotonic() - self._inline_since < self.max_wait_s
        ):
            self._inline_seen = n  # more came in: give the next iteration's requests a seat in this commit
            loop.call_soon(self._flush_inline, loop)
            return
        batch, self._inline = self._inline, []
        self._inline_scheduled = False
        error: BaseException | None = None
        for i in range(0, len(batch), self.max_batch):
            part = batch[i : i + self.max_batch]
            try:
                if self._inline_conn is None:
                    self._inline_conn = self.db.engine.raw_connection()
                    if self.db.is_sqlite:
                        _defer_checkpoints(self._inline_conn.driver_connection)
                append_entries(self.db, [e for e, _ in part], self._inline_conn.driver_connection, key=self.key)
                self.batches += 1
                self.records += len(part)
                self._to_checkpoint = True
                self._wrote(True, len(part))
            except Exception as e:  # noqa: BLE001 - reported to every waiting request
                self.failures += 1
                self._wrote(False)
                log.exception("usage log write failed for %d records", len(part))
                error = e
                if self._inline_conn is not None:
                    self._inline_conn.close()
                    self._inline_conn = None
            _settle([f for _, f in part], error)
            error = None

    def submit_refusal(self, entry: UsageEntry) -> asyncio.Future | None:
        """Queue a refused call's record (403, 429) as :meth:`submit` does, or count it into the record of its
        kind's window (:class:`Refusals`): then None, and there is nothing to wait for."""
        if self._flusher is not None and self.refusals.absorb(entry):
            return None
        return self.submit(entry)

    def _flush_refusals(self) -> None:
        while not self._flusher_stop.wait(REFUSAL_FLUSH_EVERY_S):
            self.write_refusals(self.refusals.due())

    def write_refusals(self, entries: list[UsageEntry], timeout: float = 30.0) -> None:
        """Commit collapsed refusals' records (in one batch where they fit); those that fail are counted back into
        their kinds for the next try."""
        pending = [_Pending(e, None, None, threading.Event()) for e in entries]
        for p in pending:
            self._q.put(p)
        for p in pending:
            if not p.done.wait(timeout):  # it may still be committed: not counted back (never twice)
                log.warning("usage log: a record of %d refused calls was not committed within %.0f s",
                            p.entry.calls, timeout)
            elif p.error:
                self.refusals.put_back(p.entry)

    def write(self, entry: UsageEntry, timeout: float = 30.0) -> None:
        """Queue ``entry`` from a plain thread and block until it is committed."""
        p = _Pending(entry, None, None, threading.Event())
        self._q.put(p)
        if not p.done.wait(timeout):
            raise TimeoutError("usage log write timed out")
        if p.error:
            raise p.error[0]

    # the writer thread -----------------------------------------------------------------------------
    def _next_batch(self, first: _Pending) -> tuple[list[_Pending], bool]:
        """What is queued now, waiting at most ``max_wait_s`` after the first record for more."""
        batch = [first]
        stop = False
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                left = deadline - time.monotonic()
                item = self._q.get(timeout=left) if left > 0 else self._q.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                stop = True
                break
            batch.append(item)
        return batch, stop

    def _run(self) -> None:
        stop = False
        conn = None  # the writer's own DB-API connection: no pool checkout or liveness ping per batch
        checkpoints = self.inline and self.db.is_sqlite
        while not stop:
            try:
                item = self._q.get(timeout=CHECKPOINT_EVERY_S) if checkpoints else self._q.get()
            except queue.Empty:
                conn = self._checkpoint(conn)
                continue
            if item is _STOP:
                break
            batch, stop = self._next_batch(item)
            error: BaseException | None = None
            try:
                conn = conn or self.db.engine.raw_connection()
                append_entries(self.db, [p.entry for p in batch], conn.driver_connection, key=self.key)
                self.batches += 1
                self.records += len(batch)
                self._wrote(True, len(batch))
            except Exception as e:  # noqa: BLE001 - reported to every waiting request
                self.failures += 1
                self._wrote(False)
                log.exception("usage log write failed for %d records", len(batch))
                error = e
                if conn is not None:  # start over with a fresh connection next time
                    conn.close()
                    conn = None
            by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = {}
            for p in batch:
                if p.loop is not None:
                    by_loop.setdefault(p.loop, []).append(p.future)
                else:
                    if error is not None:
                        p.error.append(error)
                    p.done.set()
            for loop, futures in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_settle, futures, error)
                except RuntimeError:  # that loop is closed: nobody waits any more
                    pass
        if conn is not None:
            conn.close()

    def _checkpoint(self, conn):  # noqa: ANN001, ANN202
        """Copy the WAL's committed pages into the database file here, off the event loop (the GIL is released
        while SQLite works): the loop's own commits then find little left to do when they must checkpoint."""
        if not self._to_checkpoint:
            return conn
        self._to_checkpoint = False
        try:
            conn = conn or self.db.engine.raw_connection()
            conn.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except Exception:  # noqa: BLE001 - the loop's own checkpoints still bound the WAL
            log.warning("usage log checkpoint failed", exc_info=True)
            if conn is not None:
                conn.close()
            return None
        return conn


def _defer_checkpoints(raw) -> None:  # noqa: ANN001
    """The event loop's SQLite connection checkpoints only past ``LOOP_CHECKPOINT_PAGES`` WAL pages (SQLite's
    default is 1,000: a stall of several ms in some request every second at full load); the writer thread
    checkpoints every ``CHECKPOINT_EVERY_S``. A PASSIVE checkpoint that runs while the loop keeps committing
    cannot let SQLite restart the WAL, so the loop's own checkpoint, over pages the thread already copied, is
    what bounds the file; ``journal_size_limit`` trims it after each restart."""
    raw.execute(f"PRAGMA wal_autocheckpoint={LOOP_CHECKPOINT_PAGES}")
    raw.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")


# ------------------------------------------------------------------------------------------ verify
@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    rows: int
    last_seq: int
    problem: str | None = None
    seq: int | None = None
    keyed_from: int | None = None  # rows from this one on carry keyed hashes (HMAC); those before, plain SHA-256


def verify_chain(db: Database, *, key: ChainKey, batch: int = 5000) -> VerifyResult:
    """Recompute the chain with ``key``; the first broken link names the row that was edited, deleted or inserted.

    Rows from ``usage_chain.keyed_from`` on must carry keyed hashes, and that start must carry its signed mark
    once a keyed row exists: without the key, nobody can move the start past rows to rewrite them as plain.
    Each tenant's record numbers (``tenant_seq``) must also run 1, 2, 3, ... in chain order (from any number
    after a retention purge) and end at the tenant's head: they are not hashed, but they follow from the chain.
    """
    with db.engine.connect() as conn:
        head = conn.execute(select(UsageChain.__table__).where(UsageChain.id == CHAIN_ID)).one()
        return dataclasses.replace(_verify(conn, head, key, batch), keyed_from=head.keyed_from)


def _anchor_problem(head, key: ChainKey) -> str | None:  # noqa: ANN001
    """Why the log's start (the anchor a purge left) is not one a purge made, or None: a purge signs its anchor
    and deletes only rows older than the retention period; an unsigned anchor, from before purges were signed,
    can only lie among the rows from before the chain was keyed."""
    if head.anchor_seq <= 0:
        return None
    if head.anchor_mark is None:
        if head.anchor_seq < head.keyed_from:
            return None
        return (f"the log starts after row {head.anchor_seq} without a signed purge: rows 1-{head.anchor_seq} were "
                "deleted")
    if head.anchor_ts is None or not hmac.compare_digest(
        head.anchor_mark, key.anchor_mark(head.anchor_seq, head.anchor_hash, head.anchor_ts)
    ):
        return f"the purge anchor (row {head.anchor_seq}) was modified: its signature does not verify"
    if as_utc(head.anchor_ts) > utcnow() - timedelta(days=MIN_USAGE_RETENTION_DAYS):
        return (f"the purge anchor (row {head.anchor_seq}, {_ts_text(head.anchor_ts)}) is younger than the "
                f"{MIN_USAGE_RETENTION_DAYS}-day retention: no purge deletes such rows")
    return None


def _verify(conn, head, key: ChainKey, batch: int) -> VerifyResult:  # noqa: ANN001
    keyed_from = head.keyed_from
    if head.keyed_mark is None:
        if head.last_seq >= keyed_from:
            return VerifyResult(False, 0, head.anchor_seq, f"rows from {keyed_from} on should be keyed, but "
                                "the chain's keyed start is not signed: the chain head was modified", keyed_from)
    elif not key.signed(keyed_from, head.keyed_mark):
        return VerifyResult(False, 0, head.anchor_seq, "the chain's keyed start does not verify with this "
                            "SFAI_SECRET_KEY: either it is not the secret this deployment runs with, or the chain "
                            "head was modified")
    moved = _anchor_problem(head, key)
    if moved:
        return VerifyResult(False, 0, head.anchor_seq, moved, head.anchor_seq)
    tenant_heads = dict(conn.execute(select(UsageTenantHead.tenant_id, UsageTenantHead.last_seq)).all())
    numbers: dict[int, int] = {}  # tenant -> its last record number seen
    purged = head.anchor_seq > 0
    expected_seq = head.anchor_seq + 1
    prev = head.anchor_hash
    n = 0
    last = head.anchor_seq
    while True:
        rows = conn.execute(
            select(UsageRecord.__table__).where(UsageRecord.seq > last).order_by(UsageRecord.seq).limit(batch)
        ).all()
        if not rows:
            break
        for r in rows:
            if r.seq != expected_seq:
                return VerifyResult(
                    False, n, last, f"row {expected_seq} is missing (next row is {r.seq})", expected_seq
                )
            if r.prev_hash != prev:
                return VerifyResult(False, n, last, f"row {r.seq} does not link to row {r.seq - 1}", r.seq)
            if chain_hash(prev, r.seq, r, key=key if r.seq >= keyed_from else None) != r.hash:
                return VerifyResult(False, n, last, f"row {r.seq} was modified (hash mismatch)", r.seq)
            before = numbers.get(r.tenant_id)
            if r.tenant_seq != (before + 1 if before is not None else r.tenant_seq if purged else 1):
                return VerifyResult(
                    False, n, last,
                    f"row {r.seq} is numbered {r.tenant_seq} in its tenant's log, expected "
                    f"{(before or 0) + 1}", r.seq,
                )
            numbers[r.tenant_id] = r.tenant_seq
            prev = r.hash
            expected_seq += 1
            last = r.seq
            n += 1
    if last != head.last_seq or prev != head.last_hash:
        return VerifyResult(
            False, n, last, f"the log ends at row {last} but its head records row {head.last_seq}", last + 1
        )
    for tenant_id, number in numbers.items():
        if tenant_heads.get(tenant_id) != number:
            return VerifyResult(
                False, n, last,
                f"tenant {tenant_id}'s log ends at record {number} but its head records "
                f"{tenant_heads.get(tenant_id)}", None,
            )
    return VerifyResult(True, n, last)


# ------------------------------------------------------------------------------------------ read, export
def check_module(module: str | None) -> None:
    """A filter on the records' module: one of the modules, or ``platform`` (the calls outside them)."""
    if module is not None and module not in (*MODULES, "platform"):
        raise InvalidInput(f"unknown module {module!r}: expected {', '.join(MODULES)} or platform")


def _range_filter(stmt, tenant_id: int | None, start: datetime | None, end: datetime | None, module: str | None,
                  key_id: str | None = None):
    t = UsageRecord.__table__
    if tenant_id is not None:
        stmt = stmt.where(t.c.tenant_id == tenant_id)
    if key_id is not None:  # one key's calls (a leaked key's, say)
        stmt = stmt.where(t.c.key_id == key_id)
    if start is not None:
        stmt = stmt.where(t.c.ts >= as_utc(start))
    if end is not None:
        stmt = stmt.where(t.c.ts < as_utc(end))
    if module == "platform":  # calls outside the modules (tenant admin, usage, ingest), as the counts name them
        stmt = stmt.where(t.c.module.is_(None))
    elif module is not None:
        stmt = stmt.where(t.c.module == module)
    return stmt


def receipt(chain_hash_hex: str) -> str:
    """The ``hash`` a tenant sees: SHA-256 of the record's chain hash (its hex text). An operator finds it in the
    chain; a tenant cannot chain it: with the chain hash itself, a tenant whose two records are neighbours in the
    chain recomputed the second from the first and a guessed place, so found its place in the whole log."""
    return hashlib.sha256(chain_hash_hex.encode()).hexdigest()


def _row_dict(r, tenant: str, key_names: dict[str, str], *, chain: bool = False) -> dict:
    """A record as tenants see it: ``seq`` is its number in the tenant's own log, never its place in the whole
    chain (which would tell one tenant how many calls the others made), and ``hash`` its :func:`receipt`
    (``chain``: the chain hash itself, for the operator's export of every tenant). ``key_name`` is the key's name
    now (null for a call without a key of the tenant's); it is not part of the chained record."""
    return {
        "seq": r.tenant_seq,
        "ts": _ts_text(r.ts),
        "tenant": tenant,
        "key_id": r.key_id,
        "module": r.module,
        "method": r.method,
        "endpoint": r.endpoint,
        "status": r.status,
        "latency_ms": round(r.latency_us / 1000, 3),
        "model_version": r.model_version,
        "request_id": r.request_id,
        "hash": r.hash if chain else receipt(r.hash),
        "key_name": key_names.get(r.key_id),
        "calls": r.calls,
        # whether the call counted against its module's monthly quota, as count_calls counts: a module's call that
        # was neither refused (403, 429) nor failed on SFAI's side (5xx), nor a quota read (status, ``counted``)
        "quota_counted": bool(r.module is not None and r.counted and r.status < 500 and r.status not in NOT_COUNTED),
    }


def deployment_id(db: Database) -> str:
    """This database's own id (12 hex digits of ``usage_chain.deployment_id``, drawn by migration 0012): what keeps
    the Redis counters of deployments sharing a Redis apart. "-" where it has none (a database restored from a
    backup of before the id: the counters are then named as a deployment of no id)."""
    with db.engine.connect() as conn:
        found = conn.execute(select(UsageChain.deployment_id).where(UsageChain.id == CHAIN_ID)).scalar()
    return (found or "-")[:12]


def tenant_names(db: Database) -> dict[int, str]:
    with db.engine.connect() as conn:
        return dict(conn.execute(select(Tenant.id, Tenant.name)).all())


def key_names(db: Database, tenant_id: int | None) -> dict[str, str]:
    """Key id -> the key's name, of one tenant's keys (revoked ones too) or, with ``tenant_id`` None, of all."""
    stmt = select(ApiKey.key_id, ApiKey.name)
    if tenant_id is not None:
        stmt = stmt.where(ApiKey.tenant_id == tenant_id)
    with db.engine.connect() as conn:
        return dict(conn.execute(stmt).all())


def query_usage(
    db: Database,
    tenant_id: int,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    module: str | None = None,
    limit: int = 100,
    before_seq: int | None = None,
    key_id: str | None = None,
) -> dict:
    """The newest ``limit`` records of one tenant in [start, end), and counts by module and status class.
    ``before_seq`` pages backwards by the tenant's own record numbers (``seq`` in the records); ``key_id``: only
    that key's records (and counts)."""
    t = UsageRecord.__table__
    names = tenant_names(db)
    with db.engine.connect() as conn:
        stmt = _range_filter(select(t), tenant_id, start, end, module, key_id)
        if before_seq is not None:
            stmt = stmt.where(t.c.tenant_seq < before_seq)
        rows = conn.execute(stmt.order_by(t.c.tenant_seq.desc()).limit(limit)).all()
        counts = conn.execute(
            _range_filter(select(t.c.module, t.c.status, func.sum(t.c.calls)), tenant_id, start, end, module, key_id)
            .group_by(t.c.module, t.c.status)
        ).all()
    by_module: dict[str, dict[str, int]] = {}
    total = 0
    for mod, status, n in counts:
        m = by_module.setdefault(mod or "platform",
                                 {"calls": 0, "ok": 0, "client_errors": 0, "server_errors": 0, "refused": 0})
        m["calls"] += n
        m["ok" if status < 400 else "client_errors" if status < 500 else "server_errors"] += n
        if status in NOT_COUNTED:  # of the client errors, those refused before they were performed (403, 429)
            m["refused"] += n
        total += n
    keys = key_names(db, tenant_id)
    records = [_row_dict(r, names.get(r.tenant_id, str(r.tenant_id)), keys) for r in rows]
    return {
        "total": total,
        "by_module": by_module,
        "records": records,
        "next_before_seq": records[-1]["seq"] if len(records) == limit else None,
    }


# answers that do not count against a quota: refused for the subscription or role (403), or for a limit (429); nor
# do calls that failed on SFAI's side (5xx: a store or the log unavailable), whose "retry shortly" had spent quota
NOT_COUNTED = (403, 429)


def counted(status: int) -> bool:
    """Whether a call answered with ``status`` counts against its module's quota."""
    return status not in NOT_COUNTED and status < 500


def count_calls(db: Database, tenant_id: int, module: str, since: datetime) -> int:
    t = UsageRecord.__table__
    with db.engine.connect() as conn:
        return conn.execute(
            # calls refused for the subscription or the key's role (403, before the quota is looked at) or by a
            # limit (429) were never performed, and those failed on SFAI's side (5xx) were not answered: not
            # counted (:func:`counted`), as the process's own count does not count them
            select(func.count()).where(
                t.c.tenant_id == tenant_id, t.c.module == module, t.c.ts >= as_utc(since),
                t.c.status.notin_(NOT_COUNTED), t.c.status < 500, t.c.counted,  # all in the index (0016)
            )
        ).scalar_one()


# a spreadsheet reads a cell starting with one of these as a formula (or as the start of one): a request id such as
# "-2+3" (X-Request-ID is the caller's) would run in the tenant admin's spreadsheet
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """``value`` as a CSV export writes it: a text starting like a formula gets a leading single quote (OWASP's
    advice against CSV injection), so that a spreadsheet shows it as text; other values are written as they are."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def export_usage(
    db: Database,
    fmt: str,
    *,
    tenant_id: int | None,
    start: datetime | None = None,
    end: datetime | None = None,
    module: str | None = None,
    chunk: int = 5000,
    key_id: str | None = None,
) -> Iterator[str]:
    """Stream the records of one tenant (or all, for the operator's CLI) as CSV or a JSON array, oldest first;
    ``module``: only that module's records (``platform``: those of no module), as :func:`query_usage` filters.
    The operator's export of all tenants also gives each record's place in the whole chain (``log_seq``) and its
    chain hash (a tenant's gives its receipt)."""
    if fmt not in ("csv", "json"):
        raise InvalidInput(f"unknown export format {fmt!r}: expected csv or json")
    if start is not None and end is not None and as_utc(end) <= as_utc(start):
        raise InvalidInput("'to' must be after 'from'")
    names = tenant_names(db)
    keys = key_names(db, tenant_id)
    t = UsageRecord.__table__

    def rows() -> Iterator[dict]:
        # a connection per page, given back before the page is sent: a client reading slowly would otherwise hold
        # one of the pool's connections for the whole export (the pages follow ``seq``, so none is missed)
        last = 0
        while True:
            with db.engine.connect() as conn:
                page = conn.execute(
                    _range_filter(select(t), tenant_id, start, end, module, key_id)
                    .where(t.c.seq > last)
                    .order_by(t.c.seq)
                    .limit(chunk)
                ).all()
            if not page:
                return
            for r in page:
                d = _row_dict(r, names.get(r.tenant_id, str(r.tenant_id)), keys, chain=tenant_id is None)
                yield d if tenant_id is not None else {"log_seq": r.seq, **d}
            last = page[-1].seq

    def gen_csv() -> Iterator[str]:
        buf = io.StringIO()
        columns = EXPORT_COLUMNS if tenant_id is not None else ("log_seq", *EXPORT_COLUMNS)
        w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        n = 0
        for d in rows():
            w.writerow({k: csv_cell(v) for k, v in d.items()})
            n += 1
            if n % 1000 == 0:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    def gen_json() -> Iterator[str]:
        yield "["
        first = True
        for d in rows():
            yield ("" if first else ",\n") + json.dumps(d, ensure_ascii=False)
            first = False
        yield "]\n"

    return gen_csv() if fmt == "csv" else gen_json()


# ------------------------------------------------------------------------------------------ retention
def retention_cut(retention_days: int = MIN_USAGE_RETENTION_DAYS) -> datetime:
    """The latest time a purge may cut at: rows older than the retention period (at least three years)."""
    return utcnow() - timedelta(days=max(retention_days, MIN_USAGE_RETENTION_DAYS))


def purge_before(
    db: Database, before: datetime, *, key: ChainKey, retention_days: int = MIN_USAGE_RETENTION_DAYS,
    dry_run: bool = False,
) -> int:
    """Delete the oldest rows with ``ts < before``, never any younger than the retention period; ``dry_run``: count
    them, delete nothing.

    The chain stays verifiable: the hash of the last purged row becomes the chain's anchor, signed with ``key``
    with that row's time (``verify`` checks the signature and that the row was past the retention period).
    """
    before = as_utc(before)
    limit = retention_cut(retention_days)
    if before > limit:
        raise InvalidInput(
            f"usage records are kept {max(retention_days, MIN_USAGE_RETENTION_DAYS)} days: "
            f"cannot purge before {before.date()}, the latest allowed cut is {limit.date()}"
        )
    t = UsageRecord.__table__
    c = UsageChain.__table__
    with db.engine.begin() as conn:
        if not dry_run:  # a count takes no lock: every API call's usage commit waits on this one
            conn.execute(update(c).where(c.c.id == CHAIN_ID).values(last_seq=c.c.last_seq))  # write lock
        keyed_from, keyed_mark = conn.execute(select(c.c.keyed_from, c.c.keyed_mark).where(c.c.id == CHAIN_ID)).one()
        refuse_other_key(key, keyed_from, keyed_mark)  # before any row is deleted: another key's anchor never verifies
        first_kept = conn.execute(select(func.min(t.c.seq)).where(t.c.ts >= before)).scalar()
        if first_kept is None:
            first_kept = conn.execute(select(func.max(t.c.seq))).scalar()
            first_kept = (first_kept or 0) + 1
        cut = first_kept - 1
        head = conn.execute(select(c).where(c.c.id == CHAIN_ID)).one()
        if cut <= head.anchor_seq:
            return 0
        if dry_run:
            return int(conn.execute(select(func.count()).where(t.c.seq <= cut)).scalar() or 0)
        anchor_hash, anchor_ts = conn.execute(select(t.c.hash, t.c.ts).where(t.c.seq == cut)).one()
        n = conn.execute(t.delete().where(t.c.seq <= cut)).rowcount
        conn.execute(update(c).where(c.c.id == CHAIN_ID).values(
            anchor_seq=cut, anchor_hash=anchor_hash, anchor_ts=as_utc(anchor_ts),
            anchor_mark=key.anchor_mark(cut, anchor_hash, anchor_ts)))
    return n


def parse_range(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    """The ``from``/``to`` query bounds, parsed; ``to`` not after ``from`` is an error, not an empty answer."""
    a, b = parse_when(start, "from"), parse_when(end, "to")
    if a is not None and b is not None and b <= a:
        raise InvalidInput("'to' must be after 'from'")
    return a, b


# a date-time whose offset's + a query string turned into a space (an unencoded + is a space in a URL's query)
_PLUS_READ_AS_SPACE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)? \d{2}:\d{2}$")


def parse_when(value: str | None, name: str) -> datetime | None:
    """Parse a ``from``/``to`` bound: an ISO date or date-time; naive means UTC."""
    if value is None or value == "":
        return None
    if _PLUS_READ_AS_SPACE.match(value):  # "...T07:46:00+09:00" in a URL without %2B: its + arrived as a space
        value = value[:-6] + "+" + value[-5:]
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"invalid '{name}' {value!r}: use an ISO date such as 2026-01-31 or 2026-01-31T08:00:00Z"
        ) from None
    try:  # in UTC here: a time whose offset takes it past year 9999 or before year 1 would overflow later (a 500)
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"invalid '{name}' {value!r}: out of range in UTC (years 1 to 9999)") from None
