"""The scheduling module behind the API: synchronous solves and background jobs, per tenant.

Linked modules: a tenant subscribed to ``maintenance`` may pass machine failure risks, one subscribed to
``energy`` a tariff, base load and peak cap; without the partner module those parts of the request are
ignored (the plain behaviour) and the answer says so.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
import weakref
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from serving.db import Database
from serving.db.tables import SchedulingJob
from serving.errors import InvalidInput, NotFound, TooManyRequests
from serving.tenancy import as_utc, utcnow

log = logging.getLogger("sfai.scheduling")
# A process stamps its queued and running jobs this often; a job not stamped for STALE_S is taken over by another
# live process (its own stopped). Long enough that a busy process is never taken for a stopped one.
HEARTBEAT_S = 10.0
STALE_S = 120.0
RELEASED = datetime(2000, 1, 1, tzinfo=UTC)  # the stamp of a job its process handed back on stop: stale at once
# parts of a problem that only a partner module's subscription enables
PARTNERS = (("failure_risk", "maintenance"), ("energy", "energy"))


def machine_risk(platform, tenant: str, spec: dict) -> dict:  # noqa: ANN001
    """The failure probability of each plan machine from the tenant's failure model (the maintenance module's):
    ``spec["machines"]`` maps a machine to its entity id in ``spec["view"]`` (its latest readings in the online
    store) or to one record of readings. Returns what the plan used: the model, the view and the risks."""
    from serving.predictions import entity_rows, record_scorer

    machines = spec["machines"]
    by_id = {m: v for m, v in machines.items() if not isinstance(v, dict)}
    inline = {m: v for m, v in machines.items() if isinstance(v, dict)}
    if by_id and not spec.get("view"):
        raise InvalidInput('maintenance.machines gives entity ids: "view" names the feature view to read them from')
    model = platform.models.champion(tenant, "failure", spec.get("model"), refresh=True)
    score = record_scorer("failure")
    risks: dict[str, float] = {}
    if by_id:
        rows = entity_rows(platform.feature_store(tenant), spec["view"], list(by_id.values()))
        for m, p in zip(by_id, score(model, rows, from_store=True), strict=True):
            risks[m] = p["failure_probability"]
    if inline:
        for m, p in zip(inline, score(model, list(inline.values())), strict=True):
            risks[m] = p["failure_probability"]
    return {"model": f"{model.name}@{model.version}", "view": spec.get("view"),
            "risks": {m: risks[m] for m in machines}}


def with_machine_risk(request: dict, risk: dict) -> dict:
    """``request`` whose problem takes the model's risks (``machine_risk``) as ``failure_risk.risks``; a machine
    the problem gives a risk itself keeps it. The answer's ``linked.maintenance_model`` says what was used."""
    problem = dict(request["problem"])
    given = dict(problem.get("failure_risk") or {})
    own = given.get("risks") if isinstance(given.get("risks"), dict) else {}
    given["risks"] = {**risk["risks"], **own}
    problem["failure_risk"] = given
    kept = sorted(m for m in own if m in risk["risks"])
    return {**request, "problem": problem, "maintenance": {**risk, "planner_risks_kept": kept}}


