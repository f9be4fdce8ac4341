"""A Redis online store that accepts connections and never answers: calls fail in seconds, and after the first
one at once (a circuit breaker), instead of holding every caller for a 5-s timeout each, one after the other."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from tests.serving import test_quota

silent_server = test_quota.blackhole  # a TCP server that accepts connections and never answers


def test_a_silent_redis_fails_calls_at_once_after_the_first(silent_server):
    from feature_store.online.redis import TIMEOUT_S, RedisOnlineStore

    store = RedisOnlineStore(silent_server)
    try:
        t0 = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            store.read("acme", "v", ["m-1"])
        first = time.monotonic() - t0
        assert first < TIMEOUT_S + 1.0 and store.breaker.open
        t0 = time.monotonic()
        for call in (lambda: store.read("acme", "v", ["m-1"]), lambda: store.write("acme", "v", {"m-1": (1, {})}),
                     lambda: store.delete_view("acme", "v")):
            with pytest.raises(redis.ConnectionError, match="the online store \\(Redis\\) is unreachable"):
                call()
        assert time.monotonic() - t0 < 0.1  # four calls at once had taken 20 s
    finally:
        store.close()


def test_the_breaker_closes_once_redis_answers(monkeypatch):
    from feature_store.online.redis import RedisOnlineStore

    store = RedisOnlineStore("redis://127.0.0.1:1/0")  # nothing listens: refused at once
    store.breaker.retry_s = 0.05
    answers = threading.Event()
    monkeypatch.setattr(store.client, "ping", lambda: answers.is_set() or (_ for _ in ()).throw(
        redis.ConnectionError("still away")))
    store.breaker.probe = store.client.ping
    with pytest.raises(redis.ConnectionError):
        store.read("acme", "v", ["m-1"])
    assert store.breaker.open
    answers.set()
    deadline = time.monotonic() + 5
    while store.breaker.open and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not store.breaker.open  # the next call tries Redis again
    store.close()
