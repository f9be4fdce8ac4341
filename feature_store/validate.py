"""Turn what a user hands in (records, a DataFrame, an Arrow table, a CSV or Parquet file) into an Arrow
table that matches a feature view exactly, or fail naming the row (from 1: the first record,
or a file's first data row) and column. Nothing is written here."""

from __future__ import annotations

import csv
import io
import math
import os
import re
import reprlib
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from feature_store.view import CREATED, TIMESTAMP, FeatureView
from serving.errors import InvalidInput
from serving.tenancy import END_OF_DAY

TS_TYPE = pa.timestamp("us", tz="UTC")
# how a value is shown in an error: bounded, so that a megabyte of text or a deeply nested object stays one short line
_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = 80
_SHOW.maxlevel = 2


def _show(value: object) -> str:
    return _SHOW.repr(value)


# What one upload may decode to. Parquet and compressed Arrow IPC hold a column of one repeated value in a few bytes
# (a dictionary page of a 1 MB string and 1,000 rows pointing at it: 503 bytes, 3 GB once read; an IPC buffer of
# zeros: 33 KB, 1 GB), so the body limit bounds nothing there: the size is checked from the file's own metadata
# before anything is decoded. A CSV or a record of many columns costs ~10 KB per column to read (300,000 columns in a
# 1.2 MB CSV: 3 GB, 9 s); no view and no model has more than a few hundred.
MAX_COLUMNS = 10_000
MAX_DECODED_BYTES = 512 << 20  # five times the default body limit (SFAI_MAX_BODY_BYTES)
CSV_BLOCK_BYTES = 1 << 20  # pyarrow's CSV block: a header row must fit in it (pyarrow refuses it otherwise)
# Text in one cell (an id or a ``string`` feature): a mode, a recipe, an alarm text. One MQTT message stored a 60 MB
# string, which every training frame and online read then carried; a longer value is a file, not a reading.
MAX_STRING_CHARS = 10_000

# A reading stamped further ahead of this server's clock than this is refused. A plant clock set a year ahead made
# its readings the newest per machine: the online store keeps the newest row, so every correct reading after it was
# "older" and skipped, and predictions by entity id read the wrong value until that date. An hour covers clocks
# that drift and time zones sent without their offset in the other direction; ``SFAI_MAX_CLOCK_SKEW_S`` changes it
# (``inf``: no check, for synthetic clocks that run ahead on purpose).
MAX_CLOCK_SKEW_S = 3600.0
CLOCK_SKEW_ENV = "SFAI_MAX_CLOCK_SKEW_S"


def max_clock_skew_s() -> float:
    """``SFAI_MAX_CLOCK_SKEW_S`` (seconds, ``inf`` for no check), or ``MAX_CLOCK_SKEW_S``; ValueError otherwise."""
    raw = os.environ.get(CLOCK_SKEW_ENV, "").strip()
    if not raw:
        return MAX_CLOCK_SKEW_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if math.isnan(value) or value < 0:
        raise ValueError(f"{CLOCK_SKEW_ENV} must be a number of seconds from 0 (or inf for no check), not {raw!r}")
    return value


def _span(seconds: float) -> str:
    """A duration as people say it, rounded to its smallest unit shown: ``90 seconds``, ``1 hour 30 minutes``,
    ``365 days``, ``2 days 3 hours``."""
    def unit(n: int, name: str) -> str:
        return f"{n:,} {name}{'s' * (n != 1)}"

    if seconds < 120:
        return unit(round(seconds), "second")
    if seconds < 86_400 - 30:
        hours, minutes = divmod(round(seconds / 60), 60)
        return " ".join([unit(hours, "hour")] * bool(hours) + [unit(minutes, "minute")] * bool(minutes))
    days, hours = divmod(round(seconds / 3600), 24)
    return " ".join([unit(days, "day")] + [unit(hours, "hour")] * bool(hours))


def check_columns(count: int) -> None:
    if count > MAX_COLUMNS:
        raise InvalidInput(f"the data has {count:,} columns; at most {MAX_COLUMNS:,} are read")


def _too_big(what: str, size: int) -> InvalidInput:
    return InvalidInput(
        f"the {what} data would take {size:,} bytes once decoded, more than the {MAX_DECODED_BYTES:,} read in one "
        "call; send it in smaller parts"
    )


