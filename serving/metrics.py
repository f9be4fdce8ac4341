"""Prometheus metrics: requests, latency, errors, by module and tenant; the usage writer's throughput."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _WriterCollector:
    def __init__(self, writer) -> None:  # noqa: ANN001
        self.writer = writer

    def collect(self):  # noqa: ANN201
        w = self.writer
        for name, doc, value in (
            ("sfai_usage_log_batches", "usage log group commits", w.batches),
            ("sfai_usage_log_records", "usage records committed", w.records),
            ("sfai_usage_log_failures", "usage log commits that failed", w.failures),
        ):
            c = CounterMetricFamily(name, doc)
            c.add_metric([], value)
            yield c


class _JobsCollector:
    """The scheduling module's background solves queued and running now, and those whose process stopped stamping
    them (read from the database at each scrape: every process's jobs, so any worker's /metrics has them)."""

    def __init__(self, db, stale_s: float) -> None:  # noqa: ANN001
        self.db, self.stale_s = db, stale_s

    def collect(self):  # noqa: ANN201
        from sqlalchemy import func, select

        from serving.db.tables import SchedulingJob
        from serving.scheduling import stale_jobs
        from serving.tenancy import utcnow

        t = SchedulingJob.__table__
        active = t.c.status.in_(("queued", "running"))
        try:
            with self.db.engine.connect() as conn:
                counts = dict(conn.execute(select(t.c.status, func.count()).where(active).group_by(t.c.status)).all())
                stale = conn.execute(select(func.count()).where(stale_jobs(utcnow(), self.stale_s))).scalar_one()
        except Exception:  # noqa: BLE001 - the database away: no job series this scrape (readyz says why)
            return
        jobs = GaugeMetricFamily("sfai_scheduling_jobs", "background solves queued or running now", labels=["status"])
        for status in ("queued", "running"):
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        g = GaugeMetricFamily("sfai_scheduling_jobs_stale", "queued or running jobs their process stopped stamping")
        g.add_metric([], stale)
        yield g


class Metrics:
    """One registry per app, so that several apps (tests, benchmarks) live in one process."""

    def __init__(self, writer=None, db=None, stale_s: float | None = None) -> None:  # noqa: ANN001
        self.registry = CollectorRegistry()
        self.jobs = _JobsCollector(db, stale_s) if db is not None and stale_s is not None else None
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        labels = ("module", "tenant", "method", "endpoint", "status")
        self.requests = Counter("sfai_requests", "HTTP requests answered", labels, registry=self.registry)
        self.errors = Counter(
            "sfai_request_errors", "HTTP requests answered with a 4xx or 5xx", labels, registry=self.registry
        )
        self.latency = Histogram(
            "sfai_request_duration_seconds",
            "time to answer, usage log included",
            ("module", "tenant", "endpoint"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._children: dict[tuple, tuple] = {}
        if self.jobs is not None and not self.multiprocess_dir:
            self.registry.register(self.jobs)
        if writer is not None and not self.multiprocess_dir:
            self.registry.register(_WriterCollector(writer))
        elif writer is not None:
            # several workers: counters each worker writes to its file, added up by render() (the collector above
            # reads one process's counts, and with --workers N /metrics had no sfai_usage_log_* series at all)
            writer.counters = tuple(Counter(name, doc, registry=self.registry) for name, doc in (
                ("sfai_usage_log_batches", "usage log group commits"),
                ("sfai_usage_log_records", "usage records committed"),
                ("sfai_usage_log_failures", "usage log commits that failed"),
            ))

    def observe(self, module: str, tenant: str, method: str, endpoint: str, status: int, seconds: float) -> None:
        key = (module, tenant, method, endpoint, status)
        children = self._children.get(key)
        if children is None:  # .labels() costs a lock and a dict walk: resolve each label set once
            s = str(status)
            children = (
                self.requests.labels(module, tenant, method, endpoint, s),
                self.errors.labels(module, tenant, method, endpoint, s) if status >= 400 else None,
                self.latency.labels(module, tenant, endpoint),
            )
            self._children[key] = children
        children[0].inc()
        if children[1] is not None:
            children[1].inc()
        children[2].observe(seconds)

    def render(self) -> bytes:
        if self.multiprocess_dir:  # several uvicorn workers: add up what each wrote
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            if self.jobs is not None:
                registry.register(self.jobs)
            return generate_latest(registry)
        return generate_latest(self.registry)
