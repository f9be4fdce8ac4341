"""Schemas of the scheduling endpoints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class SolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    problem: dict[str, Any] = Field(description="the SFAI JSON problem (docs/scheduling.md)")
    time_limit_s: float = Field(10.0, gt=0, le=30, description="synchronous solves: at most 30 s")
    workers: int = Field(2, ge=1, le=16)
    seed: int = 0
    objective: Literal["makespan", "tardiness", "energy", "weighted", "lex"] | None = None
    strategy: Literal["auto", "full", "lns"] = "auto"


class JobRequest(SolveRequest):
    time_limit_s: float = Field(60.0, gt=0, le=3600, description="background jobs: up to an hour")
