"""What one API process holds: settings, the metadata database, the access cache, the usage writer,
metrics. Built by ``create_app`` and reachable from handlers as ``request.app.state.platform``."""

from __future__ import annotations

from dataclasses import dataclass

from serving.access import Access
from serving.db import Database
from serving.metrics import Metrics
from serving.settings import Settings
from serving.usage import UsageWriter


@dataclass
class Platform:
    settings: Settings
    db: Database
    access: Access
    writer: UsageWriter
    metrics: Metrics

    @classmethod
    def build(cls, settings: Settings, db: Database | None = None) -> Platform:
        settings.ensure_home()
        db = db or Database(settings.resolved_database_url)
        writer = UsageWriter(db, max_batch=settings.usage_flush_max_batch, max_wait_ms=settings.usage_flush_max_wait_ms)
        return cls(
            settings=settings,
            db=db,
            access=Access(db, settings.secret_key, settings.auth_cache_ttl_s),
            writer=writer,
            metrics=Metrics(writer),
        )

    def start(self) -> None:
        if self.settings.usage_log_enabled:
            self.writer.start()

    def close(self) -> None:
        self.writer.close()