def _csv_columns(data: bytes) -> int:
    """The number of columns of a CSV's header row (at most its first block, where pyarrow reads it), counted
    before pyarrow builds a reader per column. Commas are a cheap upper bound; only a block holding more than
    ``MAX_COLUMNS`` of them (a file of many rows) is parsed for its first row."""
    block = data[:CSV_BLOCK_BYTES]
    if block.count(b",") < MAX_COLUMNS:
        return block.count(b",") + 1
    try:
        return len(next(csv.reader(io.StringIO(block.decode("utf-8", "replace"), newline="")), []))
    except csv.Error:  # a header field past the csv module's own limit (128 KB): count its commas, a bound
        return block.split(b"\n", 1)[0].count(b",") + 1


def _flat_type(t: pa.DataType) -> bool:
    """A column type that is one value per row (numbers, booleans, text, bytes, times), possibly dictionary-encoded.
    Lists, structs, maps, unions, run-end encoded and view types are no reading and no id, and their decoded size is
    not bounded by what was sent (a view or a run stands for any number of values)."""
    if pa.types.is_dictionary(t):
        return _flat_type(t.value_type)
    return (
        pa.types.is_null(t) or pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t)
        or pa.types.is_decimal(t) or pa.types.is_temporal(t) or _binary_like(t) or pa.types.is_fixed_size_binary(t)
    )


def _binary_like(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)


def check_flat(schema: pa.Schema) -> None:
    """Every column of ``schema`` is a flat one (see ``_flat_type``); at most ``MAX_COLUMNS`` of them."""
    check_columns(len(schema))
    for f in schema:
        if not _flat_type(f.type):
            raise InvalidInput(
                f"column {str(f.name)!r} is of type {f.type}: only single values (numbers, booleans, text, times) "
                "are read"
            )


