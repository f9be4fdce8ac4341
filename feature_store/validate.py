"""Turn what a user hands in (records, a DataFrame, an Arrow table, a CSV or Parquet file) into an Arrow
table that matches a feature view exactly, or fail naming the row and column. Nothing is written here."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from feature_store.view import CREATED, TIMESTAMP, FeatureView
from serving.errors import InvalidInput

TS_TYPE = pa.timestamp("us", tz="UTC")


def read_table(data, *, fmt: str | None = None) -> pa.Table:  # noqa: ANN001
    """Records (list of dicts), a pandas DataFrame, an Arrow table, bytes or a path of CSV/Parquet."""
    try:
        if isinstance(data, pa.Table):
            return data
        if isinstance(data, pd.DataFrame):
            return _from_pandas(data)
        if isinstance(data, list):
            if not data:
                raise InvalidInput("no records")
            bad = next((i for i, r in enumerate(data) if not isinstance(r, dict)), None)
            if bad is not None:
                raise InvalidInput(f"record {bad} is not an object")
            if _uniform(data):
                try:
                    return pa.Table.from_pylist(data)
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    pass
            return _from_pandas(pd.DataFrame(data))
        if isinstance(data, str | Path):
            path = Path(data)
            fmt = fmt or path.suffix.lstrip(".").lower()
            if fmt == "parquet":
                return pq.read_table(path)
            if fmt == "csv":
                return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
            raise InvalidInput(f"{path.name}: unknown file type {fmt!r}; expected .csv or .parquet")
        if isinstance(data, bytes):
            if fmt == "parquet":
                return pq.read_table(io.BytesIO(data))
            if fmt == "csv":
                return pacsv.read_csv(io.BytesIO(data), convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
            raise InvalidInput(f"unknown upload format {fmt!r}; expected csv or parquet")
    except InvalidInput:
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, ValueError, TypeError) as e:
        raise InvalidInput(f"cannot read the {fmt or 'input'} data: {' '.join(str(e).split())[:300]}") from None
    raise InvalidInput(f"unsupported input of type {type(data).__name__}")


def _from_pandas(df: pd.DataFrame) -> pa.Table:
    """Like ``pa.Table.from_pandas``, but a column of mixed values becomes strings, so that ``conform``
    can name the first value that does not fit the view's type."""
    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        cols = {}
        for name in df.columns:
            try:
                cols[str(name)] = pa.array(df[name], from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                cols[str(name)] = pa.array([None if pd.isna(v) else str(v) for v in df[name]], pa.string())
        return pa.table(cols)


def _uniform(records: list[dict]) -> bool:
    keys = records[0].keys()
    return all(r.keys() == keys for r in records[:1000])


def _first_bad_row(values: list, convert) -> tuple[int, object]:  # noqa: ANN001
    for i, v in enumerate(values):
        if v is None:
            continue
        try:
            convert(v)
        except Exception:  # noqa: BLE001
            return i, v
    return -1, None


def _to_float(v) -> float:  # noqa: ANN001
    if isinstance(v, bool):
        raise TypeError("bool")
    return float(v)


def _to_int(v) -> int:  # noqa: ANN001
    if isinstance(v, bool):
        raise TypeError("bool")
    f = float(v)
    if not f.is_integer():
        raise ValueError("not an integer")
    return int(f)


def _to_ts(v):  # noqa: ANN001, ANN202
    if isinstance(v, datetime | pd.Timestamp):
        return v
    if isinstance(v, str):
        return pd.Timestamp(v)
    raise TypeError("not a timestamp")


def _to_bool(v) -> bool:  # noqa: ANN001
    if isinstance(v, bool):
        return v
    if v in (0, 1, "true", "false", "True", "False"):
        return v in (1, "true", "True")
    raise TypeError("not a boolean")


_CONVERT = {
    "int64": _to_int,
    "int32": _to_int,
    "float64": _to_float,
    "float32": _to_float,
    "bool": _to_bool,
    "string": str,
    "timestamp": _to_ts,
}


def _cast(col: pa.ChunkedArray, target: pa.DataType, name: str, dtype: str) -> pa.ChunkedArray:
    if col.type == target:
        return col
    try:
        if pa.types.is_timestamp(target):
            return _cast_timestamp(col)
        if pa.types.is_string(target) and not pa.types.is_string(col.type):
            return pc.cast(col, target)
        return pc.cast(col, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError, TypeError):
        values = col.to_pylist()
        row, value = _first_bad_row(values, _CONVERT[dtype])
        where = f"row {row}" if row >= 0 else "a row"
        raise InvalidInput(f"{where}, column {name!r}: {value!r} is not a valid {dtype}") from None


def _cast_timestamp(col: pa.ChunkedArray) -> pa.ChunkedArray:
    t = col.type
    if pa.types.is_timestamp(t):
        if t.tz is None:  # naive: UTC
            return pc.assume_timezone(pc.cast(col, pa.timestamp("us")), "UTC").cast(TS_TYPE)
        return pc.cast(col, TS_TYPE)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        s = pd.to_datetime(pd.Series(col.to_pandas()), utc=True, format="ISO8601")
        return pa.chunked_array([pa.array(s, type=TS_TYPE)])
    raise pa.ArrowInvalid(f"cannot read {t} as a timestamp")


def conform(view: FeatureView, table: pa.Table, *, now: datetime | None = None) -> pa.Table:
    """``table`` with exactly the view's columns and types (``created`` added as ``now`` if absent).

    Raises InvalidInput naming the column (unknown, missing, wrong type) and the first bad row.
    """
    if table.num_rows == 0:
        raise InvalidInput("no rows")
    cols = list(table.column_names)
    expected = [view.join_key, TIMESTAMP, *view.feature_names]
    unknown = [c for c in cols if c not in expected and c != CREATED]
    if unknown:
        raise InvalidInput(
            f"unknown column {unknown[0]!r} for feature view {view.name!r}; it has {', '.join(expected)}"
        )
    for c in expected:
        if c not in cols:
            raise InvalidInput(f"missing column {c!r} for feature view {view.name!r}")
    dup = {c for c in cols if cols.count(c) > 1}
    if dup:
        raise InvalidInput(f"duplicate column {sorted(dup)[0]!r}")

    schema = view.arrow_schema()
    arrays = []
    for field in schema:
        name = field.name
        if name == CREATED and CREATED not in cols:
            stamp = pa.scalar(now or datetime.now(UTC), type=TS_TYPE).value
            arrays.append(pa.chunked_array([pa.array(np.full(table.num_rows, stamp, dtype=np.int64)).cast(TS_TYPE)]))
            continue
        dtype = (
            "timestamp"
            if name in (TIMESTAMP, CREATED)
            else view.entity.dtype
            if name == view.join_key
            else view.feature(name).dtype
        )
        col = _cast(table.column(name), field.type, name, dtype)
        if not field.nullable and col.null_count:
            row = pc.index(pc.is_null(col), True).as_py()
            what = "key" if name == view.join_key else "timestamp"
            raise InvalidInput(f"row {row}, column {name!r}: missing {what}")
        arrays.append(col)
    out = pa.Table.from_arrays(arrays, schema=schema)
    _refuse_repeated_keys(out, view.join_key)
    return out


def _refuse_repeated_keys(table: pa.Table, key: str) -> None:
    """One batch holds at most one row per (entity, event time): which one would be true otherwise?"""
    counts = table.group_by([key, TIMESTAMP]).aggregate([([], "count_all")])
    if counts.num_rows == table.num_rows:
        return
    dup = counts.filter(pc.greater(counts.column("count_all"), 1)).slice(0, 1).to_pylist()[0]
    mask = pc.and_(pc.equal(table.column(key), dup[key]), pc.equal(table.column(TIMESTAMP), dup[TIMESTAMP]))
    rows = pc.indices_nonzero(mask).to_pylist()[:2]
    raise InvalidInput(
        f"row {rows[1]} repeats the {key!r} and {TIMESTAMP!r} of row {rows[0]} ({dup[key]!r}, {dup[TIMESTAMP]})"
    )
