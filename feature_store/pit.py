"""Point-in-time correct training frames: an as-of join per entity, per view, on DuckDB.

For each row of the entity frame (entity key, ``event_timestamp``) and each view, the value taken is the
view's row for that key with the latest ``event_timestamp`` at or before the row's time (ties: the latest
``created``), provided it is within the view's TTL and, with ``as_known_at``, was written (``created``)
no later than that cut. Otherwise the features are null.

DuckDB streams the Parquet files and spills to disk under a memory limit, so the join also runs when the
data are larger than memory.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feature_store.view import CREATED, TIMESTAMP, FeatureView
from serving.errors import InvalidInput

ROW = "__sfai_row"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def connect(memory_limit: str = "2GB", temp_dir: Path | None = None, threads: int | None = None):
    con = duckdb.connect(config={"memory_limit": memory_limit, "threads": threads or os.cpu_count() or 1})
    con.execute("SET TimeZone = 'UTC'")
    if temp_dir is not None:
        Path(temp_dir).mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = '{temp_dir}'")
    con.execute("SET preserve_insertion_order = false")
    return con


def parse_features(refs: Sequence[str], views: dict[str, FeatureView]) -> dict[str, list[str]]:
    """``["machine_stats:temp_mean", "machine_stats:*"]`` -> {view: [features]} (in order, unique)."""
    try:
        if isinstance(refs, str | bytes):
            raise TypeError
        refs = list(refs)
    except TypeError:
        shown = repr(refs) if isinstance(refs, str | bytes) else type(refs).__name__
        raise InvalidInput(f"features must be a list of 'view:feature' or 'view:*' references, such as "
                           f"['machine_stats:*'], not {shown}") from None
    if not refs:
        raise InvalidInput("features is empty: name at least one 'view:feature' or 'view:*'")
    out: dict[str, list[str]] = {}
    for ref in refs:
        if not isinstance(ref, str):
            raise InvalidInput(f"feature reference {ref!r} must be text like 'view:feature' or 'view:*'")
        view_name, sep, feat = ref.partition(":")
        if not sep or not feat:
            raise InvalidInput(f"feature reference {ref!r} must look like 'view:feature' or 'view:*'")
        if view_name not in views:
            raise InvalidInput(f"unknown feature view {view_name!r} in {ref!r}")
        view = views[view_name]
        names = view.feature_names if feat == "*" else [feat]
        for n in names:
            if n not in view.feature_names:
                raise InvalidInput(f"feature view {view_name!r} has no feature {n!r}; it has "
                                   f"{', '.join(view.feature_names)}")
            lst = out.setdefault(view_name, [])
            if n not in lst:
                lst.append(n)
    return out


def _entity_table(entity_df: pd.DataFrame | pa.Table) -> pa.Table:
    """The entity frame as Arrow, or InvalidInput naming what cannot be read."""
    if isinstance(entity_df, pa.Table):
        names = entity_df.column_names
    elif isinstance(entity_df, pd.DataFrame):
        names = [str(c) for c in entity_df.columns]
    else:
        raise InvalidInput(f"the entity frame must be a pandas DataFrame or an Arrow table, not "
                           f"{type(entity_df).__name__}")
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise InvalidInput(f"the entity frame has two columns named {twice!r}")
    if isinstance(entity_df, pa.Table):
        return entity_df
    try:
        return pa.Table.from_pandas(entity_df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        for name in entity_df.columns:  # which column: Arrow's message names it in its own words
            try:
                pa.Array.from_pandas(entity_df[name])
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as col_e:
                why = " ".join(str(col_e.args[0] if col_e.args else col_e).split())
                raise InvalidInput(
                    f"column {str(name)!r} of the entity frame cannot be read ({why}): a column holds one kind of "
                    "value, all text, all numbers or all times"
                ) from None
        raise InvalidInput(f"the entity frame cannot be read: {' '.join(str(e).split())}") from None


def _first_null(col: pa.ChunkedArray) -> int:
    """The row (counted from 1) of the first missing value of ``col``."""
    return int(pc.index(pc.is_null(col), True).as_py()) + 1


def _check_key(table: pa.Table, key: str, view: FeatureView) -> None:
    """The entity frame's ``key`` column holds ids of the view's key type (a missing id reads no features)."""
    t = table.schema.field(key).type
    value = t.value_type if pa.types.is_dictionary(t) else t
    if pa.types.is_null(value):
        return
    if view.entity.dtype == "string":
        if pa.types.is_string(value) or pa.types.is_large_string(value) or pa.types.is_string_view(value):
            return
        hint = (f"pass them as text: df[{key!r}].astype(str) (an id is matched exactly: '017' is not '17')"
                if pa.types.is_integer(value) else "pass them as text")
        raise InvalidInput(f"the entity frame's {key!r} column holds {value} values, but feature view "
                           f"{view.name!r} keys its {view.entity.name} entities by text ids; {hint}")
    if pa.types.is_integer(value):
        return
    hint = ("a missing id makes pandas hold whole numbers as floats: use the nullable 'Int64' dtype"
            if pa.types.is_floating(value) else "pass whole numbers")
    raise InvalidInput(f"the entity frame's {key!r} column holds {value} values, but feature view {view.name!r} "
                       f"keys its {view.entity.name} entities by whole-number (int64) ids; {hint}")


def _entity_times(table: pa.Table) -> pa.ChunkedArray:
    """The entity frame's times as the store keeps them (microseconds, UTC), or InvalidInput."""
    col = table.column(TIMESTAMP)
    if not pa.types.is_timestamp(col.type):
        raise InvalidInput(
            f"{TIMESTAMP!r} of the entity frame must be a timestamp column, not {col.type} "
            "(text: pd.to_datetime(df['event_timestamp'], utc=True) first)"
        )
    if col.null_count:
        raise InvalidInput(
            f"row {_first_null(col)} of the entity frame has no {TIMESTAMP!r} (NaT): every row needs the time its "
            "features are read at"
        )
    if col.type.tz is None:  # naive: UTC
        col = pc.assume_timezone(col, "UTC")
    target = pa.timestamp("us", tz="UTC")  # the store's unit: microseconds, UTC
    if col.type == target:
        return col
    if col.type.unit == "ns":  # sub-microsecond digits: truncated (a coarser unit cannot overflow)
        return col.cast(target, safe=False)
    try:
        return col.cast(target)  # seconds or milliseconds: refused where past the microsecond range
    except pa.ArrowInvalid:
        raise InvalidInput(f"{TIMESTAMP!r} of the entity frame holds a time too far from 1970 to count in "
                           "microseconds, as the store does") from None


