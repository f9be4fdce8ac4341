"""Token buckets for the per-subscription rate limits: in this process, or shared by every process in Redis.

``LocalBuckets`` (the default) keeps one bucket per subscription in each serving process, so N workers allow N
times the rate. ``RedisBuckets`` (``SFAI_RATE_LIMIT_REDIS=redis://...``) keeps them in Redis, updated by one
atomic script with Redis' own clock, so the rate holds across workers and hosts. If Redis cannot be reached the
call is let through and a warning logged: a rate limiter that fails closed would take the API down with it.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("sfai.ratelimit")

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


class LocalBuckets:
    def __init__(self) -> None:
        self._buckets: dict[tuple, list[float]] = {}  # key -> [tokens, refilled at (monotonic)]
        self._lock = threading.Lock()

    def take(self, key: tuple, rate: float, capacity: float) -> float | None:
        """None if a token was taken, else the seconds until one is there."""
        mono = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = [capacity, mono]
            else:
                bucket[0] = min(capacity, bucket[0] + (mono - bucket[1]) * rate)
                bucket[1] = mono
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


class RedisBuckets:
    def __init__(self, url: str, prefix: str = "sfai:") -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.prefix = prefix
        self._take = self.client.register_script(_TAKE_LUA)
        self._warned = 0.0

    def take(self, key: tuple, rate: float, capacity: float) -> float | None:
        import redis

        name = f"{self.prefix}rate:{':'.join(map(str, key))}"
        try:
            allowed, tokens = self._take(keys=[name], args=[rate, capacity])
        except redis.RedisError as e:
            now = time.monotonic()
            if now - self._warned > 10:  # one line every 10 s while Redis is away, not one per call
                self._warned = now
                log.warning("rate limits not enforced: Redis unreachable (%s)", e)
            return None
        if allowed:
            return None
        return (1.0 - float(tokens)) / rate

    def clear(self) -> None:
        pass  # the buckets expire by themselves once full


def make_buckets(redis_url: str | None, prefix: str = "sfai:") -> LocalBuckets | RedisBuckets:
    return RedisBuckets(redis_url, prefix) if redis_url else LocalBuckets()
