"""Scheduling: production plans optimised with OR-Tools CP-SAT."""

from __future__ import annotations

from fastapi import status
from starlette.concurrency import run_in_threadpool

from serving.deps import CallerDep, PlatformDep
from serving.errors import InvalidInput
from serving.routers.modules import module_router
from serving.scheduling import machine_risk, plant_load, solve_now, with_machine_risk, with_plant_load
from serving.schemas.scheduling import JobAnswer, JobRequest, SolveAnswer, SolveRequest

router = module_router("scheduling")


def _modules(platform, ctx) -> set[str]:  # noqa: ANN001
    return (
        set(platform.access.subscriptions(ctx.tenant_id))
        if platform.settings.auth_enabled
        else {"maintenance", "energy", "scheduling"}
    )


def _check_time_limit(platform, ctx, requested: float, cap: float, what: str) -> None:  # noqa: ANN001
    """The server's cap for this kind of solve, lowered by the tenant's scheduling plan where the settings say."""
    plan = None
    if platform.settings.auth_enabled:
        sub = platform.access.subscriptions(ctx.tenant_id).get("scheduling")
        plan = sub.plan if sub else None
    plan_cap = platform.settings.scheduling_plan_max_s.get(plan) if plan else None
    if plan_cap is not None and plan_cap < cap:
        cap, where = plan_cap, f"on the {plan} plan"
    else:
        where = "here"
    if requested > cap:
        raise InvalidInput(f"time_limit_s: at most {cap:g} s per {what} {where}; got {requested:g}")


async def _request(body: SolveRequest, ctx, platform, modules: set[str]) -> dict:  # noqa: ANN001
    """The request as the solver takes it: with ``maintenance``, the tenant's failure model gives the machines'
    risks, and with ``energy_forecast`` its energy model the plant's load (computed here, once: a background job
    stores them, and a takeover solves the same problem)."""
    request = body.model_dump()
    if body.maintenance is not None and "maintenance" in modules:
        risk = await run_in_threadpool(machine_risk, platform, ctx.tenant, request["maintenance"])
        request = with_machine_risk(request, risk)
    if body.energy_forecast is not None and "energy" in modules:
        load = await run_in_threadpool(plant_load, platform, ctx.tenant, request["energy_forecast"],
                                       request["problem"].get("energy"))
        request = with_plant_load(request, load)
    return request


@router.post("/solve", response_model=None, responses={200: {"model": SolveAnswer}})
async def solve_plan(body: SolveRequest, ctx: CallerDep, platform: PlatformDep) -> dict:
    """Solve a plan now (up to 30 s): status, makespan, bound, Gantt rows, late-job explanations."""
    _check_time_limit(platform, ctx, body.time_limit_s, platform.settings.scheduling_max_solve_s, "synchronous solve")
    modules = _modules(platform, ctx)
    return await run_in_threadpool(solve_now, await _request(body, ctx, platform, modules), modules)


@router.post("/jobs", status_code=status.HTTP_202_ACCEPTED, response_model=None, responses={202: {"model": JobAnswer}})
async def create_job(body: JobRequest, ctx: CallerDep, platform: PlatformDep) -> dict:
    """Start a longer solve in the background; poll ``GET /v1/scheduling/jobs/{job_id}``."""
    _check_time_limit(platform, ctx, body.time_limit_s, platform.settings.scheduling_max_job_s, "background solve")
    modules = _modules(platform, ctx)
    request = await _request(body, ctx, platform, modules)
    return await run_in_threadpool(platform.jobs.submit, ctx.tenant_id, request, modules)


@router.get("/jobs/{job_id}", response_model=None, responses={200: {"model": JobAnswer}})
async def read_job(job_id: str, ctx: CallerDep, platform: PlatformDep) -> dict:
    """A job's state and, once done, its plan (another tenant's job answers 404)."""
    return await run_in_threadpool(platform.jobs.get, ctx.tenant_id, job_id)
