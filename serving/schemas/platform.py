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
    managed_by_operator: bool = Field(
        description="terms or an end the SFAI operator set; only the operator changes or reopens this module"
    )


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
    caller_key_expires_at: datetime | None = Field(
        None, description="when the calling key stops working (401 api_key_expired from then on); null: never")
    caller_key_modules: list[str] | None = Field(
        None, description="the modules the calling key may call (others: 403 key_scope); null: every module the "
        "tenant holds")


class SubscriptionCreate(Strict):
    module: ModuleName
    plan: PlanName = "standard"


KeyState = Literal["active", "revoked", "expired"]
_MODULE_LIST = {"type": "array", "minItems": 1, "uniqueItems": True,
                "items": {"type": "string", "enum": ["quality", "maintenance", "energy", "scheduling"]}}


class ApiKeyCreate(Strict):
    role: RoleName
    name: str | None = Field(default=None, min_length=1, max_length=100)
    expires_at: str | None = Field(
        default=None,
        description="when the key stops working (401 api_key_expired from then on): an ISO date, meaning the end of "
        "that day UTC (2026-12-31: the key works through Dec 31 and expires at 2027-01-01T00:00:00Z), or a date "
        "and time with its UTC offset (2026-12-31T18:00:00+09:00, 2026-12-31T09:00:00Z); a time without an offset or "
        "in the past is refused (422). Leave it out for a key that does not expire.",
        examples=["2026-12-31", "2026-12-31T18:00:00+09:00"],
        json_schema_extra={"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"},
                                     {"type": "null"}]},
    )
    modules: list[str] | None = Field(
        default=None,
        description="the modules the key may call (a call to another answers 403 key_scope): one or more of quality, "
        "maintenance, energy, scheduling, each once. Leave it out (null) for a key that may call every module the "
        "tenant holds. The tenant, usage and apikeys endpoints follow the key's role, whatever its modules.",
        examples=[["quality", "energy"]],
        json_schema_extra={"anyOf": [_MODULE_LIST, {"type": "null"}]},
    )


class ApiKeyPublic(BaseModel):
    key_id: str
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None = Field(None, description="when the key stops working; null: it does not expire")
    modules: list[str] | None = Field(None, description="the modules the key may call; null: every module the "
                                      "tenant holds")
    last_used_at: datetime | None = Field(None, description="its latest authenticated call (each server writes "
                                          "these at most once a minute: up to a minute or two behind); null: not "
                                          "used since SFAI began recording it")
    state: KeyState = Field("active", description="active, revoked, or expired (past expires_at)")


class ApiKeyCreated(ApiKeyPublic):
    api_key: str = Field(description="the key itself, shown this once; SFAI keeps only its hash")


class ModuleStatus(BaseModel):
    module: str
    tenant: str
    plan: str | None
    request_quota: int | None
    calls_this_month: int | None = Field(None, description="this module's calls counted against the quota in the "
                                         "current UTC month, this one included (calls refused with 403 or 429 do "
                                         "not count; several server processes: within what each admitted since "
                                         "its last read of the usage log); null without a quota")
    quota_remaining: int | None = Field(None, description="request_quota minus calls_this_month (null: no quota)")
    models: list[dict] = Field(default_factory=list, description="champion models serving this tenant: name, "
                               "version, created_at, challenger, and a classifier's threshold (the probability from "
                               "which it answers *_predicted: 1)")


class IndustryPublic(BaseModel):
    code: str
    name_ko: str
    name_en: str


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable, e.g. invalid_input, not_subscribed, rate_limited")
    message: str = Field(description="one line for a person")
    details: list[dict] | None = Field(default=None, description="request validation: one entry per problem")


class ErrorResponse(BaseModel):
    """Every error SFAI answers, whatever the status."""

    error: ErrorDetail


def error_response(description: str, headers: dict | None = None) -> dict:
    out: dict = {"model": ErrorResponse, "description": description}
    if headers:
        out["headers"] = headers
    return out


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before calling again", "schema": {"type": "integer"}}}
# The errors any endpoint may answer (documented in the OpenAPI schema, so clients and the fuzz tests know them).
PUBLIC_ERRORS: dict[int | str, dict] = {
    400: error_response("a malformed request line (a control character in the path)"),
    405: error_response("the path does not take this method"),
    404: error_response("no such object (for this tenant)"),
    413: error_response("request body larger than the server's limit"),
    422: error_response("invalid request (the message names the field), or a body that could not be read (not "
                        "UTF-8, or not the declared format)"),
    503: error_response("a service SFAI needs is unavailable; retry shortly"),
}
COMMON_ERRORS: dict[int | str, dict] = {
    **PUBLIC_ERRORS,
    401: error_response("missing, malformed, invalid or revoked API key"),
    403: error_response("the tenant is not subscribed to the module, or the key's role may not do this"),
    429: error_response("rate limit or monthly quota reached, or too many background jobs", _RETRY_AFTER),
}


# Answers the routes build as dicts, as the OpenAPI schema documents them.
class UsageRecordPublic(BaseModel):
    seq: int = Field(description="the record's number in this tenant's own log")
    ts: str
    tenant: str
    key_id: str | None
    key_name: str | None = Field(None, description="the key's name (as GET /v1/apikeys lists it; revoked keys too)")
    module: str | None = Field(description="null for calls outside the modules (counted as platform)")
    method: str
    endpoint: str
    status: int
    latency_ms: float
    model_version: str | None = Field(description="NAME@VERSION of the model that answered")
    request_id: str | None
    hash: str = Field(description="the record's receipt in the tamper-evident chain")
    calls: int = Field(1, description="how many calls the record stands for: 1, or the refusals (403, 429) of one "
                       "kind that followed the first one written within 10 seconds, collapsed into one record")
    quota_counted: bool = Field(description="whether the call counted against its module's monthly quota: false for "
                                "a call of no module, a refusal (403, 429), a failure on SFAI's side (5xx) and a quota "
                                "read (GET /v1/<module>/status)")


class UsageCounts(BaseModel):
    calls: int
    ok: int
    client_errors: int
    server_errors: int
    refused: int = Field(0, description="of the client errors, the calls refused before they were performed (403, "
                                        "429), which no quota counts")


class UsagePage(BaseModel):
    tenant: str
    from_: str | None = Field(alias="from")
    to: str | None
    total: int
    by_module: dict[str, UsageCounts]
    records: list[UsageRecordPublic]
    next_before_seq: int | None = Field(description="pass as before_seq for the next (older) page")


class OnlineAnswer(BaseModel):
    view: str
    rows: list[dict] = Field(description="per entity: the key, event_timestamp and the features (null where unknown "
                             "or past the view's TTL)")

