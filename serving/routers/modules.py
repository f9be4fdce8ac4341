"""What every module router shares: its prefix, the subscription check, and a status endpoint.

(No ``from __future__ import annotations`` here: FastAPI resolves the local dependency at definition.)
"""

from collections.abc import Callable
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from serving import fastpath
from serving.access import month_start
from serving.deps import CallerDep, PlatformDep, require_module
from serving.errors import InvalidInput
from serving.fastpath import INLINE_ROWS, PredictRoute, prediction_body
from serving.handlers import SfaiRoute
from serving.predictions import (
    ARROW_STREAM,
    MAX_RECORDS,
    EntityRows,
    answer_notes,
    arrow_stream,
    check_batch,
    entity_rows,
    prediction_options,
    read_frame,
    record_scorer,
    records_frame,
    scorer,
    unnamed_model_warning,
    with_stale_warning,
    with_warnings,
)
from serving.schemas.platform import ModuleStatus
from serving.schemas.quality import TOP_K
from serving.tenancy import SubscriptionInfo, utc_text, utcnow
from serving.usage import count_calls


def module_router(module: str) -> APIRouter:
    """``/v1/<module>``: every route in it needs an active subscription to ``module`` (403 otherwise)."""
    check = require_module(module)
    router = APIRouter(route_class=SfaiRoute, prefix=f"/v1/{module}", tags=[module], dependencies=[Depends(check)])

    @router.get("/status", response_model=ModuleStatus, name=f"read_{module}_status")
    async def read_status(
        ctx: CallerDep, platform: PlatformDep, sub: Annotated[SubscriptionInfo | None, Depends(check)]
    ) -> ModuleStatus:
        """The tenant's plan for this module and the models that serve it (each champion, with its challenger)."""
        if not platform.settings.auth_enabled:  # development without keys: no tenant, so no models of one
            models = []
        else:  # the registry is read at most once per cache TTL (2 s), as for the models served
            versions = platform.models.cached_listing(ctx.tenant)
            if versions is None:
                versions = await run_in_threadpool(platform.models.listing, ctx.tenant)
            models = await run_in_threadpool(serving_models, versions, module)  # reads each champion's manifest
        quota = sub.request_quota if sub else None
        used = None
        if quota is not None:  # how close to the quota (a tenant admin learnt it only from the 429)
            used = platform.access.quota_used(ctx.tenant_id, module)  # the count admission keeps: no query
            if used is None:  # counted in Redis, or none counted here yet: the usage log's count (this call is not one)
                used = await run_in_threadpool(count_calls, platform.db, ctx.tenant_id, module, month_start(utcnow()))
        return ModuleStatus(
            module=module,
            tenant=ctx.tenant,
            plan=sub.plan if sub else None,
            request_quota=quota,
            calls_this_month=used,
            quota_remaining=None if quota is None or used is None else max(0, quota - used),
            models=models,
        )

    return router


# what a family adds to its champion's entry in GET /v1/<module>/status, from the champion's manifest (the quality
# router registers the defect model's operating points and global importance)
STATUS_EXTRAS: dict[str, Callable[[dict], dict]] = {}


def serving_models(versions: list, module: str) -> list[dict]:
    """The champion models of ``module`` among a tenant's registered ``versions``: name, version, when it was
    registered, the challenger's version where one waits, a classifier's decision threshold (the probability
    from which it answers ``*_predicted: 1``; chosen on validation data: failure for F1, defect for balanced
    accuracy), and what the family adds from its manifest (``STATUS_EXTRAS``)."""
    out = []
    for m in versions:
        if m.module == module and "champion" in m.aliases:
            challenger = next((c.version for c in versions if c.name == m.name and "challenger" in c.aliases), None)
            row = {"name": m.name, "version": m.version, "created_at": utc_text(m.created_at),
                   "challenger": challenger}
            try:
                manifest = m.manifest
            except (OSError, ValueError):  # a damaged file: serving says so on the next prediction
                manifest = {}
            threshold = manifest.get("threshold")  # what the served model decides with
            if isinstance(threshold, int | float) and not isinstance(threshold, bool):
                row["threshold"] = threshold
            extra = STATUS_EXTRAS.get(m.name)
            if extra is not None and manifest:
                row.update(extra(manifest))
            out.append(row)
    return out


