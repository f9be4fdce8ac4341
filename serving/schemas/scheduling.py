"""Schemas of the scheduling endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

MAX_SEED = 2**31 - 1  # CP-SAT's random seed is an int32 (optimization.service.MAX_SEED)
MAX_WEIGHT = 1e6  # objective weights (optimization.problem.MAX_WEIGHT)


MAX_RISK_MACHINES = 1000


class MachineRisk(BaseModel):
    """The maintenance module's failure model, asked for each plan machine's risk (a tenant with the module)."""

    model_config = ConfigDict(extra="forbid")
    machines: dict[StrictStr, StrictStr | StrictInt | dict[str, Any]] = Field(
        min_length=1, max_length=MAX_RISK_MACHINES,
        description="plan machine id -> its entity id in `view` (the online store's latest readings), or one "
        "record of readings as POST /v1/maintenance/failure/predict takes it",
    )
    view: str | None = Field(None, max_length=200, description="the feature view the entity ids are read from")
    model: str | None = Field(None, max_length=100, description="a registered failure model (default: the champion)")


class MachineLife(BaseModel):
    """The maintenance module's remaining-useful-life model, asked for each plan machine's life left (a tenant with
    the module): a machine whose life ends within the plan is serviced first."""

    model_config = ConfigDict(extra="forbid")
    machines: dict[StrictStr, StrictStr | StrictInt] = Field(
        min_length=1, max_length=MAX_RISK_MACHINES,
        description="plan machine id -> its entity id in `view` (its cycles in the offline store, as POST "
        "/v1/maintenance/rul/predict reads entity ids)",
    )
    view: str = Field(max_length=200, description="the feature view that holds the machines' cycles")
    units_per_cycle: float = Field(gt=0, le=1e9, allow_inf_nan=False, description="plan time units one of the "
                                   "machine's cycles takes (60 for an hourly cycle in a plan of minutes)")
    model: str | None = Field(None, max_length=100, description="a registered rul model (default: the champion)")


class PlantLoad(BaseModel):
    """The energy module's forecast of the plant's load, asked for the plan's day (a tenant with the module)."""

    model_config = ConfigDict(extra="forbid")
    records: list[dict[str, Any]] | None = Field(
        # at most serving.predictions.MAX_RECORDS; Settings.max_batch_records may set fewer
        None, min_length=1, max_length=10_000,
        description="the meter's 15-minute rows up to the plan's start, as POST /v1/energy/forecast takes them "
        "(five weeks or more for a full forecast, a week at least; at most the server's batch limit, 10,000 by "
        "default); or instead `entity_id` with `view`",
    )
    entity_id: StrictStr | StrictInt | None = Field(
        None, description="instead of records: the meter's entity id in `view`, its history read from the offline "
        "store as POST /v1/energy/forecast reads entity ids",
    )
    view: str | None = Field(None, max_length=200, description="the feature view `entity_id` is read from")
    start: str | None = Field(None, max_length=40, description="the plan's time 0: a day (YYYY-MM-DD), forecast "
                              "from its 00:00; leave it out where the problem has a `clock` (its start is time 0)")
    model: str | None = Field(None, max_length=100, description="a registered energy model (default: the champion)")
    quantile: Literal["p10", "p50", "p90"] = Field(
        "p50", description="the forecast quantile taken as the base load the peak cap counts: p90 for a cap the plant "
        "must keep on nine days in ten (the plan's kWh and CO2 are the p50's either way)")


class SolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    problem: dict[str, Any] = Field(description="the SFAI JSON problem (docs/scheduling.md)")
    maintenance: MachineRisk | None = Field(
        None, description="the failure risk of the plan's machines from the tenant's failure model, used as "
        "`problem.failure_risk.risks` (a machine the problem gives a risk itself keeps that one)",
    )
    remaining_life: MachineLife | None = Field(
        None, description="the remaining useful life of the plan's machines from the tenant's rul model: a machine "
        "whose life ends within the plan gets a risk at or above the threshold (1.0 for a life ending at time 0, "
        "the threshold for one ending at the plan's end), so it is serviced first, the shortest life first; the "
        "answer's `linked.remaining_life_model` reports it",
    )
    energy_forecast: PlantLoad | None = Field(
        None, description="the plant's load from the tenant's energy model (p50, kW per energy period from the "
        "plan's start) as `problem.energy.base_load_kw`, under `peak_cap_kw` (checked on each period's mean: use "
        "a 15-minute period for 15-minute demand); the problem needs `energy`; the answer's "
        "`linked.energy_model` reports it, and the plan's energy and CO2",
    )
    # strict: a JSON true is not 1 second, 1 worker or seed 1 (pydantic's lax mode read it so)
    time_limit_s: float = Field(10.0, gt=0, le=30, allow_inf_nan=False, strict=True,
                                description="synchronous solves: at most 30 s")
    workers: int = Field(2, ge=1, le=16, strict=True)
    seed: int = Field(0, ge=0, le=MAX_SEED, strict=True, description="the solver's random seed")
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
    time_limit_s: float = Field(60.0, gt=0, le=3600, allow_inf_nan=False, strict=True,
                                description="background jobs: up to an hour")


