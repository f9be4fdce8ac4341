"""The SFAI API: ``create_app(settings)`` builds it; ``sfai serve`` runs it under uvicorn."""

from __future__ import annotations

import gc
import logging
import logging.config
import sys
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from serving import __version__, fastpath
from serving.db import Database
from serving.handlers import error_response, install_error_handlers
from serving.logs import server_log_config
from serving.middleware import ACCOUNTED, PlatformMiddleware
from serving.platform import Platform
from serving.routers import admin, energy, health, industries, ingest, maintenance, quality, scheduling, usage
from serving.routers import console as console_api
from serving.schemas.platform import COMMON_ERRORS, PUBLIC_ERRORS
from serving.settings import Settings, get_settings

STATIC = Path(__file__).with_name("static")
SWAGGER = "/static/vendor/swagger-ui"  # Swagger UI 5.36.0 (serving/static/vendor/swagger-ui/README.md)
log = logging.getLogger("sfai.api")

DESCRIPTION = """
SFAI serves the AI modules a factory subscribes to: `quality` (defect prediction), `maintenance`
(failure risk, remaining useful life), `energy` (probabilistic forecasts and carbon) and `scheduling`
(CP-SAT production plans).

Every call carries `Authorization: Bearer <api key>`. A module the tenant has not subscribed to answers
403 naming the module; every error is `{"error": {"code", "message"}}`.
"""


# what the OpenAPI document says of every answer (SfaiAPI.openapi)
REQUEST_ID = {"description": "the caller's X-Request-ID if it sent a valid one, else one SFAI made: quote it when "
              "reporting a problem", "schema": {"type": "string"}}
RETRY_AFTER = {"description": "seconds to wait before calling again", "schema": {"type": "integer"}}
REPLAYED = {"description": "true: the answer of an earlier call with the same Idempotency-Key (nothing was done "
            "again)", "schema": {"type": "string", "enum": ["true"]}}
UNSUPPORTED_MEDIA = ("a body of a type this endpoint does not read (JSON is read under application/json, any +json "
                     "type, text/plain, application/x-www-form-urlencoded or no type), or a compressed body "
                     "(Content-Encoding)")
IDEMPOTENCY_CONFLICT = ("idempotency_key_reused: the Idempotency-Key was sent before with another request; "
                        "idempotency_key_in_use (with Retry-After): the first call with the key is still running")


def _takes_idempotency_key(operation: dict) -> bool:
    return any(p.get("in") == "header" and str(p.get("name", "")).lower() == "idempotency-key"
               for p in operation.get("parameters", ()))


