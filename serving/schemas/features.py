"""Schemas of the feature ingest and lookup endpoints."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr


class IngestRecords(BaseModel):
    model_config = ConfigDict(extra="forbid")
    records: list[dict[str, Any]] = Field(min_length=1, max_length=100_000, description="rows of the view")


class IngestResult(BaseModel):
    view: str
    rows: int
    files: int
    partitions: list[str]
    online_updated: int
    online_skipped_older: int = Field(0, description="entities whose online row was kept: the store holds a newer "
                                      "reading of theirs (a late or replayed batch; the rows are kept offline)")


class OnlineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    view: str
    entity_ids: list[StrictStr | StrictInt] = Field(min_length=1, max_length=10_000)  # true is no id
    features: list[str] | None = None


class FeatureViewPublic(BaseModel):
    name: str
    version: int
    entity: str
    join_key: str
    features: dict[str, str]
    ttl_s: float | None
    description: str
    owner: str
    tags: dict[str, str]
