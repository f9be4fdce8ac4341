"""Fixtures shared by the serving tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving import tenancy
from serving.db import Database
from serving.settings import Settings


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory) -> tuple[Path, Path]:
    """The demo models, trained once per session on synthetic data (a few seconds, no shared datasets needed):
    (``models/<tenant>`` with ``<family>/v1`` export directories to register by copy, the demo data directory
    that ``models.demo.sample_request`` reads)."""
    from models.demo import train_demo_models

    home = tmp_path_factory.mktemp("demo-models")
    settings = Settings(home=home, environment="test", secret_key="test-secret-0123456789")
    db = Database(settings.resolved_database_url)
    tenancy.create_tenant(db, "seed", "C22")
    train_demo_models(settings, db, "seed", progress=False)
    db.dispose()
    return home / "models" / "seed", home / "demo" / "seed"
