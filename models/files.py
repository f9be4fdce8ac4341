"""Reading the CSV files the model CLIs are given (``sfai train`` / ``sfai predict``) as the pipelines read them.

A file saved by Korean Excel (CP949), or with semicolons and decimal commas (European Excel) or tabs, reads as
it would in ``sfai ingest <dataset>``; a folder, a missing, empty, binary or UTF-16 file is refused with one line
that names it (``InvalidInput``), never a parser's traceback or a "missing column" that hides the cause.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.adapters.source import TextFormat, text_format
from serving.errors import InvalidInput

UNREADABLE = (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, csv.Error, OverflowError)


def csv_format(path: Path | str, what: str) -> TextFormat:
    """How to read ``path`` (``what``: the expected format, e.g. "an AI4I 2020 CSV"), or a one-line InvalidInput."""
    try:
        return text_format(Path(path), what)
    except ValueError as e:
        raise InvalidInput(str(e)) from None


def unreadable(path: Path | str, what: str, e: Exception) -> InvalidInput:
    """The one-line error for a file the parser gave up on (``e``)."""
    name = Path(path).name
    if isinstance(e, pd.errors.EmptyDataError):
        return InvalidInput(f"{name}: empty file; expected {what} file")
    text = " ".join(str(e).split()).removeprefix("Error tokenizing data. ")
    return InvalidInput(f"{name}: not a readable CSV ({text[:200]}); expected {what} file")


def read_csv(path: Path | str, what: str, **kw) -> pd.DataFrame:  # noqa: ANN003
    """``path`` as a DataFrame (``kw``: more ``pandas.read_csv`` options), or a one-line InvalidInput."""
    fmt = csv_format(path, what)
    try:
        return pd.read_csv(path, **fmt.read_csv_kw(), **kw)
    except UNREADABLE as e:
        raise unreadable(path, what, e) from None


def blank_rows(df: pd.DataFrame) -> np.ndarray:
    """Rows in which every column is empty (NaN, None or blank text): the ``,,,,,,,,`` line an Excel export ends
    with, which is no reading, no date, no machine run and no wafer: every family skips them (energy in
    ``series_from_frame``, failure and defect through ``read_csv_skipping_blank_rows`` and the batch scorer)."""
    empty = np.ones(len(df), dtype=bool)
    for col in df.columns:
        cells = df[col]
        none = np.array(cells.isna(), dtype=bool)
        if not pd.api.types.is_numeric_dtype(cells):  # text (object or str): blank text is empty too
            none |= np.array(cells.map(lambda v: isinstance(v, str) and not v.strip()), dtype=bool)
        empty &= none
        if not empty.any():
            break
    return empty


def read_csv_skipping_blank_rows(path: Path | str, what: str, **kw) -> pd.DataFrame:  # noqa: ANN003
    """:func:`read_csv` without the rows in which every cell is empty (``blank_rows``), as the energy family
    skips them: the failure and defect families read their files with it (their trailing ``,,,,,,`` lines had been
    refused as a row without its id, or a label that is not 0 or 1). A row with only some cells empty is kept (and
    refused where a cell it lacks is needed). Later rows are numbered in messages as if the skipped ones were not
    there, as pandas numbers the rows after an empty line."""
    df = read_csv(path, what, **kw)
    blank = blank_rows(df)
    if not blank.any():
        return df
    # the other rows read again as written, without these: each column's type is then the one it has in a file
    # without them (for their empty cells pandas had read a column of whole numbers as 1.0, 2.0, ...)
    text = read_csv(path, what, dtype=str, keep_default_na=False, **kw)[~blank]
    fmt = csv_format(path, what).read_csv_kw()
    again = io.StringIO(text.to_csv(index=False, sep=fmt["sep"]))
    return pd.read_csv(again, sep=fmt["sep"], decimal=fmt["decimal"], **kw)
