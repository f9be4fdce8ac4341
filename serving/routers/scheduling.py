"""Scheduling: production plans optimised with OR-Tools CP-SAT."""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Annotated, Literal

from fastapi import Header, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from models.energy.calendar import PlantCalendar
from serving.calendar_store import plant_calendar
from serving.deps import CallerDep, PlatformDep
from serving.errors import Forbidden, InvalidInput, TooManyRequests
from serving.idempotency import check_key
from serving.middleware import PartnerUse
from serving.routers.modules import module_router
from serving.scheduling import LINKED_FIELDS, check_linked, check_plan_size, run_linked, solve_now
from serving.schemas.platform import error_response
from serving.schemas.scheduling import JobAnswer, JobRequest, JobSummary, SolveAnswer, SolveRequest
from serving.tenancy import utcnow

router = module_router("scheduling")


def _modules(platform, ctx) -> set[str]:  # noqa: ANN001
    """The modules whose data the plan may use: the tenant's subscriptions in force now (the cache keeps those in
    force when it was read, for up to its TTL: one that has ended since is not used)."""
    if not platform.settings.auth_enabled:
        return {"maintenance", "energy", "scheduling"}
    now = utcnow()
    return {m for m, sub in platform.access.subscriptions(ctx.tenant_id).items() if sub.active_at(now)}


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


async def _use_partner(http: Request, ctx, platform, module: str, field: str) -> PartnerUse:  # noqa: ANN001
    """Admits the request's ``field`` to ``module``'s model as a call to that module's own endpoint is admitted: its
    subscription in force, a token of its rate limit, one call of its monthly quota (429 naming the module); the
    usage log then records the use as a call of ``module`` (:class:`serving.middleware.PartnerUse`)."""
    use = PartnerUse(module, counted=False)
    if not platform.settings.auth_enabled:  # development without keys: nothing is admitted, nothing logged
        return use
    try:
        sub = await run_in_threadpool(platform.access.admit, ctx, module)
    except TooManyRequests as e:
        raise type(e)(f"the request's '{field}' field uses the '{module}' module: {e.message}",
                      retry_after_s=e.retry_after_s) from None
    except Forbidden as e:
        if e.code != "key_scope":
            raise
        # a key scoped away from the linked module: the caller is told which field of its plan asked for it
        raise Forbidden(f"the request's '{field}' field uses the '{module}' module: {e.message}; or send the plan "
                        f"without '{field}'", code=e.code) from None
    use.counted = sub.request_quota is not None
    http.state.sfai_partners = [*getattr(http.state, "sfai_partners", ()), use]
    return use


def _plant(platform, ctx):  # noqa: ANN001, ANN202 - a PlantCalendar
    """The tenant's plant calendar, as the energy forecast route reads it (development without keys: none)."""
    if not platform.settings.auth_enabled:
        return PlantCalendar()
    return plant_calendar(platform.db, ctx.tenant_id)


async def _request(http: Request, body: SolveRequest, ctx, platform, modules: set[str]) -> dict:  # noqa: ANN001
    """The request as the solver takes it: with ``maintenance``, the tenant's failure model gives the machines'
    risks, with ``remaining_life`` its rul model their lives, and with ``energy_forecast`` its energy model the
    plant's load, on the tenant's plant calendar (computed here, once: a background job stores them, and a takeover
    solves the same problem).

    What can refuse the request is checked before any model is admitted or runs (the forecast's records and
    periods, the whole problem as it stands; the caller has taken its solve's place or its job's room already), and
    all are admitted before any runs. The models then run one after another in a worker thread, in one of the
    tenant's scoring turns (``platform.turns``, as a direct prediction is scored): a tenant's plans cannot take more
    of the pool than its predictions can, and a refused turn (429) comes before any model runs. So a refused
    request spends no model work, and no partner's quota."""
    request = body.model_dump()
    checked = await run_in_threadpool(check_linked, request, modules, platform.settings.max_batch_records)
    if checked is None:
        return request
    uses = {f: await _use_partner(http, ctx, platform, LINKED_FIELDS[f], f) for f in checked.fields}

    def linked() -> dict:  # in the worker thread of the tenant's turn
        return run_linked(platform, ctx.tenant, checked, lambda: _plant(platform, ctx),
                          on_model=lambda f, model: setattr(uses[f], "model_version", model))

    return await platform.turns.run(ctx.tenant_id, linked)