def training_frame(
    entity_df: pd.DataFrame | pa.Table,
    wanted: dict[str, list[str]],
    views: dict[str, FeatureView],
    files: dict[str, list[str]],
    *,
    as_known_at: datetime | None = None,
    full_feature_names: bool = False,
    con=None,  # noqa: ANN001
    may_repeat_keys=None,  # noqa: ANN001 - files -> bool; None: always resolve repeated (key, time) rows
) -> pd.DataFrame:
    """Join the wanted features onto ``entity_df`` (returned in its row order, its columns first).

    An entity frame the join cannot use (not a frame, a column of mixed types, no or missing times, ids of
    another type than the view's key) is InvalidInput naming the column or row."""
    table = _entity_table(entity_df)
    if TIMESTAMP not in table.column_names:
        raise InvalidInput(f"the entity frame needs an {TIMESTAMP!r} column")
    for name in wanted:
        key = views[name].join_key
        if key not in table.column_names:
            raise InvalidInput(f"the entity frame needs a {key!r} column for feature view {name!r}")
        _check_key(table, key, views[name])
    table = table.set_column(table.column_names.index(TIMESTAMP), TIMESTAMP, _entity_times(table))
    out_names: list[str] = []
    for name, feats in wanted.items():
        out_names += [f"{name}__{f}" if full_feature_names else f for f in feats]
    clash = {n for n in out_names if out_names.count(n) > 1 or n in table.column_names}
    if clash:
        raise InvalidInput(
            f"feature names {sorted(clash)} clash with each other or with the entity frame; "
            "pass full_feature_names=True"
        )

    def dedupe(view_files: list[str]) -> bool:
        return True if may_repeat_keys is None else may_repeat_keys(view_files)

    own = con is None
    con = con or connect()
    try:
        table = table.append_column(ROW, pa.array(range(table.num_rows), pa.int64()))
        con.register("__sfai_entities", table)
        selects = [f"e.{_q(c)}" for c in table.column_names if c != ROW]
        joins = []
        params: list = []
        for i, (name, feats) in enumerate(wanted.items()):
            view = views[name]
            alias = f"v{i}"
            key, ttl = view.join_key, view.ttl
            view_files = files.get(name, [])
            repeats = dedupe(view_files)
            src = _view_source(view, feats, view_files, as_known_at, params, dedupe=repeats)
            order = f"e.__k >= {alias}.__k" if repeats else f"e.{_q(TIMESTAMP)} >= {alias}.__ts"
            joins.append(f"ASOF LEFT JOIN ({src}) {alias} ON e.{_q(key)} = {alias}.{_q(key)} AND {order}")
            for f in feats:
                out = f"{name}__{f}" if full_feature_names else f
                col = f"{alias}.{_q(f)}"
                if ttl is not None:
                    micro = int(ttl.total_seconds() * 1_000_000)
                    col = f"CASE WHEN e.{_q(TIMESTAMP)} - {alias}.__ts <= to_microseconds({micro}) THEN {col} END"
                selects.append(f"{col} AS {_q(out)}")
        entities = f"(SELECT *, {_ENTITY_KEY} AS __k FROM __sfai_entities e)"
        sql = f"SELECT {', '.join(selects)} FROM {entities} e {' '.join(joins)} ORDER BY e.{ROW}"
        return con.sql(sql, params=params).to_arrow_table().to_pandas()
    finally:
        con.unregister("__sfai_entities")
        if own:
            con.close()


