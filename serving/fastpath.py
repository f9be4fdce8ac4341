"""The hot path of the prediction endpoints, answered without the web framework's per-request machinery.

An MES calls ``POST /v1/<module>/<model>/predict`` for every lot and machine with one or a few records. Routing,
dependency injection and the exception layers cost more than the model itself for such a call, so
``PlatformMiddleware`` hands these requests to :func:`answer` first. It answers only when everything it needs
is already in memory and the request is the plain case:

- a JSON body of at most ``INLINE_ROWS`` inline records or entity ids, with an API key, a subscription, the
  model (and for entity ids the feature store) in the caches;
- a family with a record scorer (no pandas on this path).

Anything else (a cache miss, another content type, a big batch, malformed input) goes to the FastAPI route with
the body replayed, so error messages and slow-path behaviour are the route's own. Nothing with a side effect
happens before that decision: the subscription check, which counts the call against the quota, comes last, and
from then on the request is answered here, errors included, in the one error shape. The answer, the usage
record (written by the middleware before the response starts) and the metrics are the same either way; the
tests compare both paths response for response.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from serving.errors import SfaiError, cut_message
from serving.predictions import (
    check_one_source,
    entity_rows,
    prediction_options,
    record_scorer,
    unnamed_model_warning,
    with_stale_warning,
    with_warnings,
)

if TYPE_CHECKING:
    from serving.platform import Platform

INLINE_ROWS = 16  # requests this small are scored on the event loop (the work is shorter than a thread hop)
MAX_FAST_BODY = 64 * 1024  # bigger bodies are batches: the route streams them to a worker thread
JSON_TYPES = (b"application/json", b"application/json; charset=utf-8")


@dataclass(frozen=True, slots=True)
class PredictRoute:
    path: str  # the full path, also the metrics label (as the route's own ``path`` would be)
    module: str
    family: str
    explain: bool


ROUTES: dict[str, PredictRoute] = {}  # filled by serving.routers.modules.add_predict_route


def register(route: PredictRoute) -> None:
    ROUTES[route.path] = route


class Fallback(Exception):  # noqa: N818 - control flow, not an error
    """This request is not the plain case: the FastAPI route answers it."""


def dumps(value) -> bytes:  # noqa: ANN001
    """JSON bytes of API answers (orjson: several times faster than json for a prediction's few values); what
    orjson cannot encode (an integer past 64 bits, say) json does."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value).encode()


def prediction_body(model, predictions_json: str | bytes, count: int, notes: dict | None = None) -> bytes:  # noqa: ANN001
    """``{"model", "version", "count", ...notes, "predictions"}``, with the predictions already serialised;
    ``notes``: what the answer says about its input (an energy forecast's filled intervals and warnings)."""
    head = orjson.dumps({"model": model.name, "version": int(model.version), "count": count, **(notes or {})})
    if isinstance(predictions_json, str):
        predictions_json = predictions_json.encode()
    return b"".join((head[:-1], b',"predictions":', predictions_json, b"}"))


def error_body(exc: SfaiError) -> bytes:
    return json.dumps({"error": {"code": exc.code, "message": cut_message(exc.message)}}).encode()


async def read_body(receive) -> tuple[bytes, bool]:  # noqa: ANN001
    """The request body read so far and whether it is complete: reading stops past ``MAX_FAST_BODY`` (the rest
    stays with ``receive``) or when the client goes away."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > MAX_FAST_BODY:
            return b"".join(chunks), False


def replay(body: bytes, complete: bool, receive):  # noqa: ANN001, ANN201
    """A ``receive`` that yields ``body`` first (the whole body if ``complete``), then defers to ``receive``."""
    sent = False

    async def _receive():  # noqa: ANN202
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return _receive


# each JSON string, in order, and whether a colon follows it (an object's key): JSON strings hold no bare quote, so
# matching every string one after another from the start reads them all and never starts inside one
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"(\s*:)?')


def _repeats_a_key(raw: bytes, body: object) -> bool:
    """Whether an object of the JSON text ``raw`` (parsed: ``body``) names a key twice, which orjson answers by
    keeping the last value without a word. Every string of the text is a key or a string value of the parsed
    document, but for the key (and its value) a repeat dropped; without a backslash in the text every ``"`` opens
    or closes a string, so the quotes, counted in C, tell (~0.7 us a record, the walk of the parsed body). With a
    backslash (an escaped quote), the keys the text names are counted by a regex (~2 us a record)."""
    keys, texts = _strings_in(body)
    if b"\\" not in raw:
        return raw.count(b'"') != 2 * (keys + texts)
    return keys != sum(1 for colon in _STRING.findall(raw) if colon)


def _strings_in(doc: object) -> tuple[int, int]:
    """(keys, string values) of the parsed document."""
    keys = texts = 0
    stack = [doc]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            keys += len(item)
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is str:
            texts += 1
    return keys, texts


# orjson reads an integer outside -2**63 .. 2**64-1 as a float: a row id of 10**23 came back as 1e+23, which the
# README promises to return as written; such a value (as a float, at least 2**63 away from 0) goes to the route
_INT_RANGE = float(2**63)


def answer(platform: Platform, route: PredictRoute, headers: dict[bytes, bytes], raw: bytes, state: dict):
    """``(status, body, extra headers)`` for a plain prediction request, or raise :class:`Fallback`. Sets
    ``state`` as the route's dependencies would (caller, module, model version) for the usage log."""
    if len(raw) > MAX_FAST_BODY or headers.get(b"content-type") not in JSON_TYPES or b"arrow" in headers.get(
        b"accept", b""
    ):
        raise Fallback
    token = headers.get(b"authorization", b"")
    if token[:7].lower() != b"bearer ":
        raise Fallback
    if b"origin" in headers and platform.settings.cors_origins:  # a browser's call: the CORS middleware answers
        raise Fallback
    access = platform.access
    # looks only (claim=False): at a cache's expiry the route must be the one that refreshes it, or a key revoked
    # or a subscription ended in another process would never be seen here
    ctx = access.cached(access.digest(token[7:].strip().decode("latin-1")), claim=False)
    if ctx is None or not access.subscriptions_cached(ctx.tenant_id, claim=False) or \
            not access.count_cached(ctx.tenant_id, route.module):  # the quota's count reads the log: the route does
        raise Fallback
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:  # not JSON, or JSON that only Python's json reads: the route answers
        raise Fallback from None
    if not isinstance(body, dict) or _repeats_a_key(raw, body):
        raise Fallback  # a key named twice in one object (orjson keeps the last): the route refuses it, naming it
    score = record_scorer(route.family)
    if score is None:
        raise Fallback
    records = body.pop("records", None)
    view = None
    limit = platform.settings.max_batch_records
    try:
        if records is not None:
            if not isinstance(records, list) or not 0 < len(records) <= min(INLINE_ROWS, limit):
                raise Fallback
            if not all(isinstance(r, dict) for r in records):
                raise Fallback
            if any(type(v) is float and not -_INT_RANGE < v < _INT_RANGE for r in records for v in r.values()):
                raise Fallback  # maybe an integer past 64 bits, which orjson reads as a float: the route keeps it
            check_one_source(body)
            rows = records
        else:
            view, ids = body.get("view"), body.get("entity_ids")
            if not view or not isinstance(view, str) or not isinstance(ids, list) or not 0 < len(ids) <= min(
                INLINE_ROWS, limit
            ):
                raise Fallback
            fs = platform.cached_feature_store(ctx.tenant)
            if fs is None:
                raise Fallback
            try:
                rows = entity_rows(fs, view, ids)  # a key lookup; an unknown view or entity raises: the route says so
            except SfaiError:
                raise
            except Exception:  # noqa: BLE001 - the store is failing: the route answers with its 503
                raise Fallback from None
        model = platform.models.cached(ctx.tenant, route.family, body.get("model"), claim=False)
        if model is None:
            raise Fallback
        chosen: list[str] = []  # which model answered, where the call named none and the tenant has several
        if body.get("model") is None:
            versions = platform.models.cached_listing(ctx.tenant)
            if versions is None:
                raise Fallback  # the route reads the registry
            chosen = unnamed_model_warning(versions, route.family, model)
        options = prediction_options(body, route.family, route.explain, len(rows))
    except SfaiError:
        raise Fallback from None  # the route answers it with its own message
    state["sfai_auth"] = ctx
    state["sfai_module"] = route.module
    # from here on the call counts against the quota: it is answered here, errors included
    try:
        if access.admit(ctx, route.module).request_quota is not None:
            state["sfai_counted"] = (ctx, route.module)
        state["sfai_model_version"] = f"{model.name}@{model.version}"
        if records is None:  # online-store rows: the view's key and other features are set aside, not refused
            options["from_store"] = True
        answered = score(model, rows, **options)
        # by entity id: a reading older than SFAI_STALE_READING_S is warned of, as the route warns of it
        notes = with_warnings(None, chosen)
        if records is None:
            notes = with_stale_warning(notes, answered, platform.settings.stale_reading_s, view)
        predictions = dumps(answered)
    except SfaiError as e:
        return e.status, error_body(e), [(k.lower().encode(), v.encode()) for k, v in e.headers.items()]
    return 200, prediction_body(model, predictions, len(rows), notes), []
