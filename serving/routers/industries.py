"""The KSIC manufacturing divisions a tenant can belong to."""

from __future__ import annotations

from fastapi import APIRouter

from pipelines.ksic import KSIC_DIVISIONS, normalize_ksic
from serving.errors import NotFound
from serving.schemas.platform import IndustryPublic

router = APIRouter(prefix="/v1/industries", tags=["industries"])


@router.get("", response_model=list[IndustryPublic])
async def read_industries() -> list[IndustryPublic]:
    """All 25 KSIC manufacturing divisions (C10-C34)."""
    return [IndustryPublic(code=d.code, name_ko=d.name_ko, name_en=d.name_en) for d in KSIC_DIVISIONS.values()]


@router.get("/{code}", response_model=IndustryPublic)
async def read_industry(code: str) -> IndustryPublic:
    """One division, by code (``C29`` or ``29``)."""
    try:
        d = KSIC_DIVISIONS[normalize_ksic(code)]
    except ValueError as e:
        raise NotFound(str(e)) from None
    return IndustryPublic(code=d.code, name_ko=d.name_ko, name_en=d.name_en)
