"""The caller's own tenant; subscriptions and API keys for tenant admins."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response, status

from serving import tenancy
from serving.deps import AdminDep, CallerDep, PlatformDep, platform_call
from serving.errors import Forbidden
from serving.handlers import SfaiRoute
from serving.schemas.platform import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    ModuleName,
    SubscriptionCreate,
    SubscriptionPublic,
    TenantPublic,
    error_response,
)

router = APIRouter(route_class=SfaiRoute, prefix="/v1", tags=["tenant"], dependencies=[Depends(platform_call)])


def _sub(s: tenancy.SubscriptionInfo) -> SubscriptionPublic:
    return SubscriptionPublic(
        module=s.module,
        plan=s.plan,
        request_quota=s.request_quota,
        starts_at=s.starts_at,
        ends_at=s.ends_at,
        managed_by_operator=s.operator_managed,
    )


def _key(k: tenancy.ApiKeyInfo) -> ApiKeyPublic:
    return ApiKeyPublic(**k.public(tenancy.utcnow()))


@router.get("/tenant", response_model=TenantPublic)
def read_tenant(ctx: CallerDep, platform: PlatformDep) -> TenantPublic:
    """The tenant behind this key, its industry and the modules it holds now."""
    t = tenancy.get_tenant_by_id(platform.db, ctx.tenant_id)
    modules = sorted(tenancy.active_subscriptions(platform.db, ctx.tenant_id))
    return TenantPublic(
        name=t.name,
        display_name=t.display_name,
        ksic_code=t.ksic_code,
        ksic_name_ko=t.ksic_name_ko,
        ksic_name_en=t.ksic_name_en,
        created_at=t.created_at,
        modules=modules,
        caller_key_id=ctx.key_id,
        caller_role=ctx.role,
        caller_key_expires_at=ctx.expires_at,
        caller_key_modules=None if ctx.modules is None else [m for m in tenancy.MODULES if m in ctx.modules],
    )


@router.get("/subscriptions", response_model=list[SubscriptionPublic])
def read_subscriptions(ctx: AdminDep, platform: PlatformDep, active: bool | None = None) -> list[SubscriptionPublic]:
    """Every subscription of this tenant, oldest first; ``active=true``: only those in force now, ``active=false``:
    only those not in force (ended, or starting later)."""
    return [_sub(s) for s in tenancy.list_subscriptions(platform.db, ctx.tenant, active=active)]


@router.post("/subscriptions", response_model=SubscriptionPublic, status_code=status.HTTP_201_CREATED, responses={
    200: {"model": SubscriptionPublic, "description": "the plan it holds already: no change, that subscription"},
    409: error_response("the operator set this subscription's terms (managed_by_operator): the operator changes it"),
})
def create_subscription(body: SubscriptionCreate, ctx: AdminDep, platform: PlatformDep,
                        response: Response) -> SubscriptionPublic:
    """Subscribe this tenant to a module, or change the plan of a module it holds, on the plan's terms (201). The
    plan it already holds is no change: that subscription comes back with 200. Plans outside
    ``SFAI_SELF_SERVICE_PLANS`` (default: trial, standard) and subscriptions whose terms the operator set are changed
    by the operator."""
    allowed = platform.settings.self_service_plans
    if body.plan not in allowed:
        raise Forbidden(
            f"the {body.plan!r} plan is arranged by your SFAI operator; plans you can choose here: "
            + (", ".join(allowed) or "none"),
            code="plan_needs_operator",
        )
    asked = tenancy.utcnow()
    sub = tenancy.subscribe(platform.db, ctx.tenant, body.module, plan=body.plan, by_tenant=True)
    if sub.starts_at < asked:  # the one it holds already
        response.status_code = status.HTTP_200_OK
    platform.access.invalidate(ctx.tenant_id)
    return _sub(sub)


@router.delete("/subscriptions/{module}", response_model=SubscriptionPublic)
def delete_subscription(module: ModuleName, ctx: AdminDep, platform: PlatformDep) -> SubscriptionPublic:
    """End this tenant's subscription to a module now (its history and usage log stay)."""
    sub = tenancy.unsubscribe(platform.db, ctx.tenant, module, by_tenant=True)
    platform.access.invalidate(ctx.tenant_id)
    return _sub(sub)


@router.get("/apikeys", response_model=list[ApiKeyPublic])
def read_api_keys(ctx: AdminDep, platform: PlatformDep) -> list[ApiKeyPublic]:
    """This tenant's API keys (ids, names, roles, expiry, modules, last use, state; never the keys themselves)."""
    return [_key(k) for k in tenancy.list_api_keys(platform.db, ctx.tenant)]


@router.post("/apikeys", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
def create_api_key(body: ApiKeyCreate, ctx: AdminDep, platform: PlatformDep) -> ApiKeyCreated:
    """A new key for this tenant; the answer shows it once. ``expires_at`` (optional): when it stops working;
    ``modules`` (optional): the modules it may call."""
    new = tenancy.create_api_key(platform.db, platform.settings.secret_key, ctx.tenant, body.role, body.name,
                                 expires_at=body.expires_at, modules=body.modules)
    return ApiKeyCreated(**new.info.public(tenancy.utcnow()), api_key=new.token)


@router.delete("/apikeys/{key_id}", response_model=ApiKeyPublic, responses={
    409: error_response("last_admin_key: the tenant's last active admin key (create another admin key first)"),
})
def revoke_api_key(key_id: str, ctx: AdminDep, platform: PlatformDep) -> ApiKeyPublic:
    """Revoke one of this tenant's keys (another tenant's key answers 404)."""
    k = tenancy.revoke_api_key(platform.db, key_id, tenant=ctx.tenant, keep_an_admin=True)
    platform.access.invalidate(ctx.tenant_id)
    return _key(k)