def plant_load(platform, tenant: str, spec: dict, energy: dict | None) -> dict:  # noqa: ANN001
    """The plant's forecast load for the plan's day from the tenant's energy model (the energy module's): the p50
    kWh of each 15 minutes from ``spec["start"]`` 00:00, as the mean kW of each of the plan's energy periods
    (``energy``: the problem's settings, in plan units), and the kWh and tCO2 it implies."""
    from serving.predictions import records_frame, scorer

    if not isinstance(energy, dict):
        raise InvalidInput('energy_forecast needs the problem\'s "energy" settings (its period and hours_per_unit, '
                           "and the prices or the peak_cap_kw the load counts against)")
    period, hours = energy.get("period", 60), energy.get("hours_per_unit", 1 / 60)
    if any(isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < 1e9 for v in (period, hours)):
        raise InvalidInput(f"energy.period and energy.hours_per_unit must be positive numbers; got {period!r} and "
                           f"{hours!r}")
    minutes = float(period) * float(hours) * 60
    model = platform.models.champion(tenant, "energy", spec.get("model"), refresh=True)
    out = scorer("energy")(model, records_frame("energy", spec["records"]), start=spec["start"], horizon=96)
    day = out[out["origin"] == out["origin"].iloc[0]]
    kw = day["p50"].to_numpy(dtype=float) * 4.0  # kWh in 15 minutes -> mean kW
    periods = max(1, int(-(-len(kw) * 15 // minutes)))
    load = []
    for k in range(periods):  # each plan period: the mean of the 15-minute steps it covers, by their overlap
        lo, hi = k * minutes, (k + 1) * minutes
        parts = [(min(hi, (i + 1) * 15) - max(lo, i * 15), v) for i, v in enumerate(kw) if i * 15 < hi and
                 (i + 1) * 15 > lo]
        span = sum(w for w, _ in parts)
        load.append(round(sum(w * v for w, v in parts) / span, 3) if span else 0.0)
    return {"model": f"{model.name}@{model.version}", "origin": str(day["origin"].iloc[0]),
            "period_minutes": minutes, "base_load_kw": load, "kwh_p50": round(float(day["p50"].sum()), 3),
            "co2_t_p50": round(float(day["co2_p50"].sum()), 6)}


def with_plant_load(request: dict, load: dict) -> dict:
    """``request`` whose problem takes the forecast load (``plant_load``) as ``energy.base_load_kw``, unless the
    problem gives its own; the answer's ``linked.energy_model`` says what was used."""
    problem = dict(request["problem"])
    energy = dict(problem["energy"])
    own = bool(energy.get("base_load_kw"))
    if not own:
        energy["base_load_kw"] = load["base_load_kw"]
    problem["energy"] = energy
    return {**request, "problem": problem, "energy_forecast": {**load, "planner_base_load_kept": own}}


def prepare(request: dict, modules: set[str]) -> tuple[object, object, dict]:
    """(problem, params, linked) from an API request, dropping what the tenant's subscriptions don't cover."""
    from optimization.io import problem_from_dict
    from optimization.service import make_params

    doc = dict(request["problem"])
    linked: dict = {mod: key in doc and mod in modules for key, mod in PARTNERS}
    ignored = [(key, mod) for key, mod in PARTNERS if key in doc and mod not in modules]
    if request.get("maintenance") is not None:
        if "maintenance" in modules and "risks" in request["maintenance"]:
            linked["maintenance_model"] = request["maintenance"]
        elif "maintenance" not in modules:
            ignored.append(("maintenance", "maintenance"))
    if request.get("energy_forecast") is not None:
        if "energy" in modules and "base_load_kw" in request["energy_forecast"]:
            linked["energy_model"] = request["energy_forecast"]
        elif "energy" not in modules:
            ignored.append(("energy_forecast", "energy"))
    for key, _ in ignored:
        doc.pop(key, None)  # ("maintenance" is the request's, not the problem's)
    objective, weights, order = request.get("objective"), request.get("weights"), request.get("order")
    fallback = None
    try:
        problem = problem_from_dict(doc)
        if any(key == "energy" for key, _ in ignored) and _energy_only(objective, weights, order):
            # the plain behaviour without the energy module: the default objective, and the answer says so
            fallback = f"objective {objective!r} (needs the 'energy' module): solved for the default objective"
            objective, weights, order = None, None, None
        params = make_params(
            problem,
            time_limit_s=request["time_limit_s"],
            workers=request["workers"],
            seed=request["seed"],
            objective=objective,
            strategy=request.get("strategy", "auto"),
            weights=weights,
            order=order,
        )
    except (ValueError, KeyError, TypeError, OverflowError) as e:
        raise InvalidInput(f"invalid scheduling problem: {e}") from None
    if ignored:
        linked["ignored"] = [f"{key} (needs the '{mod}' module)" for key, mod in ignored]
    if fallback:
        linked["ignored"].append(f"{fallback} {params.objective!r} instead")
    return problem, params, linked


def _energy_only(objective: str | None, weights: dict | None, order: list | None) -> bool:
    """Whether the requested objective weighs nothing but the energy cost."""
    if objective == "energy":
        return True
    if objective == "weighted" and weights:
        return {t for t, w in weights.items() if w} == {"energy"}
    if objective == "lex" and order:
        return set(order) == {"energy"}
    return False


def solve_prepared(problem, params, linked: dict) -> dict:  # noqa: ANN001
    from optimization.service import solve_document

    _, doc = solve_document(problem, params)
    return {**doc, "linked": linked}


def solve_now(request: dict, modules: set[str]) -> dict:
    return solve_prepared(*prepare(request, modules))


def _heartbeat(ref: weakref.ref, stop: threading.Event, period: float) -> None:
    """The heartbeat thread of a :class:`Jobs`: it holds the object weakly, so that one dropped without ``close``
    (a test's app) ends its thread instead of stamping a database that is gone."""
    while not stop.wait(period):
        jobs = ref()
        if jobs is None:
            return
        try:
            jobs.beat()
            jobs.adopt_stale()
        except Exception:  # noqa: BLE001 - a database that is away now is retried on the next beat
            log.warning("scheduling jobs: heartbeat failed", exc_info=True)
        del jobs


class Jobs:
    """Background solves: one at a time per process (CP-SAT already uses the cores), state in the database.

    Limits: at most ``max_active`` queued or running jobs per tenant (more get 429), so that one tenant cannot
    fill the queue for everyone (the route caps each job's time limit: ``Settings.scheduling_max_job_s``).

    Fair between tenants: a worker that frees up takes the oldest queued job of the tenant with the fewest running
    jobs, among those the tenant whose last job started longest ago (round-robin), not the oldest job of all; so a
    tenant's job waits for at most one job per other waiting tenant, not for another tenant's whole queue."""

    def __init__(
        self,
        db: Database,
        workers: int = 1,
        *,
        max_job_s: float = 3600.0,
        max_active: int = 4,
        heartbeat_s: float = HEARTBEAT_S,
        stale_s: float = STALE_S,
    ) -> None:
        self.db = db
        self.max_job_s = max_job_s
        self.max_active = max_active
        self.heartbeat_s = heartbeat_s
        self.stale_s = stale_s
        self.owner = uuid.uuid4().hex  # this process, in the jobs it holds: a takeover writes another
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sfai-schedule")
        self._held: set[str] = set()  # the jobs this process has queued or running: it stamps them
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._lock = threading.Lock()
        # queued jobs per tenant, oldest first, (job id, prepared); running jobs and last start (a counter) per tenant
        self._queued: dict[int, deque[tuple[str, tuple]]] = {}
        self._running: dict[int, int] = {}
        self._last_start: dict[int, int] = {}
        self._starts = 0

    def active(self, tenant_id: int) -> int:
        """Queued or running jobs of a tenant. A job older than the whole queue's worth of time limits is not
        counted: its process stopped before it finished (it would never free its place otherwise)."""
        live_since = utcnow() - timedelta(seconds=self.max_active * self.max_job_s + 600)
        with self.db.session() as s:
            return s.scalar(
                select(func.count()).where(
                    SchedulingJob.tenant_id == tenant_id,
                    SchedulingJob.status.in_(("queued", "running")),
                    SchedulingJob.created_at >= live_since,
                )
            )

    def submit(self, tenant_id: int, request: dict, modules: set[str]) -> dict:
        prepared = prepare(request, modules)  # a bad problem is a 422 now, not a failed job later
        job_id = uuid.uuid4().hex
        with self._lock:
            active = self.active(tenant_id)
            if active >= self.max_active:
                raise TooManyRequests(
                    f"{active} background solves of this tenant are queued or running (at most {self.max_active}); "
                    "wait for one to finish, or solve smaller plans synchronously",
                    code="too_many_jobs",
                    retry_after_s=min(60.0, self.max_job_s),
                )
            with self.db.session() as s:
                s.add(
                    SchedulingJob(
                        id=job_id,
                        tenant_id=tenant_id,
                        status="queued",
                        request=json.dumps(request),
                        created_at=utcnow(),
                        heartbeat_at=utcnow(),
                        owner=self.owner,
                    )
                )
            self._queued.setdefault(tenant_id, deque()).append((job_id, prepared))
            self._held.add(job_id)
        # one pool task per queued job; each runs whichever job is fairest when a worker takes it (see _next)
        self._pool.submit(self._run_next)
        return self.get(tenant_id, job_id)

    def _next(self) -> tuple[int, str, tuple] | None:
        """Takes the next job off the queue (the class docstring's rule) and counts it running; the caller holds
        the lock."""
        if not self._queued:
            return None
        tenant_id = min(self._queued, key=lambda t: (self._running.get(t, 0), self._last_start.get(t, -1)))
        queue = self._queued[tenant_id]
        job_id, prepared = queue.popleft()
        if not queue:
            del self._queued[tenant_id]
        self._running[tenant_id] = self._running.get(tenant_id, 0) + 1
        self._starts += 1
        self._last_start[tenant_id] = self._starts
        return tenant_id, job_id, prepared

    def _run_next(self) -> None:
        with self._lock:
            picked = self._next()
        if picked is None:
            return
        tenant_id, job_id, prepared = picked
        try:
            self._run(job_id, prepared)
        finally:
            with self._lock:
                self._held.discard(job_id)
                self._running[tenant_id] -= 1
                if not self._running[tenant_id]:
                    del self._running[tenant_id]

    def _run(self, job_id: str, prepared: tuple) -> None:
        if not self._update(job_id, status="running", started_at=utcnow()):
            return
        try:
            result = solve_prepared(*prepared)
        except Exception as e:  # noqa: BLE001 - recorded on the job
            log.exception("scheduling job %s failed", job_id)
            self._fail(job_id, e)
            return
        self._update(job_id, status="done", result=json.dumps(result, default=str), finished_at=utcnow())

    def _fail(self, job_id: str, e: Exception) -> None:
        self._update(job_id, status="failed", error=f"{type(e).__name__}: {e}", finished_at=utcnow())

    def _update(self, job_id: str, **values) -> bool:
        """Writes ``values`` on the job while this process owns it; False (and nothing written) once another
        process has taken the job over: this one had stopped stamping it, and the other's answer stands."""
        with self.db.session() as s:
            written = s.execute(
                update(SchedulingJob).where(SchedulingJob.id == job_id, SchedulingJob.owner == self.owner)
                .values(**values)
            ).rowcount
        if not written:
            log.warning("scheduling job %s was taken over by another process; this one's %s is dropped", job_id,
                        values.get("status", "update"))
        return bool(written)

    def get(self, tenant_id: int, job_id: str) -> dict:
        with self.db.session() as s:
            job = s.scalar(
                select(SchedulingJob).where(SchedulingJob.id == job_id, SchedulingJob.tenant_id == tenant_id)
            )
            if job is None:
                raise NotFound(f"scheduling job {job_id!r} not found")
            return {
                "job_id": job.id,
                "status": job.status,
                "created_at": as_utc(job.created_at),
                "started_at": as_utc(job.started_at),
                "finished_at": as_utc(job.finished_at),
                "result": json.loads(job.result) if job.result else None,
                "error": job.error,
            }

    # jobs that outlive their process ---------------------------------------------------------------------------
    def start(self) -> None:
        """Stamps this process' jobs every ``heartbeat_s`` and takes over jobs whose process stopped (a serving
        process calls it; a CLI that only reads jobs does not)."""
        if self._beat is None:
            self._beat = threading.Thread(
                target=_heartbeat, args=(weakref.ref(self), self._stop, self.heartbeat_s),
                name="sfai-schedule-heartbeat", daemon=True,
            )
            self._beat.start()

    def beat(self) -> None:
        """Stamps every job this process holds (one statement)."""
        with self._lock:
            held = list(self._held)
        if held:
            with self.db.session() as s:
                s.execute(
                    update(SchedulingJob)
                    .where(SchedulingJob.id.in_(held), SchedulingJob.owner == self.owner)
                    .values(heartbeat_at=utcnow())
                )

    def _stale(self, now):  # noqa: ANN001, ANN202 - a SQL condition
        cutoff = now - timedelta(seconds=self.stale_s)
        stamp = func.coalesce(SchedulingJob.heartbeat_at, SchedulingJob.created_at)  # no stamp before 0007
        return SchedulingJob.status.in_(("queued", "running")) & (stamp < cutoff)

    def adopt_stale(self) -> list[str]:
        """Takes over the jobs whose process stopped stamping them (``stale_s``): each is claimed by a conditional
        update, so that of several live processes one gets it, and queued again here from its stored request, with
        the tenant's subscriptions of now. Returns the ids taken."""
        from serving.tenancy import active_subscriptions

        now = utcnow()
        with self.db.session() as s:
            candidates = s.execute(
                select(SchedulingJob.id, SchedulingJob.tenant_id, SchedulingJob.request).where(self._stale(now))
            ).all()
        taken = []
        for job_id, tenant_id, request in candidates:  # the request is stored once and never changes
            if self._stop.is_set():  # stopping: the jobs are for another process
                break
            with self.db.session() as s:
                claimed = s.execute(
                    update(SchedulingJob)
                    .where(SchedulingJob.id == job_id, self._stale(now))
                    .values(status="queued", started_at=None, heartbeat_at=utcnow(), owner=self.owner)
                ).rowcount
            if not claimed:
                continue
            log.warning("scheduling job %s: its server process stopped; solving it again here", job_id)
            try:
                prepared = prepare(json.loads(request), set(active_subscriptions(self.db, tenant_id)))
            except Exception as e:  # noqa: BLE001 - recorded on the job
                self._fail(job_id, e)
                continue
            with self._lock:
                self._queued.setdefault(tenant_id, deque()).append((job_id, prepared))
                self._held.add(job_id)
            self._pool.submit(self._run_next)
            taken.append(job_id)
        return taken

    def close(self) -> None:
        """Stops taking jobs, and hands back the ones this process holds unfinished (a graceful stop: a deploy, a
        scale-in): their stamp is cleared, so that another process (or this server once restarted) takes them at
        its next heartbeat, not after ``stale_s``. A solve still running here may finish; it writes nothing."""
        self._stop.set()
        if self._beat is not None and self._beat is not threading.current_thread():
            self._beat.join(timeout=10)  # a beat under way could take back the jobs handed back below
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            held = list(self._held)
        if not held:
            return
        try:
            with self.db.session() as s:
                s.execute(
                    update(SchedulingJob)
                    .where(SchedulingJob.id.in_(held), SchedulingJob.owner == self.owner,
                           SchedulingJob.status.in_(("queued", "running")))
                    .values(heartbeat_at=RELEASED, owner=None)
                )
        except Exception:  # noqa: BLE001 - the database is away: the jobs are taken over once stale, as after a crash
            log.warning("scheduling jobs: could not hand back %d job(s) on stop", len(held), exc_info=True)