# Answers, as the OpenAPI schema documents them (the routes return the solver's documents as they are).
class GanttRow(BaseModel):
    machine: str
    job: str | None = Field(description="null for a maintenance window")
    operation: str
    start: int
    end: int
    setup: int = Field(description="the changeover before this operation on its machine (time units)")
    setup_start: int | None = Field(None, description="where that changeover lies (present when setup > 0): the "
                                    "latest working time before the operation; a setup is never in a downtime")
    started_at: int | None = Field(None, description="for an operation running since before t=0: its real start; "
                                   "the row shows its remaining part from 0")
    late: bool = Field(description="the last operation of a job that ends after its due date")
    reason: str | None = Field(None, description="a maintenance window's: 'failure risk'; 'failure risk "
                               "(calendar maintenance)' where a maintenance already in the calendar is the service; "
                               "'failure risk (after pinned work)' where the planner's pins hold the machine where "
                               "it would otherwise go")
    risk: float | None = Field(None, description="a maintenance window's: the machine's failure probability")
    clock: dict[str, str | None] | None = Field(
        None, description="with the problem's `clock`: this row's times (start, end, setup_start, started_at) as "
        "ISO 8601 dates and times")


class SolveAnswer(BaseModel):
    status: str = Field(description="OPTIMAL (proven), FEASIBLE (the best found in the time limit), INFEASIBLE or "
                        "UNKNOWN (nothing found in the time limit)")
    makespan: int | None
    lower_bound: float | None = Field(description="a bound no plan can beat on the first objective (OPTIMAL when the "
                                      "plan reaches it)")
    wall_s: float
    instance: str | None = None
    n_jobs: int
    n_machines: int
    n_operations: int
    objective: str
    objective_values: dict[str, Any] = Field(description="each objective term's value in the plan")
    violations: int = Field(description="constraints the plan breaks (0 for every plan SFAI returns as solved)")
    stats: dict[str, Any]
    gantt: list[GanttRow]
    maintenance: list[dict[str, Any]] = Field(description="maintenance windows placed from the failure risk")
    late_jobs: list[dict[str, Any]] = Field(description="each late job, by how much, and why")
    violation_messages: list[str]
    no_plan_reasons: list[dict[str, Any]] = Field(
        default_factory=list, description="why there is no plan (INFEASIBLE or UNKNOWN): each cause found, with a type "
        "(horizon, pinned, maintenance_deadline, maintenance_crews, peak_power, dispatch, model_too_large, "
        "time_limit, ...) and a message; empty when there is a plan")
    clock: dict[str, Any] | None = Field(
        None, description="with the problem's `clock`: its start, minutes_per_unit and plan_end (the makespan on the "
        "calendar); each Gantt row, maintenance window and late job then has its own `clock` times")
    notes: list[dict[str, Any]] = Field(
        default_factory=list, description="what the problem holds that is valid but likely a slip, each a type, "
        "the families concerned and a message: 'setup_family_unused' (the setup matrix names families no operation "
        "has: a misspelt family never gets its setup) and 'setup_family_missing' (operations' families no setup "
        "names: their changeovers take no time)")
    linked: dict[str, Any] = Field(
        description="which subscribed modules' data the plan used (failure_risk, energy), and what was ignored. "
        "`maintenance_model` (with `maintenance`): the failure model, the risks, readings_at, warnings; "
        "`remaining_life_model` (with `remaining_life`): the rul model, rul_cycles, life_units, plan_span, flagged; "
        "`energy_model` (with `energy_forecast`): the model, origin, period_minutes, days, base_load_kw (mean kW per "
        "energy period), kwh_p50 and co2_t_p50 (the forecast days'); over the plan, 0 to its makespan: "
        "plan_kwh_p50 and plan_co2_t_p50 (the plant's forecast base load only), plan_operations_kwh (the planned "
        "operations' power_kw x hours), plan_total_kwh_p50 and plan_total_co2_t_p50 (base load plus operations, "
        "tCO2 at the forecast's emission factor: the plan's emissions); peak_cap_note where peak_cap_kw is set "
        "and a period is longer than 15 minutes (the cap is checked on each period's mean, not on 15-minute "
        "demand); note and warnings where the plan runs past the forecast or the meter's rows had gaps")
    resumed: dict[str, Any] | None = Field(
        None, description="null, except for a background job whose server stopped gracefully (a deploy, a "
        "scale-in) while it solved, and which was solved on from the best plan saved then: times_stopped, "
        "spent_before_s and cpu_before_s (what the stopped solves took), time_limit_s (the job's), time_left_s (this "
        "solve's: the limit less the time spent, at least 5 s), objective, score, objective_values and makespan of "
        "the saved plan, saved_at, kept_saved_plan (true where nothing better was found, and the saved plan is "
        "the answer) and total_s (the time spent on the job in all). The answer is never worse than the saved plan")


class JobSummary(BaseModel):
    job_id: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None = Field(description="why the job failed, or how it was cancelled")


class JobAnswer(JobSummary):
    result: SolveAnswer | None = Field(description="the plan, once done")
    saved_plan: dict[str, Any] | None = Field(
        None, description="a queued or running job handed back by a server's graceful stop with its best plan so "
        "far: that plan's objective (the first stage's value), score, objective_values, makespan and operations, "
        "the job's time_limit_s, spent_s and cpu_s (spent before), times_stopped and saved_at. The next solve goes "
        "on from it for the time left; null otherwise")