def _view_source(
    view: FeatureView,
    feats: list[str],
    files: list[str],
    as_known_at,
    params: list,
    *,
    dedupe: bool,  # noqa: ANN001
) -> str:
    """The view's rows as (key, __ts, [__k,] features). Where files may repeat an (entity, time), ``__k``
    orders rows by (event time, written time), so that the as-of join's "latest at or before" is also
    "written last" among rows of the same time."""
    key = _q(view.join_key)
    cols = ", ".join(stored_columns(view, feats, files))
    if not files:  # no data yet: an empty relation of the right shape
        schema = view.arrow_schema()
        casts = ", ".join(
            f"CAST(NULL AS {_duck_type(schema.field(c).type)}) AS {_q(c)}" for c in [view.join_key, *feats]
        )
        return f"SELECT {casts}, CAST(NULL AS TIMESTAMPTZ) AS __ts WHERE false"
    where = ""
    if as_known_at is not None:
        where = f"WHERE {_q(CREATED)} <= ?"
        cut = pd.Timestamp(as_known_at)
        params.append(cut.tz_convert("UTC") if cut.tzinfo else cut.tz_localize("UTC"))
    file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    ts = _q(TIMESTAMP)
    order_key = f", epoch_us({ts})::HUGEINT * {_SHIFT} + epoch_us({_q(CREATED)})::HUGEINT AS __k" if dedupe else ""
    return f"SELECT {key}, {ts} AS __ts{order_key}, {cols} FROM read_parquet({file_list}, union_by_name = true) {where}"


@functools.lru_cache(maxsize=65_536)
def _file_columns(path: str, mtime_ns: int, size: int) -> frozenset[str]:  # mtime and size: a rewritten file is new
    return frozenset(pq.read_schema(path).names)


def stored_columns(view: FeatureView, names: Sequence[str], files: Sequence[str]) -> list[str]:
    """The SELECT items for ``names`` over the view's Parquet ``files``: a column no file holds yet (a feature the
    view gained after its data was written: a new version keeps the old files) is NULL of its declared type, for
    DuckDB cannot bind a column that no file of a ``union_by_name`` read has. The files' schemas are read from
    their footers (cached per file)."""
    present: set[str] = set()
    for f in files:
        st = os.stat(f)
        present |= _file_columns(f, st.st_mtime_ns, st.st_size)
        if present.issuperset(names):
            break
    schema = view.arrow_schema()
    return [
        _q(c) if c in present or not files else f"CAST(NULL AS {_duck_type(schema.field(c).type)}) AS {_q(c)}"
        for c in names
    ]


# (event time, written time) packed into one 128-bit integer: event_us * 2^64 + created_us
_SHIFT = 2**64
_ENTITY_KEY = f"epoch_us(e.{_q(TIMESTAMP)})::HUGEINT * {_SHIFT} + {_SHIFT - 1}"


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_int32(t):
        return "INTEGER"
    if pa.types.is_float32(t):
        return "FLOAT"
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    return "VARCHAR"
