"""Energy: probabilistic energy forecasts and the carbon they imply."""

from serving.routers.modules import module_router

router = module_router("energy")