def decoded_bytes(table: pa.Table) -> int:
    """The bytes ``table`` takes once every dictionary-encoded column is decoded (to pandas, or cast to its values'
    type): a dictionary of one long string and many indices is small as read, and huge decoded."""
    total = 0
    for col in table.columns:
        if not pa.types.is_dictionary(col.type):
            total += col.nbytes
            continue
        for chunk in col.chunks:
            total += chunk.indices.nbytes + 8 * len(chunk)
            values = chunk.dictionary
            if _binary_like(values.type):
                total += pc.sum(pc.take(pc.binary_length(values), chunk.indices)).as_py() or 0
            elif len(values):
                total += len(chunk) * -(-values.nbytes // len(values))
    return total


# Thrift's compact protocol (a Parquet page header): enough to read a header's sizes and skip what else it holds
_T_STOP, _T_TRUE, _T_FALSE, _T_BYTE, _T_I16, _T_I32, _T_I64 = range(7)
_T_DOUBLE, _T_BINARY, _T_LIST, _T_SET, _T_MAP, _T_STRUCT = range(7, 13)
_PAGE_HEADER_MAX_BYTES = 16 << 20  # far above any real header (statistics included); a walk that passes it is junk


class _Thrift:
    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos, self.start = data, pos, pos

    def byte(self) -> int:
        if self.pos >= len(self.data) or self.pos - self.start > _PAGE_HEADER_MAX_BYTES:
            raise ValueError("truncated page header")
        self.pos += 1
        return self.data[self.pos - 1]

    def varint(self) -> int:
        out = shift = 0
        while True:
            b = self.byte()
            out |= (b & 0x7F) << shift
            if not b & 0x80:
                return out
            shift += 7
            if shift > 70:
                raise ValueError("bad varint")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def skip(self, kind: int, depth: int = 0) -> None:
        if depth > 64:
            raise ValueError("nested too deeply")
        if kind in (_T_TRUE, _T_FALSE):
            return
        if kind == _T_BYTE:
            self.byte()
        elif kind in (_T_I16, _T_I32, _T_I64):
            self.varint()
        elif kind == _T_DOUBLE:
            for _ in range(8):
                self.byte()
        elif kind == _T_BINARY:
            n = self.varint()
            if n > _PAGE_HEADER_MAX_BYTES:
                raise ValueError("binary field too long")
            self.pos += n
        elif kind in (_T_LIST, _T_SET):
            head = self.byte()
            n, elem = head >> 4, head & 0x0F
            if n == 15:
                n = self.varint()
            if n > _PAGE_HEADER_MAX_BYTES:  # every element takes a byte at least
                raise ValueError("list too long")
            for _ in range(n):
                self.skip(_T_BYTE if elem in (_T_TRUE, _T_FALSE) else elem, depth + 1)
        elif kind == _T_MAP:
            n = self.varint()
            if n > _PAGE_HEADER_MAX_BYTES:  # every entry takes a byte at least
                raise ValueError("map too long")
            if n:
                kv = self.byte()
                for _ in range(n):  # a bool key or value is a byte here (as in a list), not a field type
                    self.skip(_T_BYTE if kv >> 4 in (_T_TRUE, _T_FALSE) else kv >> 4, depth + 1)
                    self.skip(_T_BYTE if kv & 0x0F in (_T_TRUE, _T_FALSE) else kv & 0x0F, depth + 1)
        elif kind == _T_STRUCT:
            self.fields(depth + 1)
        else:
            raise ValueError(f"unknown thrift type {kind}")

    def fields(self, depth: int = 0, want: tuple[int, ...] = ()) -> dict[int, int]:
        """Reads a struct to its end; the i32 fields named in ``want``, by id."""
        got, last = {}, 0
        while True:
            head = self.byte()
            kind = head & 0x0F
            if kind == _T_STOP:
                return got
            delta = head >> 4
            last = last + delta if delta else self.zigzag()
            if last in want and kind == _T_I32:
                got[last] = self.zigzag()
            else:
                self.skip(kind, depth)


def parquet_page_bytes(data: bytes, md: pq.FileMetaData, stop_at: int | None = None) -> int:
    """What the reader allocates to decompress the file's pages, from the pages' own headers (each names its
    uncompressed size), summed over every column chunk within the byte range the reader reads for it. The footer's
    ``total_uncompressed_size`` is the writer's word and a file can understate it: 12 KB whose footer says 10 rows of
    80 bytes held one page of 400 MB, which the reader decompressed (and 2 GB a page, per column, read in parallel).
    ``ValueError`` for a header that cannot be read; stops counting past ``stop_at``."""
    # Arrow reads 100 bytes past a chunk written by parquet-mr before 1.2.9 (which left the dictionary page header
    # out of the chunk's size): pages there count too, where they can be read
    m = re.match(r"parquet-mr version (\d+)\.(\d+)\.(\d+)", md.created_by or "")
    slack = 100 if m and tuple(map(int, m.groups())) < (1, 2, 9) else 0
    total = 0
    for i in range(md.num_row_groups):
        rg = md.row_group(i)
        for j in range(rg.num_columns):
            c = rg.column(j)
            if c.num_values <= 0:  # the reader reads no page of a chunk of no values (an empty row group's)
                continue
            start = c.data_page_offset  # where the reader starts: the dictionary page when there is one before it
            if c.has_dictionary_page and c.dictionary_page_offset is not None and 0 < c.dictionary_page_offset < start:
                start = c.dictionary_page_offset
            start = max(start, 0)
            chunk_end = min(len(data), start + max(c.total_compressed_size, 0))
            end, pos = min(len(data), chunk_end + slack), start
            while pos < end:
                t = _Thrift(data, pos)
                try:
                    sizes = t.fields(want=(2, 3))
                except ValueError:
                    if pos >= chunk_end:  # the slack: no page there
                        break
                    raise
                uncompressed, compressed = sizes.get(2, -1), sizes.get(3, -1)
                if uncompressed < 0 or compressed < 0:
                    if pos >= chunk_end:
                        break
                    raise ValueError("a page header without its sizes")
                total += uncompressed
                if stop_at is not None and total > stop_at:
                    return total
                pos = t.pos + compressed
    return total


def read_parquet_bytes(data: bytes, *, check_rows=None) -> pa.Table:  # noqa: ANN001 - check_rows: (int) -> None
    """An uploaded Parquet file, read only when its metadata says that it decodes to at most ``MAX_DECODED_BYTES``
    in at most ``MAX_COLUMNS`` flat columns (``check_rows`` may refuse its row count first). Text columns are read
    dictionary-encoded, so that a dictionary page of one long value is measured by its use before it is expanded,
    and then decoded (the table is what ``pq.read_table`` gives).

    The footer is the writer's word, so the pages' own headers are read too (``parquet_page_bytes``): a file forged
    to understate its page sizes in the footer is measured by what its pages say they decompress to. The values
    decoded from the pages are bounded by the row counts (the reader reads each row group's ``num_rows``)."""
    pf = pq.ParquetFile(io.BytesIO(data))
    md, schema = pf.metadata, pf.schema_arrow
    check_flat(schema)
    if check_rows is not None:
        check_rows(md.num_rows)
    widths = [max(8, md.schema.column(j).length or 0) for j in range(md.num_columns)]
    values = 0
    for i in range(md.num_row_groups):
        rg = md.row_group(i)
        for j in range(rg.num_columns):
            values += widths[j] * max(rg.column(j).num_values, rg.num_rows, 0)
        if values > MAX_DECODED_BYTES:
            raise _too_big("Parquet", values)
    try:
        pages = parquet_page_bytes(data, md, stop_at=MAX_DECODED_BYTES)
    except ValueError as e:
        raise InvalidInput(f"the Parquet data cannot be read: a page header is damaged ({e})") from None
    estimate = pages + values
    if estimate > MAX_DECODED_BYTES:
        raise _too_big("Parquet", estimate)
    text = [f.name for f in schema if _binary_like(f.type)]
    # a delta-encoded text column (a Parquet v2 writer's default: Spark with parquet.writer.version=v2) decodes
    # each value from the one before it, so a few bytes can stand for many long values, and the dictionary read that
    # bounds text above does not take it (Arrow: "Not yet implemented: DecodeArrow of DictAccumulator"): named, with
    # how to write the file instead, rather than that message
    delta = sorted({md.row_group(i).column(j).path_in_schema for i in range(md.num_row_groups)
                    for j in range(md.num_columns)
                    if md.row_group(i).column(j).path_in_schema in text
                    and {"DELTA_BYTE_ARRAY", "DELTA_LENGTH_BYTE_ARRAY"} & set(md.row_group(i).column(j).encodings)})
    if delta:
        raise InvalidInput(
            f"the Parquet text column(s) {', '.join(map(repr, delta[:5]))} use delta encoding, which is not read: "
            "write them with dictionary or plain encoding (Spark: parquet.writer.version=v1; pyarrow: "
            "use_dictionary=True), or send CSV")
    table = pq.ParquetFile(io.BytesIO(data), metadata=md, read_dictionary=text).read() if text else pf.read()
    size = decoded_bytes(table)
    if size > MAX_DECODED_BYTES:
        raise _too_big("Parquet", size)
    for i, f in enumerate(schema):
        if f.name in text and pa.types.is_dictionary(table.schema.field(i).type):
            table = table.set_column(i, f, table.column(i).cast(f.type))
    return table


def read_ipc_bytes(data: bytes, *, file: bool = False, check_rows=None) -> pa.Table:  # noqa: ANN001
    """An Arrow IPC stream (``file``: the IPC file format), read only when its record batches declare at most
    ``MAX_DECODED_BYTES`` once decompressed and decoded, in at most ``MAX_COLUMNS`` flat columns (``check_rows`` may
    refuse the declared row count first). Uncompressed buffers are read in place from ``data``; a compressed one
    (LZ4 or ZSTD) names its decompressed length in its first 8 bytes, which Arrow allocates as it reads, so those
    lengths are summed from the messages before any batch is read."""
    buf = pa.py_buffer(data)
    if file:
        messages = [pa.ipc.read_message(buf.slice(offset, length)) for offset, length in _ipc_file_blocks(data)]
        schema = pa.ipc.open_file(buf).schema
    else:
        reader = pa.ipc.MessageReader.open_stream(buf)
        messages = list(reader)
        schema = pa.ipc.open_stream(buf).schema
    check_flat(schema)
    rows = declared = 0
    for m in messages:
        if m.type not in ("record batch", "dictionary batch"):
            continue
        length, size = _ipc_batch_sizes(m.metadata.to_pybytes(), m.body)
        declared += size
        if m.type == "record batch":
            rows += length
    if check_rows is not None:
        check_rows(rows)
    declared += rows * 8 * len(schema)  # a column of nulls or booleans holds no (or few) bytes per row
    if declared > MAX_DECODED_BYTES:
        raise _too_big("Arrow", declared)
    table = (pa.ipc.open_file(buf) if file else pa.ipc.open_stream(buf)).read_all()
    size = decoded_bytes(table)
    if size > MAX_DECODED_BYTES:
        raise _too_big("Arrow", size)
    return table


def _fb_field(meta: bytes, table: int, index: int) -> int | None:
    """Where field ``index`` of the flatbuffer table at ``table`` lies, None where it is absent (its default)."""
    vtable = table - struct.unpack_from("<i", meta, table)[0]
    slot = 4 + 2 * index
    if slot + 2 > struct.unpack_from("<H", meta, vtable)[0]:
        return None
    offset = struct.unpack_from("<H", meta, vtable + slot)[0]
    return table + offset if offset else None


def _fb_deref(meta: bytes, at: int) -> int:
    return at + struct.unpack_from("<I", meta, at)[0]


def _ipc_batch_sizes(meta: bytes, body: pa.Buffer | None) -> tuple[int, int]:
    """(rows, bytes of its buffers once decompressed) of an IPC record or dictionary batch message: the Arrow
    format's flatbuffers (``Message.fbs``: Message.header_type 1, header 2; RecordBatch.length 0, buffers 2,
    compression 3; DictionaryBatch.data 1), read directly since pyarrow does not expose them."""
    try:
        root = _fb_deref(meta, 0)
        header_type, header = _fb_field(meta, root, 1), _fb_field(meta, root, 2)
        if header_type is None or header is None:
            raise InvalidInput("cannot read the Arrow data: a batch without its header")
        batch = _fb_deref(meta, header)
        if meta[header_type] == 2:  # a dictionary batch: its values are a record batch
            data = _fb_field(meta, batch, 1)
            if data is None:
                raise InvalidInput("cannot read the Arrow data: a dictionary batch without its values")
            batch = _fb_deref(meta, data)
        at = _fb_field(meta, batch, 0)
        rows = struct.unpack_from("<q", meta, at)[0] if at is not None else 0
        compressed = _fb_field(meta, batch, 3) is not None
        at = _fb_field(meta, batch, 2)
        buffers = []
        if at is not None:
            vec = _fb_deref(meta, at)
            buffers = [struct.unpack_from("<qq", meta, vec + 4 + 16 * i) for i in range(struct.unpack_from(
                "<I", meta, vec)[0])]
        size = 0
        for offset, length in buffers:
            if compressed and length >= 8:  # only the 8-byte prefix is read: the body is not copied
                if body is None or offset < 0 or offset + 8 > body.size:
                    raise IndexError(offset)
                declared = struct.unpack_from("<q", body.slice(offset, 8).to_pybytes())[0]
                size += length if declared < 0 else declared  # -1: this buffer is stored uncompressed
            else:
                size += max(length, 0)
    except (struct.error, IndexError):
        raise InvalidInput("cannot read the Arrow data: its batch metadata is damaged") from None
    return max(rows, 0), size


def _ipc_file_blocks(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of every message an Arrow IPC file's footer points at (dictionaries and record batches):
    the file reader reads those, wherever they are. ``Footer``: dictionaries 2, recordBatches 3; a ``Block`` is
    offset (int64), metadata length (int32, padded), body length (int64)."""
    try:
        if len(data) < 16 or data[-6:] != b"ARROW1":
            raise InvalidInput("cannot read the Arrow data: not an Arrow IPC file")
        size = struct.unpack_from("<i", data, len(data) - 10)[0]
        footer = data[len(data) - 10 - size: len(data) - 10]
        root = _fb_deref(footer, 0)
        blocks = []
        for index in (2, 3):
            at = _fb_field(footer, root, index)
            if at is None:
                continue
            vec = _fb_deref(footer, at)
            for i in range(struct.unpack_from("<I", footer, vec)[0]):
                offset, meta_len, body_len = struct.unpack_from("<qi4xq", footer, vec + 4 + 24 * i)
                if offset < 0 or meta_len < 0 or body_len < 0 or offset + meta_len + body_len > len(data):
                    raise InvalidInput("cannot read the Arrow data: its footer points outside the file")
                blocks.append((offset, meta_len + body_len))
    except (struct.error, IndexError):
        raise InvalidInput("cannot read the Arrow data: its footer is damaged") from None
    return blocks


# What CP949 text from a Korean factory holds besides ASCII: Hangul syllables and letters, CJK punctuation,
# fullwidth forms, and the unit and mark symbols of KS X 1001 (℃, ㎏, ㎾, μ, Ω, Ⅱ, ①, ■, →, ·). Latin-1 bytes also
# decode as CP949 at times ("Größe": 0xF6 0xDF is one Hanja), so a file is taken for CP949 only when every
# character beyond ASCII is one of these.
_KOREAN = re.compile(
    r"[\x00-\x7f\u00b0\u00b1\u00b7\u00d7\u0391-\u03c9\u1100-\u11ff\u2010-\u203b\u2100-\u21ff\u2460-\u24ff"
    r"\u2500-\u25ff\u3000-\u303f\u3130-\u318f\u3200-\u33ff\uac00-\ud7a3\uff00-\uffef]*"
)


def korean_text(text: str) -> bool:
    """Whether ``text`` (bytes decoded as CP949) reads as Korean: beyond ASCII, Hangul and its punctuation only."""
    return _KOREAN.fullmatch(text) is not None


def csv_text(data: bytes, name: str) -> bytes:
    """A CSV's bytes as UTF-8 text with commas, or one line saying what the file is instead (``name``: the file, or
    "the upload"). A file that is not UTF-8 but CP949 throughout (what Korean Excel saves as "CSV") is recoded; an
    empty or binary file, or a header separated by semicolons or tabs (European Excel, a TSV export), is refused
    with what to do: pyarrow would say "Expected 1 columns, got 2" on a line of the file's bytes."""
    if not data.strip():
        raise InvalidInput(f"{name}: empty file; expected a CSV with a header row")
    head = data[:CSV_BLOCK_BYTES]
    if b"\x00" in head:
        raise InvalidInput(f"{name}: is not text (a binary file, or UTF-16); save it as a UTF-8 CSV")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        try:
            text = data.decode("cp949")
            if not korean_text(text):
                raise UnicodeDecodeError("cp949", data, e.start, e.end, "not Korean text")
            data = text.encode("utf-8")
        except UnicodeDecodeError:
            row = data[: e.start].count(b"\n")
            raise InvalidInput(f"{name}: line {row + 1} is not UTF-8 text (byte 0x{data[e.start]:02x}); save the file "
                               "as a UTF-8 CSV") from None
    first = next((ln for ln in data[:CSV_BLOCK_BYTES].splitlines() if ln.strip()), b"")
    if b"," not in first:
        for sep, what in ((b";", "semicolons"), (b"\t", "tabs")):
            if sep in first:
                raise InvalidInput(f"{name}: the header is separated by {what}; SFAI reads comma-separated CSV (in "
                                   "Excel: save as 'CSV UTF-8 (comma delimited)')")
    return data


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
                return _read_csv(csv_text(path.read_bytes(), path.name))
            raise InvalidInput(f"{path.name}: unknown file type {fmt!r}; expected .csv or .parquet")
        if isinstance(data, bytes):
            if fmt == "parquet":
                return read_parquet_bytes(data)
            if fmt == "csv":
                return _read_csv(csv_text(data, "the upload"))
            raise InvalidInput(f"unknown upload format {fmt!r}; expected csv or parquet")
    except InvalidInput:
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, ValueError, TypeError, OverflowError) as e:
        raise InvalidInput(f"cannot read the {fmt or 'input'} data: {' '.join(str(e).split())[:300]}") from None
    raise InvalidInput(f"unsupported input of type {type(data).__name__}")


