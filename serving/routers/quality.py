"""Quality: defect prediction from process measurements.

Besides the shared module routes, the quality status lists, for each defect champion, its validation operating
points (threshold -> recall, precision, share flagged) and the global importance of its measurements, and the
OpenAPI describes the defect answer's explanation fields (``serving/schemas/quality.py``).
"""

from serving.routers import modules
from serving.routers.modules import add_predict_route, module_router
from serving.schemas.predictions import document_entity_id
from serving.schemas.quality import DEFECT_ROWS, DEFECT_WARNINGS

PREDICT = "/defect/predict"
STATUS_IMPORTANCE = 10  # features per champion in the status answer (sfai models show --top N for more)

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
    from models.defect.predict import validation_summary

    return {"uses_recent_failure_rate": bool(manifest.get("drift")), **validation_summary(manifest, STATUS_IMPORTANCE)}


modules.STATUS_EXTRAS["defect"] = defect_status
