"""Scheduling: production plans optimised with OR-Tools CP-SAT."""

from serving.routers.modules import module_router

router = module_router("scheduling")
