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

import contextvars
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
NAME_MAX = 64  # a view's name is a directory name and part of online keys: keep it short
STORED_NAME_MAX_BYTES = 255  # a view registered before NAME_MAX existed still loads while its directory can exist
_loading_stored = contextvars.ContextVar("sfai_loading_stored_view", default=False)


def short_repr(name: str, limit: int = 40) -> str:
    """``repr(name)``, cut to ``limit`` characters (with the full length) so that an error stays one short line."""
    return repr(name) if len(name) <= limit else f"{name[:limit]!r}... ({len(name)} characters)"


def check_view_name(name: object, *, stored: bool = False) -> str:
    """``name`` if it is a valid feature view name (1..64 identifier characters), else ``ValueError``.

    ``stored``: the name of a view already in the registry, which may predate the 64-character limit; it is
    accepted while the filesystem can hold its directory (255 bytes)."""
    if not isinstance(name, str):
        raise ValueError(f"feature view name must be a string, got {type(name).__name__}")
    if stored and name.isidentifier() and len(name.encode()) > STORED_NAME_MAX_BYTES:
        raise ValueError(
            f"its name is longer than {STORED_NAME_MAX_BYTES} bytes, too long for a directory (it was registered "
            f"before names were limited to {NAME_MAX} characters); declare the view under a shorter name"
        )
    if not name.isidentifier() or (len(name) > NAME_MAX and not stored):
        raise ValueError(
            f"feature view name {short_repr(name)} must be 1 to {NAME_MAX} characters: letters, digits and '_', "
            "not starting with a digit"
        )
    return name


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
        check_view_name(self.name, stored=_loading_stored.get())
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
    def from_spec(cls, spec: dict, *, stored: bool = False) -> FeatureView:
        """The view ``to_spec`` described; ``stored``: read back from the registry, where a name may predate the
        64-character limit (see ``check_view_name``)."""
        token = _loading_stored.set(stored)
        try:
            return cls._from_spec(spec)
        finally:
            _loading_stored.reset(token)

    @classmethod
    def _from_spec(cls, spec: dict) -> FeatureView:
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
