"""The request path's view of tenancy: API key -> caller, caller -> subscriptions, rate limit and quota.

Everything is cached for ``auth_cache_ttl_s`` so that an authenticated call costs no database round trip;
the process that revokes a key or changes a subscription invalidates its cache at once, other processes
follow within the TTL.

The monthly quota is counted in Redis when the rate limits are (``SFAI_RATE_LIMIT_REDIS``): one counter per
subscription and month, started from the usage log and counted by one atomic script, so the quota is exact across
processes and hosts. Otherwise (or while that Redis is unreachable) each process counts from the usage log: see
:meth:`Access._count_local` for how closely.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, or_, update

from serving.db import Database
from serving.db.tables import ApiKey
from serving.errors import Forbidden, NotSubscribed, QuotaExceeded, RateLimited, TooManyRequests
from serving.ratelimit import LocalBuckets, RedisBuckets
from serving.tenancy import (
    MODULES,
    AuthContext,
    SubscriptionInfo,
    active_subscriptions,
    resolve_api_key_state,
    utc_text,
    utcnow,
)
from serving.usage import count_calls

QUOTA_REFRESH_S = 30.0  # a process counting a quota itself reads the usage log's count again at least this often
QUOTA_SHARES = 16  # ... and once it has admitted 1/16 of the calls left at its last read (every call near the end)
QUOTA_KEY_GRACE = timedelta(days=1)  # a shared counter outlives its month by this much
FAILED_LOOKUP_BURST_S = 10.0  # an address may fail this many seconds' worth of key lookups at once
_MAX_CACHED_KEYS = 100_000
_MAX_FAILING_ADDRESSES = 10_000  # client addresses whose failed key lookups are counted at once
# a revoked key still in use is written to its tenant's usage log (status 401) at most this often per key and
# process: the admin sees which system still sends it, and a client retrying all day adds ~150 records a day
REVOKED_LOG_S = 600.0
# each process writes the times of its keys' latest calls (api_keys.last_used_at) at most this often, in one UPDATE
LAST_USED_FLUSH_S = 60.0

log = logging.getLogger("sfai.access")


def key_clock() -> datetime:
    """The time an API key's expiry is checked against, on every call (cached keys too)."""
    return datetime.now(UTC)


def expired(ctx: AuthContext) -> bool:
    """Whether ``ctx``'s key is past its expiry now (by :func:`key_clock`)."""
    return ctx.expires_at is not None and ctx.expires_at <= key_clock()


def expired_message(ctx: AuthContext) -> str:
    """The 401 of an expired key: its id and when it expired (never the secret)."""
    return (f"API key {ctx.key_id} expired at {utc_text(ctx.expires_at)}; a tenant admin can create a new key "
            "(POST /v1/apikeys, or the console's Administration tab)")


