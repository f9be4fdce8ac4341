"""FastAPI dependencies: who is calling, may they call this module, may their role do this."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from serving.access import expired_message
from serving.errors import Forbidden, Unauthenticated
from serving.platform import Platform
from serving.tenancy import AuthContext, SubscriptionInfo

# Used when the benchmark switches authentication off (development and test only).
ANONYMOUS = AuthContext(tenant_id=0, tenant="-", ksic_code="C29", key_id="-", role="admin")


async def get_platform(request: Request) -> Platform:  # async: a sync dependency would cost a thread hop
    return request.app.state.platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


async def authenticate(request: Request, platform: PlatformDep) -> AuthContext:
    """Resolve ``Authorization: Bearer <key>`` to the calling tenant and role (401 otherwise)."""
    if not platform.settings.auth_enabled:
        return ANONYMOUS
    found = getattr(request.state, "sfai_auth", None)  # checked already, before the body was read (SfaiRoute)
    if found is not None:
        return found
    header = request.headers.get("authorization")
    if not header:
        raise Unauthenticated("missing API key: send the header 'Authorization: Bearer <api key>'")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("malformed Authorization header: expected 'Bearer <api key>'")
    access = platform.access
    digest = access.digest(token)
    known, ctx = access.lookup(digest)  # a key refused within the TTL is known: no second database lookup
    if not known:
        client = request.client.host if request.client else "-"
        access.check_failed_lookups(client)
        ctx = await run_in_threadpool(lambda: access.resolve(token, digest, refresh=True))
        if ctx is None:
            access.failed_lookup(client)
    if ctx is None:
        owner = access.revoked_use(digest)
        if owner is not None:  # the usage log middleware writes this 401 to the key's tenant
            request.state.sfai_revoked = owner
        gone = access.expired_key(digest)
        if gone is not None:  # its secret is right: the caller learns which key expired and when, not its secret
            raise Unauthenticated(expired_message(gone), code="api_key_expired")
        raise Unauthenticated("invalid or revoked API key")
    request.state.sfai_auth = ctx  # read by the usage log middleware
    return ctx


CallerDep = Annotated[AuthContext, Depends(authenticate)]


async def platform_call(ctx: CallerDep, platform: PlatformDep) -> AuthContext:
    """Router-level dependency of the endpoints outside the modules: the tenant's platform rate limit."""
    if platform.settings.auth_enabled:
        platform.access.admit_platform(ctx)
    return ctx


def status_path(module: str) -> str:
    """``GET`` of this path reads the module's plan and what is left of its quota: the quota neither counts nor
    refuses it (reading how much was left had cost one of it, and was refused once none was)."""
    return f"/v1/{module}/status"


def require_module(module: str):
    """Router-level dependency: the caller's tenant must hold an active subscription to ``module``."""
    status = status_path(module)

    async def _check(request: Request, ctx: CallerDep, platform: PlatformDep) -> SubscriptionInfo | None:
        request.state.sfai_module = module
        if not platform.settings.auth_enabled:
            return None
        access = platform.access
        count = not (request.method == "GET" and request.url.path == status)
        if not count:  # its usage record says so: the quota's count reads that from its index
            request.state.sfai_uncounted = True
        if not access.subscriptions_cached(ctx.tenant_id):
            sub = await run_in_threadpool(lambda: access.admit(ctx, module, refresh=True, count=count))
        elif not count or access.count_cached(ctx.tenant_id, module):
            sub = access.admit(ctx, module, count=count)
        else:  # the quota's count reads the usage log: off the event loop
            sub = await run_in_threadpool(access.admit, ctx, module)
        if count and sub.request_quota is not None:  # counted: a 403 or 429 after this point gives the count back
            request.state.sfai_counted = (ctx, module)
        return sub

    _check.__name__ = f"require_{module}"
    return _check


def require_role(*roles: str):
    """The caller's key must carry one of ``roles``."""

    async def _check(ctx: CallerDep) -> AuthContext:
        if ctx.role not in roles:
            raise Forbidden(
                f"this action needs a key with role {' or '.join(repr(r) for r in roles)}; this key is {ctx.role!r}"
            )
        return ctx

    return _check


AdminDep = Annotated[AuthContext, Depends(require_role("admin"))]
