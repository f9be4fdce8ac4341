"""Factories for the platform tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from serving import tenancy
from serving.db import Database
from serving.usage import ChainKey
from tests.datasets import DATASETS, need

TEST_SECRET = "test-secret-0123456789"  # the settings fixture's SFAI_SECRET_KEY
KEY = ChainKey(TEST_SECRET)  # the usage chain's key under it


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


AI4I = DATASETS / "ai4i2020" / "ai4i2020_train.csv"


def need_ai4i() -> Path:
    """The AI4I file, or a skip with a printed reason (a failure on CI, where ../shared must be there)."""
    return need("ai4i2020/ai4i2020_train.csv")


def quick_failure_model(base: Path, *, seed: int = 0, rows: int = 3000, epochs: int = 4) -> Path:
    """A failure model trained in seconds on ``rows`` sampled AI4I rows (two folds), exported under ``base``."""
    import pandas as pd

    from models.failure.train import train
    from models.tracking import Tracker
    from serving.settings import Settings

    sample = base / f"train-{rows}.csv"
    if not sample.exists():
        pd.read_csv(need_ai4i()).sample(rows, random_state=0).to_csv(sample, index=False)
    out = base / f"m{seed}"
    with Tracker(Settings(home=base, environment="test"), "t", enabled=False) as t:
        train(sample, "ai4i", out, config={"folds": 2, "epochs": epochs, "seed": seed}, tracker=t)
    return out
