"""Token buckets for the per-subscription rate limits, and the monthly quota counters: in this process, or shared by
every process in Redis.

``LocalBuckets`` (the default) keeps one bucket per subscription in each serving process, so N workers allow N
times the rate. ``RedisBuckets`` (``SFAI_RATE_LIMIT_REDIS=redis://...``) keeps them in Redis, updated by one
atomic script with Redis' own clock, so the rate holds across workers and hosts; it also keeps each subscription's
count of calls this month (:meth:`RedisBuckets.count`), so that the quota holds across them too.

If Redis cannot be reached the call is let through and a warning logged: a rate limiter that fails closed would take
the API down with it. Nor may it hold the API up: the calls run on the event loop, so a Redis that accepts
connections and never answers cost every call the socket timeout, one after the other (40 calls: 16 s). After a
failure a circuit breaker makes every call skip Redis at once, while one background thread probes it every
``BREAKER_RETRY_S`` and closes the breaker when it answers: an outage costs one call the timeout, not every call.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable

log = logging.getLogger("sfai.ratelimit")

REDIS_TIMEOUT_S = 0.5  # connect and socket timeout of a Redis call (the one that finds Redis gone waits this long)
BREAKER_RETRY_S = 2.0  # while Redis is away, calls skip it; a background probe tries it again this often
WARN_EVERY_S = 10.0  # one warning line per this many seconds while Redis is away, not one per call

# KEYS[1] the bucket; ARGV rate (tokens/s), capacity. Returns {1|0, tokens left (string)}.
_TAKE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(b[1]), tonumber(b[2])
if tokens == nil then tokens = cap; ts = now end
tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(cap / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""

# KEYS[1] a subscription's calls this month; ARGV quota, floor (-1: none), expiry (Unix ms). The count is raised to
# the floor (the usage log's count: the seed of a new counter, or calls a process counted itself while Redis was
# away); then one call is counted if the quota has room. Returns {1 counted | 0 quota used up | -1 no counter and
# no floor: seed it, count}.
_COUNT_LUA = """
local quota, floor = tonumber(ARGV[1]), tonumber(ARGV[2])
local n = tonumber(redis.call('GET', KEYS[1]))
if n == nil and floor < 0 then return {-1, 0} end
if n == nil or floor > n then
  n = floor
  redis.call('SET', KEYS[1], ARGV[2])  -- the integer as sent (a Lua number may be written as 1e+14)
  redis.call('PEXPIREAT', KEYS[1], ARGV[3])
