"""Quality: defect prediction from process measurements.

Besides the shared module routes, the quality status lists, for each defect champion, its validation operating
points (threshold -> recall, precision, share flagged) and the global importance of its measurements, and the
OpenAPI describes the defect answer's explanation fields (``serving/schemas/quality.py``).
"""

import functools

from starlette.concurrency import run_in_threadpool

from serving.routers import modules
from serving.routers.modules import add_predict_route, module_router
from serving.schemas.platform import ModuleStatus
from serving.schemas.predictions import document_entity_id
from serving.schemas.quality import DEFECT_ROWS, DEFECT_WARNINGS, TOP_K

PREDICT = "/defect/predict"
STATUS_IMPORTANCE = 10  # features per champion in the status answer (sfai models show --top N for more)

modules._OPTIONS.setdefault("top_k", TOP_K)  # the defect scorer's option (serving.predictions.OPTIONS)
router = module_router("quality")
add_predict_route(
    router,
    PREDICT,
    "defect",
    "Defect probability per lot / wafer from its process measurements, with the contributions that moved it "
    "(log-odds of a defect: + raises the risk).",
    explain=True,
)


def _describe_answer() -> None:
    """The defect answer's rows and warnings in the OpenAPI, as ``serving/schemas/quality.py`` words them (replaced,
    not updated: the shared schema's dicts are the family's, ``serving.routers.modules.ANSWER_ROWS``)."""
    route = next(r for r in router.routes if getattr(r, "path", None) == router.prefix + PREDICT)
    answer = route.openapi_extra["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
    answer["predictions"] = {**answer["predictions"], "items": {"type": "object", "properties": dict(DEFECT_ROWS)}}
    answer["warnings"] = DEFECT_WARNINGS


_describe_answer()
document_entity_id(router, "defect")  # after: it adds entity_id to the rows described above


def defect_status(manifest: dict) -> dict:
    """What the status adds to a defect champion's entry: whether it reads the line's recent failure rate, its
    validation operating points (without the full curve) and its top measurements by global importance."""
    out: dict = {"uses_recent_failure_rate": bool(manifest.get("drift"))}
    points = manifest.get("operating_points")
    if points:
        out["operating_points"] = {k: v for k, v in points.items() if k != "curve"}
    importance = manifest.get("global_importance")
    if importance:
        out["global_importance"] = {**importance, "features": importance["features"][:STATUS_IMPORTANCE]}
    return out


# the shared status endpoint, answered by the same code, with each defect champion's entry extended
_shared = next(r for r in router.routes if getattr(r, "path", None) == router.prefix + "/status")
router.routes.remove(_shared)


@router.get("/status", response_model=ModuleStatus, name="read_quality_status",
            summary="Plan, quota and models of the quality module; each defect champion with its validation "
                    "operating points and global importance")
@functools.wraps(_shared.endpoint)  # the same parameters, so the same dependencies (subscription check included)
async def read_quality_status(*args, **kwargs) -> ModuleStatus:  # noqa: ANN002, ANN003
    status = await _shared.endpoint(*args, **kwargs)
    ctx, platform = kwargs.get("ctx"), kwargs.get("platform")
    defect = [m for m in status.models if str(m.get("name", "")).startswith("defect")]
    if not defect or ctx is None or platform is None:
        return status
    versions = platform.models.cached_listing(ctx.tenant) or await run_in_threadpool(platform.models.listing,
                                                                                      ctx.tenant)

    def extend() -> None:
        for entry in defect:
            mv = next((v for v in versions if v.name == entry["name"] and v.version == entry["version"]), None)
            try:
                manifest = mv.manifest if mv is not None else None
            except (OSError, ValueError):  # a damaged file: serving says so on the next prediction
                manifest = None
            if manifest:
                entry.update(defect_status(manifest))

    await run_in_threadpool(extend)
    return status
