"""The platform's ASGI middleware: request id, usage log, metrics.

A plain ASGI class (not ``BaseHTTPMiddleware``) so that it costs microseconds. The usage record is
committed *before* the response starts: if the log cannot be written, the caller gets a 503 instead of an
answer that nobody can account for.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import time
import uuid

from serving import fastpath
from serving.platform import Platform
from serving.tenancy import utcnow
from serving.usage import UsageEntry

log = logging.getLogger("sfai.api")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def _json_error(status: int, code: str, message: str, request_id: str) -> tuple[dict, dict]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": body, "more_body": False}


class PlatformMiddleware:
    def __init__(self, app, platform: Platform) -> None:  # noqa: ANN001
        self.app = app
        self.platform = platform
        settings = platform.settings
        self.fast = settings.predict_fast_path and settings.auth_enabled
        # request ids: a random prefix per process and a counter (uuid4 per request costs a system call)
        self._id_prefix = uuid.uuid4().hex[:16]
        self._ids = itertools.count(1)

    def _next_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):016x}"

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        request_id = None
        for k, v in scope["headers"]:
            if k == b"x-request-id":
                candidate = v.decode("latin-1")
                if _REQUEST_ID.match(candidate):
                    request_id = candidate
                break
        request_id = request_id or self._next_id()
        state = scope.setdefault("state", {})
        started = False
        swallow = False

        async def send_wrapper(message) -> None:  # noqa: ANN001
            nonlocal started, swallow
            if swallow:
                return
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                if not await self._account(scope, state, status, t0, request_id):
                    swallow = True
                    for m in _json_error(
                        503,
                        "usage_log_unavailable",
                        "the usage log could not be written; the call was not performed on your account, retry shortly",
                        request_id,
                    ):
                        await send(m)
                    return
                message = dict(message)
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            if self.fast and scope["method"] == "POST":
                route = fastpath.ROUTES.get(scope["path"])
                if route is not None:
                    receive = await self._fast(route, scope, receive, send_wrapper, state)
                    if receive is None:
                        return
            await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled error in %s %s (request %s)", scope["method"], scope["path"], request_id)
            if not started:
                start, body = _json_error(500, "internal_error", f"internal error (request {request_id})", request_id)
                await send_wrapper(start)
                await send_wrapper(body)

    async def _fast(self, route: fastpath.PredictRoute, scope, receive, send, state: dict):  # noqa: ANN001, ANN202
        """Answer a plain prediction call (serving/fastpath.py): None when answered, else the ``receive`` that
        replays the body to the route."""
        raw, complete = await fastpath.read_body(receive)
        if complete:
            try:
                status, body = fastpath.answer(self.platform, route, dict(reversed(scope["headers"])), raw, state)
            except fastpath.Fallback:
                pass
            else:
                scope["route"] = route  # the metrics label: the route's path
                await send({"type": "http.response.start", "status": status, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return None
        return fastpath.replay(raw, complete, receive)

    async def _account(self, scope, state: dict, status: int, t0: float, request_id: str) -> bool:  # noqa: ANN001
        """Write the usage record (waiting for its commit) and the metrics; False if the log failed."""
        platform = self.platform
        ctx = state.get("sfai_auth")
        module = state.get("sfai_module")
        ok = True
        if ctx is not None and platform.settings.usage_log_enabled:
            entry = UsageEntry(
                ts=utcnow(),
                tenant_id=ctx.tenant_id,
                key_id=ctx.key_id,
                module=module,
                method=scope["method"],
                endpoint=scope["path"][:300],
                status=status,
                latency_us=int((time.perf_counter() - t0) * 1e6),
                request_id=request_id,
                model_version=state.get("sfai_model_version"),
            )
            try:
                await platform.writer.submit(entry)
            except Exception:  # noqa: BLE001
                log.exception("usage log write failed (request %s)", request_id)
                ok = False
                status = 503
        if platform.settings.metrics_enabled:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            platform.metrics.observe(
                module or "platform",
                ctx.tenant if ctx else "-",
                scope["method"],
                endpoint,
                status,
                time.perf_counter() - t0,
            )
        return ok
