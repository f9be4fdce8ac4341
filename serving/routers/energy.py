"""Energy: probabilistic energy forecasts and the carbon they imply."""

from serving.routers.modules import add_predict_route, module_router
from serving.schemas.predictions import document_entity_id

router = module_router("energy")
add_predict_route(
    router,
    "/forecast",
    "energy",
    "Day-ahead p10/p50/p90 kWh per 15 minutes from recent history (records, or a meter's entity id: its history "
    "from the offline store), from 'start'.",
)
document_entity_id(router, "energy")