class SfaiAPI(FastAPI):
    """FastAPI with the prediction hot path in front of the framework's own middleware stack.

    A ``POST`` to a prediction endpoint goes straight to a :class:`PlatformMiddleware` that wraps the whole app
    (request id, body limit, security headers, usage log, metrics, then :mod:`serving.fastpath`); what the fast
    path does not answer continues through the full stack, where the inner ``PlatformMiddleware`` sees the
    request is accounted for already and passes it on. Every other request takes the usual way."""

    hot: PlatformMiddleware | None = None

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        hot = self.hot
        if hot is not None and scope["type"] == "http" and scope["path"] in fastpath.ROUTES:
            await hot(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict:
        """FastAPI's schema, plus what a client generated from it needs: the API key as a bearer scheme on every
        operation that answers 401 (``/metrics`` has its own token), error bodies as the JSON they are (an
        endpoint that answers text, such as ``/metrics``, declared its errors as text), and what every route
        answers by the rules of :class:`serving.handlers.SfaiRoute` and the middleware: ``X-Request-ID`` on every
        answer, ``Retry-After`` on 429 and 503, 415 on every operation that reads a body, and on those that take an
        ``Idempotency-Key`` its 409 and the ``Idempotent-Replayed`` header of a replayed answer."""
        if self.openapi_schema:
            return self.openapi_schema
        schema = super().openapi()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["apiKey"] = {"type": "http", "scheme": "bearer", "description": "a tenant's API key (sfai_k...): "
                             "Authorization: Bearer <key>"}
        schemes["metricsToken"] = {"type": "http", "scheme": "bearer", "description": "SFAI_METRICS_TOKEN"}
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if "401" in responses:
                    operation["security"] = [{"metricsToken": []} if path == "/metrics" else {"apiKey": []}]
                if "requestBody" in operation and "415" not in responses:
                    responses["415"] = {"description": UNSUPPORTED_MEDIA, "content": error}
                if _takes_idempotency_key(operation):
                    responses.setdefault("409", {"description": IDEMPOTENCY_CONFLICT, "content": error})
                    if IDEMPOTENCY_CONFLICT not in responses["409"]["description"]:
                        responses["409"]["description"] += "; " + IDEMPOTENCY_CONFLICT
                    responses["409"].setdefault("headers", {}).setdefault("Retry-After", RETRY_AFTER)
                    for code, response in responses.items():
                        if code.startswith("2"):
                            response.setdefault("headers", {})["Idempotent-Replayed"] = REPLAYED
                for code, response in responses.items():
                    content = response.get("content")
                    if code[0] in "45" and content and "application/json" not in content:
                        response["content"] = {"application/json": next(iter(content.values()))}
                    headers = response.setdefault("headers", {})
                    headers.setdefault("X-Request-ID", REQUEST_ID)
                    if code in ("429", "503"):
                        headers.setdefault("Retry-After", RETRY_AFTER)
        self.openapi_schema = schema
        return schema

    async def routed(self, scope, receive, send) -> None:  # noqa: ANN001
        """The full stack, for what the hot path hands on (already accounted for)."""
        scope[ACCOUNTED] = True
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, *, db: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    platform = Platform.build(settings, db)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        platform.start()
        platform.jobs.start()  # a serving process stamps its background solves and takes over stopped ones
        try:
            yield
        finally:
            platform.close()

    app = SfaiAPI(
        title="SFAI",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served below from this server's own files, not a CDN
        redoc_url=None,
        openapi_tags=[
            {"name": "quality", "description": "Defect prediction from process measurements"},
            {"name": "maintenance", "description": "Machine failure risk and remaining useful life"},
            {"name": "energy", "description": "Probabilistic energy forecasts and carbon"},
            {"name": "scheduling", "description": "Production plans with OR-Tools CP-SAT"},
            {"name": "tenant", "description": "Tenant, subscriptions and API keys (tenant admins)"},
            {"name": "usage", "description": "The usage log, kept three years"},
            {"name": "features", "description": "Push ingest into the feature store; online feature lookups"},
        ],
    )
    # a path with a trailing slash is a JSON 404 saying so: the redirect had answered POST .../predict/ with an empty
    # 307, which clients (httpx, many MES libraries) do not follow for a POST
    app.router.redirect_slashes = False
    app.state.platform = platform
    platform.start()  # also started here so that a TestClient without a context manager works
    install_error_handlers(app)
    for r in (health, industries):
        app.include_router(r.router, responses=PUBLIC_ERRORS)
    for r in (admin, usage, ingest, quality, maintenance, energy, scheduling, console_api):
        app.include_router(r.router, responses=COMMON_ERRORS)

    # HEAD as GET (a monitor's or load balancer's probe, curl -I): it had been a 405, read as "down"
    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def console() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers={"cache-control": "no-cache"})

    # the web console's scripts, styles and sample plan (shipped in the package; no outside hosts)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # the API page: Swagger UI from serving/static/vendor (FastAPI's default page loads it from a CDN, which a plant
    # network without internet access cannot reach: the page stayed blank)
    @app.get("/docs", include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="SFAI API",
                                   swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{SWAGGER}/swagger-ui.css",
                                   swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png",
                                   # no badge from validator.swagger.io: it would send the spec's address out
                                   swagger_ui_parameters={"validatorUrl": None})

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> RedirectResponse:  # one API page (ReDoc would need its own bundle)
        return RedirectResponse("/docs")

    if settings.cors_origins:  # closed by default: a browser page elsewhere cannot call SFAI with a user's key
        app.add_middleware(
            _JsonCors,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["authorization", "content-type", "accept", "x-request-id", "idempotency-key"],
            expose_headers=["x-request-id", "retry-after", "x-sfai-model", "x-sfai-model-version", "x-sfai-count",
                            "x-sfai-warnings", "idempotent-replayed"],
            max_age=600,
        )
    app.add_middleware(PlatformMiddleware, platform=platform)
    if settings.predict_fast_path:
        app.hot = PlatformMiddleware(app.routed, platform)
    return app


class _JsonCors(CORSMiddleware):
    """CORS whose refused preflight is SFAI's JSON error (it was Starlette's plain text "Disallowed CORS origin")."""

    def preflight_response(self, request_headers):  # noqa: ANN001, ANN201
        answer = super().preflight_response(request_headers)
        if answer.status_code != 400:
            return answer
        refused = answer.body.decode("utf-8", "replace")  # "Disallowed CORS origin, method"
        out = error_response(400, "cors_refused", f"{refused}: this origin, method or header is not allowed to call "
                             "SFAI from a browser (the operator lists origins in SFAI_CORS_ORIGINS)")
        for name, value in answer.headers.items():
            if name not in ("content-type", "content-length"):
                out.headers[name] = value
        return out


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (what ``sfai serve`` starts in each worker)."""
    if not logging.getLogger().handlers:  # started by uvicorn itself, not ``sfai serve`` (which configures it)
        logging.config.dictConfig(server_log_config())
    settings = get_settings()
    sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
    app = create_app(settings)
    # The objects built at start-up live as long as the process: keep them out of the collector's full
    # passes, which otherwise scan them every few seconds under load (a 100 ms stall each time).
    gc.collect()
    gc.freeze()
    return app
