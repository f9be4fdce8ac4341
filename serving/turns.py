"""Turns in the worker threads per tenant: one tenant's burst of heavy calls must not take the thread pool (and
the GIL) from every other tenant.

All tenants share one pool of worker threads and one interpreter. A tenant sending 48 SECOM predictions at once
(25 ms of CPU each) had another tenant's RUL call go from 18 ms to 5.4 s and its failure calls from 0.4 ms to
1.8 s (performance audit): the rate limits bound calls per second, not the work in flight. ``TenantTurns`` lets a
tenant score at most ``per_tenant`` calls in worker threads at once; its other calls wait on the event loop, in
order, holding no thread, and past ``waiting`` of them a call is refused with 429 (its body is in memory while it
waits). Calls answered on the event loop (the fast path's small batches) take no turn. An Arrow or Parquet
prediction body is decoded in the caller's turn too (``serving.predictions.read_frame``): a 0.42-MB compressed body
decoded on the event loop had held every tenant's calls for 1.8 s (security audit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from serving.errors import TooManyRequests

T = TypeVar("T")


class TenantTurns:
    def __init__(self, per_tenant: int, waiting: int) -> None:
        self.per_tenant, self.waiting = per_tenant, waiting
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gates: dict[int, asyncio.Semaphore] = {}
        self._queued: dict[int, int] = {}  # calls waiting for or holding a turn, per tenant

    def busy(self, tenant_id: int) -> int:
        """The tenant's calls scoring or waiting to, in this process."""
        return self._queued.get(tenant_id, 0)

    async def run(self, tenant_id: int, fn: Callable[[], T]) -> T:
        """``fn()`` in a worker thread, in the tenant's turn."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # one set of semaphores per event loop (tests start several)
            self._loop, self._gates, self._queued = loop, {}, {}
        queued = self._queued.get(tenant_id, 0)
        if queued >= self.per_tenant + self.waiting:
            raise TooManyRequests(
                f"{queued} predictions of this tenant (direct, or a plan's linked models) are being scored or waiting "
                f"(at most {self.per_tenant} at once, {self.waiting} waiting): send fewer at once, or larger batches",
                retry_after_s=1)
        gate = self._gates.get(tenant_id)
        if gate is None:
            gate = self._gates[tenant_id] = asyncio.Semaphore(self.per_tenant)
        self._queued[tenant_id] = queued + 1
        try:
            async with gate:
                return await run_in_threadpool(fn)
        finally:
            left = self._queued[tenant_id] - 1
            if left:
                self._queued[tenant_id] = left
            else:  # no idle tenant keeps an entry
                del self._queued[tenant_id]
                self._gates.pop(tenant_id, None)
