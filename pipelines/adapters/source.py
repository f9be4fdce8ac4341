"""Reading a source file into a DataFrame, with one-line errors that name the file and what is wrong.

``read_source`` wraps ``pandas.read_csv`` (the fast C parser) and adds what the adapters need:

- a folder, a missing file, an empty file, a file with only a header, text that is neither UTF-8 nor CP949
  (UTF-16, Latin-1, a binary file), a header that names a column twice or a file the parser cannot read at all:
  ``ValueError("<file>: <what is wrong>")``, one line;
- a file that is not UTF-8 but reads as Korean CP949 text (EUC-KR and its Windows superset: what Korean Excel
  saves; beyond ASCII only Hangul and its punctuation, so Latin-1 that happens to decode is not taken for it) is
  read as CP949, with a note; a CSV whose header is separated by semicolons (European Excel, where the decimal mark is
  a comma) or tabs rather than commas is read with that separator;
- rows with the wrong number of fields (a truncated line, a stray delimiter): pandas would fill a short row
  with NaN (missing values that later get forward-filled) and drop or refuse a long one. Such rows are set
  aside instead, returned as rejects (``source_row``, ``reason``, ``raw``) for the quarantine;
- ``source_row``: the data row of the file, counted from 1 (header and blank lines not counted), as in the
  rest of SFAI's messages about file rows.

Clean files take the fast path: the field counts are checked line by line only when pandas warned about a
line or the last column holds a gap (which every short row leaves).
"""

from __future__ import annotations

import codecs
import csv
import warnings
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from feature_store.validate import korean_text
from pipelines.canonical import SOURCE_ROW, empty_rejects

WHITESPACE = r"\s+"
CP949 = "cp949"
_DECODE_BLOCK = 1 << 20
OTHER_SEPARATORS = {";": ",", "\t": "."}  # a CSV's separator other than a comma -> the decimal mark that goes with it


def _records(path: Path, sep: str, encoding: str, header: bool) -> Iterator[tuple[int, int, list[str]]]:
    """(data row from 1, file line from 1, fields) of every record, skipping blank lines as pandas does."""
    row = 0
    with open(path, encoding=encoding, newline="") as f:
        if sep == WHITESPACE:
            lines = ((n, line.split()) for n, line in enumerate(f, 1))
        else:
            reader = csv.reader(f, delimiter=sep)

            def numbered() -> Iterator[tuple[int, list[str]]]:
                start = 1
                try:
                    for fields in reader:
                        yield start, fields
                        start = reader.line_num + 1
                except csv.Error as e:  # a field past csv's limit (128 KiB), which pandas read
                    raise ValueError(f"{path.name}: line {start} cannot be read ({' '.join(str(e).split())})") from None

            lines = numbered()
        seen_header = not header
        for line, fields in lines:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if not seen_header:
                seen_header = True
                continue
            row += 1
            yield row, line, fields


_SNIFF = 1 << 16  # bytes looked at for NUL bytes


def _utf16(path: Path) -> str:
    return f"{path.name}: is not UTF-8 text (it looks like UTF-16 or a binary file); save the file as UTF-8"


def _not_utf8(path: Path, header: bool) -> str:
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:_SNIFF]:
        return _utf16(path)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[: e.start].decode("utf-8").split("\n")
        line = len(before)
        blank = sum(1 for s in before[:-1] if not s.strip())
        row = line - blank - (1 if header else 0)
        where = "the header" if header and row <= 0 else f"row {row} (line {line})"
        return f"{path.name}: {where} is not UTF-8 text (byte 0x{data[e.start]:02x}); save the file as UTF-8"
    return f"{path.name}: cannot be read as UTF-8 text; save the file as UTF-8"


