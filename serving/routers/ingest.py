"""Push ingest into the feature store, and online feature lookups (tenant from the API key)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from feature_store.store import IngestReport
from serving.deps import CallerDep, PlatformDep, platform_call, require_role
from serving.errors import InvalidInput, Unavailable
from serving.handlers import (
    SfaiRoute,
    media_type,
    not_read,
    read_as_json,
    read_json,
    validation_message,
)
from serving.idempotency import PARTIAL, IngestOnce, check_key, request_hash
from serving.schemas.features import FeatureViewPublic, IngestRecords, IngestResult, OnlineRequest
from serving.schemas.platform import OnlineAnswer

router = APIRouter(route_class=SfaiRoute, tags=["features"], dependencies=[Depends(platform_call)])
WRITERS = require_role("admin", "scientist", "mes")

log = logging.getLogger("sfai.api")
_PUSH_LOCKS: dict[tuple[int, str], asyncio.Lock] = {}


def _one_push_at_a_time(tenant_id: int, view: str) -> contextlib.AbstractAsyncContextManager:
    """A history view's pushes run one at a time per tenant and view (each reads the rows the one before stored:
    ``pipelines.raw_ingest``); the others wait here, not in a worker thread. They had waited on a lock inside the
    threadpool: 80 pushes at once held its threads, and another tenant's calls waited up to 4 s (review)."""
    from pipelines.raw_ingest import DERIVATIONS

    d = DERIVATIONS.get(view)
    if d is None or not d.uses_history:
        return contextlib.nullcontext()
    return _PUSH_LOCKS.setdefault((tenant_id, view), asyncio.Lock())


SEND = ("JSON (application/json), CSV (text/csv), Parquet (application/vnd.apache.parquet), a multipart upload, "
        "or name the format with ?format=csv|parquet")
_FORMATS = {"text/csv": "csv", "application/vnd.apache.parquet": "parquet", "application/x-parquet": "parquet"}


def _format_of(filename: str | None, content_type: str | None, explicit: str | None) -> str:
    if explicit:
        if explicit not in ("csv", "parquet"):
            raise InvalidInput(f"unknown format {explicit!r}: expected csv or parquet")
        return explicit
    if filename and "." in filename:
        ext = filename.rsplit(".", 1)[1].lower()
        if ext in ("csv", "parquet"):
            return ext
    fmt = _FORMATS.get((content_type or "").split(";")[0].strip().lower())
    if fmt:
        return fmt
    raise InvalidInput("cannot tell the upload's format: name the file .csv or .parquet, or pass ?format=csv|parquet")


def _records(body: object) -> list[dict]:
    """The rows of a JSON ingest body: ``{"records": [...]}`` or the list itself."""
    if isinstance(body, list):
        body = {"records": body}
    try:
        return IngestRecords.model_validate(body).records
    except ValidationError as e:
        raise InvalidInput(validation_message(e.errors())) from None


