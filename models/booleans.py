"""Booleans where readings belong: ``true`` in a JSON record, a CSV column of ``True``/``False`` (which pandas reads
as booleans) or a boolean Arrow column. NumPy and pandas turn them into 1.0 and 0.0, a reading nobody sent, so the
model readers refuse them, naming the column and row, as they refuse text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

_BOOLEANS = (bool, np.bool_)


def boolean_row(cells: Sequence | np.ndarray | pd.Series, numbers: np.ndarray) -> int | None:
    """The position of the first boolean among ``cells`` (a column as given: a list, an array or a Series), or None.

    ``numbers`` are the same cells as float64, as the reader converted them. A boolean becomes 0.0 or 1.0 there, so
    only the rows holding exactly 0 or 1 are looked at: a column of numbers costs one vectorised comparison, and a
    NumPy integer or float column (which cannot hold a boolean) nothing."""
    dtype = getattr(cells, "dtype", None)
    if isinstance(dtype, np.dtype) and dtype.kind in "iuf":
        return None
    at = cells.iloc if isinstance(cells, pd.Series) else cells
    for i in np.flatnonzero((numbers == 0.0) | (numbers == 1.0)):
        if isinstance(at[i], _BOOLEANS):
            return int(i)
    return None
