"""Fixtures of the pipeline tests: the shared datasets (skip with a reason where absent, fail on CI) and a
tenant's feature store on SQLite under tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from serving import tenancy
from serving.db import Database
from serving.settings import Settings

DATASETS = Path(os.environ.get("SFAI_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "datasets"


def need(relative: str) -> Path:
    path = DATASETS / relative
    if not path.exists():
        reason = f"dataset {path} is not there (set SFAI_SHARED to the folder holding datasets/)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        print(f"\nSKIP: {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture
def pl_settings(tmp_path: Path) -> Settings:
    s = Settings(home=tmp_path / "home", environment="test", database_url=None)
    s.ensure_home()
    return s


@pytest.fixture
def store(pl_settings: Settings):
    from feature_store.store import FeatureStore

    db = Database(pl_settings.resolved_database_url)
    tenancy.create_tenant(db, "acme", "C31")
    fs = FeatureStore(pl_settings, db, "acme")
    yield fs
    fs.close()
    db.dispose()
