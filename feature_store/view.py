"""Feature views, declared in code, Feast-style: keyword-only, I/O-free, comparable.

    from datetime import timedelta
    from feature_store import FeatureView, Field, entities

    machine_stats = FeatureView(
        name="machine_stats",
        entity=entities.machine,
        schema=[Field(name="temp_mean", dtype="float32"), Field(name="vib_rms", dtype="float32")],
        ttl=timedelta(days=1),
        source="sensor readings, 10-minute windows",
        description="rolling sensor statistics per machine",
        owner="process-eng@factory.example",
        tags={"module": "maintenance"},
    )

Each row of a view carries the entity key, ``event_timestamp`` (when the value was true) and ``created``
(when SFAI learned it; set on ingest if absent), which point-in-time joins use for "as known at" cuts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta

import pyarrow as pa

from feature_store.entities import ENTITIES, Entity
from feature_store.types import Field

TIMESTAMP = "event_timestamp"
CREATED = "created"
RESERVED = {TIMESTAMP, CREATED}


@dataclass(frozen=True, kw_only=True)
class FeatureView:
    name: str
    entity: Entity
    schema: tuple[Field, ...] | list[Field]
    ttl: timedelta | None = None  # a value older than this at the row's time is treated as missing
    source: str = ""
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "schema", tuple(self.schema))
        object.__setattr__(self, "tags", dict(self.tags))
        if not self.name.isidentifier():
            raise ValueError(f"feature view name {self.name!r} must be an identifier (letters, digits, '_')")
        if not self.schema:
            raise ValueError(f"feature view {self.name!r} has no features")
        names = [f.name for f in self.schema]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"feature view {self.name!r}: duplicate features {sorted(dup)}")
        clash = set(names) & (RESERVED | {self.entity.join_key})
        if clash:
            raise ValueError(f"feature view {self.name!r}: {sorted(clash)} are reserved column names")
        if self.ttl is not None and self.ttl <= timedelta(0):
            raise ValueError(f"feature view {self.name!r}: ttl must be positive")

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    @property
    def join_key(self) -> str:
        return self.entity.join_key

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.schema]

    def feature(self, name: str) -> Field:
        for f in self.schema:
            if f.name == name:
                return f
        raise KeyError(f"feature view {self.name!r} has no feature {name!r}; it has {', '.join(self.feature_names)}")

    def arrow_schema(self) -> pa.Schema:
        key_type = pa.string() if self.entity.dtype == "string" else pa.int64()
        return pa.schema(
            [
                pa.field(self.join_key, key_type, nullable=False),
                pa.field(TIMESTAMP, pa.timestamp("us", tz="UTC"), nullable=False),
                *[pa.field(f.name, f.arrow_type) for f in self.schema],
                pa.field(CREATED, pa.timestamp("us", tz="UTC"), nullable=False),
            ]
        )

    # registry ------------------------------------------------------------------------------------------
    def to_spec(self) -> dict:
        return {
            "name": self.name,
            "entity": {"name": self.entity.name, "join_key": self.entity.join_key, "dtype": self.entity.dtype},
            "schema": [{"name": f.name, "dtype": f.dtype, "description": f.description} for f in self.schema],
            "ttl_s": None if self.ttl is None else self.ttl.total_seconds(),
            "source": self.source,
            "description": self.description,
            "owner": self.owner,
            "tags": self.tags,
        }

    @classmethod
    def from_spec(cls, spec: dict) -> FeatureView:
        e = spec["entity"]
        known = ENTITIES.get(e["name"])
        entity = known if known and known.join_key == e["join_key"] and known.dtype == e["dtype"] else Entity(**e)
        return cls(
            name=spec["name"],
            entity=entity,
            schema=[Field(**f) for f in spec["schema"]],
            ttl=None if spec.get("ttl_s") is None else timedelta(seconds=spec["ttl_s"]),
            source=spec.get("source", ""),
            description=spec.get("description", ""),
            owner=spec.get("owner", ""),
            tags=spec.get("tags", {}),
        )

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_spec(), sort_keys=True).encode()).hexdigest()[:16]

    def incompatibilities(self, new: FeatureView) -> list[str]:
        """Why replacing this view by ``new`` would break data already stored (empty: compatible).

        Adding features and changing ttl, description, tags, owner or source are compatible; removing a
        feature, changing a dtype or the entity is not (register a new view name instead).
        """
        problems = []
        if new.entity.join_key != self.entity.join_key or new.entity.dtype != self.entity.dtype:
            problems.append(
                f"entity changes from {self.entity.join_key}:{self.entity.dtype} "
                f"to {new.entity.join_key}:{new.entity.dtype}"
            )
        new_fields = {f.name: f for f in new.schema}
        for f in self.schema:
            if f.name not in new_fields:
                problems.append(f"feature {f.name!r} is removed")
            elif new_fields[f.name].dtype != f.dtype:
                problems.append(f"feature {f.name!r} changes dtype from {f.dtype} to {new_fields[f.name].dtype}")
        return problems