@router.post("/solve", response_model=None, responses={200: {"model": SolveAnswer}})
async def solve_plan(http: Request, body: SolveRequest, ctx: CallerDep, platform: PlatformDep) -> dict:
    """Solve a plan now (up to 30 s): status, makespan, bound, Gantt rows, late-job explanations."""
    _check_time_limit(platform, ctx, body.time_limit_s, platform.settings.scheduling_max_solve_s, "synchronous solve")
    check_plan_size(body.problem, platform.settings, background=False)
    modules = _modules(platform, ctx)
    # the tenant's solve place first: a call refused with too_many_solves runs no linked model
    async with platform.solves.slot(ctx.tenant_id) as solve:
        return await solve(solve_now, await _request(http, body, ctx, platform, modules), modules)


@router.post("/jobs", status_code=status.HTTP_202_ACCEPTED, response_model=None, responses={202: {"model": JobAnswer}})
async def create_job(
    http: Request, response: Response, body: JobRequest, ctx: CallerDep, platform: PlatformDep,
    idempotency_key: Annotated[str | None, Header(
        description="a retry with the same key (within 24 hours) gets the job the first call made instead of a "
                    "second job; the same key with another request is a 409. 1-100 printable ASCII characters")] = None,
) -> dict:
    """Start a longer solve in the background; poll ``GET /v1/scheduling/jobs/{job_id}``. Send an
    ``Idempotency-Key`` to retry safely after a timeout."""
    if not platform.settings.auth_enabled:  # no key, no tenant: a stored job belongs to one (it had been a 500)
        raise InvalidInput("background jobs are kept per tenant, and with SFAI_AUTH_ENABLED=false there is none: "
                           "solve with POST /v1/scheduling/solve, or switch auth on")
    key = check_key(idempotency_key)
    digest = None
    if key is not None:  # before any limit: a retry of a job already made is answered, even with the queue full
        digest = hashlib.sha256(json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
        done = await run_in_threadpool(platform.jobs.replay, ctx.tenant_id, key, digest)
        if done is not None:
            response.headers["Idempotent-Replayed"] = "true"
            return done
    _check_time_limit(platform, ctx, body.time_limit_s, platform.settings.scheduling_max_job_s, "background solve")
    check_plan_size(body.problem, platform.settings, background=True)
    modules = _modules(platform, ctx)
    # a place in the tenant's queue first: a full queue (counting the calls being prepared) runs no linked model
    release = await run_in_threadpool(platform.jobs.reserve, ctx.tenant_id)
    try:
        request = await _request(http, body, ctx, platform, modules)
        return await run_in_threadpool(functools.partial(platform.jobs.submit, key=key, request_hash=digest,
                                                         reserved=release), ctx.tenant_id, request, modules)
    finally:
        release()


@router.get("/jobs/{job_id}", response_model=None, responses={200: {"model": JobAnswer}})
async def read_job(job_id: str, ctx: CallerDep, platform: PlatformDep) -> dict:
    """A job's state and, once done, its plan (another tenant's job answers 404)."""
    return await run_in_threadpool(platform.jobs.get, ctx.tenant_id, job_id)


@router.get("/jobs", response_model=None, responses={200: {"model": list[JobSummary]}})
async def read_jobs(
    ctx: CallerDep, platform: PlatformDep,
    status: Literal["queued", "running", "done", "failed", "cancelled"] | None = Query(
        None, description="only the jobs in this state"),
    limit: int = Query(50, ge=1, le=500),
    before: str | None = Query(None, max_length=100, description="the job_id of the previous page's last job: the "
                               "jobs after it (older, or made in the same instant), newest first"),
) -> list[dict]:
    """This tenant's background solves, newest first, without their plans (``GET /v1/scheduling/jobs/{job_id}``
    gives a job's plan). Page back with ``before`` set to the last ``job_id`` of a full page."""
    return await run_in_threadpool(functools.partial(platform.jobs.recent, status=status, limit=limit,
                                                     before=before), ctx.tenant_id)


@router.delete("/jobs/{job_id}", response_model=None, responses={
    200: {"model": JobAnswer}, 409: error_response("the job is done, failed or cancelled already (job_finished)")})
async def cancel_job(job_id: str, ctx: CallerDep, platform: PlatformDep) -> dict:
    """Cancel a background solve: a queued one never starts; a running one is stopped (within about half a second)
    and its plan dropped, and the next job starts at once. Another tenant's job answers 404."""
    return await run_in_threadpool(platform.jobs.cancel, ctx.tenant_id, job_id)
