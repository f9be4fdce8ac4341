"""The platform's ASGI middleware: request id, body size limit, security headers, usage log, metrics.

A plain ASGI class (not ``BaseHTTPMiddleware``) so that it costs microseconds. The usage record is
committed *before* the response starts: if the log cannot be written, the caller gets a 503 instead of an
answer that nobody can account for. A body larger than ``Settings.max_body_bytes`` is refused with 413: at
once when ``Content-Length`` says so, else as soon as the bytes read pass the limit (nothing is buffered
beyond it).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import os
import re
import time
from dataclasses import dataclass, replace

from starlette.exceptions import HTTPException as StarletteHTTPException

from serving import fastpath
from serving.errors import cut_message, redact_keys
from serving.platform import Platform
from serving.tenancy import utcnow
from serving.usage import NOT_COUNTED, UsageEntry
from serving.usage import counted as counted_status

log = logging.getLogger("sfai.api")
access_log = logging.getLogger("sfai.access")  # SFAI_ACCESS_LOG: one line per request (off by default)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# A control character in the (decoded) path: no SFAI path holds one. Refused before routing, since it would reach
# the usage log's endpoint (PostgreSQL refuses NUL in text, which failed the whole group commit, other tenants' calls
# with it; \x1e and \x1f are the chain hash's separators) and the database as a path parameter (a 500).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# Security headers. Every response: no MIME sniffing, no framing, no referrer. The web console (``/`` and
# ``/static``): scripts and connections to this origin only (its styles use inline attributes). API answers:
# nothing to render, never cached by a browser or proxy. The API page (/docs): Swagger UI from this origin, whose
# page starts it with an inline script.
_COMMON = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer")]
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
CONSOLE_HEADERS = [*_COMMON, (b"content-security-policy", CONSOLE_CSP.encode())]
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_HEADERS = [*_COMMON, (b"content-security-policy", DOCS_CSP.encode())]
API_HEADERS = [
    *_COMMON,
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
]
DOCS_PATHS = ("/docs", "/redoc")
ACCOUNTED = "sfai.accounted"  # scope key: an outer PlatformMiddleware (the app's hot path) handles this request


@dataclass(slots=True)
class PartnerUse:
    """Another module's model run inside a call (scheduling's ``maintenance`` and ``energy_forecast`` fields),
    listed in the request state's ``sfai_partners`` once that module admitted it (its rate limit and quota). The
    usage log gets one more record for it, under that module and with the call's status, so that the quota's
    count from the log, the tenant's usage and a direct prediction call all count it the same way."""

    module: str
    counted: bool  # counted against the module's quota: an answer the log does not count (403, 429) gives it back
    model_version: str | None = None


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    if path == "/" or path.startswith("/static/"):
        return CONSOLE_HEADERS
    if path.startswith(DOCS_PATHS):
        return DOCS_HEADERS
    return API_HEADERS


class BodyTooLarge(StarletteHTTPException):
    """413 raised from ``receive`` (an HTTPException, so the framework's body parsing lets it through)."""

    code = "payload_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than this server's limit of {limit:,} bytes")


def limited(receive, limit: int):  # noqa: ANN001, ANN201
    """``receive`` that raises :class:`BodyTooLarge` once the body read passes ``limit`` bytes."""
    seen = 0

    async def _receive():  # noqa: ANN202
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return _receive


# calls that change what SFAI holds (rows stored, a job queued or cancelled, a key or subscription changed): by
# the time the usage log's write fails, the change is made
_CHANGING_POSTS = ("/v1/ingest/", "/v1/scheduling/jobs", "/v1/subscriptions", "/v1/apikeys")


def _changed(scope: dict, status: int) -> bool:
    if status >= 300:
        return False
    method = scope["method"]
    return method in ("DELETE", "PUT", "PATCH") or (method == "POST" and scope["path"].startswith(_CHANGING_POSTS))


