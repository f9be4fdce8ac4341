"""Quality: defect prediction from process measurements."""

from serving.routers.modules import module_router

router = module_router("quality")
