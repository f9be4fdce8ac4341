"""Redis online store: one string per (tenant, view, entity) holding ``[ts, values]``; a Lua script keeps
the newer of the stored and the written row, so concurrent writers never go back in time.

A Redis that accepts connections and never answers must not hold the API up: reads of a few ids run on the event
loop, and with a 5-s socket timeout four calls by entity id took 20 s, one after the other, while every tenant's
calls waited (performance audit). Calls now time out in ``TIMEOUT_S`` (connecting in ``CONNECT_TIMEOUT_S``), and
after a failure a circuit breaker (``serving.ratelimit.Breaker``) fails every call at once (a 503 naming the online
store) while one background thread probes Redis until it answers.

A Redis that answers but refuses the call for a reason of its own (its memory full under ``noeviction``: OOM; a
replica after a failover: READONLY; a script running too long: BUSY; a replica cut off from its primary:
MASTERDOWN; ...) is as unavailable to the caller: :class:`OnlineStoreRefused`, a ``redis.ConnectionError``, which
the API answers 503 ``online_store_unavailable`` (it had been a 500 with a traceback: ingesting 20,000 rows into a
2-MB Redis). Such a refusal opens the breaker where Redis refuses every call (``SERVER_DOWN``), not where it refuses
writes only (``WRITES_REFUSED``: reads by entity id still work, and the probe's PING answers). An error of the call
itself (a wrong argument, a script error) is not the store's outage and stays a ``redis.ResponseError``.
"""

from __future__ import annotations

import re
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


# Redis error codes (the reply's first word) of a server that refuses calls for a reason of its own, not the call's
WRITES_REFUSED = frozenset({"OOM", "READONLY", "NOREPLICAS", "MISCONF"})  # reads still answered
SERVER_DOWN = frozenset({"BUSY", "MASTERDOWN", "CLUSTERDOWN", "LOADING", "TRYAGAIN"})  # every call refused
# Redis before 7 wraps an error inside a script: "ERR Error running script (...): @user_script:7: -OOM command ..."
_IN_SCRIPT = re.compile(r"-(" + "|".join(sorted(WRITES_REFUSED | SERVER_DOWN)) + r")\b")


_CODES = ((redis.exceptions.OutOfMemoryError, "OOM"), (redis.exceptions.ReadOnlyError, "READONLY"),
          (redis.exceptions.MasterDownError, "MASTERDOWN"), (redis.exceptions.ClusterDownError, "CLUSTERDOWN"),
          (redis.exceptions.TryAgainError, "TRYAGAIN"))  # redis-py's classes, where the reply's code is not kept


class OnlineStoreRefused(redis.ConnectionError):
    """Redis answered, refusing the call for a reason of the server's (``code``: OOM, READONLY, BUSY, ...)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"the online store (Redis) refuses the call: {code} {detail}".strip())
        self.code = code


def refusal_code(error: redis.RedisError) -> str | None:
    """The error code of a Redis server refusing a call for a reason of its own (``WRITES_REFUSED``,
    ``SERVER_DOWN``), None for any other error (the call's own: a wrong argument, a script's error)."""
    code = getattr(error, "status_code", None) or next(
        (c for kind, c in _CODES if isinstance(error, kind)), str(error).split(" ", 1)[0])
    if code in WRITES_REFUSED or code in SERVER_DOWN:
        return code
    found = _IN_SCRIPT.search(str(error)) if code == "ERR" else None
    return found.group(1) if found else None


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
        except redis.ResponseError as e:
            code = refusal_code(e)
            if code is None:  # the call's own error: not an outage
                raise
            refused = OnlineStoreRefused(code, " ".join(str(e).split())[:200])
            if code in SERVER_DOWN:
                self.breaker.failed(refused)
            raise refused from e

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