@router.post(
    "/v1/ingest/{view}",
    response_model=IngestResult,
    dependencies=[Depends(WRITERS)],
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": IngestRecords.model_json_schema()},
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
                },
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            }
        }
    },
)
async def ingest_view(
    view: str,
    request: Request,
    response: Response,
    ctx: CallerDep,
    platform: PlatformDep,
    format: Annotated[str | None, Query(description="csv or parquet, for a raw body")] = None,
    idempotency_key: Annotated[str | None, Header(
        description="a retry with the same key (within 24 hours) gets the first call's answer and stores nothing "
                    "again (a batch sent twice around another one, or after a correction of its readings, had been "
                    "stored again); the same key with another batch is a 409. 1-100 printable ASCII characters",
    )] = None,
) -> IngestResult:
    """Append rows to a feature view: JSON ``{"records": [...]}``, a multipart ``file`` upload (CSV or
    Parquet), or a raw CSV/Parquet body. Written to the offline and the online store in one step; a bad row
    is a 422 naming the row and column, and then nothing is written. Send an ``Idempotency-Key`` to retry safely
    after a timeout."""
    key = check_key(idempotency_key)
    ctype = media_type(request)
    if ctype == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("multipart upload needs a 'file' field")
        fmt = _format_of(upload.filename, upload.content_type, format)
        data = await upload.read()
    elif ctype in _FORMATS or (format and not (ctype == "application/json" or ctype.endswith("+json"))):
        fmt = _format_of(None, ctype, format)
        data = await request.body()
    elif read_as_json(ctype):  # JSON's own types, and no type, text/plain or form-urlencoded: as every JSON endpoint
        # a row naming a column twice: which is true? A big body is read in a worker thread
        data = await read_json(await request.body(), ctype, SEND, then=_records)
        fmt = None
    else:
        raise not_read(ctype, SEND)
    if isinstance(data, bytes) and not data:
        raise InvalidInput("empty upload")
    once = IngestOnce(platform.db) if key is not None else None
    offline_done = None  # the offline store holds this batch already (a retry of a call whose online write failed)
    if once is not None:
        # the rows as read, not the body's bytes: a retried multipart upload has another boundary
        rows = data if isinstance(data, bytes) else json.dumps(data, sort_keys=True, default=str)
        done = await run_in_threadpool(once.claim, ctx.tenant_id, key, request_hash(view, fmt or "json", rows))
        if done is not None and done.get(PARTIAL):
            offline_done = done
        elif done is not None:
            response.headers["Idempotent-Replayed"] = "true"
            return IngestResult(**done)
    try:
        fs = await run_in_threadpool(platform.feature_store, ctx.tenant)
        if offline_done is None:
            async with _one_push_at_a_time(ctx.tenant_id, view):
                report = await run_in_threadpool(fs.ingest, view, data, fmt=fmt)
        else:  # stored offline by the first call: the online rows only, from the offline store
            written = await run_in_threadpool(functools.partial(fs.online_from_offline, fmt=fmt), view, data)
            report = IngestReport(view, offline_done["rows"], 0, [], written, 0)
    except BaseException as e:
        written = getattr(e, "sfai_written_offline", None)
        if once is not None:
            if written is not None:  # stored offline, not online: a retry with the key writes the online rows only
                await run_in_threadpool(once.finish, ctx.tenant_id, key, {
                    PARTIAL: True, "rows": written.rows, "files": written.files, "partitions": written.partitions})
            elif offline_done is None:
                await run_in_threadpool(once.release, ctx.tenant_id, key)  # nothing stored: the key is free again
        stored = written.rows if written is not None else offline_done["rows"] if offline_done else None
        if stored is not None and isinstance(e, (RedisConnectionError, RedisTimeoutError)):
            raise _online_failed(view, stored, e, with_key=once is not None) from e
        raise
    result = IngestResult(
        view=report.view,
        rows=report.rows,
        files=offline_done["files"] if offline_done else report.files,
        partitions=offline_done["partitions"] if offline_done else report.partitions,
        online_updated=report.online_updated,
        online_skipped_older=report.online_skipped_older,
    )
    if once is not None:
        await run_in_threadpool(once.finish, ctx.tenant_id, key, result.model_dump(mode="json"))
    return result


def _online_failed(view: str, rows: int, error: Exception, *, with_key: bool) -> Unavailable:
    """The 503 of an ingest carried out in part: its rows are in the offline store, the online store failed (Redis
    away, or refusing writes: its memory full, a replica after a failover). It says what was stored and how to
    finish it without storing the rows twice."""
    log.warning("ingest into %r: %d rows stored offline, the online store failed: %s", view, rows,
                " ".join(str(error).split())[:300])
    retry = ("retry the call with the same Idempotency-Key: its rows are not stored again, and the online store is "
             "written from the offline store" if with_key else
             "send the same batch again (an identical batch is recognised and not stored twice; an Idempotency-Key "
             "makes a retry safe in every case), or have an operator run 'sfai features materialize "
             f"{view[:60]}' once it is back")
    return Unavailable(
        f"ingest carried out in part: the {rows} rows are stored in the offline store, but the online store "
        f"(the latest values per entity, which predictions by entity id read) is unreachable or failing, and not "
        f"all of them reached it: {retry}", code="online_store_unavailable", headers={"Retry-After": "5"})


@router.get("/v1/features/views", response_model=list[FeatureViewPublic])
def read_feature_views(ctx: CallerDep, platform: PlatformDep) -> list[FeatureViewPublic]:
    """This tenant's feature views (latest versions)."""
    out = []
    for v, version in platform.feature_store(ctx.tenant).list_views():
        out.append(
            FeatureViewPublic(
                name=v.name,
                version=version,
                entity=v.entity.name,
                join_key=v.join_key,
                features={f.name: f.dtype for f in v.schema},
                ttl_s=None if v.ttl is None else v.ttl.total_seconds(),
                description=v.description,
                owner=v.owner,
                tags=v.tags,
            )
        )
    return out


@router.post("/v1/features/online", response_model=None, responses={200: {"model": OnlineAnswer}})
def read_online_features(body: OnlineRequest, ctx: CallerDep, platform: PlatformDep) -> dict:
    """The latest values of a view's features for some entities (null where unknown or past the TTL)."""
    fs = platform.feature_store(ctx.tenant)
    try:
        rows = fs.get_online_features(body.view, body.entity_ids, body.features)
    except KeyError as e:
        raise InvalidInput(str(e.args[0])) from None
    return {"view": body.view, "rows": rows}
