"""What every module router shares: its prefix, the subscription check, and a status endpoint.

(No ``from __future__ import annotations`` here: FastAPI resolves the local dependency at definition.)
"""

from typing import Annotated

from fastapi import APIRouter, Depends

from serving.deps import CallerDep, require_module
from serving.schemas.platform import ModuleStatus
from serving.tenancy import SubscriptionInfo


def module_router(module: str) -> APIRouter:
    """``/v1/<module>``: every route in it needs an active subscription to ``module`` (403 otherwise)."""
    check = require_module(module)
    router = APIRouter(prefix=f"/v1/{module}", tags=[module], dependencies=[Depends(check)])

    @router.get("/status", response_model=ModuleStatus, name=f"read_{module}_status")
    async def read_status(ctx: CallerDep, sub: Annotated[SubscriptionInfo | None, Depends(check)]) -> ModuleStatus:
        """The tenant's plan for this module and the models that serve it."""
        return ModuleStatus(
            module=module,
            tenant=ctx.tenant,
            plan=sub.plan if sub else None,
            request_quota=sub.request_quota if sub else None,
        )

    return router
