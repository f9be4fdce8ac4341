"""One settings object for every SFAI process (API, CLI, pipelines, training).

Values come from the environment (prefix ``SFAI_``) or a ``.env`` file. ``get_settings()`` is cached;
tests build their own ``Settings(...)`` and hand it to ``create_app`` or call ``get_settings.cache_clear()``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "change-me"  # noqa: S105 - the development placeholder, refused elsewhere
# fewer distinct characters than this is no secret (16 spaces, "aaaaaaaaaaaaaaaa"); 16 random hex digits have fewer
# than 6 distinct once in ~30,000 draws, 32 random characters never in practice
MIN_SECRET_CHARS = 6


# runs a person types for a "random" text: a secret that is (a repetition of) a stretch of one is none
_RUNS = ("0123456789abcdefghijklmnopqrstuvwxyz", "qwertyuiopasdfghjklzxcvbnm", "1234567890")


def _period(text: str) -> str:
    """The shortest stretch whose repetition makes ``text`` ("abcabcab" -> "abc")."""
    for n in range(1, len(text) // 2 + 1):
        if all(text[i] == text[i % n] for i in range(len(text))):
            return text[:n]
    return text


def weak_secret(secret: str) -> bool:
    """A secret that is blank, one repeated character or a handful of them, or holds the placeholder: the server's
    secret peppers every API key's hash and keys the usage log's hash chain."""
    text = secret.strip().lower()
    return len(set(text)) < MIN_SECRET_CHARS or PLACEHOLDER_SECRET in text


def guessable_secret(secret: str) -> bool:
    """A short stretch repeated ("abcdefabcdefabcdef") or a run of the alphabet or the keyboard ("0123456789abcdef"):
    passed the checks above (security audit). Refused for a metrics token and for a new deployment's secret; a
    deployment already running on one is warned (its keys' hashes and its usage log depend on it)."""
    text = secret.strip().lower()
    stretch = _period(text)
    return len(stretch) < MIN_SECRET_CHARS * 2 and len(text) > len(stretch) or any(
        stretch in run or stretch[::-1] in run for run in _RUNS)


def check_forwarded_allow_ips(value: str, where: str) -> None:
    """Refuse ``*`` among the proxies whose X-Forwarded-For names the client: any client reaching the port would
    then name any address, and the failed-key limit, counted per address, would never stop it."""
    if any(part.strip() == "*" for part in value.split(",")):
        raise ValueError(f"{where} may not be *: every client could then name any address in X-Forwarded-For and "
                         "pass the failed-key limit; name the proxies' addresses (e.g. 10.0.0.5 or 10.0.0.0/8)")



def _redis_url(url: str, name: str, other: str = "") -> str:
    problem = None
    if not url.startswith(("redis://", "rediss://", "unix://")):
        problem = "not a Redis URL"
    else:
        from redis.connection import parse_url

        try:
            parse_url(url)
        except ValueError as e:
            problem = str(e)
    if problem:
        raise ValueError(f"{name} must be {other}a Redis URL such as redis://host:6379/0 ({problem}), not {url!r}")
    return url


# A usage log kept at least three years (the public programme's requirement), in days.
MIN_USAGE_RETENTION_DAYS = 3 * 365 + 1


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SFAI_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "staging", "production"] = "development"
    home: Path = Field(default=Path(".sfai"), description="state directory: database, feature store, models")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///$SFAI_HOME/sfai.db (WAL)"
    )
    secret_key: str = Field(default=PLACEHOLDER_SECRET, description="server secret (key pepper)")
    default_tenant: str = Field(default="local", description="tenant used by the CLI without --tenant")

    # Feature store: offline Parquet under $SFAI_HOME/features; online "sqlite" (under $SFAI_HOME) or redis://...
    online_store: str = Field(default="sqlite", description="'sqlite' or a redis:// URL")
    # SQLite online store: a serving process sees its own writes at once and other processes' commits within this
    # many milliseconds (0: on every read, at ~10-15 us a lookup; feature_store/online/sqlite.py)
    online_recheck_ms: float = Field(default=20.0, ge=0, le=10_000)
    redis_prefix: str = Field(default="sfai:", description="prefix of every online-store key in Redis")
    duckdb_memory_limit: str = Field(default="2GB", description="point-in-time joins spill to disk beyond this")

    # Engines outside this process, read from the environment or .env like every setting (``ray_address`` and
    # ``tracking_uri`` below, which also see a variable set after the settings were read)
    ray_address: str | None = Field(default=None, description="a Ray head (host:port) for pipelines, "
                                    "batch scoring and tuning; unset: a local Ray where one is needed")
    mlflow_tracking_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "SFAI_MLFLOW_TRACKING_URI"),
        description="an MLflow server; unset: sqlite:///$SFAI_HOME/mlflow.db",
    )

    # Usage log: group commit of the records written by every authenticated call.
    usage_flush_max_batch: int = Field(default=512, ge=1)
    usage_flush_max_wait_ms: float = Field(default=2.0, ge=0, description="how long a batch waits to fill")
    usage_retention_days: int = Field(default=MIN_USAGE_RETENTION_DAYS)
    usage_commit_inline: bool | None = Field(
        default=None,
        description="commit usage batches on the event loop (default: with SQLite) instead of a writer thread",
    )
    usage_collapse_refusals: bool = Field(
        default=True,
        description="log the repeats of a refusal (403, 429: the same key, module, method, endpoint and status) "
        "within 10 seconds as one record with their count; false: a record per refused call",
    )

    # Caches in the request path (seconds). A revoked key stops working within this time in other workers;
    # the worker that revoked it forgets it at once.
    auth_cache_ttl_s: float = Field(default=5.0, ge=0)

    # Limits (docs/limits.md). Calls per second per subscription (tenant x module) by plan, in each serving
    # process; a plan not named here, or null, has no rate limit. A burst of rate x burst_s calls passes at once.
    rate_limits: dict[str, float | None] = Field(
        default_factory=lambda: {"trial": 10.0, "standard": 500.0, "enterprise": None},
        description='per-plan calls per second, e.g. SFAI_RATE_LIMITS=\'{"trial": 5, "standard": 200}\'',
    )
    # Plans a tenant admin may choose itself (POST /v1/subscriptions); the others only the operator gives (`sfai
    # tenant subscribe`). Enterprise has no quota and no rate limit, so by default it is not self-service.
    self_service_plans: list[str] = Field(
        default_factory=lambda: ["trial", "standard"],
        description='plans a tenant admin may subscribe to itself, e.g. SFAI_SELF_SERVICE_PLANS=\'["trial"]\'',
    )
    # Calls per second per tenant to the endpoints outside the modules (its tenant, subscriptions, keys, usage log,
    # ingest and online lookups, the console's samples), in each serving process (shared in Redis with
    # rate_limit_redis); null: no limit. Ingest writes to the feature store and an export reads the whole log, and
    # neither is metered by a module's plan.
    platform_rate_limit: float | None = Field(default=50.0, gt=0, description="tenant calls per second, or null")
    # Feature store: how far ahead of this server's clock a reading may be stamped (feature_store/validate.py
    # MAX_CLOCK_SKEW_S); inf for no check. A bad value stops the server at start, not every ingest with a 500
    max_clock_skew_s: float = Field(default=3600.0, ge=0, description="seconds, or inf for no check")
    # Key lookups that find no caller (unknown or revoked keys this process has not seen within the TTL), per second
    # per client address, with 10 s of burst; past it, keys this process does not know yet answer 429 from that
    # address (behind a proxy, set forwarded_allow_ips below so that the address is the client's); null:
    # no limit
    failed_key_lookups_per_s: float | None = Field(default=10.0, gt=0)
    # `sfai serve --forwarded-allow-ips`: the proxies whose X-Forwarded-For names the client (comma-separated; * is
    # refused: any client could then name any address)
    forwarded_allow_ips: str | None = None
    # Usage-log exports streaming at once per tenant in each process (a three-year export reads every row)
    usage_exports_per_tenant: int = Field(default=2, ge=1, le=100)
    rate_limit_burst_s: float = Field(default=2.0, gt=0, description="bucket size in seconds of the plan's rate")
    rate_limit_redis: str | None = Field(
        default=None, description="redis://... to share the rate limits across workers and hosts (default: per process)"
    )
    max_body_bytes: int = Field(default=100 * 2**20, ge=1024, description="request bodies above this get 413")
    max_batch_records: int = Field(
        default=10_000, ge=1, le=10_000, description="records or entity ids per prediction call (at most 10,000)"
    )
    scheduling_max_solve_s: float = Field(default=30.0, gt=0, le=30, description="cap of a synchronous solve")
    scheduling_max_job_s: float = Field(default=3600.0, gt=0, description="time limit cap of a background solve")
    scheduling_plan_max_s: dict[str, float] = Field(
        default_factory=lambda: {"trial": 10.0},
        description="solver time limit cap by scheduling plan (lowers the two caps above; a plan not named: none)",
    )
    # how soon a killed server's background jobs are taken over: each process stamps its jobs (and writes their
    # checkpoints) every heartbeat; another live process claims a job not stamped for the stale time. A shorter
    # stale time takes a crashed process' jobs over sooner; it must leave a busy process several heartbeats
    scheduling_heartbeat_s: float = Field(
        default=10.0, ge=0.2, le=300, description="seconds between a process' stamps (and checkpoints) of its "
        "background scheduling jobs")
    scheduling_stale_s: float = Field(
        default=120.0, ge=1, le=86_400, description="seconds without a stamp after which another process takes a "
        "background scheduling job over (at least 3 heartbeats)")
    scheduling_max_active_jobs: int = Field(
        default=4, ge=1, description="queued or running background solves per tenant; more get 429"
    )
    # synchronous solves hold a thread for up to 30 s each: 45 at once from one tenant had every other tenant's
    # plain calls wait 7 s for a thread (security audit)
    # one tenant's 48 concurrent SECOM calls took the shared thread pool and the GIL: another tenant's RUL call went
    # from 18 ms to 5.4 s (performance audit)
    max_scoring_per_tenant: int = Field(
        default=4, ge=1, le=1000, description="predictions one tenant scores in worker threads at once (per "
        "process); more wait their turn, holding no thread")
    max_scoring_waiting_per_tenant: int = Field(
        default=64, ge=0, le=100_000, description="a tenant's predictions waiting for a turn (per process); more get "
        "429 too_many_requests")
    scheduling_max_sync_per_tenant: int = Field(
        default=2, ge=1, description="synchronous solves one tenant runs at once (per process); more get 429"
    )
    scheduling_max_sync: int = Field(
        default=8, ge=1, description="synchronous solves running at once in a process (all tenants); more wait"
    )
    # a plan's machine risk read from readings older than this is warned of (linked.maintenance_model.warnings): a
    # machine mapped to an entity the MES stopped sending had planned on its reading of years before (integration
    # audit)
    scheduling_risk_max_age_h: float = Field(
        default=24.0, gt=0, description="hours: a plan's machine readings older than this get a warning"
    )
    # a prediction by entity id answers each entity's reading time and age (reading_at, reading_age_s); one older
    # than this adds a warning naming it: an MES operator had trusted the prediction of a sensor feed stalled for
    # days (integration audit)
    stale_reading_s: int = Field(
        default=3600, ge=0, description="seconds: a prediction by entity id whose reading is older than this gets a "
        "warning (0: never)"
    )
    # Plan sizes, checked before anything is parsed or solved: the solver's time limit does not bound the work of
    # building the model (100,000 one-operation jobs on 100,000 machines ran 51 s and took 844 MB with a 2-s limit;
    # 10,000 operations on 2,000 machines take 3-4 s, 20,000 about 7 s, on 2 cores)
    scheduling_max_operations: int = Field(default=20_000, ge=1, description="operations per background solve")
    scheduling_max_solve_operations: int = Field(
        default=10_000, ge=1, description="operations per synchronous solve (more: a background job)"
    )
    scheduling_max_machines: int = Field(default=2_000, ge=1, description="machines per plan")
    scheduling_max_alternatives: int = Field(
        default=200_000, ge=1,
        description="(operation, eligible machine) pairs per plan: each is an interval of the model (2 million on "
        "10,000 operations ran 34 s with a 2-s limit)",
    )
    # Browsers: no cross-origin calls unless origins are listed (e.g. SFAI_CORS_ORIGINS='["https://mes.example"]')
    cors_origins: list[str] = Field(default_factory=list)

    # Switches used by benchmarks/api_overhead.py to measure the cost of the platform path.
    auth_enabled: bool = True
    usage_log_enabled: bool = True
    metrics_enabled: bool = True
    # one log line per request (method, path, status, latency, tenant, key id, request id, client address), for
    # 401s, 404s and scanners too; off by default: the usage log already holds every authenticated call
    access_log: bool = False
    # /metrics labels series by tenant name: outside development and test it answers only to
    # "Authorization: Bearer <this token>" (the Prometheus scrape config's bearer token), and 403 while unset
    metrics_token: str | None = Field(default=None, repr=False)
    # Small JSON prediction calls answered by serving/fastpath.py (same answers; off: every call via the routes)
    predict_fast_path: bool = True
    # How long a thread (batch scoring, ingest, a pandas model) may hold Python's GIL before the event loop gets it
    # back. Python's default of 5 ms put that wait into the single predictions answered meanwhile (a 10-minute mixed
    # load: failure p99 41 -> 23 ms and 78 -> 50 ms with 1 ms, docs/serving.md).
    gil_switch_interval_ms: float = Field(default=1.0, gt=0, le=100)
    # How long `sfai serve` keeps an idle keep-alive connection open. Longer than the clients' and load balancers'
    # own idle timeouts (httpx 5 s, nginx 75 s, cloud load balancers 60 s): when both sides time out together, a
    # request sent on a connection the server is closing fails with a reset (uvicorn's 5 s default did that to one
    # call in 33,000 of a 10-minute soak whose client also keeps connections 5 s).
    keep_alive_s: int = Field(default=90, ge=1, le=3600)

    # A Redis URL is checked when the settings are read: a typo stops `sfai serve` with one line, rather than every
    # worker failing at start (a restart loop) or every lookup failing later with 500
    @field_validator("database_url")
    @classmethod
    def _no_blank_database_url(cls, v: str | None) -> str | None:
        """``SFAI_DATABASE_URL=`` (a secret that did not arrive, say) had silently meant SQLite under SFAI_HOME: a
        second, empty deployment beside the real one (operator's audit). Leave it unset for the default."""
        if v is not None and not v.strip():
            raise ValueError("SFAI_DATABASE_URL is set but empty: give the database's URL, or leave it unset for "
                             "SQLite under SFAI_HOME")
        if v is not None:
            _check_database_url(v)
        return v

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, v: object) -> object:
        """docker-compose passes ``${SFAI_METRICS_TOKEN:-}`` as "", which production refused as a too-weak token: the
        documented compose deployment never started (operator's audit). Empty means no token (/metrics closed
        outside development). Only here: an empty SFAI_DATABASE_URL or Redis URL stays an error, not a default."""
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("online_store")
    @classmethod
    def _online_store_url(cls, v: str) -> str:
        return v if v == "sqlite" else _redis_url(v, "online_store", "'sqlite' or ")

    @field_validator("rate_limit_redis")
    @classmethod
    def _rate_limit_redis_url(cls, v: str | None) -> str | None:
        return v if v is None else _redis_url(v, "rate_limit_redis")

    @field_validator("platform_rate_limit", "failed_key_lookups_per_s", mode="before")
    @classmethod
    def _null_is_none(cls, v: object) -> object:
        """``null`` (or ``none``) in the environment or ``.env`` means no limit, as the docs say; without this the
        server refused to start on SFAI_PLATFORM_RATE_LIMIT=null."""
        if isinstance(v, str) and v.strip().lower() in ("null", "none"):
            return None
        return v

    @field_validator("rate_limits")
    @classmethod
    def _positive_rates(cls, v: dict[str, float | None]) -> dict[str, float | None]:
        for plan, rate in v.items():
            if rate is not None and rate <= 0:
                raise ValueError(f"rate_limits[{plan!r}] must be a positive number of calls per second or null")
        return v

    @field_validator("self_service_plans")
    @classmethod
    def _known_plans(cls, v: list[str]) -> list[str]:
        from serving.tenancy import PLANS  # serving.tenancy imports the database layer, which reads settings

        unknown = [p for p in v if p not in PLANS]
        if unknown:
            raise ValueError(f"self_service_plans: unknown plan(s) {unknown}; plans are {', '.join(PLANS)}")
        return v

    @field_validator("scheduling_plan_max_s")
    @classmethod
    def _positive_caps(cls, v: dict[str, float]) -> dict[str, float]:
        for plan, cap in v.items():
            if cap <= 0:
                raise ValueError(f"scheduling_plan_max_s[{plan!r}] must be a positive number of seconds")
        return v

    @model_validator(mode="after")
    def _stale_after_several_heartbeats(self) -> Settings:
        if self.scheduling_stale_s < 3 * self.scheduling_heartbeat_s:
            raise ValueError(
                f"SFAI_SCHEDULING_STALE_S ({self.scheduling_stale_s:g} s) must be at least 3 x "
                f"SFAI_SCHEDULING_HEARTBEAT_S ({self.scheduling_heartbeat_s:g} s): a process that missed a beat or two "
                "would lose its running jobs to another")
        return self

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard_origin(cls, v: list[str]) -> list[str]:
        if "*" in v:
            raise ValueError("cors_origins: list the origins that may call SFAI; '*' would let any web page use a key")
        return v

    @field_validator("usage_retention_days")
    @classmethod
    def _three_years_at_least(cls, v: int) -> int:
        if v < MIN_USAGE_RETENTION_DAYS:
            raise ValueError(f"usage_retention_days must be at least {MIN_USAGE_RETENTION_DAYS} (three years)")
        return v

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _no_wildcard_proxy(cls, v: str | None) -> str | None:
        check_forwarded_allow_ips(v or "", "SFAI_FORWARDED_ALLOW_IPS")
        return v

    @model_validator(mode="after")
    def _no_placeholder_secret_outside_development(self) -> Settings:
        if self.environment not in ("development", "test") and (
            self.secret_key == PLACEHOLDER_SECRET or len(self.secret_key) < 16
        ):
            raise ValueError(
                f"SFAI_SECRET_KEY must be set to a real secret (16+ characters) in {self.environment}; "
                "the development placeholder is refused"
            )
        if self.environment not in ("development", "test") and weak_secret(self.secret_key):
            raise ValueError(
                f"SFAI_SECRET_KEY is too weak for {self.environment} (blank, a few characters repeated, or the "
                "placeholder 'change-me' in it): use 32 random characters, e.g. from "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        if self.environment not in ("development", "test") and self.metrics_token is not None and (
                len(self.metrics_token) < 16 or weak_secret(self.metrics_token)
                or guessable_secret(self.metrics_token)):
            # it opens every tenant's call counts: "x" had passed (security audit)
            raise ValueError(
                f"SFAI_METRICS_TOKEN is too weak for {self.environment} (under 16 characters, a repeated character "
                "or pattern, or a run such as 0123456789abcdef): use 32 random characters, e.g. from "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        if not (self.auth_enabled and self.usage_log_enabled) and self.environment not in (
            "development",
            "test",
        ):
            raise ValueError("auth and the usage log can only be switched off in development or test")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'sfai.db').resolve()}"

    def state_files(self) -> set[Path]:
        """The files SFAI keeps its state in (the SQLite metadata database and its journals, MLflow's database): an
        export or a backup written over one of them would destroy it."""
        from sqlalchemy.engine import make_url

        out = {(self.home / "mlflow.db").resolve()}
        url = make_url(self.resolved_database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            db = Path(url.database).expanduser().resolve()
            out |= {db, *(db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal"))}
        return out

    def refuse_state_file(self, path: Path) -> None:
        """A one-line error where ``path`` is one of :meth:`state_files`."""
        if Path(path).expanduser().resolve() in self.state_files():
            raise ValueError(f"{path} is where SFAI keeps its state (its database); write the output elsewhere")

    def ensure_home(self) -> Path:
        private_dir(self.home)
        return self.home


def private_dir(path: Path) -> None:
    """Make the folder ``path`` (and its parents) where missing; the folder itself readable by its owner only. SFAI's
    state (every tenant's features, usage log and key hashes) had been created readable by every local user; a
    folder that exists already keeps the modes its owner gave it."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)  # the mode is masked by the umask, which can only remove bits


def private_file(path: Path) -> None:
    """Create the database file ``path`` empty and readable by its owner only, where it does not exist yet (SQLite
    then makes its journals with the same mode)."""
    path = Path(path)
    private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


# SFAI_ variables read elsewhere than Settings: the test suite's (SFAI_TEST_*, SFAI_SHARED, SFAI_FUZZ_*) and
# docker-compose's own (SFAI_DATA_DIR)
NOT_SETTINGS = ("SFAI_TEST_", "SFAI_FUZZ_", "SFAI_SHARED", "SFAI_DATA_DIR", "SFAI_DEBUG")


def unknown_variables(environ: dict[str, str] | None = None) -> list[str]:
    """A warning for each ``SFAI_`` variable that is no setting, with the setting it most likely meant: a
    mistyped ``SFAI_SECRTE_KEY`` was ignored without a word (operator's audit)."""
    import difflib

    known = sorted(f"SFAI_{name.upper()}" for name in Settings.model_fields)
    out = []
    for name in sorted(os.environ if environ is None else environ):
        if name.startswith("SFAI_") and name not in known and not name.startswith(NOT_SETTINGS):
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
            out.append(f"{name} is not an SFAI setting and is ignored"
                       + (f" (did you mean {close[0]}?)" if close else " (docs/deploy.md lists them)"))
    return out


@lru_cache
def get_settings() -> Settings:
    return Settings()


DATABASE_URL_FORMS = "postgresql://USER:PASSWORD@HOST:5432/DB or sqlite:////path/to/sfai.db"


def _check_database_url(url: str) -> None:
    """A URL SFAI can open: PostgreSQL or SQLite, parsable, with a numeric port. A typo had surfaced as "invalid literal
    for int() with base 10: 'notaport'" or "No module named 'MySQLdb'" (operator's audit). The password is never
    shown."""
    from sqlalchemy.engine import make_url

    scheme = url.split("://", 1)[0] if "://" in url else ""
    try:
        parsed = make_url(url)
        port = parsed.port  # parsing the port raises for text
    except Exception:  # noqa: BLE001 - any parse failure is the same mistake to the operator
        raise ValueError(f"SFAI_DATABASE_URL is not a database URL (scheme {scheme or 'none'!r}): expected "
                         f"{DATABASE_URL_FORMS}") from None
    backend = parsed.get_backend_name()
    if backend not in ("postgresql", "postgres", "sqlite"):
        raise ValueError(f"SFAI_DATABASE_URL names a {backend!r} database: SFAI runs on PostgreSQL or SQLite "
                         f"({DATABASE_URL_FORMS})")
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"SFAI_DATABASE_URL's port {port} is not a port (1-65535)")


def check_ray_address(address: str, timeout_s: float = 5.0) -> None:
    """One TCP connection to the Ray cluster at ``address`` (``host:port`` or ``ray://host:port``) before Ray is
    asked to join it: Ray itself retried a wrong address for over 12 minutes, ignoring SIGTERM (operator's audit).
    ``auto`` (a cluster Ray finds on this machine) is left to Ray."""
    import socket

    from serving.errors import Unavailable

    text = address.strip()
    if text == "auto":
        return
    hostport = text.split("://", 1)[1] if "://" in text else text
    host, _, port = hostport.rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise Unavailable(f"SFAI_RAY_ADDRESS {address!r} is not host:port (e.g. 10.0.0.5:6379, or ray://10.0.0.5:10001)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise Unavailable(f"the Ray cluster at {address} does not answer ({e.strerror or e}): start it (ray start "
                          "--head), correct SFAI_RAY_ADDRESS, or unset it to run on this machine") from None


def ray_address() -> str | None:
    """The Ray cluster to join: ``SFAI_RAY_ADDRESS`` in the environment (also one set after the settings were
    read), else in ``.env``; None: none configured."""
    return os.environ.get("SFAI_RAY_ADDRESS") or get_settings().ray_address or None