_NUMBER = {"type": "number"}
_ID = {"anyOf": [{"type": "string"}, {"type": "integer"}], "description": "the row's id as sent (or 1..n)"}
# the answer's rows per family (docs/serving.md); explain adds the last fields
ANSWER_ROWS = {
    "failure": {"UDI": _ID, "failure_probability": _NUMBER, "failure_predicted": {"type": "integer", "enum": [0, 1]},
                "failure_mode": {"type": "string", "description": "explain: TWF, HDF, PWF, OSF or empty"},
                "top_features": {"type": "string", "description": "explain: the readings behind the risk"}},
    "rul": {"unit": _ID, "rul": {"type": "number", "description": "remaining useful life in cycles, at the unit's "
                                 "last cycle"}},
    "defect": {"row_id": _ID, "defect_probability": _NUMBER, "defect_predicted": {"type": "integer", "enum": [0, 1]},
               "top_measurements": {"type": "string", "description": "explain: f059:+0.412;f033:-0.220;..."},
               "top_measurement_values": {"type": "array", "description": "explain: the same measurements, each "
                                          "with the value sent, the training median, its direction (high, low, "
                                          "at median, missing) and its contribution", "items": {"type": "object"}}},
    "energy": {"origin": {"type": "string"}, "timestamp": {"type": "string", "description": "the 15-minute "
               "interval's end"}, "p10": _NUMBER, "p50": _NUMBER, "p90": _NUMBER,
               "co2_p50": {"type": "number", "description": "tCO2 in the interval at p50"}},
}
_OPTIONS = {  # what each family's scorer takes besides the rows (serving.predictions.family_options)
    "explain": {"type": ["boolean", "null"], "description": "add the top contributing features (on by default up "
                "to 1,000 records; null: the default)"},
    "start": {"type": ["string", "null"], "description": "the first forecast origin, YYYY-MM-DD (default: the "
              "first day with a week of readings before it)"},
    "horizon": {"type": ["integer", "null"], "minimum": 1, "maximum": 96,
                "description": "15-minute steps per forecast (default 96: a day)"},
    "recent_failure_rate": {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                            "description": "the line's current share of failed wafers (0.065 for 6.5 %), used for "
                            "every record instead of the training file's recent rate (null: the training history)"},
    "top_k": TOP_K,
    "threshold": {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                  "description": "flag a record (…_predicted 1) at or above this probability instead of the threshold "
                  "the model ships with (GET /v1/<module>/status shows it); null: the model's"},
}


CALENDAR_DAY = {
    "type": "object", "required": ["date", "day_type", "source"],
    "properties": {
        "date": {"type": "string", "format": "date", "description": "YYYY-MM-DD, the plant's local day"},
        "day_type": {"type": "string", "enum": ["holiday", "working", "weekend"], "description": "holiday: a "
                     "public holiday or the plant calendar's day_off (forecast as a holiday); working: the plant "
                     "calendar's working day on a weekend or public holiday (forecast as a working day); weekend: a "
                     "Saturday or Sunday"},
        "source": {"type": "string", "enum": ["public", "plant"], "description": "public: the public calendar "
                   "(Korean public holidays, weekends); plant: the tenant's plant calendar (PUT /v1/energy/calendar)"},
    },
}
ANSWER_NOTES = {  # what a JSON answer says about its input, beside the predictions (not an Arrow answer)
    "energy": {
        "filled_intervals": {"type": "integer", "description": "15-minute intervals before the last origin that "
                             "had no reading and were filled (from the same time a week earlier)"},
        "warnings": {"type": "array", "items": {"type": "string"}, "description": "what the forecast filled or "
                     "doubts, in words: origins resting mostly on filled values, filled intervals, readings whose "
                     "level is far from the model's training data (another unit? another meter?), readings far "
                     "above it read as gaps"},
        "emission_factor_t_per_kwh": {"type": "number", "description": "the tCO2 per kWh co2_p50 is computed "
                                      "with: the plant's, from its training file's CO2 column, or Korea's grid "
                                      "factor where it had none; multiply p10 or p90 by it for their CO2"},
        "calendar_used": {"type": "array", "description": "the days the forecasts cover (the plant's local days, "
                          "once each, in date order) that were not forecast as ordinary weekdays, and why; empty: "
                          "every day forecast was an ordinary weekday. Not in an Arrow answer",
                          "items": CALENDAR_DAY},
    },
    "rul": {
        "warnings": {"type": "array", "items": {"type": "string"}, "description": "units sent with fewer cycles "
                     "than the model reads and not from cycle 1 (their RUL is likely too high), or whose cycles skip "
                     "numbers; a call that names no model where the tenant has several RUL models (rul-fd001, "
                     "rul-fd002, ...): which one answered, and the others"},
    },
    "defect": {
        "warnings": {"type": "array", "items": {"type": "string"}, "description": "wafers read far outside the "
                     "training data (most measurements outside their training range, or one reading far out), or "
                     "tested over 7 days after the training file without recent_failure_rate"},
    },
}


