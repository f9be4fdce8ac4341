"""Schemas of the platform endpoints: tenant, subscriptions, API keys, usage, industries."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ModuleName = Literal["quality", "maintenance", "energy", "scheduling"]
RoleName = Literal["admin", "scientist", "mes", "planner"]
PlanName = Literal["trial", "standard", "enterprise"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubscriptionPublic(BaseModel):
    module: str
    plan: str
    request_quota: int | None = Field(description="calls per calendar month; null means no quota")
    starts_at: datetime
    ends_at: datetime | None


class TenantPublic(BaseModel):
    name: str
    display_name: str
    ksic_code: str
    ksic_name_ko: str
    ksic_name_en: str
    created_at: datetime
    modules: list[str] = Field(description="modules subscribed now")
    caller_key_id: str
    caller_role: str


class SubscriptionCreate(Strict):
    module: ModuleName
    plan: PlanName = "standard"


class ApiKeyCreate(Strict):
    role: RoleName
    name: str | None = Field(default=None, min_length=1, max_length=100)


class ApiKeyPublic(BaseModel):
    key_id: str
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    api_key: str = Field(description="the key itself, shown this once; SFAI keeps only its hash")


class ModuleStatus(BaseModel):
    module: str
    tenant: str
    plan: str | None
    request_quota: int | None
    models: list[dict] = Field(default_factory=list, description="champion models serving this tenant")


class IndustryPublic(BaseModel):
    code: str
    name_ko: str
    name_en: str
