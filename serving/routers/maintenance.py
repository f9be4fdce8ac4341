"""Maintenance: machine failure risk and remaining useful life."""

from serving.routers.modules import module_router

router = module_router("maintenance")