def predict_openapi(family: str) -> dict:
    """The OpenAPI of ``family``'s prediction endpoint: its JSON body (only the options its model takes), the same
    options as query parameters for an Arrow or Parquet body, and its answer's rows."""
    from serving.predictions import family_options

    options = {k: _OPTIONS[k] for k in family_options(family)}
    body = {
        "type": "object",
        "additionalProperties": False,
        "description": "records, or entity_ids with view",
        "properties": {
            "records": {"type": "array", "items": {"type": "object"}, "minItems": 1, "maxItems": MAX_RECORDS,
                        "description": "feature rows (the model's input columns)"},
            "entity_ids": {"type": "array", "minItems": 1, "items": {"anyOf": [{"type": "string"},
                                                                                {"type": "integer"}]},
                           "description": "instead of records: latest features from the online store"},
            "view": {"type": "string", "description": "the feature view for entity_ids"},
            "model": {"type": ["string", "null"], "description": "a registered model name (default: the champion)"},
            **options,
        },
    }
    binary = {"schema": {"type": "string", "format": "binary"}}
    params = [{"name": k, "in": "query", "required": False,
               "description": f"{k}, as in a JSON body (with a JSON body: in one place, or both alike)",
               "schema": {key: v for key, v in spec.items() if key != "description"}}
              for k, spec in {"model": {"type": "string"}, **options}.items()]
    for p in params:  # a query string holds no null
        if isinstance(p["schema"].get("type"), list):
            p["schema"]["type"] = p["schema"]["type"][0]
    answer = {
        "type": "object",
        "required": ["model", "version", "count", "predictions"],
        "properties": {
            "model": {"type": "string", "description": "the registered model that answered"},
            "version": {"type": "integer"},
            "count": {"type": "integer"},
            **ANSWER_NOTES.get(family, {}),
            "predictions": {"type": "array", "items": {"type": "object", "properties": ANSWER_ROWS[family]}},
        },
    }
    header = {"schema": {"type": "string"}}
    return {
        "parameters": params,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": body}, ARROW_STREAM: binary,
                        "application/vnd.apache.parquet": binary},
        },
        "responses": {
            "200": {
                "description": "The predictions with the model's name and version; as an Arrow IPC stream when the "
                "request sends Accept: application/vnd.apache.arrow.stream (model, version and row count in the "
                "headers; the JSON answer's other fields, such as warnings and calendar_used, in the stream's schema "
                "metadata as sfai.<field>, JSON text; x-sfai-warnings: how many warnings there are, if any)",
                "content": {"application/json": {"schema": answer}, ARROW_STREAM: binary},
                "headers": {"x-sfai-model": header, "x-sfai-model-version": header, "x-sfai-count": header,
                            "x-sfai-warnings": header},
            }
        },
    }