end
if n >= quota then return {0, n} end
return {1, redis.call('INCR', KEYS[1])}
"""

# KEYS[1] a subscription's calls this month: one call taken back off (a call refused after it was counted)
_UNCOUNT_LUA = """
local n = tonumber(redis.call('GET', KEYS[1]))
if n ~= nil and n > 0 then return redis.call('DECR', KEYS[1]) end
return n
"""


class LocalBuckets:
    """Token buckets in this process. ``max_keys``: at most so many buckets are held (the buckets of client
    addresses, which a client can make up without end: 300,000 addresses had held 80 MB); past it, the buckets full
    again are dropped (a full bucket is what a new one is), and if every one is in use, the half refilled longest
    ago."""

    def __init__(self, max_keys: int | None = None) -> None:
        # key -> [tokens, refilled at (monotonic), rate, capacity]
        self._buckets: dict[tuple, list[float]] = {}
        self._lock = threading.Lock()
        self.max_keys = max_keys

    def _make_room(self, mono: float) -> None:
        full = [k for k, (tokens, at, rate, capacity) in self._buckets.items()
                if tokens + (mono - at) * rate >= capacity]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= self.max_keys:
            by_age = sorted(self._buckets, key=lambda k: self._buckets[k][1])
            for k in by_age[: len(by_age) // 2 + 1]:
                del self._buckets[k]

    def take(self, key: tuple, rate: float, capacity: float) -> float | None:
        """None if a token was taken, else the seconds until one is there."""
        mono = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if self.max_keys is not None and len(self._buckets) >= self.max_keys:
                    self._make_room(mono)
                bucket = self._buckets[key] = [capacity, mono, rate, capacity]
            else:
                bucket[0] = min(capacity, bucket[0] + (mono - bucket[1]) * rate)
                bucket[1:] = mono, rate, capacity  # a plan changed: the new rate from now on
            if bucket[0] < 1.0:
                return (1.0 - bucket[0]) / rate
            bucket[0] -= 1.0
            return None

    def wait(self, key: tuple, rate: float, capacity: float) -> float | None:
        """Like :meth:`take` without taking: None while a token is there, else the seconds until one is."""
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return None
            tokens = min(capacity, bucket[0] + (time.monotonic() - bucket[1]) * rate)
            return None if tokens >= 1.0 else (1.0 - tokens) / rate

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)


class Breaker:
    """A circuit breaker that fails open without waiting. :meth:`failed` opens it; while it is ``open`` callers skip
    the service, and one background thread calls ``probe`` every ``retry_s`` seconds (one call, never a request's)
    until it succeeds, which closes it. ``trips`` counts the openings, so that a caller can tell that it missed
    the service since it last looked."""

    def __init__(self, probe: Callable[[], object], meanwhile: str, retry_s: float = BREAKER_RETRY_S) -> None:
        self.probe = probe
        self.meanwhile = meanwhile  # what the warning says happens while the service is away
        self.retry_s = retry_s
        self.open = False
        self.trips = 0
        self._lock = threading.Lock()
        self._warned = float("-inf")

    def failed(self, error: BaseException) -> None:
        with self._lock:
            self._warn(error)
            if self.open:
                return
            self.open = True
            self.trips += 1
        # the thread holds the breaker weakly: it ends with its process' Access (tests build many)
        threading.Thread(target=_probe_until_back, args=(weakref.ref(self),), name="sfai-redis-probe",
                         daemon=True).start()

    def _warn(self, error: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY_S:
            self._warned = now
            log.warning("Redis unreachable (%s): %s; calls skip it, probing it every %g s",
                        error, self.meanwhile, self.retry_s)

    def _probed(self, error: BaseException | None) -> bool:
        """Records a probe's outcome; True once the breaker is closed."""
        with self._lock:
            if error is not None:
                self._warn(error)
                return False
            self.open = False
        log.warning("Redis answers again: calls use it")
        return True


def _probe_until_back(ref: weakref.ref) -> None:
    while True:
        breaker = ref()
        if breaker is None:
            return
        retry_s = breaker.retry_s
        del breaker
        time.sleep(retry_s)
        breaker = ref()
        if breaker is None:
            return
        try:
            breaker.probe()
            error = None
        except Exception as e:  # noqa: BLE001 - any failure keeps the breaker open
            error = e
        if breaker._probed(error):
            return
        del breaker


class RedisBuckets:
    def __init__(self, url: str, prefix: str = "sfai:") -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
        self.prefix = prefix
        self._take = self.client.register_script(_TAKE_LUA)
        self._count = self.client.register_script(_COUNT_LUA)
        self._uncount = self.client.register_script(_UNCOUNT_LUA)
        self.breaker = Breaker(self.client.ping, "rate limits not enforced, quotas counted in each process")

    @property
    def down(self) -> bool:
        """Redis was found unreachable and has not answered since: calls skip it."""
        return self.breaker.open

    @property
    def trips(self) -> int:
        """How many times Redis was found unreachable in this process (while it is, calls skip it)."""
        return self.breaker.trips

    def _call(self, script, name: str, args: list) -> list | None:
        """The script's answer, or None without waiting while Redis is unreachable (the breaker is open)."""
        import redis

        if self.breaker.open:
            return None
        try:
            return script(keys=[name], args=args)
        except redis.RedisError as e:
            self.breaker.failed(e)
            return None

    def take(self, key: tuple, rate: float, capacity: float) -> float | None:
        got = self._call(self._take, f"{self.prefix}rate:{':'.join(map(str, key))}", [rate, capacity])
        if got is None or got[0]:
            return None
        return (1.0 - float(got[1])) / rate

    def count(self, key: tuple, quota: int, floor: int, expire_at: float) -> tuple[int, int] | None:
        """Counts one call against ``quota`` in the counter ``key`` (a subscription's month), atomically for every
        process: (1, calls counted with it) if the quota had room, (0, calls counted) if not; (-1, 0) when there is
        no counter and no ``floor`` (-1) to start it from; None while Redis is unreachable. The counter is first
        raised to ``floor`` and expires at ``expire_at`` (Unix seconds)."""
        got = self._call(self._count, f"{self.prefix}quota:{':'.join(map(str, key))}",
                         [quota, floor, int(expire_at * 1000)])
        return None if got is None else (int(got[0]), int(got[1]))

    def uncount(self, key: tuple) -> None:
        """Takes one call back off the counter ``key`` (never below 0); nothing while Redis is unreachable."""
        self._call(self._uncount, f"{self.prefix}quota:{':'.join(map(str, key))}", [])

    def clear(self) -> None:
        pass  # the buckets expire by themselves once full, the counters after their month


def make_buckets(redis_url: str | None, prefix: str = "sfai:") -> LocalBuckets | RedisBuckets:
    return RedisBuckets(redis_url, prefix) if redis_url else LocalBuckets()
