"""The KSIC manufacturing divisions a tenant can belong to, and each one's industry profile."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from pipelines.industries import IndustryProfile, get_profile, list_profiles
from pipelines.ksic import KSIC_DIVISIONS, normalize_ksic
from serving.errors import NotFound
from serving.handlers import SfaiRoute
from serving.schemas.platform import IndustryPublic

router = APIRouter(route_class=SfaiRoute, prefix="/v1/industries", tags=["industries"])


class IndustryProfilePublic(BaseModel):
    """A division with what SFAI does for it: modules, canonical tables, feature templates."""

    code: str
    name_ko: str
    name_en: str
    modules: list[str]
    tables: list[str]
    feature_templates: list[str]
    typical_assets: str
    public_dataset: str | None = None
    demo: str | None = None


def _profile_public(p: IndustryProfile) -> IndustryProfilePublic:
    return IndustryProfilePublic(**p.as_dict())


def _code(code: str) -> str:
    try:
        return normalize_ksic(code)
    except ValueError as e:
        raise NotFound(str(e)) from None


@router.get("", response_model=list[IndustryPublic])
async def read_industries() -> list[IndustryPublic]:
    """All 25 KSIC manufacturing divisions (C10-C34)."""
    return [IndustryPublic(code=d.code, name_ko=d.name_ko, name_en=d.name_en) for d in KSIC_DIVISIONS.values()]


@router.get("/profiles", response_model=list[IndustryProfilePublic])
async def read_industry_profiles() -> list[IndustryProfilePublic]:
    """All 25 industry profiles."""
    return [_profile_public(p) for p in list_profiles()]


@router.get("/{code}", response_model=IndustryPublic)
async def read_industry(code: str) -> IndustryPublic:
    """One division, by code (``C29`` or ``29``)."""
    d = KSIC_DIVISIONS[_code(code)]
    return IndustryPublic(code=d.code, name_ko=d.name_ko, name_en=d.name_en)


@router.get("/{code}/profile", response_model=IndustryProfilePublic)
async def read_industry_profile(code: str) -> IndustryProfilePublic:
    """One division's profile: modules that apply, canonical tables, default feature templates."""
    return _profile_public(get_profile(_code(code)))