def add_predict_route(router: APIRouter, path: str, family: str, summary: str, *, explain: bool = False) -> None:
    """``POST <prefix><path>``: score records (JSON, Arrow or Parquet) or online-store entities with the
    tenant's champion ``family`` model; answers the model name and version with the predictions.
    ``explain``: the answer carries the top contributing features unless the body says ``"explain": false``."""
    async def predict(request: Request, ctx: CallerDep, platform: PlatformDep) -> Response:
        limit = platform.settings.max_batch_records
        # the family named, not found from the path (a deployment under a root path has another one)
        rows, body = await read_frame(request, limit, family=family, turns=platform.turns, tenant_id=ctx.tenant_id)
        from_store = rows is None  # online-store rows also carry the view's key and features no model reads
        view = None
        if from_store:
            view, ids = body.get("view"), body.get("entity_ids")
            if not view or not isinstance(view, str) or not isinstance(ids, list) or not ids:
                raise InvalidInput('"entity_ids" needs a non-empty list and "view" the feature view to read')
            check_batch(len(ids), limit, "entity ids")
            fs = platform.cached_feature_store(ctx.tenant) or await run_in_threadpool(
                platform.feature_store, ctx.tenant
            )
            if len(ids) <= INLINE_ROWS:  # a local key lookup: cheaper than a thread hop
                rows = entity_rows(fs, view, ids)
            else:
                rows = await run_in_threadpool(entity_rows, fs, view, ids)
        preferred = body.get("model")
        model = platform.models.cached(ctx.tenant, family, preferred) or await run_in_threadpool(
            partial(platform.models.champion, ctx.tenant, family, preferred, refresh=True)
        )
        request.state.sfai_model_version = f"{model.name}@{model.version}"
        chosen: list[str] = []  # which model answered, where the call named none and the tenant has several
        if preferred is None:
            versions = platform.models.cached_listing(ctx.tenant)
            if versions is None:
                versions = await run_in_threadpool(platform.models.listing, ctx.tenant)
            chosen = unnamed_model_warning(versions, family, model)
        options = prediction_options(body, family, explain, len(rows))
        if from_store and isinstance(rows, EntityRows):  # a forecast from an earlier day reads the history before it
            rows.first_day = options.get("start")
        stale_s = platform.settings.stale_reading_s

        def frame_notes(out) -> dict | None:  # noqa: ANN001 - what the answer says beside a scored frame's rows
            said = with_warnings(answer_notes(out), chosen)
            if from_store:  # an entity's reading older than SFAI_STALE_READING_S: said
                said = with_stale_warning(said, out, stale_s, view)
            return said

        if ARROW_STREAM in (request.headers.get("accept") or ""):  # a batch client that reads Arrow back
            def arrow_answer() -> tuple[int, bytes, dict | None]:  # the frame too is built off the event loop
                frame = records_frame(family, rows, from_store=from_store)  # (~55 ms for 1,000 SECOM records)
                out = scorer(family)(model, frame, **options)
                said = frame_notes(out)  # in the stream's schema metadata
                return *arrow_stream(out, said), said

            count, body, said = await platform.turns.run(ctx.tenant_id, arrow_answer)
            headers = {  # count: answer rows (RUL: one per unit)
                "x-sfai-model": model.name, "x-sfai-model-version": str(model.version), "x-sfai-count": str(count)}
            if said and said.get("warnings"):  # their text: the stream's sfai.warnings metadata
                headers["x-sfai-warnings"] = str(len(said["warnings"]))
            return Response(body, media_type=ARROW_STREAM, headers=headers)
        fast = record_scorer(family) if isinstance(rows, list) else None
        if fast is not None and from_store:
            fast = partial(fast, from_store=True)
        notes = None
        if fast is not None:
            def answer_rows() -> tuple[bytes, dict | None]:
                answered = fast(model, rows, **options)
                said = with_warnings(None, chosen)
                if from_store:
                    said = with_stale_warning(said, answered, stale_s, view)
                return fastpath.dumps(answered), said

            if len(rows) <= INLINE_ROWS:
                predictions, notes = answer_rows()  # well under a millisecond: no thread hop
            else:
                predictions, notes = await platform.turns.run(ctx.tenant_id, answer_rows)
            count = len(rows)
        else:
            out = await platform.turns.run(  # the frame too is built off the event loop, in the tenant's turn
                ctx.tenant_id,
                lambda: scorer(family)(model, records_frame(family, rows, from_store=from_store), **options),
            )
            predictions, count = out.to_json(orient="records", date_format="iso", force_ascii=False), len(out)
            notes = frame_notes(out)
        # serialised here, not by FastAPI's encoder (which walks every value: ~0.2 s for 10,000 records)
        return Response(prediction_body(model, predictions, count, notes), media_type="application/json")

    fastpath.register(PredictRoute(router.prefix + path, router.prefix.rsplit("/", 1)[-1], family, explain))
    predict.__name__ = f"predict_{family}"
    predict.__doc__ = summary
    router.add_api_route(
        path, predict, methods=["POST"], name=f"predict_{family}", summary=summary,
        openapi_extra=predict_openapi(family),
    )