# A CSV's cells are text, typed by the view (``conform``), never guessed from the file: a guess turned machine
# ``00123`` into ``123`` (while the same row sent as JSON kept ``00123``: one machine, two ids), ``1.50`` into
# ``1.5`` and ``12:30`` into ``12:30:00`` in a text feature, and ``NA`` into a missing id. An empty cell is
# missing in every column; these spellings are missing too, where the view expects a number, a boolean or a time.
CSV_SOURCE = b"sfai.csv"
CSV_MISSING = ("NA", "N/A", "n/a", "#N/A", "NULL", "null", "None", "NaN", "nan")


def _read_csv(data: bytes) -> pa.Table:
    check_columns(_csv_columns(data))
    text = data[:CSV_BLOCK_BYTES].decode("utf-8-sig", "replace")  # Excel's "CSV UTF-8" starts with a BOM
    try:
        names = next(csv.reader(io.StringIO(text, newline="")), [])
    except csv.Error:
        names = []  # Arrow names the problem below
    convert = pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), null_values=[""],
                                   strings_can_be_null=True)
    try:
        table = pacsv.read_csv(io.BytesIO(data), read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                               convert_options=convert)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, ValueError) as e:
        raise InvalidInput(f"cannot read the CSV: {' '.join(str(e).split())[:300]}") from None
    return table.replace_schema_metadata({CSV_SOURCE: b"1"})


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
    check_columns(len(keys or ()))
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
        end_of_day = re.search(END_OF_DAY, v) is not None
        t = pd.to_datetime(re.sub(END_OF_DAY, "00:00", v) if end_of_day else v, utc=True, format="ISO8601")
        return t + pd.Timedelta(days=1) if end_of_day else t
    raise TypeError("not a timestamp")