def _text_encoding(path: Path, encoding: str, header: bool) -> str:
    """``encoding``, or CP949 for a file that is not ``encoding`` but is CP949 text throughout (a Korean Excel
    CSV); otherwise a one-line ValueError. The whole file is decoded, so that no row is read in another encoding
    than its neighbours or fails half way; in blocks, so that a big file is not held twice in memory."""
    for enc in (encoding, CP949):
        decoder = codecs.getincrementaldecoder(enc)()
        try:
            with open(path, "rb") as f:
                while block := f.read(_DECODE_BLOCK):
                    text = decoder.decode(block)
                    if enc == CP949 and not korean_text(text):  # Latin-1 that happens to decode (Größe: a Hanja)
                        raise ValueError(_not_utf8(path, header))
            decoder.decode(b"", final=True)
            return enc
        except UnicodeDecodeError:
            continue
    raise ValueError(_not_utf8(path, header))


def _separator(path: Path, sep: str, encoding: str) -> str:
    """``sep``, or the separator of a header (the first non-blank line) that has no ``sep`` but semicolons or tabs
    between its names (a CSV saved by a European Excel, or a tab-separated export)."""
    with open(path, encoding=encoding, newline="") as f:
        line = next((x for x in f if x.strip()), "")
    found = [s for s in OTHER_SEPARATORS if s in line]
    return max(found, key=line.count) if found and sep not in line else sep


def _duplicate_column(path: Path, sep: str, encoding: str, names: Collection[str] | None) -> str | None:
    """The first of ``names`` (None: any) the header (the first non-blank line) repeats: pandas would rename the
    second ``X.1`` and the adapter read the first, whichever was meant."""
    with open(path, encoding=encoding, newline="") as f:
        try:
            for fields in csv.reader(f, delimiter=sep):
                if fields and any(x.strip() for x in fields):
                    return next((n for i, n in enumerate(fields)
                                 if n in fields[:i] and (names is None or n in names)), None)
        except csv.Error:  # a header field past csv's limit: no name anyone would repeat
            return None
    return None


def _no_rows(path: Path, what: str, header: bool) -> str:
    return f"{path.name}: no data rows{' (only a header)' if header else ''}; expected {what} file"


def _all_full(path: Path, sep: str, width: int, rows: int, header: bool) -> bool:
    """True when a byte count proves every line has ``width`` fields (a gap in the last column is then a missing
    value, not a short row). Only for a simple CSV: one record per line, no quotes, no blank lines; pandas has
    already warned about any line with too many fields."""
    if sep != ",":
        return False
    data = path.read_bytes()
    if b'"' in data:
        return False
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    records = rows + (1 if header else 0)
    return lines == records and data.count(b",") == (width - 1) * records


