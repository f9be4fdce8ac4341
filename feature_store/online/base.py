"""The online store interface and how a backend is chosen (``SFAI_ONLINE_STORE``: ``sqlite`` or ``redis://...``)."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from feature_store.view import TIMESTAMP, FeatureView
from serving.tenancy import utc_text

# one online row: entity key -> (event time in microseconds since the epoch, {feature: value})
OnlineRows = dict[str, tuple[int, dict]]


def _json_values(arr: pa.Array | pa.ChunkedArray) -> list:
    """A column as JSON-ready Python values: NaN and infinities become None, times ISO strings."""
    t = arr.type
    if pa.types.is_floating(t):
        finite = pc.if_else(pc.is_finite(arr), arr, pa.scalar(None, t))
        if t == pa.float32():  # its shortest decimal, the same float32: 1.2 had been stored as 1.2000000476837158
            finite = pc.cast(pc.cast(finite, pa.string()), pa.float64())  # in C: 35 x faster than per value
        return finite.to_pylist()
    if pa.types.is_timestamp(t) and t.tz is not None:  # UTC, written as every SFAI time is: ...Z
        return [utc_text(v) for v in arr.to_pylist()]
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t):
        return [None if v is None else v.isoformat() for v in arr.to_pylist()]
    return arr.to_pylist()


def latest_rows(view: FeatureView, table: pa.Table) -> OnlineRows:
    """The latest row per entity of a conformed table (ties: the later row in the table)."""
    if table.num_rows == 0:
        return {}
    ts = pc.cast(table.column(TIMESTAMP), pa.int64())
    order = pc.sort_indices(
        pa.table({"k": table.column(view.join_key), "t": ts, "i": pa.array(range(table.num_rows))}),
        sort_keys=[("k", "ascending"), ("t", "ascending"), ("i", "ascending")],
    ).to_numpy()
    keys = pc.take(table.column(view.join_key), order).to_numpy(zero_copy_only=False)
    # the last position of each key in key-then-time order: only those rows become Python objects
    last = np.flatnonzero(np.append(keys[1:] != keys[:-1], True))
    pick = pa.array(order[last])
    times = pc.take(ts, pick).to_pylist()
    names = list(view.feature_names)
    columns = [_json_values(pc.take(table.column(f), pick)) for f in names]
    entities = pc.take(table.column(view.join_key), pick).to_pylist()
    rows = zip(*columns, strict=True) if columns else [()] * len(entities)
    return {
        str(k): (t, dict(zip(names, values, strict=True)))
        for k, t, values in zip(entities, times, rows, strict=True)
    }


def encode(ts: int, values: dict) -> str:
    return json.dumps([ts, values], separators=(",", ":"))


def decode(payload: str | bytes) -> tuple[int, dict]:
    try:
        ts, values = orjson.loads(payload)  # every online lookup: a few times faster than json
    except orjson.JSONDecodeError:  # what orjson refuses (integers past 64 bits) json still reads
        ts, values = json.loads(payload)
    return ts, values


class OnlineStore(ABC):
    """Latest values per (tenant, view, entity). Writes never go back in time: an older row is ignored."""

    @abstractmethod
    def write(self, tenant: str, view: str, rows: OnlineRows) -> int:
        """Upsert rows; returns how many were applied (newer than what was stored)."""

    @abstractmethod
    def read(self, tenant: str, view: str, keys: Sequence[str]) -> list[tuple[int, dict] | None]:
        """The stored (time, values) per key, None where the entity has none."""

    @abstractmethod
    def delete_view(self, tenant: str, view: str) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional
        pass


def open_online_store(
    spec: str, home: Path, *, redis_prefix: str = "sfai:", recheck_s: float | None = None
) -> OnlineStore:
    """``recheck_s``: SQLite only, how often a cached row is checked against commits of other processes."""
    if spec in ("", "sqlite") or spec.startswith("sqlite:"):
        from feature_store.online.sqlite import RECHECK_S, SqliteOnlineStore

        path = spec.split(":", 1)[1].lstrip("/") if spec.startswith("sqlite:") and spec != "sqlite:" else None
        return SqliteOnlineStore(Path("/" + path) if path else Path(home) / "online.db",
                                 recheck_s=RECHECK_S if recheck_s is None else recheck_s)
    if spec.startswith(("redis://", "rediss://", "unix://")):
        from feature_store.online.redis import RedisOnlineStore

        return RedisOnlineStore(spec, prefix=redis_prefix)
    raise ValueError(f"unknown online store {spec!r}: use 'sqlite' or a redis:// URL")


def online_store_for(settings) -> OnlineStore:  # noqa: ANN001 - serving.settings.Settings
    """The online store a deployment's settings name (``SFAI_ONLINE_STORE``, its Redis prefix, its recheck)."""
    return open_online_store(settings.online_store, settings.home, redis_prefix=settings.redis_prefix,
                             recheck_s=settings.online_recheck_ms / 1000)
