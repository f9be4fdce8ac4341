"""Energy: probabilistic energy forecasts and the carbon they imply, and the tenant's plant calendar they read.

(No ``from __future__ import annotations`` here: FastAPI resolves the dependencies' annotations at definition.)
"""

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from models.energy.calendar import PLANT, PlantCalendar
from serving import calendar_store as store
from serving.deps import CallerDep, PlatformDep, require_role
from serving.errors import Forbidden
from serving.handlers import media_type, read_json
from serving.routers.modules import add_predict_route, module_router
from serving.schemas.predictions import document_entity_id
from serving.tenancy import AuthContext

router = module_router("energy")
CALENDAR_WRITERS = require_role("admin", "scientist", "planner")


async def tenant_calendar(ctx: CallerDep, platform: PlatformDep) -> None:
    """The forecast route's dependency: the tenant's plant calendar, read from the shared database for each call
    (a calendar set through any API process counts from the next forecast), for the forecast to read (``PLANT``:
    the worker thread that scores inherits this request's context)."""
    plant = PlantCalendar()  # development without keys: no tenant, the public calendar
    if platform.settings.auth_enabled:
        plant = await run_in_threadpool(store.plant_calendar, platform.db, ctx.tenant_id)
    PLANT.set(plant)


router.dependencies.append(Depends(tenant_calendar))  # the forecast route's only: taken off again below
add_predict_route(
    router,
    "/forecast",
    "energy",
    "Day-ahead p10/p50/p90 kWh per 15 minutes from recent history (records, or a meter's entity id: its history "
    "from the offline store), from 'start'. The tenant's plant calendar (PUT /v1/energy/calendar) sets which days "
    "are days off and which working days.",
)
router.dependencies.pop()
document_entity_id(router, "energy")

_DAY = {
    "type": "object",
    "required": ["date", "kind"],
    "additionalProperties": False,
    "properties": {
        "date": {"type": "string", "format": "date", "description": "YYYY-MM-DD, the plant's local day"},
        "kind": {"type": "string", "enum": ["day_off", "working"], "description": "day_off: forecast as a public "
                 "holiday; working: forecast as a working day (a working Saturday, a holiday worked through)"},
        "note": {"type": ["string", "null"], "maxLength": store.MAX_NOTE},
    },
}
_CALENDAR = {
    "type": "object",
    "required": ["tenant", "count", "days", "updated_at"],
    "properties": {
        "tenant": {"type": "string"},
        "count": {"type": "integer"},
        "updated_at": {"type": ["string", "null"], "description": "when the calendar was last set (UTC); null: "
                       "never"},
        "days": {"type": "array", "items": _DAY},
    },
}
_ANSWER = {"200": {"description": "The tenant's plant calendar, in date order",
                   "content": {"application/json": {"schema": _CALENDAR}}}}


def _answer(ctx, days: list[dict], updated: str | None) -> dict:  # noqa: ANN001
    return {"tenant": ctx.tenant, "count": len(days), "updated_at": updated, "days": days}


@router.get("/calendar", name="read_energy_calendar", response_model=None, openapi_extra={"responses": _ANSWER})
async def read_calendar(ctx: CallerDep, platform: PlatformDep) -> dict:
    """The tenant's plant calendar: its own days off and working days, which its energy forecasts read."""
    if not platform.settings.auth_enabled:  # no tenant: the public calendar only
        return _answer(ctx, [], None)
    days, updated = await run_in_threadpool(store.read_days, platform.db, ctx.tenant_id)
    return _answer(ctx, days, updated)


@router.put(
    "/calendar", name="set_energy_calendar", response_model=None,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["days"], "additionalProperties": False,
            "properties": {"days": {"type": "array", "maxItems": store.MAX_DAYS, "items": _DAY}}}}}},
        "responses": _ANSWER,
    },
)
async def set_calendar(
    request: Request, ctx: Annotated[AuthContext, Depends(CALENDAR_WRITERS)], platform: PlatformDep
) -> dict:
    """Replace the tenant's plant calendar with the dates sent (an empty list clears it): ``day_off`` dates are
    forecast as public holidays, ``working`` dates as working days, from the next forecast on (keys with role admin,
    scientist or planner)."""
    if not platform.settings.auth_enabled:
        raise Forbidden("a plant calendar is a tenant's: this server runs without API keys, so without tenants")
    days = await read_json(await request.body(), media_type(request), "JSON (application/json)", then=store.check_days)
    await run_in_threadpool(store.replace_days, platform.db, ctx.tenant_id, days)
    days, updated = await run_in_threadpool(store.read_days, platform.db, ctx.tenant_id)
    return _answer(ctx, days, updated)
