"""The tenant's usage log: recent calls and counts, and a streamed export (tenant admins)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import iterate_in_threadpool

from serving.deps import AdminDep, PlatformDep, platform_call
from serving.handlers import SfaiRoute
from serving.schemas.platform import UsagePage
from serving.tenancy import KEY_ID_PATTERN, MODULES
from serving.usage import check_module, export_usage, parse_range, query_usage

router = APIRouter(route_class=SfaiRoute, prefix="/v1/usage", tags=["usage"],
                   dependencies=[Depends(platform_call)])
# a query parameter these endpoints do not take is a 422 naming those they take (serving.handlers.SfaiRoute):
# ?tenant=other had answered the caller's own log without a word (integration audit)
MODULE_HELP = f"one of {', '.join(MODULES)}, or platform (calls outside them)"
# a key id as `sfai apikey list` and the usage records give it (k and hex): only its calls
KEY_QUERY = Query(None, pattern=KEY_ID_PATTERN, description="a key id (k...): only that key's calls")


@router.get("", response_model=None, responses={200: {"model": UsagePage}})
def read_usage(
    ctx: AdminDep,
    platform: PlatformDep,
    from_: str | None = Query(None, alias="from", description="ISO date or time, inclusive (UTC if naive)"),
    to: str | None = Query(None, description="ISO date or time, exclusive"),
    module: str | None = Query(None, description=MODULE_HELP),
    limit: int = Query(100, ge=1, le=1000),
    before_seq: int | None = Query(
        None, ge=1, le=2**63 - 1, description="page backwards: records older than this seq"
    ),
    key_id: str | None = KEY_QUERY,
) -> dict:
    """The newest calls of this tenant and their counts by module (of one key, with ``key_id``)."""
    start, end = parse_range(from_, to)
    check_module(module)
    out = query_usage(
        platform.db, ctx.tenant_id, start=start, end=end, module=module, limit=limit, before_seq=before_seq,
        key_id=key_id,
    )
    return {"tenant": ctx.tenant, "from": from_, "to": to, **out}


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"description": "the records, oldest first", "content": {"text/csv": {}, "application/json": {}}}},
)
def export(
    ctx: AdminDep,
    platform: PlatformDep,
    format: Literal["csv", "json"] = "csv",
    from_: str | None = Query(None, alias="from"),
    to: str | None = None,
    module: str | None = Query(None, description=MODULE_HELP),
    key_id: str | None = KEY_QUERY,
) -> StreamingResponse:
    """Every call of this tenant in [from, to) (of one module, or ``platform``, as ``GET /v1/usage`` filters) as CSV
    or JSON, oldest first, streamed. At most ``SFAI_USAGE_EXPORTS_PER_TENANT`` (default 2) stream at once per
    tenant; another answers 429 ``too_many_exports``."""
    start, end = parse_range(from_, to)
    check_module(module)
    chunks = export_usage(platform.db, format, tenant_id=ctx.tenant_id, start=start, end=end, module=module,
                          key_id=key_id)
    release = platform.access.export_slot(ctx, platform.settings.usage_exports_per_tenant)

    def stream() -> Iterator[str]:
        try:
            yield from chunks
        finally:
            release()

    media = "text/csv" if format == "csv" else "application/json"
    filename = f"sfai-usage-{ctx.tenant}{'-' + module if module else ''}.{format}"  # the console names it alike
    return StreamingResponse(
        iterate_in_threadpool(stream()),
        media_type=media,
        headers={"content-disposition": f'attachment; filename="{filename}"'},
        background=BackgroundTask(release),  # also when the client goes away before the end
    )
