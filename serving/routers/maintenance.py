"""Maintenance: machine failure risk and remaining useful life."""

from serving.routers.modules import add_predict_route, module_router
from serving.schemas.predictions import document_entity_id

router = module_router("maintenance")
add_predict_route(
    router,
    "/failure/predict",
    "failure",
    "Failure probability per machine reading (AI4I-style process data), with the shipped threshold, the likely "
    "failure mode and the readings that raise the risk most.",
    explain=True,
)
add_predict_route(
    router,
    "/rul/predict",
    "rul",
    "Remaining useful life in cycles per unit, at each unit's last reading (C-MAPSS-style series).",
)
document_entity_id(router, "failure")
document_entity_id(router, "rul")
