"""One JSON error shape for every error: ``{"error": {"code": ..., "message": ...}}``."""

from __future__ import annotations

import errno
import logging
import time
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.errors import (
    InvalidInput,
    SfaiError,
    UnsupportedMediaType,
    cut_message,
    parse_json_off_loop,
    redact_keys,
)

log = logging.getLogger("sfai.api")


def error_response(status: int, code: str, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": cut_message(message), **extra}}, status_code=status)


def _status_code_name(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def _loc(loc) -> str:  # noqa: ANN001
    parts = [str(p) for p in loc if p not in ("body",)] or [str(p) for p in loc]
    return ".".join(parts)


class BodyInvalid(StarletteHTTPException):
    """422 for a JSON body FastAPI reads (an HTTPException, which its body parsing lets through unchanged)."""

    code = "invalid_input"

    def __init__(self, message: str) -> None:
        super().__init__(422, message)


class BodyNotJson(StarletteHTTPException):
    """415 for a body FastAPI reads whose content type did not say JSON (none, text/plain, form-urlencoded) and
    which does not parse as JSON: the caller sent something else, and is told what to send."""

    code = "unsupported_media_type"

    def __init__(self, message: str) -> None:
        super().__init__(415, message)


class SfaiRequest(Request):
    """A request whose JSON body is read by :func:`serving.errors.parse_json`: nesting too deep, a lone
    surrogate escape or a key given twice in one object (a job with two ``due``s: JSON keeps the last without a
    word) is a 422 naming it, not FastAPI's 400 "error parsing the body", a 500 further on or a silent choice.
    ``sent_as``: the content type the body came under when it did not name JSON (see :data:`JSON_READ`)."""

    sent_as: str | None = None

    async def json(self):  # noqa: ANN201
        if not hasattr(self, "_json"):
            try:
                self._json = await parse_json_off_loop(await self.body(), unique_keys=True)
            except InvalidInput as e:
                if self.sent_as is not None and not_json(e):
                    raise BodyNotJson(not_json_message(self.sent_as, "JSON (application/json)")) from None
                raise BodyInvalid(e.message) from None
        return self._json


def _needs(dependant, call) -> bool:  # noqa: ANN001 - FastAPI's Dependant
    """Whether ``call`` is among a route's dependencies, at any depth."""
    return any(d.call is call or _needs(d, call) for d in dependant.dependencies)


# The content types a JSON body is read as JSON under, on every endpoint that reads one: JSON's own (and any
# ``+json``), and what a client sends when it names none (curl -d sends form-urlencoded; some send text/plain).
# Any other type (multipart, CSV, octet-stream, XML...) is a 415 naming it and what to send; the prediction
# endpoints also read Arrow and Parquet, ingest also CSV, Parquet and multipart uploads.
JSON_READ = frozenset({"", "application/json", "text/json", "application/x-www-form-urlencoded", "text/plain"})


def media_type(request: Request) -> str:
    """The request's content type without its parameters, lower case ("" when it names none)."""
    return (request.headers.get("content-type") or "").split(";")[0].strip().lower()


def read_as_json(ctype: str) -> bool:
    return ctype in JSON_READ or ctype.endswith("+json")


def names_json(ctype: str) -> bool:
    """Whether the content type says the body is JSON (a body that does not parse is then a 422, not a 415)."""
    return ctype in ("application/json", "text/json") or ctype.endswith("+json")


def not_json(e: InvalidInput) -> bool:
    """Whether :func:`serving.errors.parse_json` refused the body as no JSON at all (not JSON with a problem: nesting,
    a surrogate, a key given twice, a number out of range)."""
    return " is not valid JSON: " in e.message


def _what(ctype: str) -> str:
    return f"a {ctype[:60]!r} body" if ctype else "a body without a content type"


def not_read(ctype: str, send: str) -> UnsupportedMediaType:
    """The 415 of a body of a type the endpoint does not read."""
    return UnsupportedMediaType(f"cannot read {_what(ctype)}: send {send}")


def not_json_message(ctype: str, send: str) -> str:
    return (f"cannot read {_what(ctype)} as JSON (what a body {'of that type' if ctype else 'without one'} is read "
            f"as): send {send}")


async def read_json(raw: bytes, ctype: str, send: str, *, then=None):  # noqa: ANN001, ANN201
    """A body an endpoint reads itself, by the rule of every JSON endpoint: a type of :data:`JSON_READ` or ``+json``
    (else a 415 saying to ``send``), parsed as :func:`parse_json_off_loop` parses it (``then`` applied in its
    thread); a body that is no JSON is a 415 under a type that does not say JSON, a 422 under one that does."""
    if not read_as_json(ctype):
        raise not_read(ctype, send)
    try:
        return await parse_json_off_loop(raw, unique_keys=True, then=then)
    except InvalidInput as e:
        if names_json(ctype) or not not_json(e):  # JSON, with a problem the message names: 422
            raise
        raise UnsupportedMediaType(not_json_message(ctype, send)) from None  # a CSV sent as text/plain, a form


def _query_fields(dependant) -> dict:  # noqa: ANN001 - FastAPI's Dependant
    """The query parameters an endpoint and its dependencies declare: name -> whether it takes a list."""
    from fastapi.dependencies.utils import field_annotation_is_sequence

    out = {p.alias: field_annotation_is_sequence(p.field_info.annotation) for p in dependant.query_params}
    for sub in dependant.dependencies:
        out.update(_query_fields(sub))
    return out


def _body_fields(body_field) -> set[str]:  # noqa: ANN001 - FastAPI's ModelField
    fields = getattr(getattr(body_field, "field_info", None), "annotation", None)
    fields = getattr(fields, "model_fields", None) or {}
    return {f.alias or name for name, f in fields.items()}


def _reads_own_query(route: APIRoute) -> bool:
    """A route that reads its options from the query string itself (the prediction endpoints: their options are
    described in ``openapi_extra`` and refused there when unknown or repeated), not through FastAPI."""
    params = (route.openapi_extra or {}).get("parameters") or []
    return any(isinstance(p, dict) and p.get("in") == "query" for p in params)


class SfaiRoute(APIRoute):
    """Every SFAI route: its handler reads the request as an :class:`SfaiRequest`. A route that takes a JSON body
    and needs an API key checks the key first: FastAPI reads and parses the body before it runs any dependency, so
    a 40 MB body without a key had been parsed (5.5 s of the process's parse budget, and its memory) to be answered
    401 (security audit).

    The same rules on every route (an MES integrator found each endpoint had its own):

    - a query parameter the route does not declare is a 422 naming it and those the route takes, and one given
      twice is a 422 unless it is declared as a list (``?time_limit_s=1`` on a solve had run the 10 s default,
      ``?limit=1`` listed every key, ``?from=..&from=..`` took the last one). Routes that read their options from
      the query themselves (the prediction endpoints) refuse those on their own terms.
    - a JSON body is read as JSON under the types of :data:`JSON_READ` (no type, ``text/plain``, curl's
      form-urlencoded, as the prediction endpoints always did), and any other type is a 415 naming it and what to
      send (``text/plain`` had been a 422 "Input should be a valid dictionary" on the routes FastAPI parses). Under
      a type that does not say JSON, a body that does not parse as JSON is a 415 too (:class:`BodyNotJson`); under
      one that does, a 422 naming the fault. The prediction endpoints and ingest, which read their bodies
      themselves, answer by the same rule."""

    def get_route_handler(self):  # noqa: ANN201
        from fastapi import params

        from serving.deps import authenticate

        handler = super().get_route_handler()
        needs_key = _needs(self.dependant, authenticate)
        json_body = self.body_field is not None and not isinstance(self.body_field.field_info, params.Form)
        key_first = self.body_field is not None and needs_key
        query = None if _reads_own_query(self) else _query_fields(self.dependant)
        in_body = _body_fields(self.body_field) if json_body else set()

        async def route(request: Request):  # noqa: ANN202
            request = SfaiRequest(request.scope, request.receive)
            if key_first:
                await authenticate(request, request.app.state.platform)  # the dependency then finds the caller
            if query is not None and request.query_params:
                problem = _query_problem(request, query, in_body)
                if problem is not None:
                    if needs_key and not key_first:  # a caller without a valid key is told that first
                        await authenticate(request, request.app.state.platform)
                    raise InvalidInput(problem)
            if json_body:
                ctype = media_type(request)
                if not read_as_json(ctype):
                    raise not_read(ctype, "JSON (application/json): this endpoint reads JSON only")
                if ctype != "application/json" and not ctype.endswith("+json"):  # FastAPI would not read it as JSON
                    scope = dict(request.scope)
                    scope["headers"] = [(k, v) for k, v in request.scope["headers"] if k != b"content-type"]
                    scope["headers"].append((b"content-type", b"application/json"))
                    request = SfaiRequest(scope, request.receive)
                    if not names_json(ctype):
                        request.sent_as = ctype
            return await handler(request)

        return route


def _query_problem(request: Request, declared: dict, in_body: set[str]) -> str | None:
    names = [k for k, _ in request.query_params.multi_items()]
    takes = ", ".join(sorted(declared)) or "no query parameters"
    for name in names:
        if name not in declared:
            where = (f" ({name[:60]!r} goes in the JSON body)" if name in in_body else
                     " (a key reads its own tenant's data only)" if name in ("tenant", "tenant_id") else "")
            return f"unknown query parameter {name[:60]!r}: this endpoint takes {takes}{where}"
    for name in names:
        if not declared[name] and names.count(name) > 1:
            return f"query parameter {name[:60]!r} is given {names.count(name)} times: give it once"
    return None


def validation_message(errors: list[dict]) -> str:
    """Pydantic's errors as one line: ``records.0: Input should be a valid dictionary; ...`` (at most ten)."""
    parts = [f"{_loc(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors[:10]]
    return "; ".join(parts) + (f" (and {len(errors) - 10} more)" if len(errors) > 10 else "")


def _unavailable(what: str):  # noqa: ANN202
    async def handler(req: Request, exc: Exception) -> JSONResponse:
        log.warning("%s %s: %s unavailable: %s", req.method, redact_keys(req.url.path), what,
                    redact_keys(" ".join(str(exc).split())[:300]))
        code = "database_unavailable" if what == "the metadata database" else "online_store_unavailable"
        resp = error_response(503, code, f"{what} is unreachable or failing; retry shortly")
        resp.headers["Retry-After"] = "5"
        return resp

    return handler


# a file write SFAI_HOME refused for a reason of the disk's, not the request's: a 503 storage_unavailable
STORAGE_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EIO})
STORAGE_FAILED_S = 60.0  # /readyz answers 503 this long after a request found the storage failing
storage_failed = [-float("inf")]  # monotonic time of the last such failure (this process)


def storage_failing() -> bool:
    return time.monotonic() - storage_failed[0] < STORAGE_FAILED_S


def install_error_handlers(app: FastAPI) -> None:
    # services SFAI depends on: their outage is a 503 the caller can retry, never a 500; SFAI reconnects by itself
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from sqlalchemy.exc import DataError, InterfaceError, OperationalError

    for exc_type in (OperationalError, InterfaceError):
        app.add_exception_handler(exc_type, _unavailable("the metadata database"))

    @app.exception_handler(DataError)
    async def _data(_req: Request, _exc: DataError) -> JSONResponse:
        # a value from the request the database cannot hold (PostgreSQL: a NUL in text, a number out of its type's
        # range) reached a query: the caller's error, named without echoing the query
        return error_response(
            422, "invalid_request", "a value in the request cannot be stored or looked up (a NUL character, or a "
            "number out of range)"
        )
    for exc_type in (RedisConnectionError, RedisTimeoutError):
        app.add_exception_handler(exc_type, _unavailable("the online feature store"))

    @app.exception_handler(OSError)
    async def _storage(req: Request, exc: OSError) -> JSONResponse:
        # SFAI_HOME read-only, full or denied (a remount, a full disk, a quota): the operator's to fix, the caller's
        # to retry; it was a 500 with a traceback, and /readyz stayed ready (operator audit). Other OS errors stay
        # internal errors.
        if exc.errno not in STORAGE_ERRNOS:
            raise exc
        storage_failed[0] = time.monotonic()
        log.warning("%s %s: storage unavailable: %s", req.method, redact_keys(req.url.path), redact_keys(str(exc)))
        resp = error_response(503, "storage_unavailable", f"SFAI's storage cannot be written ({exc.strerror}); the "
                              "operator is told in the server log; retry shortly")
        resp.headers["Retry-After"] = "30"
        return resp

    @app.exception_handler(Exception)
    async def _internal(req: Request, _exc: Exception) -> JSONResponse:
        # Starlette's outermost layer answers with this and re-raises (PlatformMiddleware logs it): a request
        # that the prediction hot path handed to the full stack gets the same JSON 500 as any other route
        request_id = getattr(req.state, "sfai_request_id", None) or "unknown"
        return error_response(500, "internal_error", f"internal error (request {request_id})")

    @app.exception_handler(SfaiError)
    async def _sfai(_req: Request, exc: SfaiError) -> JSONResponse:
        resp = error_response(exc.status, exc.code, exc.message)
        if exc.headers:
            resp.headers.update(exc.headers)
        return resp

    @app.exception_handler(StarletteHTTPException)
    async def _http(req: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            path = req.url.path
            message = "no such endpoint; see /docs"
            if len(path) > 1 and path.endswith("/"):  # no redirect (an empty 307 a client does not follow)
                message += f" (SFAI's paths end without a slash: {path.rstrip('/')[:200]})"
        code = getattr(exc, "code", None) or _status_code_name(exc.status_code)
        resp = error_response(exc.status_code, code, message)
        if exc.headers:
            resp.headers.update(exc.headers)
        return resp

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        details = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg"), "type": e.get("type")}
            for e in errors[:100]
        ]
        return error_response(422, "invalid_request", validation_message(errors), details=details)
