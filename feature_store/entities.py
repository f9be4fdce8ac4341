"""Entities: the things features describe. A feature view is keyed by one entity's join key."""

from __future__ import annotations

from dataclasses import dataclass

from feature_store.types import DTYPES


@dataclass(frozen=True, slots=True, kw_only=True)
class Entity:
    """``Entity(name="machine", join_key="machine_id", dtype="string")``."""

    name: str
    join_key: str
    dtype: str = "string"
    description: str = ""

    def __post_init__(self) -> None:
        if not self.join_key.isidentifier():
            raise ValueError(f"entity {self.name!r}: join key {self.join_key!r} must be an identifier")
        if self.dtype not in ("string", "int64"):
            raise ValueError(f"entity {self.name!r}: join key dtype must be string or int64, not {self.dtype!r}")
        assert self.dtype in DTYPES


machine = Entity(name="machine", join_key="machine_id", description="a machine tool, press, furnace, robot")
unit = Entity(name="unit", join_key="unit_id", description="a monitored asset run to failure (e.g. an engine)")
line = Entity(name="line", join_key="line_id", description="a production line")
lot = Entity(name="lot", join_key="lot_id", description="a production lot, wafer or part")
meter = Entity(name="meter", join_key="meter_id", description="an energy meter")
plant = Entity(name="plant", join_key="plant_id", description="a plant (site)")

ENTITIES: dict[str, Entity] = {e.name: e for e in (machine, unit, line, lot, meter, plant)}
