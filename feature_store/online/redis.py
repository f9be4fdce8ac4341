"""Redis online store: one string per (tenant, view, entity) holding ``[ts, values]``; a Lua script keeps
the newer of the stored and the written row, so concurrent writers never go back in time."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from feature_store.online.base import OnlineRows, OnlineStore, decode, encode

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
        self.client = redis.Redis.from_url(url, socket_timeout=5)
        self.prefix = prefix
        self._upsert = self.client.register_script(_UPSERT_LUA)

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
            applied += int(self._upsert(keys=keys, args=args))
        return applied

    def read(self, tenant: str, view: str, keys: Sequence[str]) -> list[tuple[int, dict] | None]:
        raw = self.client.mget([self._key(tenant, view, k) for k in keys])
        out: list[tuple[int, dict] | None] = []
        for r in raw:
            out.append(None if r is None else decode(r.split(b"|", 1)[1]))
        return out

    def delete_view(self, tenant: str, view: str) -> None:
        for key in self.client.scan_iter(match=f"{self.prefix}{tenant}:{view}:*", count=1000):
            self.client.delete(key)

    def close(self) -> None:
        self.client.close()