def _numbered(df: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """``df`` with ``source_row`` as its first column (one concat: a wide frame stays in few blocks)."""
    return pd.concat([pd.DataFrame({SOURCE_ROW: rows}, index=df.index), df], axis=1)


def _fields(n: int) -> str:
    return f"{n} field{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class TextFormat:
    """How a delimited text file is written: its encoding, separator and decimal mark, and notes on what was not
    the default (one line each, for a run's warnings or the CLI)."""

    encoding: str
    sep: str
    decimal: str = "."
    notes: tuple[str, ...] = ()

    def read_csv_kw(self) -> dict:
        return {"encoding": self.encoding, "sep": self.sep, "decimal": self.decimal}


def text_format(
    path: Path, what: str, *, sep: str = ",", encoding: str = "utf-8-sig", header: bool = True
) -> TextFormat:
    """How to read ``path`` (``what``: the expected format, for messages), or a one-line ValueError: a folder, a
    missing file, UTF-16 or a binary file, text that is neither ``encoding`` nor Korean CP949. ``sep=","`` with a
    header: a header separated by semicolons (with the decimal comma that goes with them) or tabs instead."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; expected {what} file")
    if not path.is_file():
        raise ValueError(f"{path}: {'not a regular file' if path.exists() else 'no such file'}; expected {what} file")
    with open(path, "rb") as f:
        if b"\x00" in f.read(_SNIFF):  # UTF-16 without a byte-order mark reads as UTF-8 with a NUL in every other byte
            raise ValueError(_utf16(path))
    notes = []
    if (read_as := _text_encoding(path, encoding, header)) != encoding:
        encoding = read_as
        notes.append(f"{path.name}: is not UTF-8 text; read as CP949 (EUC-KR, as Korean Excel saves a CSV)")
    decimal = "."
    if header and sep == ",":
        sep = _separator(path, sep, encoding)
        decimal = OTHER_SEPARATORS.get(sep, ".")
    return TextFormat(encoding, sep, decimal, tuple(notes))


def read_source(
    path: Path,
    what: str,
    *,
    sep: str = ",",
    names: list[str] | None = None,
    encoding: str = "utf-8-sig",
    columns: Collection[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """``path`` as a DataFrame with ``source_row`` first, the rows set aside for their field count, and notes on how
    the file was read (one line each, for the run's warnings).

    ``what`` names the expected format in messages ("an AI4I 2020 CSV"). ``names``: the columns of a file
    without a header row (otherwise the first non-blank line is the header); ``sep=","`` with a header: a header
    separated by semicolons or tabs instead is read with them. ``columns``: the header names the adapter reads; a
    header naming one of them twice is refused (None: any name twice).
    """
    path = Path(path)
    header = names is None
    fmt = text_format(path, what, sep=sep, encoding=encoding, header=header)
    encoding, sep, notes = fmt.encoding, fmt.sep, list(fmt.notes)
    kw: dict = {"engine": "c", "index_col": False, "on_bad_lines": "warn", **fmt.read_csv_kw()}
    if not header:
        kw.update(header=None, names=names)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        try:
            df = pd.read_csv(path, **kw)
        except pd.errors.EmptyDataError:
            raise ValueError(f"{path.name}: empty file; expected {what} file") from None
        except (pd.errors.ParserError, csv.Error, OverflowError) as e:
            text = " ".join(str(e).split()).removeprefix("Error tokenizing data. ")
            raise ValueError(f"{path.name}: cannot be read as {what} file ({text[:200]})") from None
    parser_warned = False
    for w in caught:
        if issubclass(w.category, pd.errors.ParserWarning):
            parser_warned = True
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if header and (dup := _duplicate_column(path, sep, encoding, columns)) is not None:
        raise ValueError(f"{path.name}: the header names column {dup!r} twice; expected {what} file")
    width = len(df.columns)
    rejects = empty_rejects()
    gap_at_end = width > 0 and len(df) > 0 and bool(df.iloc[:, -1].isna().any())  # every short row leaves one
    suspect = parser_warned or (gap_at_end and not _all_full(path, sep, width, len(df), header))
    if not suspect:
        if not len(df):
            raise ValueError(_no_rows(path, what, header))
        return _numbered(df, np.arange(1, len(df) + 1, dtype=np.int64)), rejects, notes
    sep_text = " " if sep == WHITESPACE else sep
    recs = [(row, line, len(fields), fields) for row, line, fields in _records(path, sep, encoding, header)]
    if not recs:
        raise ValueError(_no_rows(path, what, header))
    counts = np.array([r[2] for r in recs])
    if not (counts == width).any():
        common = Counter(counts.tolist()).most_common(1)[0][0]
        per = "the header has" if header else "expected"
        raise ValueError(f"{path.name}: not {what} file: its rows have {_fields(common)}, {per} {width}")
    if len(recs) == len(df):  # pandas kept every row (a long first row makes it cut the others instead)
        kept = np.ones(len(recs), dtype=bool)
    elif int((counts <= width).sum()) == len(df):  # pandas skipped the long rows
        kept = counts <= width
    else:  # cannot tell which parsed row is which line: refuse rather than guess
        row, line, n, _ = recs[int(np.flatnonzero(counts != width)[0])]
        raise ValueError(f"{path.name}: row {row} (line {line}) has {_fields(n)}, expected {width}")
    rows = np.array([r[0] for r in recs], dtype=np.int64)
    df = _numbered(df, rows[kept])
    ragged = counts != width
    if ragged.any():
        df = df.loc[~ragged[kept]].reset_index(drop=True)
        bad = [recs[i] for i in np.flatnonzero(ragged)]
        rejects = pd.DataFrame(
            {
                SOURCE_ROW: np.array([r[0] for r in bad], dtype=np.int64),
                "reason": [f"line {line}: {_fields(n)}, expected {width} (a truncated or malformed line)"
                           for _, line, n, _ in bad],
                "raw": [sep_text.join(f) for *_, f in bad],
            }
        )
    return df, rejects, notes
