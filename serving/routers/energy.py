"""Energy: probabilistic energy forecasts and the carbon they imply."""

from serving.routers.modules import add_predict_route, module_router
from serving.schemas.predictions import document_entity_id

router = module_router("energy")


def check_horizon(body: dict, model) -> None:  # noqa: ANN001 - a serving.runtime.OnnxModel
    """The body's (or query string's) ``horizon``, refused with the message the CLI's ``--horizon`` and the model
    give: '"horizon" must be a whole number of 15-minute steps, 1-96 (one day ahead); got X' (0, 10000 and the text
    "96" each had their own wording). ``null`` is the default."""
    from models.energy.predict import check_horizon as steps

    if body.get("horizon") is not None:
        steps(body["horizon"], int(model.manifest.get("steps_per_day", 96)), text=False)


add_predict_route(
    router,
    "/forecast",
    "energy",
    "Day-ahead p10/p50/p90 kWh per 15 minutes from recent history (records, or a meter's entity id: its history "
    "from the offline store), from 'start'.",
    check_options=check_horizon,
)
document_entity_id(router, "energy")