_TRUE, _FALSE = ("true", "True", "TRUE", "1"), ("false", "False", "FALSE", "0")  # a CSV's spellings (Excel: TRUE)


def _to_bool(v) -> bool:  # noqa: ANN001
    if isinstance(v, bool):
        return v
    if v in (0, 1, *_TRUE, *_FALSE):
        return v == 1 or v in _TRUE
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


def _cast(col: pa.ChunkedArray, target: pa.DataType, name: str, dtype: str, naive_tz: str = "UTC") -> pa.ChunkedArray:
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
            return _cast_timestamp(col, naive_tz)
        if pa.types.is_string(target) and not pa.types.is_string(col.type):
            return pc.cast(col, target)
        return pc.cast(col, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError, TypeError, OverflowError):
        values = col.to_pylist()
        convert = _CONVERT[dtype]
        row, value = _first_bad_row(values, convert)
        if row >= 0:
            raise InvalidInput(f"row {row + 1}, column {name!r}: {_show(value)} is not a valid {dtype}") from None
    # every value reads as the type, one by one, where Arrow's cast does not (``1e5`` or ``TRUE`` as text, an
    # integer past 2^53 for a float64)
    try:
        return pa.chunked_array([pa.array([None if v is None else convert(v) for v in values], target)])
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError, OverflowError):
        raise InvalidInput(f"column {name!r}: its values of type {col.type} cannot be read as {dtype}") from None


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


