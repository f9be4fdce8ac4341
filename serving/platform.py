"""What one API process holds: settings, the metadata database, the access cache, the usage writer,
metrics. Built by ``create_app`` and reachable from handlers as ``request.app.state.platform``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from serving.access import Access
from serving.db import Database
from serving.metrics import Metrics
from serving.ratelimit import make_buckets
from serving.settings import Settings
from serving.usage import ChainKey, UsageWriter, check_chain_key, deployment_id


@dataclass
class Platform:
    settings: Settings
    db: Database
    access: Access
    writer: UsageWriter
    metrics: Metrics
    jobs: object = None  # serving.scheduling.Jobs
    models: object = None  # serving.predictions.ModelCache
    _stores: dict = field(default_factory=dict)
    _online: object = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(cls, settings: Settings, db: Database | None = None) -> Platform:
        settings.ensure_home()
        db = db or Database(settings.resolved_database_url)
        writer = UsageWriter(
            db, key=ChainKey(settings.secret_key), max_batch=settings.usage_flush_max_batch,
            max_wait_ms=settings.usage_flush_max_wait_ms,
            inline=settings.usage_commit_inline, collapse_refusals=settings.usage_collapse_refusals,
        )
        return cls(
            settings=settings,
            db=db,
            access=Access(
                db,
                settings.secret_key,
                settings.auth_cache_ttl_s,
                rate_limits=settings.rate_limits,
                platform_rate=settings.platform_rate_limit,
                failed_lookup_rate=settings.failed_key_lookups_per_s,
                burst_s=settings.rate_limit_burst_s,
                # the counters of this deployment (its database's id): another deployment's on one Redis keep apart
                buckets=make_buckets(settings.rate_limit_redis, f"{settings.redis_prefix}{deployment_id(db)}:"),
                self_service_plans=tuple(settings.self_service_plans),
            ),
            writer=writer,
            metrics=Metrics(writer, db, settings.scheduling_stale_s),  # stale jobs counted
        )

    def feature_store(self, tenant: str):  # noqa: ANN201
        """The tenant's feature store (cached; one online-store connection shared by all tenants)."""
        from feature_store.online import online_store_for
        from feature_store.store import FeatureStore

        with self._lock:
            fs = self._stores.get(tenant)
            if fs is None:
                if self._online is None:
                    s = self.settings
                    self._online = online_store_for(s)
                fs = self._stores[tenant] = FeatureStore(self.settings, self.db, tenant, online=self._online)
            return fs

    def cached_feature_store(self, tenant: str):  # noqa: ANN201
        """The tenant's feature store if it is open already (no I/O: safe on the event loop), else None."""
        return self._stores.get(tenant)

    def __post_init__(self) -> None:
        from serving.predictions import ModelCache
        from serving.scheduling import Jobs, SyncSolves
        from serving.turns import TenantTurns

        self.jobs = Jobs(
            self.db,
            max_job_s=self.settings.scheduling_max_job_s,
            max_active=self.settings.scheduling_max_active_jobs,
            heartbeat_s=self.settings.scheduling_heartbeat_s,
            stale_s=self.settings.scheduling_stale_s,
        )
        self.models = ModelCache(self.db, self.settings.home)
        self.solves = SyncSolves(self.settings.scheduling_max_sync_per_tenant, self.settings.scheduling_max_sync)
        self.turns = TenantTurns(self.settings.max_scoring_per_tenant, self.settings.max_scoring_waiting_per_tenant)

    def start(self) -> None:
        self.access.key_use.start()  # the keys' last use, written once a minute
        if self.settings.usage_log_enabled:
            check_chain_key(self.db, self.writer.key)  # a server with another secret says so before any call
            self.writer.start()

    def close(self) -> None:
        self.access.key_use.close()  # what it kept, written before the process goes
        self.writer.close()
        self.jobs.close()
        if self._online is not None:
            self._online.close()
