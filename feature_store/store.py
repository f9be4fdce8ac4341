"""``FeatureStore``: one tenant's view of the feature store (registry, offline, online, joins).

    store = FeatureStore.for_tenant("acme")          # settings from the environment
    store.apply(machine_stats)                       # declare (or evolve) a view
    store.ingest("machine_stats", df)                # offline + online in one step
    train = store.get_training_frame(labels, ["machine_stats:*"])
    store.get_online_features("machine_stats", ["m-17"])

Everything a store touches is scoped to its tenant: registry rows, Parquet paths, online keys.
"""

from __future__ import annotations

import contextlib
import functools
import numbers
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from feature_store.offline import OfflineStore
from feature_store.online import OnlineStore, online_store_for
from feature_store.online.base import latest_rows
from feature_store.pit import _q, connect, parse_features, stored_columns, training_frame
from feature_store.registry import Registered, Registry
from feature_store.validate import conform, read_table
from feature_store.view import CREATED, TIMESTAMP, FeatureView, short_repr
from serving.db import Database
from serving.errors import InvalidInput
from serving.settings import Settings, get_settings
from serving.tenancy import get_tenant, utc_text

# the owner of the views the pipelines build (pipelines/views.py): a push of raw readings into one of them has its
# derived columns computed (pipelines/raw_ingest.py)
PIPELINES = "pipelines"

# How long a process trusts its copy of a view's declaration (another process may evolve it meanwhile).
VIEW_CACHE_S = 5.0


@dataclass(frozen=True, slots=True)
class IngestReport:
    view: str
    rows: int
    files: int
    partitions: list[str]
    online_updated: int
    # entities whose online row was left as it was: the store holds a newer reading of theirs (a late or replayed
    # batch; the offline store keeps these rows for training either way)
    online_skipped_older: int = 0


@dataclass(frozen=True, slots=True)
class Conformed:
    """A batch already checked and cast against ``view`` (``FeatureStore.conform``): ``ingest`` writes it as it
    is while ``view`` is still the registered declaration, instead of checking it a second time."""

    view: FeatureView
    table: pa.Table
    created_given: bool  # the batch carried its own ``created`` (part of its content)


@functools.lru_cache(maxsize=4096)
def _iso_us(ts_us: int) -> str:
    """An online row's event time (microseconds since the epoch) as ISO text; the hot rows' are remembered."""
    return utc_text(datetime.fromtimestamp(ts_us / 1e6, UTC))


def _utc(ts: datetime | str | None) -> datetime | None:
    if ts is None:
        return None
    t = pd.Timestamp(ts)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.to_pydatetime()


_NOT_A_TIME = ("now", "today")  # pandas reads them as the moment of the call: refused at ingest too


