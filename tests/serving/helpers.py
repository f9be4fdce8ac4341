"""Factories for the platform tests."""

from __future__ import annotations

from dataclasses import dataclass

from serving import tenancy
from serving.db import Database


@dataclass
class TenantKeys:
    name: str
    admin: str  # API keys
    mes: str
    admin_key_id: str


def make_tenant(db: Database, pepper: str, name: str, modules=("quality",), ksic: str = "C29") -> TenantKeys:
    tenancy.create_tenant(db, name, ksic)
    for m in modules:
        tenancy.subscribe(db, name, m)
    admin = tenancy.create_api_key(db, pepper, name, "admin", "admin")
    mes = tenancy.create_api_key(db, pepper, name, "mes", "mes")
    return TenantKeys(name, admin.token, mes.token, admin.info.key_id)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
