"""Reading the CSV files the model CLIs are given (``sfai train`` / ``sfai predict``) as the pipelines read them.

A file saved by Korean Excel (CP949), or with semicolons and decimal commas (European Excel) or tabs, reads as
it would in ``sfai ingest <dataset>``; a folder, a missing, empty, binary or UTF-16 file is refused with one line
that names it (``InvalidInput``), never a parser's traceback or a "missing column" that hides the cause.
"""

from __future__ import annotations

import csv
from pathlib import Path

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
