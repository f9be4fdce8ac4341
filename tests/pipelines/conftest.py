"""Fixtures of the pipeline tests: the shared datasets (skip with a reason where absent, fail on CI) and a
tenant's feature store on SQLite under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving import tenancy
from serving.db import Database
from serving.settings import Settings


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