def _unavailable(headers: list, scope: dict, status: int) -> tuple[dict, dict]:
    """The 503 of a call whose usage record could not be written. A read (a prediction, a plan) is withheld and
    not counted: retry it. A change is made already: it had been answered "not performed, retry", and a retry
    stored the rows again or queued a second job (MES integrator's audit)."""
    if _changed(scope, status):
        message = ("the call was carried out, but the usage log could not record it, so its answer is withheld: "
                   "check its effect before repeating it (a job or ingest repeated with the same Idempotency-Key "
                   "answers the first call's result)")
    else:
        message = "the usage log could not be written; the call was not performed on your account, retry shortly"
    return _json_error(503, "usage_log_unavailable", message, [*headers, (b"retry-after", b"5")])


def _json_error(status: int, code: str, message: str, headers: list | tuple = ()) -> tuple[dict, dict]:
    body = json.dumps({"error": {"code": code, "message": cut_message(message)}}).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
    }
    return start, {"type": "http.response.body", "body": body, "more_body": False}


class PlatformMiddleware:
    def __init__(self, app, platform: Platform) -> None:  # noqa: ANN001
        self.app = app
        self.platform = platform
        settings = platform.settings
        self.fast = settings.predict_fast_path and settings.auth_enabled
        self.max_body = settings.max_body_bytes
        # request ids: a counter hashed under a random key per process (uuid4 per request costs a system call). A
        # plain counter, shown to every caller and in each tenant's usage log, told a tenant how many calls others
        # had made between two of its own (security audit); the hashed ones say nothing of the order or the count
        self._id_key = os.urandom(32)
        self._ids = itertools.count(1)

    def _next_id(self) -> str:
        return hashlib.blake2b(next(self._ids).to_bytes(8, "big"), key=self._id_key, digest_size=16).hexdigest()

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http" or ACCOUNTED in scope:
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        request_id = None
        declared = 0
        encoded = None
        chunked = False
        for k, v in scope["headers"]:
            if k == b"x-request-id":
                candidate = v.decode("latin-1")
                if _REQUEST_ID.match(candidate):
                    request_id = candidate
            elif k == b"content-length":  # more digits than any limit: too large (int() refuses 4,300 digits)
                declared = (int(v) if len(v) <= 18 else self.max_body + 1) if v.isdigit() else 0
            elif k == b"content-encoding" and v.strip().lower() not in (b"", b"identity"):
                encoded = v.decode("latin-1").strip()
            elif k == b"transfer-encoding":
                chunked = True
        request_id = request_id or self._next_id()
        extra_headers = [*security_headers(scope["path"]), (b"x-request-id", request_id.encode())]
        state = scope.setdefault("state", {})
        state["sfai_request_id"] = request_id
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
                    for m in _unavailable(extra_headers, scope, status):
                        await send(m)
                    return
                message = dict(message)
                message["headers"] = [*message.get("headers", ()), *extra_headers]
            await send(message)

        try:
            path = scope["path"]
            if not path.isprintable() and _CONTROL.search(path):  # isprintable: the cheap test of a plain path
                start, body = _json_error(400, "bad_request", "the request path holds a control character (e.g. %00)")
                await send_wrapper(start)
                await send_wrapper(body)
                return
            if encoded is not None and (declared or chunked):  # a gzip body had been read as its bytes ("0x8b")
                start, body = _json_error(415, "unsupported_media_type", f"Content-Encoding {encoded[:40]!r} is not "
                                          "supported: send the body uncompressed (Content-Encoding identity or none)")
                await send_wrapper(start)
                await send_wrapper(body)
                return
            if declared > self.max_body:
                raise BodyTooLarge(self.max_body)
            receive = limited(receive, self.max_body)
            if self.fast and scope["method"] == "POST" and not scope.get("query_string"):  # options there: the route
                route = fastpath.ROUTES.get(scope["path"])
                if route is not None:
                    raw, complete = await fastpath.read_body(receive)
                    answered = self._fast(route, scope, raw, complete, state)
                    if answered is not None:  # sent from here: the wrapper's copies are not needed
                        started = True
                        status, body, headers = answered
                        if not await self._account(scope, state, status, t0, request_id):
                            for m in _unavailable(extra_headers, scope, status):
                                await send(m)
                            return
                        await send({"type": "http.response.start", "status": status, "headers": [
                            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers, *extra_headers]})
                        await send({"type": "http.response.body", "body": body, "more_body": False})
                        return
                    receive = fastpath.replay(raw, complete, receive)
            await self.app(scope, receive, send_wrapper)
        except BodyTooLarge as e:  # from the checks above or the fast path's read (the routes answer their own)
            if not started:
                start, body = _json_error(413, e.code, e.detail)  # the wrapper adds the request id and headers
                await send_wrapper(start)
                await send_wrapper(body)
        except Exception:
            log.exception("unhandled error in %s %s (request %s)", scope["method"], redact_keys(scope["path"]),
                          request_id)
            if not started:
                start, body = _json_error(500, "internal_error", f"internal error (request {request_id})")
                await send_wrapper(start)
                await send_wrapper(body)

    def _fast(self, route: fastpath.PredictRoute, scope, raw: bytes, complete: bool, state: dict):  # noqa: ANN001, ANN202
        """A plain prediction call's ``(status, body, headers)`` (serving/fastpath.py), or None: then the route
        answers it, with the body replayed."""
        if not complete:
            return None
        try:
            answered = fastpath.answer(self.platform, route, dict(reversed(scope["headers"])), raw, state)
        except fastpath.Fallback:
            return None
        scope["route"] = route  # the metrics label: the route's path
        return answered

    def _refund(self, ctx, counted: tuple | None, partners) -> None:  # noqa: ANN001
        """Give back the quota counts a call took at admission (its module's, and its partner modules')."""
        if counted is not None:
            self.platform.access.refund(*counted)
        for use in partners:
            if use.counted:
                self.platform.access.refund(ctx, use.module)

    async def _account(self, scope, state: dict, status: int, t0: float, request_id: str) -> bool:  # noqa: ANN001
        """Write the usage record (waiting for its commit) and the metrics; False if the log failed."""
        platform = self.platform
        ctx = state.get("sfai_auth")
        if ctx is not None and ctx.key_id != "-":  # an authenticated call: its key's last use (kept here, written
            platform.access.key_use.touch(ctx.key_id)  # at most once a minute: no query per call)
        if ctx is None and status == 401:  # a revoked key still in use: its tenant's admin sees it (rate-bounded)
            ctx = state.get("sfai_revoked")
        module = state.get("sfai_module")
        ok = True
        counted = state.get("sfai_counted")
        partners = state.get("sfai_partners", ())
        if not counted_status(status):  # refused or failed after admission: as the usage log counts it
            self._refund(ctx, counted, partners)
        if ctx is not None and platform.settings.usage_log_enabled:
            entry = UsageEntry(
                ts=utcnow(),
                tenant_id=ctx.tenant_id,
                key_id=ctx.key_id,
                module=module,
                method=scope["method"],
                endpoint=redact_keys(scope["path"])[:300],
                status=status,
                latency_us=int((time.perf_counter() - t0) * 1e6),
                request_id=request_id,
                model_version=state.get("sfai_model_version"),
                counted=not state.get("sfai_uncounted"),
            )
            try:
                if partners:  # queued together: one commit
                    await asyncio.gather(platform.writer.submit(entry), *(
                        platform.writer.submit(replace(entry, module=use.module, model_version=use.model_version))
                        for use in partners))
                elif status in NOT_COUNTED:  # a refusal: repeats of one kind are collapsed into one record
                    committed = platform.writer.submit_refusal(entry)
                    if committed is not None:
                        await committed
                else:
                    await platform.writer.submit(entry)
            except Exception:  # noqa: BLE001
                log.exception("usage log write failed (request %s)", request_id)
                ok = False
                if counted_status(status):  # not logged, so not counted: the 503 tells the caller to retry
                    self._refund(ctx, counted, partners)
                status = 503
        if platform.settings.access_log:
            client = scope.get("client") or ("-", 0)
            access_log.info("%s %s %d %.1f ms tenant=%s key=%s request=%s client=%s", scope["method"],
                            redact_keys(scope["path"])[:300], status, (time.perf_counter() - t0) * 1e3,
                            ctx.tenant if ctx else "-", (ctx.key_id if ctx else None) or "-", request_id, client[0])
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
