"""Liveness, readiness and Prometheus metrics (no API key; /metrics has its own token outside development)."""

from __future__ import annotations

import contextlib
import hmac
import os
import uuid
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from serving.deps import PlatformDep
from serving.errors import Forbidden, Unauthenticated
from serving.handlers import SfaiRoute, storage_failing
from serving.schemas.platform import error_response

router = APIRouter(route_class=SfaiRoute, tags=["health"])


@router.get("/healthz")
async def read_health() -> dict:
    """The process is up."""
    return {"status": "ok"}


def _head(response: Response) -> Response:
    """A GET's answer as HEAD's: its status and headers, no body (an uptime monitor or a load balancer probing with
    HEAD, or ``curl -I``, had got a 405 and read the instance as down)."""
    head = Response(status_code=response.status_code, media_type=response.media_type)
    head.headers["content-length"] = str(len(response.body))
    return head


@router.head("/healthz", include_in_schema=False)
async def head_health() -> Response:
    return _head(JSONResponse(await read_health()))


def home_writable(home: Path) -> bool:
    """SFAI_HOME takes a small file (written, then removed): a read-only or full disk fails here."""
    probe = Path(home) / f".readyz-{uuid.uuid4().hex}"
    try:
        with open(probe, "wb") as f:
            f.write(b"ok")
        return True
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)


@router.get("/readyz")
async def read_ready(platform: PlatformDep) -> JSONResponse:
    """The metadata database answers, the usage log writer runs and writes (its last write did not fail within the
    last 30 s: calls are answered 503 then, so the instance is taken out of the load balancer's pool), and SFAI_HOME
    takes a write (no request found it failing within the last 60 s)."""
    db_ok = await run_in_threadpool(platform.db.ping)
    writer_ok = (platform.writer.alive and not platform.writer.failing()) or not platform.settings.usage_log_enabled
    storage_ok = not storage_failing() and await run_in_threadpool(home_writable, platform.settings.home)
    ok = db_ok and writer_ok and storage_ok
    body = {"status": "ready" if ok else "not_ready", "database": db_ok, "usage_log": writer_ok,
            "storage": storage_ok}
    if not ok:
        body = {"error": {"code": "not_ready", "message": "database, usage log or storage unavailable", **body}}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.head("/readyz", include_in_schema=False)
async def head_ready(platform: PlatformDep) -> Response:
    return _head(await read_ready(platform))


@router.get("/metrics", response_class=PlainTextResponse, responses={
    401: error_response("SFAI_METRICS_TOKEN is set and the request does not carry it as a bearer token"),
    403: error_response("outside development and test, /metrics is closed until SFAI_METRICS_TOKEN is set"),
})
async def read_metrics(request: Request, platform: PlatformDep) -> Response:
    """Prometheus text format: requests, latency, errors by module and tenant; usage log throughput. The series
    name tenants, so with ``SFAI_METRICS_TOKEN`` set it needs that bearer token, and outside development and
    test it is closed until one is set."""
    settings = platform.settings
    token = settings.metrics_token
    if token:
        scheme, _, sent = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), token.encode()):
            raise Unauthenticated("/metrics needs 'Authorization: Bearer <SFAI_METRICS_TOKEN>'")
    elif settings.environment not in ("development", "test"):
        raise Forbidden(f"/metrics is closed in {settings.environment}: set SFAI_METRICS_TOKEN and scrape with it")
    return Response(platform.metrics.render(), media_type=CONTENT_TYPE_LATEST)
