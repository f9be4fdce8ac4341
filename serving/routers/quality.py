"""Quality: defect prediction from process measurements."""

from serving.routers.modules import add_predict_route, module_router
from serving.schemas.predictions import document_entity_id

router = module_router("quality")
add_predict_route(
    router,
    "/defect/predict",
    "defect",
    "Defect probability per lot / wafer from its process measurements, with top contributing ones.",
    explain=True,
)
document_entity_id(router, "defect")