class KeyUse:
    """The time of each key's latest authenticated call, kept in this process (``touch``: a dict write, no query)
    and written to ``api_keys.last_used_at`` in one UPDATE at most every ``every_s`` seconds (a thread) and at
    shutdown. The UPDATE only ever moves a time forward, so that processes writing in any order agree on the
    latest: ``... SET last_used_at = :t WHERE key_id = :k AND (last_used_at IS NULL OR last_used_at < :t)``."""

    def __init__(self, db: Database, every_s: float = LAST_USED_FLUSH_S) -> None:
        self.db = db
        self.every_s = every_s
        self._seen: dict[str, float] = {}  # key id -> epoch seconds of its latest call here, not yet written
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.writes = 0  # UPDATE statements run (one per flush with something to write)

    def touch(self, key_id: str, at: float | None = None) -> None:
        t = time.time() if at is None else at
        with self._lock:
            if self._seen.get(key_id, 0.0) < t:
                self._seen[key_id] = t

    def pending(self) -> dict[str, float]:
        with self._lock:
            return dict(self._seen)

    _UPDATE = (
        update(ApiKey.__table__)
        .where(ApiKey.__table__.c.key_id == bindparam("k_id"),
               or_(ApiKey.__table__.c.last_used_at.is_(None), ApiKey.__table__.c.last_used_at < bindparam("t_used")))
        .values(last_used_at=bindparam("t_used"))
    )

    def flush(self) -> int:
        """Write the times kept since the last flush (one statement, one transaction); the keys written. A failed
        write keeps them for the next flush."""
        with self._lock:
            seen, self._seen = self._seen, {}
        if not seen:
            return 0
        # in key order: two processes updating the same keys lock their rows in the same order (no deadlock)
        params = [{"k_id": k, "t_used": datetime.fromtimestamp(t, UTC)} for k, t in sorted(seen.items())]
        try:
            with self.db.engine.begin() as conn:
                conn.execute(self._UPDATE, params)
        except Exception:  # noqa: BLE001 - the database is away: the next flush tries again
            log.warning("could not write the API keys' last use (%d keys); retrying at the next flush", len(seen),
                        exc_info=True)
            with self._lock:
                for k, t in seen.items():
                    if self._seen.get(k, 0.0) < t:
                        self._seen[k] = t
            return 0
        self.writes += 1
        return len(params)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="sfai-key-use", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.flush()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread and write what is kept (a process stopping loses no key's last use)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout)
            self._thread = None
        self.flush()


def scope_message(ctx: AuthContext, module: str) -> str:
    allowed = [m for m in MODULES if m in (ctx.modules or ())]
    return (f"API key {ctx.key_id} may call only the {', '.join(repr(m) for m in allowed) or 'no'} module"
            f"{'s' if len(allowed) != 1 else ''}, not {module!r}; a tenant admin can create a key for {module!r} "
            "(POST /v1/apikeys with modules)")


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(now: datetime) -> datetime:
    return month_start(month_start(now) + timedelta(days=32))


@dataclass
class _Count:
    """A quota counted in this process: ``base`` calls this month at the last read of the usage log (a lower
    bound, this process' own calls included), ``n`` admitted here since, ``budget`` of them before reading again."""

    base: int
    n: int
    budget: int
    read_at: float  # monotonic


class Access:
    def __init__(
        self,
        db: Database,
        pepper: str,
        ttl_s: float = 5.0,
        *,
        rate_limits: dict[str, float | None] | None = None,
        platform_rate: float | None = None,
        failed_lookup_rate: float | None = None,
        burst_s: float = 2.0,
        buckets: LocalBuckets | RedisBuckets | None = None,
        self_service_plans: tuple[str, ...] | None = None,
    ) -> None:
        self.db = db
        # the plans a tenant admin may choose (None: any); a quota on another plan is the operator's to raise
        self.self_service_plans = self_service_plans
        self.pepper = pepper
        self.ttl_s = ttl_s
        self.rate_limits = rate_limits or {}  # plan -> calls per second (None or absent: no limit)
        self.platform_rate = platform_rate  # a tenant's calls per second outside the modules (None: no limit)
        self.failed_lookup_rate = failed_lookup_rate  # key lookups finding no caller, per second per address
        # per address, in this process: it spares this process' database lookups
        self._failures = LocalBuckets(max_keys=_MAX_FAILING_ADDRESSES)
        self.burst_s = burst_s
        self.buckets = buckets or LocalBuckets()  # a token bucket per subscription (tenant_id, module)
        self._keys: dict[bytes, tuple[float, AuthContext | None]] = {}
        # revoked keys whose secret was right -> whose they were, and when each was last logged as still in use
        self._revoked: dict[bytes, AuthContext] = {}
        self._revoked_logged: dict[str, float] = {}
        self._subs: dict[int, tuple[float, dict[str, SubscriptionInfo]]] = {}
        self._quota: dict[tuple[int, str, datetime], _Count] = {}  # (tenant_id, module, month) -> counted here
        # (tenant_id, module, month) -> the Redis outages (``buckets.trips``) this process had when it last counted
        # there: after one, its calls counted here meanwhile are added from the usage log
        self._synced: dict[tuple[int, str, datetime], int] = {}
        self._month: datetime | None = None
        self._exports: dict[int, int] = {}  # tenant_id -> usage-log exports streaming now
        self._lock = threading.Lock()
        self.key_use = KeyUse(db)  # each key's latest call, written at most once a minute

    # keys ---------------------------------------------------------------------------------------------
    @staticmethod
    def digest(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def cached(self, digest: bytes, *, claim: bool = True) -> AuthContext | None:
        """The caller for a key digest if cached (None: look it up with ``resolve``).

        With ``claim``, an expired entry is served once more to the others while this caller's ``resolve``
        refreshes it, so that a burst of requests at expiry makes one database lookup, not one each (a revoked
        key is still refused at most one TTL after the revocation reached another process). ``claim=False``
        only looks: for a caller that will not refresh (the prediction fast path hands over to the route)."""
        return self.lookup(digest, claim=claim)[1]

    def lookup(self, digest: bytes, *, claim: bool = True) -> tuple[bool, AuthContext | None]:
        """(known, caller) as :meth:`cached` sees the key: ``known`` when this process looked it up within the TTL,
        the caller then being None for a key it refused (unknown, revoked or a wrong secret), which the request path
        refuses again without a database lookup. Not known: look it up with ``resolve``."""
        hit = self._keys.get(digest)
        if hit is None:
            return False, None
        now = time.monotonic()
        if hit[0] > now:
            ctx = hit[1]
            if ctx is not None and ctx.expires_at is not None and expired(ctx):
                return True, None  # past its expiry while cached: refused now (expired_key says whose)
            return True, ctx
        if claim:
            self._keys[digest] = (now + self.ttl_s, hit[1])  # others keep the old answer while we refresh
        return False, None

    def check_failed_lookups(self, client: str) -> None:
        """429 while ``client`` (an address) has spent its allowance of key lookups that found no caller: each
        costs a database query, so a client trying key after key is slowed down before reaching the database. A
        key this process knows (cached) passes without this check."""
        if self.failed_lookup_rate is None:
            return
        wait = self._failures.wait((client,), self.failed_lookup_rate, self.failed_lookup_rate * FAILED_LOOKUP_BURST_S)
        if wait is not None:
            raise TooManyRequests(
                "too many invalid API keys from this address; retry after the seconds in Retry-After",
                retry_after_s=wait,
                code="too_many_failed_keys",
            )

    def failed_lookup(self, client: str) -> None:
        if self.failed_lookup_rate is not None:
            self._failures.take((client,), self.failed_lookup_rate, self.failed_lookup_rate * FAILED_LOOKUP_BURST_S)

    def resolve(self, token: str, digest: bytes | None = None, *, refresh: bool = False) -> AuthContext | None:
        digest = digest or self.digest(token)
        now = time.monotonic()
        hit = self._keys.get(digest)
        if hit is not None and hit[0] > now and not refresh:
            return None if hit[1] is not None and expired(hit[1]) else hit[1]
        ctx, revoked = resolve_api_key_state(self.db, self.pepper, token)
        if len(self._keys) >= _MAX_CACHED_KEYS:
            # the keys refused are dropped, not the tenants' keys: made-up keys from many addresses had emptied
            # the whole cache at 100,000, and every tenant's next call went to the database (security audit)
            self._keys = {d: hit for d, hit in list(self._keys.items()) if hit[1] is not None}
            if len(self._keys) >= _MAX_CACHED_KEYS // 2:
                self._keys.clear()
            self._revoked.clear()
        self._keys[digest] = (now + self.ttl_s, ctx)
        if revoked is not None:
            self._revoked[digest] = revoked
        else:
            self._revoked.pop(digest, None)
        return None if ctx is not None and expired(ctx) else ctx

    def expired_key(self, digest: bytes) -> AuthContext | None:
        """Whose key ``digest`` is, where it is a known key (its secret right, looked up within the TTL) past its
        expiry now; None otherwise."""
        hit = self._keys.get(digest)
        ctx = hit[1] if hit is not None else None
        return ctx if ctx is not None and expired(ctx) else None

    def revoked_use(self, digest: bytes) -> AuthContext | None:
        """Whose revoked or expired key ``digest`` is (its secret right), where its use should go to that tenant's
        usage log now: at most once per ``REVOKED_LOG_S`` per key in this process, so that a forgotten client
        retrying all day shows in the log without filling it. None otherwise (an unknown key, a wrong secret,
        logged lately)."""
        owner = self._revoked.get(digest) or self.expired_key(digest)
        if owner is None:
            return None
        now = time.monotonic()
        if now - self._revoked_logged.get(owner.key_id, -REVOKED_LOG_S) < REVOKED_LOG_S:
            return None
        if len(self._revoked_logged) >= _MAX_CACHED_KEYS:
            self._revoked_logged.clear()
        self._revoked_logged[owner.key_id] = now
        return owner

    # subscriptions -------------------------------------------------------------------------------------
    def subscriptions(self, tenant_id: int, *, refresh: bool = False) -> dict[str, SubscriptionInfo]:
        now = time.monotonic()
        hit = self._subs.get(tenant_id)
        if hit is not None and hit[0] > now and not refresh:
            return hit[1]
        subs = active_subscriptions(self.db, tenant_id)
        self._subs[tenant_id] = (now + self.ttl_s, subs)
        return subs

    def _operator_ended(self, tenant_id: int, module: str) -> bool:
        """Whether the operator set or ended the tenant's latest subscription to ``module``: read with the
        subscriptions in force (the same query, cached alike), so a refused call costs no query of its own."""
        hit = self._subs.get(tenant_id)
        return hit is not None and module in getattr(hit[1], "operator_ended", ())

    def admit(self, ctx: AuthContext, module: str, *, refresh: bool = False, count: bool = True) -> SubscriptionInfo:
        """The subscription that lets ``ctx`` call ``module`` now; takes a token from its rate limit and counts
        the call against its monthly quota (a call refused by the rate limit does not count). ``count`` False: a
        call the quota neither counts nor refuses (``GET /v1/<module>/status``, which says how much is left).
        A key scoped to other modules is refused first (403 ``key_scope``), before the subscription or any count."""
        if ctx.modules is not None and module not in ctx.modules:
            raise Forbidden(scope_message(ctx, module), code="key_scope")
        sub = self.subscriptions(ctx.tenant_id, refresh=refresh).get(module)
        now = utcnow()
        if sub is None or not sub.active_at(now):
            if self._operator_ended(ctx.tenant_id, module):  # the admin's own subscribe would be a 409
                how = "the SFAI operator set or ended its subscription: ask your operator to renew it"
            else:
                how = "a tenant admin can subscribe on the console's Administration tab or with POST /v1/subscriptions"
            raise NotSubscribed(f"tenant '{ctx.tenant}' is not subscribed to the '{module}' module; {how}")
        rate = self.rate_limits.get(sub.plan)
        if rate is not None:
            self._take(ctx, module, rate, sub.plan)
        if count and sub.request_quota is not None:
            by_operator = sub.operator_managed or (
                self.self_service_plans is not None and sub.plan not in self.self_service_plans)
            self._count(ctx, module, sub.request_quota, now, by_operator=by_operator)
        return sub

    def refund(self, ctx: AuthContext, module: str) -> None:
        """Takes back the quota count of a call that was admitted and then refused with 403 or 429 (the role, a
        full job queue): the usage log does not count those (``count_calls``), so the count does not either. Only
        while the month is the same: a call that crossed midnight of the 1st was counted in the month before."""
        now = utcnow()
        key = (ctx.tenant_id, module, month_start(now))
        uncount = getattr(self.buckets, "uncount", None)
        if uncount is not None and not self.buckets.down:
            uncount((ctx.tenant_id, module, f"{key[2]:%Y-%m}"))
        with self._lock:
            c = self._quota.get(key)
            if c is not None and c.n > 0:
                c.n -= 1

    def admit_platform(self, ctx: AuthContext) -> None:
        """Takes a token from the tenant's bucket for the endpoints outside the modules (tenant, subscriptions,
        keys, usage log, ingest, online lookups): no plan meters those, and ingest and exports are heavy."""
        rate = self.platform_rate
        if rate is not None:
            self._take(ctx, "platform", rate)

    def export_slot(self, ctx: AuthContext, limit: int) -> Callable[[], None]:
        """One of the tenant's ``limit`` usage-log exports that may stream at once (429 past them): an export
        reads every row of the range, up to three years of calls. Returns the release, which may be called more
        than once (the stream's end and the response's background task both call it)."""
        with self._lock:
            n = self._exports.get(ctx.tenant_id, 0)
            if n >= limit:
                raise TooManyRequests(
                    f"tenant '{ctx.tenant}' has {n} usage export(s) streaming; start another when one has finished",
                    retry_after_s=5,
                    code="too_many_exports",
                )
            self._exports[ctx.tenant_id] = n + 1
        done = threading.Event()

        def release() -> None:
            with self._lock:
                if done.is_set():
                    return
                done.set()
                left = self._exports.get(ctx.tenant_id, 1) - 1
                if left > 0:
                    self._exports[ctx.tenant_id] = left
                else:
                    self._exports.pop(ctx.tenant_id, None)

        return release

    def _take(self, ctx: AuthContext, bucket: str, rate: float, plan: str | None = None) -> None:
        """A token from the tenant's ``bucket``: a module's (``plan``: its subscription's) or, without a plan, the
        platform endpoints'; 429 naming them and the rate when it is empty."""
        wait = self.buckets.take((ctx.tenant_id, bucket), rate, max(1.0, rate * self.burst_s))
        if wait is not None:
            what = f"'{bucket}' faster than its {plan} plan's" if plan else "SFAI's platform endpoints faster than"
            raise RateLimited(
                f"tenant '{ctx.tenant}' is calling {what} {rate:g} calls per second; retry after the seconds in "
                "Retry-After",
                retry_after_s=wait,
            )

    def _count(self, ctx: AuthContext, module: str, quota: int, now: datetime, *, by_operator: bool = False) -> None:
        month = month_start(now)
        if month != self._month:  # a new month: last month's counts are done with
            with self._lock:
                self._month = month
                for d in (self._quota, self._synced):
                    for k in [k for k in d if k[2] != month]:
                        d.pop(k, None)
        key = (ctx.tenant_id, module, month)
        admitted = self._count_shared(key, quota, now)
        if admitted is None:
            admitted = self._count_local(key, quota)
        if not admitted:
            raise QuotaExceeded(
                f"tenant '{ctx.tenant}' has used its {quota} '{module}' calls for this month; "
                + ("its terms were set by the SFAI operator: ask your operator to raise the quota or change the plan"
                   if by_operator else "a tenant admin can change the plan on the console's Administration tab or "
                   "with POST /v1/subscriptions"),
                retry_after_s=(next_month_start(now) - now).total_seconds(),
            )

    def _count_shared(self, key: tuple[int, str, datetime], quota: int, now: datetime) -> bool | None:
        """Counts the call in Redis, shared by every process (exact): whether the quota had room; None without a
        Redis or while it is unreachable (the caller counts locally then). One round trip; the usage log is read
        once per counter (to start it) and once after each outage this process had (to add what it let through)."""
        count = getattr(self.buckets, "count", None)
        if count is None or self.buckets.down:  # no Redis, or away: no wait on it, nor a read of the log for it
            return None
        tenant_id, module, month = key
        name = (tenant_id, module, f"{month:%Y-%m}")
        expire_at = (next_month_start(now) + QUOTA_KEY_GRACE).timestamp()
        trips = self.buckets.trips
        floor = -1 if self._synced.get(key, 0) == trips else count_calls(self.db, tenant_id, module, month)
        got = count(name, quota, floor, expire_at)
        if got is not None and got[0] < 0:  # no counter yet: it starts from the usage log
            got = count(name, quota, count_calls(self.db, tenant_id, module, month), expire_at)
        if got is None:
            return None
        self._synced[key] = trips
        self._quota.pop(key, None)  # a later outage counts locally from a fresh read, not from this one's
        return got[0] == 1

    def quota_used(self, tenant_id: int, module: str) -> int | None:
        """The calls this process counts against the tenant's ``module`` quota this month (the usage log's count at
        its last read plus those admitted here since), or None where it keeps no count (no quota, counted in Redis,
        or no counted call here yet): ``GET /v1/<module>/status``, which is not counted itself, then reads the log."""
        c = self._quota.get((tenant_id, module, month_start(utcnow())))
        return None if c is None else c.base + c.n

    def _count_local(self, key: tuple[int, str, datetime], quota: int) -> bool:
        """Counts the call in this process: the usage log's count at the last read plus the calls admitted here
        since. The log is read again after ``QUOTA_REFRESH_S``, and once this process has admitted 1/``QUOTA_SHARES``
        of what it saw left at the last read: before every call once fewer than 2 x ``QUOTA_SHARES`` are left. Those
        reads keep the calls this process admitted that the log did not hold yet (still being answered).

        One process is so exact (but for calls running across a periodic read). N processes pass the quota by at
        most the sum, over them, of what each may still admit from its last read (its budget) and of the calls in
        flight at that read (admitted by any process, not logged yet); each admits at most the quota by itself.
        docs/platform.md gives the measurements."""
        tenant_id, module, month = key
        mono = time.monotonic()
        c = self._quota.get(key)
        periodic = c is None or mono - c.read_at > QUOTA_REFRESH_S
        if periodic or (c.n >= c.budget and c.base + c.n < quota):
            n0 = 0 if c is None else c.n
            counted = count_calls(self.db, tenant_id, module, month)
            with self._lock:
                cur = self._quota.get(key)
                if cur is None:
                    base = counted
                elif cur is c and periodic:
                    # every 30 s the log's count is taken as it is (the calls admitted during the read added), so
                    # that a call counted here but not logged as one (a 429 after its admission) does not stay
                    base = counted + (cur.n - n0)
                else:  # the log may not hold yet the calls this process admitted: the larger count
                    base = max(counted, cur.base + cur.n)
                c = self._quota[key] = _Count(base, 0, max(1, (quota - base) // QUOTA_SHARES), mono)
        with self._lock:
            if c.base + c.n >= quota:
                return False
            c.n += 1
            return True

    # invalidation --------------------------------------------------------------------------------------
    def invalidate(self, tenant_id: int | None = None) -> None:
        if tenant_id is None:
            self._subs.clear()
            self._quota.clear()
            self.buckets.clear()
        else:
            self._subs.pop(tenant_id, None)
            for k in [k for k in self._quota if k[0] == tenant_id]:
                self._quota.pop(k, None)
        if tenant_id is None:
            self._keys.clear()
            return
        # only this tenant's keys and the unknown ones (a key just created may have been tried before): a tenant
        # admin's changes do not cost every other tenant its cached keys
        for digest in [d for d, (_, ctx) in list(self._keys.items()) if ctx is None or ctx.tenant_id == tenant_id]:
            self._keys.pop(digest, None)

    # cheap probes, so that the request path goes to a worker thread only on a cache miss ---------------
    def count_cached(self, tenant_id: int, module: str) -> bool:
        """Whether :meth:`admit` can count a call to ``module`` without reading the usage log (the subscriptions
        are cached, as :meth:`subscriptions_cached` checks): no quota, a Redis counter in step, or a local count
        fresh and within its budget. The log's count takes 40-90 ms for a tenant with 330,000 calls this month, and
        on the event loop it held every tenant's calls that long, every 30 s and on each of the last calls before
        the quota (performance audit): where it is due, the caller admits in a worker thread."""
        hit = self._subs.get(tenant_id)
        sub = hit[1].get(module) if hit is not None else None
        if sub is None or sub.request_quota is None:
            return True
        key = (tenant_id, module, month_start(utcnow()))
        if getattr(self.buckets, "count", None) is not None and not self.buckets.down:
            return self._synced.get(key, 0) == self.buckets.trips
        c = self._quota.get(key)
        return not (c is None or time.monotonic() - c.read_at > QUOTA_REFRESH_S
                    or (c.n >= c.budget and c.base + c.n < sub.request_quota))


    def subscriptions_cached(self, tenant_id: int, *, claim: bool = True) -> bool:
        """Fresh in the cache. With ``claim``, an expired entry is extended for the others while this caller
        refreshes (``admit(..., refresh=True)``); ``claim=False`` only looks."""
        hit = self._subs.get(tenant_id)
        if hit is None:
            return False
        now = time.monotonic()
        if hit[0] > now:
            return True
        if claim:
            self._subs[tenant_id] = (now + self.ttl_s, hit[1])
        return False