def _shown(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _known_at(value: object) -> datetime | None:
    """``as_known_at`` as a UTC instant (None: every row written), or InvalidInput: a time is a datetime, a date
    or ISO 8601 text (without an offset: UTC, as at ingest)."""
    if value is None:
        return None
    example = "a datetime or ISO 8601 text such as '2026-03-01T00:00:00Z'"
    if isinstance(value, str):
        text = value.strip()
        try:
            if not text or text.lower() in _NOT_A_TIME:
                raise ValueError
            t = pd.to_datetime(text, format="ISO8601")
        except (ValueError, OverflowError):
            raise InvalidInput(f"as_known_at {short_repr(value)} is not a time: pass {example}") from None
    elif isinstance(value, datetime | date | np.datetime64):
        try:
            t = pd.Timestamp(value)
        except (ValueError, OverflowError):
            raise InvalidInput(f"as_known_at {value!r} is out of range: pass {example}") from None
    else:
        raise InvalidInput(f"as_known_at must be {example}, not {type(value).__name__} {_shown(value)}")
    if pd.isna(t):
        raise InvalidInput("as_known_at is missing (NaT): pass a time, or None for every row written")
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.to_pydatetime()


def _online_key(k: object, i: int) -> str:
    """An entity id of an online read as the store keys it (text), or InvalidInput for what is no id."""
    if isinstance(k, str):  # a subclass: numpy's str_
        return str(k)
    if isinstance(k, numbers.Integral) and not isinstance(k, bool | np.bool_):
        return str(int(k))
    shown = "None" if k is None else f"{type(k).__name__} {_shown(k)}"
    raise InvalidInput(f"entity id {i + 1} must be text or a whole number, not {shown}")


# an ingest stamps ``created`` before its files appear, and a pipeline stamps every view at once and writes them one
# after another (minutes for a big run): rows written up to this long before the last run are read again
ARRIVAL_MARGIN = timedelta(hours=1)


class FeatureStore:
    def __init__(self, settings: Settings, db: Database, tenant: str, *, online: OnlineStore | None = None) -> None:
        self.settings = settings
        self.db = db
        t = get_tenant(db, tenant)
        self.tenant = t.name
        self.registry = Registry(db, t.id)
        self.offline = OfflineStore(settings.home / "features")
        self._views: dict[str, tuple[FeatureView, float]] = {}
        # how far ahead of this server's clock a reading may be stamped (``validate.MAX_CLOCK_SKEW_S``): the setting
        # ``SFAI_MAX_CLOCK_SKEW_S``, checked when the settings load (a bad value stops ``sfai`` at start)
        self.max_clock_skew_s = settings.max_clock_skew_s
        self.online = online or online_store_for(settings)

    @classmethod
    def for_tenant(cls, tenant: str, settings: Settings | None = None) -> FeatureStore:
        settings = settings or get_settings()
        settings.ensure_home()
        # an existing database of an older release is refused, not migrated (its servers may still run on it):
        # 'sfai db migrate' or 'sfai serve' upgrade it (serving.db.engine.migrate)
        return cls(settings, Database(settings.resolved_database_url, upgrade=False), tenant)

    # declarations ----------------------------------------------------------------------------------
    def apply(self, *views: FeatureView) -> list[Registered]:
        self._views.clear()
        return [self.registry.apply(v) for v in views]

    def get_view(self, name: str) -> FeatureView:
        """The view's latest declaration; cached for a few seconds, so that online reads touch no database."""
        now = time.monotonic()
        hit = self._views.get(name)
        if hit is not None and hit[1] > now:
            return hit[0]
        view = self.registry.get(name)[0]
        self._views[name] = (view, now + VIEW_CACHE_S)
        return view

    def list_views(self) -> list[tuple[FeatureView, int]]:
        return self.registry.list()

    # writes ----------------------------------------------------------------------------------------
    @staticmethod
    def conform(view: FeatureView, data, *, fmt: str | None = None) -> Conformed:  # noqa: ANN001
        """``data`` checked and cast to ``view`` (``validate.conform``), nothing stored: a caller can check every
        batch before it registers a view, then hand the result to ``ingest``. Raises InvalidInput."""
        raw = read_table(data, fmt=fmt)
        return Conformed(view, conform(view, raw), CREATED in raw.column_names)

    def ingest(self, view_name: str, data, *, fmt: str | None = None, write_online: bool = True) -> IngestReport:  # noqa: ANN001
        """Validate and append rows to the offline store, and update the online store with the newest.

        ``data`` may be a ``Conformed`` batch: checked against this very declaration, it is not checked again.

        Should the online write fail after the offline one succeeded, the exception is raised with the attribute
        ``sfai_written_offline`` (the offline ``WriteReport``): a caller that retries parts of a failed batch (the
        MQTT subscriber, an ingest call retried with its Idempotency-Key: :meth:`online_from_offline`) must not write
        those rows again."""
        view = self.get_view(view_name)
        if view.owner == PIPELINES and not isinstance(data, Conformed):
            # a view the pipelines build: the raw readings are sent, its derived columns computed as the pipeline
            # does (pipelines.raw_ingest); one push at a time per history view, which reads the rows stored before
            from pipelines import raw_ingest

            with raw_ingest.lock_for(self.tenant, view) or contextlib.nullcontext():
                derived = raw_ingest.derive(self, view, data, fmt=fmt)
                if derived is raw_ingest.ALREADY_STORED:  # a message delivered again: nothing new to store
                    return IngestReport(view.name, 0, 0, [], 0)
                return self._ingest(view, derived, fmt, write_online)
        return self._ingest(view, data, fmt, write_online)

    def _ingest(self, view: FeatureView, data, fmt: str | None, write_online: bool) -> IngestReport:  # noqa: ANN001
        skew = self.max_clock_skew_s
        if isinstance(data, Conformed):
            same = data.view.fingerprint() == view.fingerprint()
            table = data.table if same else conform(view, data.table, max_skew_s=skew)
            created_given = data.created_given
        else:
            raw = read_table(data, fmt=fmt)
            table, created_given = conform(view, raw, max_skew_s=skew), CREATED in raw.column_names
        report = self.offline.write(self.tenant, view, table, created_given=created_given)
        updated = skipped = 0
        if write_online:
            rows = latest_rows(view, table)
            try:
                updated = self.online.write(self.tenant, view.name, rows)
            except Exception as e:
                e.sfai_written_offline = report
                raise
            skipped = max(len(rows) - updated, 0)
        return IngestReport(view.name, report.rows, report.files, report.partitions, updated, skipped)

    def compact(self, view_name: str, *, min_files: int = 8):  # noqa: ANN201 - offline.CompactReport
        """Merge each partition's small files into one (see ``OfflineStore.compact``)."""
        return self.offline.compact(self.tenant, self.get_view(view_name), min_files=min_files)

    # training --------------------------------------------------------------------------------------
    def get_training_frame(
        self,
        entity_df: pd.DataFrame | pa.Table,
        features: Sequence[str],
        *,
        as_known_at: datetime | str | None = None,
        full_feature_names: bool = False,
    ) -> pd.DataFrame:
        """Point-in-time join of ``features`` ("view:feature" or "view:*") onto ``entity_df``.

        Raises InvalidInput, one line naming the problem, for a feature reference that is not one, an
        ``as_known_at`` that is not a time, and an entity frame the join cannot use (see ``pit.training_frame``)."""
        views = {v.name: v for v, _ in self.list_views()}
        wanted = parse_features(features, views)
        cut = _known_at(as_known_at)
        files = {name: self.offline.files(self.tenant, name) for name in wanted}
        with self._duck() as con:
            return training_frame(
                entity_df,
                wanted,
                views,
                files,
                as_known_at=cut,
                full_feature_names=full_feature_names,
                con=con,
                may_repeat_keys=self.offline.may_repeat_keys,
            )

    # online ----------------------------------------------------------------------------------------
    def materialize(self, view_name: str, start: datetime | str | None, end: datetime | str) -> int:
        """Load the latest value per entity with ``start <= event_timestamp < end`` into the online store."""
        return self._materialize(view_name, start, end, arrived_since=None)

    def _materialize(
        self, view_name: str, start: datetime | str | None, end: datetime | str, *, arrived_since: datetime | None
    ) -> int:
        """``arrived_since``: also the rows stamped before ``start`` that were written (``created``) since then,
        a backfill of history after the last run (the online store keeps the newer of its row and the written one)."""
        view = self.get_view(view_name)
        files = self.offline.files(self.tenant, view.name)
        if not files:
            return 0
        start, end = _utc(start), _utc(end)
        key, ts = _q(view.join_key), _q(TIMESTAMP)
        cols = ", ".join([key, ts, *stored_columns(view, view.feature_names, files)])
        file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
        where, params = [f"{ts} < ?"], [end]
        if start is not None and arrived_since is not None:
            where.append(f"({ts} >= ? OR {_q(CREATED)} >= ?)")
            params += [start, arrived_since]
        elif start is not None:
            where.append(f"{ts} >= ?")
            params.append(start)
        sql = (
            f"SELECT {cols} FROM read_parquet({file_list}, union_by_name = true) WHERE {' AND '.join(where)} "
            f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {ts} DESC, {_q(CREATED)} DESC) = 1"
        )
        with self._duck() as con:
            table = con.sql(sql, params=params).to_arrow_table()
        rows = latest_rows(view, table)
        self.online.write(self.tenant, view.name, rows)
        return len(rows)

    def online_from_offline(self, view_name: str, data, *, fmt: str | None = None) -> int:  # noqa: ANN001
        """The online rows of a batch the offline store holds already (its online write had failed), from the
        offline store: each entity's latest value within the batch's time span, where a later batch's correction
        of the same instant wins (writing the batch's own rows again had put the corrected value back). Returns the
        entities written."""
        view = self.get_view(view_name)
        if view.owner == PIPELINES:  # the raw readings of a pipeline view: its times are all that is needed
            from pipelines import raw_ingest

            data = raw_ingest.derive(self, view, data, fmt=fmt, history=False)
        table = conform(view, read_table(data, fmt=fmt), max_skew_s=float("inf"))
        if table.num_rows == 0:
            return 0
        stamps = pc.min_max(table.column(TIMESTAMP))
        first, last = stamps["min"].as_py(), stamps["max"].as_py()
        return self._materialize(view_name, first, last + timedelta(microseconds=1), arrived_since=None)

    def entity_history(
        self, view_name: str, key: object, since: datetime, until: datetime, features: Sequence[str]
    ) -> pa.Table:
        """One entity's rows of ``features`` stamped in (``since``, ``until``], oldest first, from the offline
        store's Parquet files of those dates: the latest written version of each time, and a gap stays a gap (a
        point-in-time join would carry the reading before it). An energy forecast by meter id reads its week of
        history here: the online store keeps the latest reading only."""
        view = self.get_view(view_name)
        since, until = _utc(since), _utc(until)
        first, last = f"date={since:%Y-%m-%d}", f"date={until:%Y-%m-%d}"  # partitions by UTC event date
        files = [f for f in self.offline.files(self.tenant, view.name) if first <= Path(f).parent.name <= last]
        schema = pa.schema([view.arrow_schema().field(TIMESTAMP), *(view.arrow_schema().field(n) for n in features)])
        if not files:
            return schema.empty_table()
        ts = _q(TIMESTAMP)
        file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
        sql = (
            f"SELECT {ts}, {', '.join(stored_columns(view, features, files))} "
            f"FROM read_parquet({file_list}, union_by_name = true) WHERE {_q(view.join_key)} = ? AND {ts} > ? "
            f"AND {ts} <= ? QUALIFY row_number() OVER (PARTITION BY {ts} ORDER BY {_q(CREATED)} DESC) = 1 "
            f"ORDER BY {ts}"
        )
        key = int(key) if view.entity.dtype == "int64" else str(key)
        with self._duck() as con:
            return con.sql(sql, params=[key, since, until]).to_arrow_table()

    def materialize_incremental(self, view_name: str, end: datetime | str | None = None) -> int:
        """Materialize what arrived since the last (incremental) materialization, up to ``end`` (now): the rows
        stamped since then, and older rows written since then (history loaded late)."""
        end = _utc(end) or datetime.now(UTC)
        start = self.registry.materialized_until(view_name)
        # rows written within ARRIVAL_MARGIN of the last run are read again (the online store keeps the newer row),
        # rather than missed for good
        arrived = None if start is None else start - ARRIVAL_MARGIN
        n = self._materialize(view_name, start, end, arrived_since=arrived)
        self.registry.set_materialized_until(view_name, end)
        return n

    def get_online_features(
        self, view_name: str, entity_ids: Sequence, features: Sequence[str] | None = None
    ) -> list[dict]:
        """One dict per entity id: its key, ``event_timestamp`` and the features (None where unknown or
        older than the view's TTL). An id that is not text or a whole number, ``entity_ids`` or ``features`` given
        as one string, or an unknown feature is InvalidInput."""
        view = self.get_view(view_name)
        if isinstance(features, str | bytes):
            raise InvalidInput(f"features must be a list of feature names, such as [{_shown(features)}], not one "
                               "string")
        if features:
            names = list(features)
            known = view.feature_names
            for n in names:
                if not isinstance(n, str) or n not in known:
                    raise InvalidInput(f"feature view {view.name!r} has no feature {_shown(n)}; it has "
                                       f"{', '.join(known)}")
        else:
            names = view.feature_names
        if isinstance(entity_ids, str | bytes) or not isinstance(entity_ids, Iterable):
            shown = f"[{_shown(entity_ids)}], not one string" if isinstance(entity_ids, str | bytes) else (
                f"['m-17'], not {type(entity_ids).__name__}")
            raise InvalidInput(f"entity_ids must be a list of ids, such as {shown}")
        keys = [k if type(k) is str else _online_key(k, i) for i, k in enumerate(entity_ids)]
        now_us = time.time_ns() // 1000
        ttl_us = None if view.ttl is None else int(view.ttl.total_seconds() * 1_000_000)
        join_key = view.join_key
        out = []
        for key, hit in zip(keys, self.online.read(self.tenant, view.name, keys), strict=True):
            if hit is not None and (ttl_us is None or now_us - hit[0] <= ttl_us):
                values = hit[1]
                row = {join_key: key, TIMESTAMP: _iso_us(hit[0])}
                for n in names:
                    row[n] = values.get(n)
            else:
                row = {join_key: key, TIMESTAMP: None, **dict.fromkeys(names)}
            out.append(row)
        return out

    # helpers ---------------------------------------------------------------------------------------
    def _duck(self) -> duckdb.DuckDBPyConnection:
        return connect(self.settings.duckdb_memory_limit, self.settings.home / "tmp" / "duckdb")

    def close(self) -> None:
        self.online.close()


__all__ = ["Conformed", "FeatureStore", "IngestReport"]
