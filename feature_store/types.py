"""Feature dtypes and their Arrow types."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

DTYPES: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "int32": pa.int32(),
    "float64": pa.float64(),
    "float32": pa.float32(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Field:
    """One column of a feature view: ``Field(name="temp_mean", dtype="float32")``."""

    name: str
    dtype: str
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"feature name {self.name!r} must be an identifier (letters, digits, '_')")
        if self.dtype not in DTYPES:
            raise ValueError(
                f"feature {self.name!r}: unknown dtype {self.dtype!r}; expected one of {', '.join(DTYPES)}"
            )

    @property
    def arrow_type(self) -> pa.DataType:
        return DTYPES[self.dtype]
