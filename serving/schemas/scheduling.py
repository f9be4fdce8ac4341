"""Schemas of the scheduling endpoints."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_SEED = 2**31 - 1  # CP-SAT's random seed is an int32 (optimization.service.MAX_SEED)
MAX_WEIGHT = 1e6  # objective weights (optimization.problem.MAX_WEIGHT)


class SolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    problem: dict[str, Any] = Field(description="the SFAI JSON problem (docs/scheduling.md)")
    time_limit_s: float = Field(10.0, gt=0, le=30, allow_inf_nan=False, description="synchronous solves: at most 30 s")
    workers: int = Field(2, ge=1, le=16)
    seed: int = Field(0, ge=0, le=MAX_SEED, description="the solver's random seed")
    objective: Literal["makespan", "tardiness", "energy", "weighted", "lex"] | None = None
    weights: dict[
        Literal["tardiness", "makespan", "energy"], Annotated[float, Field(ge=0, le=MAX_WEIGHT, allow_inf_nan=False)]
    ] | None = Field(
        None,
        description='objective "weighted": weight per real unit of each term (default tardiness 1, makespan 0.01, '
        "energy 1)",
    )
    order: list[Literal["tardiness", "makespan", "energy"]] | None = Field(
        None, min_length=1, max_length=3,
        description='objective "lex": the terms by priority (default tardiness, makespan)',
    )
    strategy: Literal["auto", "full", "lns"] = "auto"


class JobRequest(SolveRequest):
    time_limit_s: float = Field(60.0, gt=0, le=3600, allow_inf_nan=False, description="background jobs: up to an hour")