# a time's UTC offset at its end, after the time (a date alone ends in "-13", its day, not an offset)
_OFFSET = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)\s*$"


def _cast_timestamp(col: pa.ChunkedArray, naive_tz: str = "UTC") -> pa.ChunkedArray:
    """Times are kept to the microsecond: finer digits (OPC UA and .NET send 100 ns) are dropped, not refused.
    A time without a UTC offset is read on ``naive_tz``'s clock (UTC, except where a view's data is the plant's
    local time: a meter's readings, ``pipelines.raw_ingest``)."""
    t = col.type
    if pa.types.is_null(t):  # no value at all: missing (refused later for the event time, not for a feature)
        return pa.chunked_array([pa.nulls(len(col), TS_TYPE)])
    if pa.types.is_timestamp(t):
        if t.unit == "ns":
            col = pc.floor_temporal(col, unit="microsecond")
        if t.tz is None:  # naive: UTC, or the view's local clock
            return pc.assume_timezone(pc.cast(col, pa.timestamp("us")), naive_tz, ambiguous="earliest",
                                      nonexistent="earliest").cast(TS_TYPE)
        return pc.cast(col, TS_TYPE)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        if pc.any(pc.is_in(pc.utf8_lower(pc.utf8_trim_whitespace(col)), value_set=pa.array(_NOT_A_TIME))).as_py():
            raise ValueError("'now' or 'today' is no point in time")  # the row is named by _first_bad_row
        for parsed in (TS_TYPE, pa.timestamp("us")):  # Arrow's parser: every time with its offset, or none with one
            try:
                return _cast_timestamp(pc.cast(col, parsed), naive_tz)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        text = pd.Series(col.to_pandas(), dtype=object)
        end_of_day = text.str.contains(END_OF_DAY, regex=True, na=False)  # 24:00: the next day's 00:00
        if end_of_day.any():
            text = text.str.replace(END_OF_DAY, "00:00", regex=True)
        naive = ~text.str.contains(_OFFSET, regex=True, na=True)
        if naive_tz != "UTC" and naive.any():  # some with an offset, some without: those on the local clock
            s = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
            if (~naive).any():
                s[~naive] = pd.to_datetime(text[~naive], utc=True, format="ISO8601")
            s[naive] = pd.to_datetime(text[naive], format="ISO8601").dt.tz_localize(
                naive_tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
        else:
            s = pd.to_datetime(text, utc=True, format="ISO8601")
        s = s + pd.to_timedelta(end_of_day.astype(int), unit="D")
        if s.dt.unit == "ns":
            s = s.dt.floor("us")
        return pa.chunked_array([pa.array(s, type=TS_TYPE)])
    raise pa.ArrowInvalid(f"cannot read {t} as a timestamp")


def conform(
    view: FeatureView, table: pa.Table, *, now: datetime | None = None, max_skew_s: float | None = None,
    naive_tz: str = "UTC",
) -> pa.Table:
    """``table`` with exactly the view's columns and types (``created`` added as ``now`` if absent); event times
    without a UTC offset read on ``naive_tz``'s clock.

    Raises InvalidInput naming the column (unknown, missing, wrong type, text longer than ``MAX_STRING_CHARS``) and
    the first bad row, or the first reading stamped more than ``max_skew_s`` (default: ``max_clock_skew_s()``)
    ahead of this server's clock.
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
    from_csv = CSV_SOURCE in (table.schema.metadata or {})
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
        source = table.column(name)
        if from_csv and dtype != "string" and pa.types.is_string(source.type):
            source = pc.if_else(pc.is_in(pc.utf8_trim_whitespace(source), value_set=pa.array(CSV_MISSING)),
                                pa.scalar(None, pa.string()), source)
        if name == view.join_key:
            _check_keys(source, name)
        col = _cast(source, field.type, name, dtype, naive_tz if name == TIMESTAMP else "UTC")
        if dtype in ("float32", "float64"):
            col = _finite(col, table.column(name), name, dtype)
        if pa.types.is_timestamp(field.type):
            _check_time_range(col, name)
        if not field.nullable and col.null_count:
            row = pc.index(pc.is_null(col), True).as_py()
            what = "key" if name == view.join_key else "timestamp"
            raise InvalidInput(f"row {row + 1}, column {name!r}: missing {what}")
        if pa.types.is_string(field.type):
            _check_length(col, name)
        if name == TIMESTAMP:
            _check_not_ahead(col, max_clock_skew_s() if max_skew_s is None else max_skew_s)
        arrays.append(col)
    out = pa.Table.from_arrays(arrays, schema=schema)
    _refuse_repeated_keys(out, view.join_key)
    return out


def _check_length(col: pa.ChunkedArray, name: str) -> None:
    """At most ``MAX_STRING_CHARS`` characters in a cell (a file sent as a reading is refused, not stored)."""
    if len(col) == 0 or col.null_count == len(col):
        return
    lengths = pc.utf8_length(col)
    if (pc.max(lengths).as_py() or 0) <= MAX_STRING_CHARS:
        return
    row = pc.index(pc.greater(lengths, MAX_STRING_CHARS), True).as_py()
    raise InvalidInput(f"row {row + 1}, column {name!r}: text of {lengths[row].as_py():,} characters; at most "
                       f"{MAX_STRING_CHARS:,} are stored")


# the times a stored value can be read back as (Python's and every reader's years 1 to 9999, in UTC)
_FIRST_TIME = pa.scalar(datetime(1, 1, 1, tzinfo=UTC), TS_TYPE)
_LAST_TIME = pa.scalar(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), TS_TYPE)


def _check_time_range(col: pa.ChunkedArray, name: str) -> None:
    """Every time within the years 1 to 9999 in UTC: ``9999-12-31T23:59:59-14:00`` parses, but lies in the year
    10000 in UTC, where reading it back overflowed (a 500 on ingest)."""
    if len(col) == 0 or col.null_count == len(col):
        return
    out = pc.fill_null(pc.or_(pc.less(col, _FIRST_TIME), pc.greater(col, _LAST_TIME)), False)
    if pc.any(out).as_py():
        row = pc.index(out, True).as_py()
        raise InvalidInput(f"row {row + 1}, column {name!r}: the time lies outside the years 1 to 9999 in UTC")


def _check_not_ahead(col: pa.ChunkedArray, max_skew_s: float) -> None:
    """No event time further ahead of this server's clock than ``max_skew_s`` (see ``MAX_CLOCK_SKEW_S``)."""
    if not math.isfinite(max_skew_s) or len(col) == 0:
        return
    now = datetime.now(UTC)
    latest = pc.max(col).as_py()
    if latest is None or latest <= now + timedelta(seconds=max_skew_s):
        return
    ahead = pc.greater(col, pa.scalar(now + timedelta(seconds=max_skew_s), TS_TYPE))
    row = pc.index(ahead, True).as_py()
    value = col[row].as_py()
    raise InvalidInput(
        f"row {row + 1}, column {TIMESTAMP!r}: {value.isoformat()} is {_span((value - now).total_seconds())} ahead "
        f"of this server's clock ({now:%Y-%m-%dT%H:%M:%SZ}); readings more than {_span(max_skew_s)} ahead are "
        f"refused (is the sender's clock wrong? or was a local time sent without its UTC offset? send the offset, "
        f"e.g. {value.replace(tzinfo=None).isoformat(timespec='seconds')}+09:00)"
    )


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
