"""Turn what a user hands in (records, a DataFrame, an Arrow table, a CSV or Parquet file) into an Arrow
table that matches a feature view exactly, or fail naming the row (from 1: the first record,
or a file's first data row) and column. Nothing is written here."""

from __future__ import annotations

import io
import reprlib
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
# how a value is shown in an error: bounded, so that a megabyte of text or a deeply nested object stays one short line
_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = 80
_SHOW.maxlevel = 2


def _show(value: object) -> str:
    return _SHOW.repr(value)


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
            _check_records(data)
            try:
                return pa.Table.from_pylist(data)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # e.g. an integer past int64
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
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, ValueError, TypeError, OverflowError) as e:
        raise InvalidInput(f"cannot read the {fmt or 'input'} data: {' '.join(str(e).split())[:300]}") from None
    raise InvalidInput(f"unsupported input of type {type(data).__name__}")


def _from_pandas(df: pd.DataFrame) -> pa.Table:
    """Like ``pa.Table.from_pandas``, but a column of mixed values becomes strings, so that ``conform``
    can name the first value that does not fit the view's type."""
    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # OverflowError: an integer past 64 bits
        cols = {}
        for name in df.columns:
            try:
                cols[str(name)] = pa.array(df[name], from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                cols[str(name)] = pa.array([_cell_text(v, i, name) for i, v in enumerate(df[name])], pa.string())
        return pa.table(cols)


def _cell_text(value, row: int, name: object) -> str | None:  # noqa: ANN001
    """A cell of a mixed column as text; a list or an object is no single value and is refused here (as text it
    would be stored as ``"['m1']"``)."""
    if isinstance(value, list | dict | tuple):
        raise InvalidInput(f"row {row + 1}, column {str(name)!r}: {_show(value)} is not a single value")
    if isinstance(value, bool | np.bool_):  # among text or numbers: a type error, not the text "True"
        raise InvalidInput(f"row {row + 1}, column {str(name)!r}: {_show(value)} is not a value of this column's type")
    return None if pd.isna(value) else str(value)


def _check_records(records: list) -> None:
    """Objects with the same keys, each value a single value. A key that some records lack is named: it is neither
    filled in with null nor (where the first record lacks it) dropped, as Arrow would do. A list or an object is
    refused before Arrow infers a type for it (a nested object 900 levels deep took it 10 s)."""
    keys = records[0].keys() if isinstance(records[0], dict) else None
    kinds: set[type] = set()
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise InvalidInput(f"record {i + 1} is not an object")
        if r.keys() != keys:
            missing = next((k for k in keys if k not in r), None)
            if missing is not None:
                raise InvalidInput(f"row {i + 1}: missing column {str(missing)!r} (every record has the same keys; "
                                   "null is a missing value)")
            extra = next(k for k in r if k not in keys)
            raise InvalidInput(f"row {i + 1}: column {str(extra)!r} is not in row 1 (every record has the same "
                               "keys; null is a missing value)")
        kinds.update(map(type, r.values()))
    if any(issubclass(k, list | dict | tuple) for k in kinds):
        for i, r in enumerate(records):
            for name, value in r.items():
                if isinstance(value, list | dict | tuple):
                    raise InvalidInput(f"row {i + 1}, column {str(name)!r}: {_show(value)} is not a single value")


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


def _int_of(bits: int):  # noqa: ANN202
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def convert(v) -> int:  # noqa: ANN001
        if isinstance(v, bool):
            raise TypeError("bool")
        i = int(v) if isinstance(v, int) else int(float(v)) if float(v).is_integer() else None
        if i is None:
            raise ValueError("not an integer")
        if not low <= i <= high:
            raise OverflowError(f"outside int{bits}")
        return i

    return convert


def _to_str(v) -> str:  # noqa: ANN001
    if isinstance(v, bytes):
        return v.decode("utf-8")  # text that is not UTF-8 (a Latin-1 CSV) fails here
    if isinstance(v, list | dict | tuple):
        raise TypeError("not a single value")
    return str(v)


_NOT_A_TIME = ("now", "today")  # pandas reads them as the moment of the ingest: a time nobody sent


def _to_ts(v):  # noqa: ANN001, ANN202
    if isinstance(v, datetime | pd.Timestamp):
        return v
    if isinstance(v, str):  # read as the column is (ISO 8601), so that the row that does not parse is the one named
        if v.strip().lower() in _NOT_A_TIME:
            raise ValueError("not a point in time")
        return pd.to_datetime(v, utc=True, format="ISO8601")
    raise TypeError("not a timestamp")


def _to_bool(v) -> bool:  # noqa: ANN001
    if isinstance(v, bool):
        return v
    if v in (0, 1, "true", "false", "True", "False"):
        return v in (1, "true", "True")
    raise TypeError("not a boolean")


_CONVERT = {
    "int64": _int_of(64),
    "int32": _int_of(32),
    "float64": _to_float,
    "float32": _to_float,
    "bool": _to_bool,
    "string": _to_str,
    "timestamp": _to_ts,
}


def _cast(col: pa.ChunkedArray, target: pa.DataType, name: str, dtype: str) -> pa.ChunkedArray:
    if col.type == target:
        return col
    if pa.types.is_boolean(col.type) and (pa.types.is_integer(target) or pa.types.is_floating(target)):
        row = pc.index(pc.is_valid(col), True).as_py()  # Arrow would store true as 1: a reading nobody sent
        raise InvalidInput(f"row {row + 1}, column {name!r}: {col[row].as_py()!r} is not a valid {dtype}")
    if pa.types.is_boolean(target) and (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        if pa.types.is_floating(col.type):  # NaN: a missing value, as in every float column
            col = pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
        other = pc.fill_null(pc.invert(pc.is_in(col, value_set=pa.array([0, 1], col.type))), False)
        if pc.any(other).as_py():  # Arrow would store 5 or 0.5 as true: only 0 and 1 are booleans
            row = pc.index(other, True).as_py()
            raise InvalidInput(f"row {row + 1}, column {name!r}: {_show(col[row].as_py())} is not a valid {dtype}")
    try:
        if pa.types.is_timestamp(target):
            return _cast_timestamp(col)
        if pa.types.is_string(target) and not pa.types.is_string(col.type):
            return pc.cast(col, target)
        return pc.cast(col, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError, TypeError, OverflowError):
        values = col.to_pylist()
        row, value = _first_bad_row(values, _CONVERT[dtype])
        if row < 0:
            raise InvalidInput(f"column {name!r}: its values of type {col.type} cannot be read as {dtype}") from None
        raise InvalidInput(f"row {row + 1}, column {name!r}: {_show(value)} is not a valid {dtype}") from None


def _finite(col: pa.ChunkedArray, original: pa.ChunkedArray, name: str, dtype: str) -> pa.ChunkedArray:
    """A float column without infinities (an infinite reading, or a value past the float32 range, which the cast
    turns into one, would be stored as a number nobody sent); NaN is a missing value and stored as one."""
    infinite = pc.is_inf(col)
    if pc.any(infinite).as_py():
        row = pc.index(infinite, True).as_py()
        value = original[row].as_py()
        try:
            finite = bool(np.isfinite(float(value)))
        except (TypeError, ValueError, OverflowError):
            finite = True
        why = f"is out of the {dtype} range" if finite else "is not a finite number"
        raise InvalidInput(f"row {row + 1}, column {name!r}: {_show(value)} {why}")
    nan = pc.is_nan(col)
    if pc.any(nan).as_py():
        col = pc.if_else(nan, pa.scalar(None, col.type), col)
    return col


def _cast_timestamp(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Times are kept to the microsecond: finer digits (OPC UA and .NET send 100 ns) are dropped, not refused."""
    t = col.type
    if pa.types.is_null(t):  # no value at all: missing (refused later for the event time, not for a feature)
        return pa.chunked_array([pa.nulls(len(col), TS_TYPE)])
    if pa.types.is_timestamp(t):
        if t.unit == "ns":
            col = pc.floor_temporal(col, unit="microsecond")
        if t.tz is None:  # naive: UTC
            return pc.assume_timezone(pc.cast(col, pa.timestamp("us")), "UTC").cast(TS_TYPE)
        return pc.cast(col, TS_TYPE)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        if pc.any(pc.is_in(pc.utf8_lower(pc.utf8_trim_whitespace(col)), value_set=pa.array(_NOT_A_TIME))).as_py():
            raise ValueError("'now' or 'today' is no point in time")  # the row is named by _first_bad_row
        s = pd.to_datetime(pd.Series(col.to_pandas()), utc=True, format="ISO8601")
        if s.dt.unit == "ns":
            s = s.dt.floor("us")
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
        if name == view.join_key:
            _check_keys(table.column(name), name)
        col = _cast(table.column(name), field.type, name, dtype)
        if dtype in ("float32", "float64"):
            col = _finite(col, table.column(name), name, dtype)
        if not field.nullable and col.null_count:
            row = pc.index(pc.is_null(col), True).as_py()
            what = "key" if name == view.join_key else "timestamp"
            raise InvalidInput(f"row {row + 1}, column {name!r}: missing {what}")
        arrays.append(col)
    out = pa.Table.from_arrays(arrays, schema=schema)
    _refuse_repeated_keys(out, view.join_key)
    return out


def _check_keys(col: pa.ChunkedArray, name: str) -> None:
    """An entity key is a real id: not a boolean (``true`` would be stored as the key "true") and not blank
    (a CSV reads an empty cell as missing, so such a row could never be sent back)."""
    if pa.types.is_boolean(col.type):
        row = 0 if col.null_count == 0 else pc.index(pc.is_valid(col), True).as_py()
        raise InvalidInput(f"row {row + 1}, column {name!r}: {col[row].as_py()!r} is not a valid key")
    if pa.types.is_floating(col.type):  # NaN or Infinity would be stored as the key "nan" or "inf"
        odd = pc.fill_null(pc.invert(pc.is_finite(col)), False)
        if pc.any(odd).as_py():
            row = pc.index(odd, True).as_py()
            raise InvalidInput(f"row {row + 1}, column {name!r}: {col[row].as_py()!r} is not a valid key")
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        blank = pc.equal(pc.utf8_trim_whitespace(col), "")
        if pc.any(blank).as_py():
            raise InvalidInput(f"row {pc.index(blank, True).as_py() + 1}, column {name!r}: missing key (a blank id)")


def _refuse_repeated_keys(table: pa.Table, key: str) -> None:
    """One batch holds at most one row per (entity, event time): which one would be true otherwise?"""
    counts = table.group_by([key, TIMESTAMP]).aggregate([([], "count_all")])
    if counts.num_rows == table.num_rows:
        return
    dup = counts.filter(pc.greater(counts.column("count_all"), 1)).slice(0, 1).to_pylist()[0]
    mask = pc.and_(pc.equal(table.column(key), dup[key]), pc.equal(table.column(TIMESTAMP), dup[TIMESTAMP]))
    rows = pc.indices_nonzero(mask).to_pylist()[:2]
    raise InvalidInput(
        f"row {rows[1] + 1} repeats the {key!r} and {TIMESTAMP!r} of row {rows[0] + 1} ({dup[key]!r}, {dup[TIMESTAMP]})"
    )
