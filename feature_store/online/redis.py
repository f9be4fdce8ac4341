"""Redis online store: one string per (tenant, view, entity) holding ``[ts, values]``; a Lua script keeps
the newer of the stored and the written row, so concurrent writers never go back in time.

A Redis that accepts connections and never answers must not hold the API up: reads of a few ids run on the event
loop, and with a 5-s socket timeout four calls by entity id took 20 s, one after the other, while every tenant's
calls waited (performance audit). Calls now time out in ``TIMEOUT_S`` (connecting in ``CONNECT_TIMEOUT_S``), and
after a failure a circuit breaker (``serving.ratelimit.Breaker``) fails every call at once (a 503 naming the online
store) while one background thread probes Redis until it answers.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from feature_store.online.base import OnlineRows, OnlineStore, decode, encode
from serving.ratelimit import Breaker

TIMEOUT_S = 2.0  # a read of 16 ids or a write of 1,000 rows takes milliseconds
CONNECT_TIMEOUT_S = 1.0

# KEYS: keys; ARGV: ts1, payload1, ts2, payload2, ...  Stored value: "<ts>|<payload>"
_UPSERT_LUA = """
local applied = 0
for i, key in ipairs(KEYS) do
  local ts = tonumber(ARGV[2 * i - 1])
  local cur = redis.call('GET', key)
  local cur_ts = cur and tonumber(string.sub(cur, 1, string.find(cur, '|', 1, true) - 1)) or nil
  if (not cur_ts) or ts >= cur_ts then
    redis.call('SET', key, ARGV[2 * i - 1] .. '|' .. ARGV[2 * i])
    applied = applied + 1
  end
end
return applied
"""


class RedisOnlineStore(OnlineStore):
    def __init__(self, url: str, *, prefix: str = "sfai:") -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=CONNECT_TIMEOUT_S)
        self.prefix = prefix
        self._upsert = self.client.register_script(_UPSERT_LUA)
        self.breaker = Breaker(self.client.ping, "online reads and writes fail at once (503)")

    def _call(self, fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        """``fn(*args, **kwargs)`` against Redis, through the breaker: failing at once while it is open."""
        if self.breaker.open:
            raise redis.ConnectionError("the online store (Redis) is unreachable; it is probed again every "
                                        f"{self.breaker.retry_s:g} s")
        try:
            return fn(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as e:
            self.breaker.failed(e)
            raise

    def _key(self, tenant: str, view: str, entity: str) -> str:
        return f"{self.prefix}{tenant}:{view}:{entity}"

    def write(self, tenant: str, view: str, rows: OnlineRows, batch: int = 1000) -> int:
        items = list(rows.items())
        applied = 0
        for i in range(0, len(items), batch):
            chunk = items[i : i + batch]
            keys = [self._key(tenant, view, k) for k, _ in chunk]
            args: list = []
            for _, (ts, values) in chunk:
                args += [ts, encode(ts, values)]
            applied += int(self._call(self._upsert, keys=keys, args=args))
        return applied

    def read(self, tenant: str, view: str, keys: Sequence[str]) -> list[tuple[int, dict] | None]:
        raw = self._call(self.client.mget, [self._key(tenant, view, k) for k in keys])
        out: list[tuple[int, dict] | None] = []
        for r in raw:
            out.append(None if r is None else decode(r.split(b"|", 1)[1]))
        return out

    def delete_view(self, tenant: str, view: str) -> None:
        keys = self._call(lambda: list(self.client.scan_iter(match=f"{self.prefix}{tenant}:{view}:*", count=1000)))
        for i in range(0, len(keys), 1000):
            self._call(self.client.delete, *keys[i : i + 1000])

    def close(self) -> None:
        self.client.close()
