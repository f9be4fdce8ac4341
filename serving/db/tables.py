"""Table definitions (SQLAlchemy 2 declarative). The Alembic revisions are the source of the schema;
these mappings must match them (a test compares the two)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)  # slug used by CLI and API
    display_name: Mapped[str] = mapped_column(String(200))
    ksic_code: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Module(Base):
    __tablename__ = "modules"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    description: Mapped[str] = mapped_column(String(300))


class Subscription(Base):
    __tablename__ = "subscriptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    module: Mapped[str] = mapped_column(ForeignKey("modules.name"))
    plan: Mapped[str] = mapped_column(String(32))
    request_quota: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # per calendar month
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # terms the operator set (a custom quota, an end date) or an end it gave: a tenant admin may not change or
    # reopen the module while its latest row is marked (migration 0006)
    operator_managed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)  # public part, shown in lists and logs
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64))  # HMAC-SHA256 of the secret part, hex
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # migration 0017: refused from this time on (None: never); the modules it may call, as JSON text of their names
    # (None: every module the tenant holds); its latest authenticated call, written by each process at most once a
    # minute and only ever moved forward (serving.access.KeyUse)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    modules: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class UsageRecord(Base):
    """One authenticated call. Append-only; ``hash`` chains every row to the one before it."""

    __tablename__ = "usage_log"
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    tenant_id: Mapped[int] = mapped_column(Integer, index=True)
    key_id: Mapped[str] = mapped_column(String(32))
    module: Mapped[str | None] = mapped_column(String(32), nullable=True)
    method: Mapped[str] = mapped_column(String(8))
    endpoint: Mapped[str] = mapped_column(String(300))
    status: Mapped[int] = mapped_column(Integer)
    latency_us: Mapped[int] = mapped_column(BigInteger)
    model_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    request_id: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # the record's number in its tenant's own log (1, 2, ...): what the tenant sees as ``seq``, so that its
    # numbers say nothing about other tenants' calls; ``seq`` above is the place in the whole chain
    tenant_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # how many calls the record stands for: 1, or the refusals (403, 429) of one kind a process collapsed into one
    # record (0014; serving.usage.Refusals)
    calls: Mapped[int] = mapped_column(Integer, server_default="1")
    # whether the monthly quota counts the call (0016): not a read of the module's status (nor, by their status,
    # refusals and SFAI's own failures)
    counted: Mapped[bool] = mapped_column(Boolean, server_default=true())
    __table_args__ = (
        Index("ix_usage_log_tenant_seq", "tenant_id", "tenant_seq", unique=True),
        # the quota's count, read from the index alone (0009, 0016)
        Index("ix_usage_log_tenant_module_ts", "tenant_id", "module", "ts", "status", "counted"),
    )


class UsageChain(Base):
    """Head of the usage hash chain (one row, id=1) and the anchor left by a retention purge."""

    __tablename__ = "usage_chain"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
    anchor_seq: Mapped[int] = mapped_column(BigInteger)  # rows with seq <= anchor_seq were purged
    anchor_hash: Mapped[str] = mapped_column(String(64))  # hash of row anchor_seq
    # rows with seq >= keyed_from carry keyed hashes (HMAC, serving.usage.ChainKey); those before, plain SHA-256
    keyed_from: Mapped[int] = mapped_column(BigInteger, server_default="1")
    keyed_mark: Mapped[str | None] = mapped_column(String(64), nullable=True)  # ChainKey.mark(keyed_from)
    # the time of row anchor_seq and ChainKey.anchor_mark over the anchor: a purge signs where the log now starts
    anchor_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    anchor_mark: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # this database's own random id (migration 0012): the Redis counters of deployments sharing a Redis keep apart
    deployment_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class UsageTenantHead(Base):
    """Each tenant's last usage record number (``usage_log.tenant_seq``); it outlives a retention purge."""

    __tablename__ = "usage_tenant_heads"
    tenant_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger)


class FeatureViewRecord(Base):
    """One registered version of a tenant's feature view (the spec is the view's JSON declaration)."""

    __tablename__ = "feature_views"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", "version", name="uq_feature_views_version"),
        Index("ix_feature_views_tenant_name", "tenant_id", "name"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(16))
    spec: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FeatureViewState(Base):
    __tablename__ = "feature_view_state"
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    materialized_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ModelVersionRecord(Base):
    """One registered model version of a tenant: ONNX file and manifest under ``path``."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("tenant_id", "name", "version", name="uq_model_versions_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    module: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[str] = mapped_column(Text)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ModelAliasEvent(Base):
    """Alias moves (append-only): the current alias is the latest event; rollback replays the one before."""

    __tablename__ = "model_alias_events"
    __table_args__ = (Index("ix_model_alias_events_lookup", "tenant_id", "name", "alias"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(String(100))
    alias: Mapped[str] = mapped_column(String(32))
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SchedulingJob(Base):
    """A solve run in the background; its request and result documents are JSON text."""

    __tablename__ = "scheduling_jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    request: Mapped[str] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # stamped every few seconds by the process that holds the job (queued or running); a stale stamp: that process
    # stopped, and another takes the job over (migration 0007)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # the process that holds the job: only it stamps and writes it, so a takeover fences off a stalled process
    # (migration 0008)
    owner: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # the caller's Idempotency-Key (one job per key and tenant; dropped from a job 24 hours on, when the key may be
    # used again) and the hash of the request it came with (migration 0011)
    idempotency_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # a running job's best plan so far when its server stopped gracefully, with the time already spent (JSON text,
    # serving.scheduling.SavedPlan): the process that takes the job next goes on from it (migration 0018)
    saved_plan: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_scheduling_jobs_tenant_idempotency", "tenant_id", "idempotency_key", unique=True),)


class IngestRequest(Base):
    """An ingest call sent with an ``Idempotency-Key``: its request's hash and, once stored, its answer (JSON). A
    retry with the key within 24 hours gets that answer and writes nothing (migration 0013)."""

    __tablename__ = "ingest_requests"
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    result: Mapped[str | None] = mapped_column(Text, nullable=True)  # None while the first call is storing its rows
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_ingest_requests_tenant_created", "tenant_id", "created_at"),)


__all__ = [
    "Base",
    "Tenant",
    "Module",
    "Subscription",
    "ApiKey",
    "UsageRecord",
    "UsageChain",
    "FeatureViewRecord",
    "FeatureViewState",
    "ModelVersionRecord",
    "ModelAliasEvent",
    "SchedulingJob",
    "IngestRequest",
]
