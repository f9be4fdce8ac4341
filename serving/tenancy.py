"""Tenants, the module catalogue, subscriptions and API keys: plain functions over the metadata database.

No FastAPI here: the CLI and the API both call these.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from pipelines.ksic import KSIC_DIVISIONS, normalize_ksic
from serving.db import Database
from serving.db.tables import ApiKey, Module, Subscription, Tenant
from serving.errors import Conflict, InvalidInput, NotFound, OperatorManaged

MODULES: tuple[str, ...] = ("quality", "maintenance", "energy", "scheduling")
ROLES: tuple[str, ...] = ("admin", "scientist", "mes", "planner")
# Plans and their request quota per calendar month and module (None: no quota).
PLANS: dict[str, int | None] = {"trial": 10_000, "standard": 1_000_000, "enterprise": None}
DEFAULT_PLAN = "standard"

# A monthly request quota is at most this (a trillion calls a month: far beyond any plan, and well inside the
# 64-bit column and a JSON number).
MAX_QUOTA = 10**12

KEY_PREFIX = "sfai"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")


def utcnow() -> datetime:
    return datetime.now(UTC)


def utc_text(ts: datetime | None) -> str | None:
    """A time as SFAI's answers write it: ISO 8601 in UTC, ending in ``Z`` (``2026-12-07T04:18:33.002892Z``)."""
    return None if ts is None else as_utc(ts).isoformat().replace("+00:00", "Z")


def as_utc(ts: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every SFAI timestamp is UTC."""
    if ts is None:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


# 24:00, ISO 8601's end of a day (also 24:00:00 and 24:00:00.000, before an offset): read as the next day's 00:00
# wherever SFAI reads a time from text (the energy readings, the feature store's ingest)
END_OF_DAY = r"(?<=[T ])24:00(?=(?::00(?:\.0+)?)?(?:$|Z|[+-]))"


# --------------------------------------------------------------------------------------------- views
@dataclass(frozen=True, slots=True)
class TenantInfo:
    id: int
    name: str
    display_name: str
    ksic_code: str
    ksic_name_ko: str
    ksic_name_en: str
    created_at: datetime

    @classmethod
    def of(cls, t: Tenant) -> TenantInfo:
        div = KSIC_DIVISIONS[t.ksic_code]
        return cls(t.id, t.name, t.display_name, t.ksic_code, div.name_ko, div.name_en, as_utc(t.created_at))


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    id: int
    tenant: str
    module: str
    plan: str
    request_quota: int | None
    starts_at: datetime
    ends_at: datetime | None
    operator_managed: bool = False  # terms or an end the operator set: the tenant admin may not change them

    def active_at(self, now: datetime) -> bool:
        return self.starts_at <= now and (self.ends_at is None or now < self.ends_at)


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    key_id: str
    tenant: str
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None = None  # None: the key does not expire
    modules: tuple[str, ...] | None = None  # the modules the key may call; None: every module the tenant holds
    last_used_at: datetime | None = None  # its latest authenticated call, written within a minute or so

    def state_at(self, now: datetime) -> str:
        """``active``, ``revoked`` or ``expired`` (a revoked key says revoked, whenever it would have expired)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def public(self, now: datetime) -> dict:
        """The key as ``GET /v1/apikeys`` and ``sfai apikey list --json`` give it: its fields, ``modules`` a list
        (or null) and its ``state`` at ``now``."""
        out = {name: getattr(self, name) for name in self.__slots__}
        out["modules"] = None if self.modules is None else list(self.modules)
        out["state"] = self.state_at(now)
        return out


@dataclass(frozen=True, slots=True)
class NewApiKey:
    info: ApiKeyInfo
    token: str  # shown once; only its hash is stored


@dataclass(frozen=True, slots=True)
class AuthContext:
    """Who is calling: resolved from the API key on every request."""

    tenant_id: int
    tenant: str
    ksic_code: str
    key_id: str
    role: str
    # carried in the process' key cache, so that the request path checks them without a query: the key is refused
    # from ``expires_at`` on (serving.access.key_clock), and a module outside ``modules`` (None: all) is refused
    expires_at: datetime | None = None
    modules: frozenset[str] | None = None


# --------------------------------------------------------------------------------------------- checks
def check_tenant_name(name: str) -> str:
    name = (name or "").strip().lower()
    if not _NAME_RE.match(name):
        raise InvalidInput(
            f"invalid tenant name {name!r}: use 3-64 lowercase letters, digits and '-' (e.g. 'acme-steel')"
        )
    return name


def tenant_key(name: str) -> str:
    """The stored form of a tenant name as given on a lookup: ``Acme2`` finds ``acme2``, as ``create`` stored it."""
    return (name or "").strip().lower()


def _find_tenant(s, name: str) -> Tenant:  # noqa: ANN001 - a Session
    t = s.scalar(select(Tenant).where(Tenant.name == tenant_key(name)))
    if t is None:
        raise NotFound(f"tenant {name!r} not found")
    return t


_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_label(value: str | None, what: str, max_len: int) -> str | None:
    """A name shown to people (a tenant's display name, an API key's name): 1 to ``max_len`` characters, not only
    spaces, no control characters (a tab or newline would break the tab-separated lists of the CLI) and no
    bidirectional overrides (U+202E, the right-to-left override, makes a name read as another's).
    ``None`` passes."""
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= max_len:
        raise InvalidInput(f"{what} must be 1-{max_len} characters")
    if not value.strip():
        raise InvalidInput(f"{what} must not be only spaces")
    bad = next((c for c in value if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") or c in _BIDI_CONTROLS), None)
    if bad is not None:
        raise InvalidInput(f"{what} must not contain control characters (found {bad!r})")
    return value


def check_quota(quota: int | None) -> int | None:
    if quota is not None and (isinstance(quota, bool) or not isinstance(quota, int) or not 0 <= quota <= MAX_QUOTA):
        raise InvalidInput(f"request quota must be an integer from 0 to {MAX_QUOTA:,} per month, got {quota!r}")
    return quota


def check_module(module: str) -> str:
    if module not in MODULES:
        raise InvalidInput(f"unknown module {module!r}: expected one of {', '.join(MODULES)}")
    return module


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    return role


def check_key_modules(
    modules: list[str] | tuple[str, ...] | None, what: str = "modules"
) -> tuple[str, ...] | None:
    """The modules a key may call, in the catalogue's order (``None``: unscoped, every module the tenant holds).
    An empty list, a module named twice or an unknown name is refused, naming them."""
    if modules is None:
        return None
    if isinstance(modules, str) or not all(isinstance(m, str) for m in modules):
        raise InvalidInput(f"{what} must be a list of module names, e.g. [\"quality\", \"energy\"]")
    if not modules:
        raise InvalidInput(f"{what} is empty: name at least one of " + ", ".join(MODULES)
                           + ", or leave it out for a key that may call every module the tenant holds")
    unknown = list(dict.fromkeys(m for m in modules if m not in MODULES))
    if unknown:
        shown = ", ".join(repr(m if len(m) <= 40 else m[:40] + "...") for m in unknown[:5])
        raise InvalidInput(f"unknown module{'s' if len(unknown) > 1 else ''} {shown} in {what}: expected "
                           f"{', '.join(MODULES)}")
    twice = [m for m in MODULES if modules.count(m) > 1]
    if twice:
        raise InvalidInput(f"{what} names {', '.join(map(repr, twice))} more than once")
    return tuple(m for m in MODULES if m in modules)


def parse_expiry(
    value: str | datetime | date | None, now: datetime | None = None, what: str = "expires_at"
) -> datetime | None:
    """When a new key expires, from ISO text: a date alone (``2026-12-31``) is the end of that day UTC (the next
    day's 00:00 UTC); a date and time needs its offset (``2026-12-31T18:00:00+09:00``, or ``Z``). A time in the past,
    or a time without an offset, is refused. ``None``: the key does not expire."""
    if value is None:
        return None
    now = now or utcnow()
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, date):
        ts = datetime.combine(value, time(), UTC)
        try:
            ts += timedelta(days=1)
        except OverflowError:
            raise InvalidInput(f"{what} {value.isoformat()!r} is out of range") from None
    elif not isinstance(value, str):
        raise InvalidInput(f"{what} must be an ISO date (2026-12-31) or date and time with an offset "
                           "(2026-12-31T18:00:00+09:00)")
    else:
        text = value.strip()
        shown = value if len(value) <= 40 else value[:40] + "..."
        example = "use an ISO date (2026-12-31: the end of that day UTC) or a date and time with its offset " \
                  "(2026-12-31T18:00:00+09:00 or 2026-12-31T09:00:00Z)"
        if not text:
            raise InvalidInput(f"{what} is empty: {example}, or leave it out for a key that does not expire")
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            try:
                return parse_expiry(date.fromisoformat(text), now, what)
            except ValueError:
                raise InvalidInput(f"invalid {what} {shown!r}: {example}") from None
        try:
            ts = datetime.fromisoformat(re.sub(r"[zZ]$", "+00:00", text))
        except ValueError:
            raise InvalidInput(f"invalid {what} {shown!r}: {example}") from None
        if ts.tzinfo is None:
            raise InvalidInput(f"{what} {shown!r} has no UTC offset: add one, e.g. {shown}Z (UTC) or "
                               f"{shown}+09:00 (KST)")
    if ts.tzinfo is None:
        raise InvalidInput(f"{what} has no UTC offset: add one (Z for UTC, +09:00 for KST)")
    try:
        ts = ts.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{what} is out of range in UTC (years 1 to 9999)") from None
    if ts <= now:
        raise InvalidInput(f"{what} {utc_text(ts)} is in the past (now {utc_text(now)}): give a later time")
    return ts


def check_plan(plan: str) -> str:
    if plan not in PLANS:
        raise InvalidInput(f"unknown plan {plan!r}: expected one of {', '.join(PLANS)}")
    return plan


def check_ksic(ksic_code: str) -> str:
    """The KSIC division code (``C24``) of ``ksic_code`` (``24``, ``c24``, ``C24``), or InvalidInput."""
    try:
        return normalize_ksic(ksic_code)
    except ValueError as e:
        raise InvalidInput(str(e)) from None


# --------------------------------------------------------------------------------------------- tenants
def create_tenant(db: Database, name: str, ksic_code: str, display_name: str | None = None) -> TenantInfo:
    name = check_tenant_name(name)
    code = check_ksic(ksic_code)
    check_label(display_name or None, "display name", 200)
    try:
        with db.session() as s:
            t = Tenant(name=name, display_name=display_name or name, ksic_code=code, created_at=utcnow())
            s.add(t)
            s.flush()
            return TenantInfo.of(t)
    except IntegrityError:
        raise Conflict(f"tenant {name!r} already exists") from None


def get_tenant(db: Database, name: str) -> TenantInfo:
    """The tenant named ``name`` (any case, as ``create_tenant`` lowercases names)."""
    with db.session() as s:
        return TenantInfo.of(_find_tenant(s, name))


def get_tenant_by_id(db: Database, tenant_id: int) -> TenantInfo:
    with db.session() as s:
        t = s.get(Tenant, tenant_id)
        if t is None:
            raise NotFound(f"tenant {tenant_id} not found")
        return TenantInfo.of(t)


def list_tenants(db: Database) -> list[TenantInfo]:
    with db.session() as s:
        return [TenantInfo.of(t) for t in s.scalars(select(Tenant).order_by(Tenant.name))]


def ensure_tenant(db: Database, name: str, ksic_code: str, display_name: str | None = None) -> TenantInfo:
    """The tenant named ``name``, created if missing (used for the CLI's local default and the demo)."""
    try:
        return get_tenant(db, check_tenant_name(name))
    except NotFound:
        try:
            return create_tenant(db, name, ksic_code, display_name)
        except Conflict:  # created concurrently
            return get_tenant(db, name)


# --------------------------------------------------------------------------------------------- modules
def list_modules(db: Database) -> list[tuple[str, str]]:
    with db.session() as s:
        return [(m.name, m.description) for m in s.scalars(select(Module).order_by(Module.name))]


# --------------------------------------------------------------------------------------------- subscriptions
def _sub_info(sub: Subscription, tenant: str) -> SubscriptionInfo:
    return SubscriptionInfo(
        sub.id,
        tenant,
        sub.module,
        sub.plan,
        sub.request_quota,
        as_utc(sub.starts_at),
        as_utc(sub.ends_at),
        bool(sub.operator_managed),
    )


def subscribe(
    db: Database,
    tenant: str,
    module: str,
    *,
    plan: str = DEFAULT_PLAN,
    request_quota: int | None | str = "plan",
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    by_tenant: bool = False,
) -> SubscriptionInfo:
    """Subscribe ``tenant`` to ``module``. An active subscription to the same module is replaced (plan change).

    ``by_tenant``: the tenant's own admin asks (``POST /v1/subscriptions``), not the operator. It gets the plan's
    terms only, and is refused (:class:`OperatorManaged`) while the module's latest subscription carries terms the
    operator set (a custom quota, an end date) or an end the operator gave: otherwise re-subscribing would turn a
    dated trial into an open-ended one, or reopen a module the operator ended. The operator's own call marks the
    subscription when it sets such terms."""
    check_module(module)
    check_plan(plan)
    if by_tenant and (request_quota != "plan" or starts_at is not None or ends_at is not None):
        raise InvalidInput("a tenant admin subscribes on the plan's terms; custom terms are set by the operator")
    quota = check_quota(PLANS[plan] if request_quota == "plan" else request_quota)
    ends = as_utc(ends_at)
    if ends is not None and ends <= (as_utc(starts_at) or utcnow()):
        raise InvalidInput("subscription end must be after its start")
    with db.session() as s:
        t = _find_tenant(s, tenant)
        tenant = t.name
        _lock_tenant(s, t.id)
        now = utcnow()  # once the turn is ours: a change made meanwhile starts no later than this one
        starts = as_utc(starts_at) or now
        history = list(
            s.scalars(
                select(Subscription)
                .where(Subscription.tenant_id == t.id, Subscription.module == module)
                .order_by(Subscription.starts_at, Subscription.id)
            )
        )
        if by_tenant and history and history[-1].operator_managed:
            raise OperatorManaged(_managed_message(_sub_info(history[-1], tenant), now))
        if by_tenant and history:
            current = _sub_info(history[-1], tenant)
            if current.active_at(now) and current.plan == plan and current.request_quota == quota \
                    and current.ends_at is None:
                return current  # already held on these terms: nothing changes (a second click added a row each)
        # close the current subscription to this module, if any (the history stays)
        for old in history:
            if _sub_info(old, tenant).active_at(starts):
                old.ends_at = starts
        sub = Subscription(
            tenant_id=t.id,
            module=module,
            plan=plan,
            request_quota=quota,
            starts_at=starts,
            ends_at=ends,
            created_at=now,
            operator_managed=not by_tenant and (request_quota != "plan" or ends is not None),
        )
        s.add(sub)
        s.flush()
        return _sub_info(sub, tenant)


def _lock_tenant(s, tenant_id: int) -> None:  # noqa: ANN001 - a Session
    """Hold the tenant's row for the rest of the transaction (an update that changes nothing), so that one change
    of its subscriptions (or of its admin keys) reads what it changes only after any other has committed: two admins
    subscribing at once had each closed the same row and added their own, leaving two active subscriptions to one
    module. PostgreSQL holds the row lock; SQLite takes its write lock here, before the reads, not at the first
    insert."""
    s.execute(update(Tenant).where(Tenant.id == tenant_id).values(ksic_code=Tenant.ksic_code))


def _managed_message(sub: SubscriptionInfo, now: datetime) -> str:
    terms = [] if sub.request_quota == PLANS.get(sub.plan) else [
        "no quota" if sub.request_quota is None else f"a quota of {sub.request_quota:,} calls a month"
    ]
    if sub.ends_at is not None:
        terms.append(f"{'ends' if sub.ends_at > now else 'ended'} {sub.ends_at:%Y-%m-%d %H:%M} UTC")
    return (
        f"the {sub.module!r} subscription was set by the SFAI operator ({sub.plan} plan"
        + "".join(f", {x}" for x in terms)
        + "); ask your operator to change or renew it"
    )


def unsubscribe(db: Database, tenant: str, module: str, *, by_tenant: bool = False) -> SubscriptionInfo:
    """End the tenant's active subscription to ``module`` now."""
    return unsubscribe_many(db, tenant, [module], by_tenant=by_tenant)[0]


def unsubscribe_many(
    db: Database, tenant: str, modules: list[str] | None, *, by_tenant: bool = False
) -> list[SubscriptionInfo]:
    """End the tenant's active subscriptions to ``modules`` now, all or none: a module without an active
    subscription is refused and nothing ends. ``None``: every active subscription (refused if there is none).

    An end the operator gives (not ``by_tenant``) marks the subscription operator-managed, so the tenant admin cannot
    reopen the module; a tenant's own end keeps the mark as it was."""
    for m in modules or ():
        check_module(m)
    with db.session() as s:
        t = _find_tenant(s, tenant)
        _lock_tenant(s, t.id)
        now = utcnow()
        active: dict[str, list[Subscription]] = {}
        for sub in s.scalars(select(Subscription).where(Subscription.tenant_id == t.id).order_by(Subscription.id)):
            if _sub_info(sub, t.name).active_at(now):
                active.setdefault(sub.module, []).append(sub)
        if modules is None:
            if not active:
                raise NotFound(f"tenant {t.name!r} has no active subscription")
            modules = [m for m in MODULES if m in active]
        missing = [m for m in modules if m not in active]
        if missing:
            also = f" (active: {', '.join(m for m in MODULES if m in active) or 'none'}); nothing was ended"
            raise NotFound(
                f"tenant {t.name!r} has no active subscription to {', '.join(map(repr, missing))}"
                + (also if len(modules) > 1 else "")
            )
        out = []
        for m in dict.fromkeys(modules):
            for sub in active[m]:
                sub.ends_at = now
                sub.operator_managed = sub.operator_managed or not by_tenant
            out.append(_sub_info(active[m][-1], t.name))
        return out


def list_subscriptions(db: Database, tenant: str, *, active: bool | None = None) -> list[SubscriptionInfo]:
    """A tenant's subscriptions, oldest first: all of them (``active=None``), those in force now (``True``) or those
    not in force now (``False``: ended, or starting later)."""
    now = utcnow()
    with db.session() as s:
        t = _find_tenant(s, tenant)
        subs = [
            _sub_info(x, t.name)
            for x in s.scalars(select(Subscription).where(Subscription.tenant_id == t.id).order_by(Subscription.id))
        ]
    return subs if active is None else [x for x in subs if x.active_at(now) == active]


class Subscriptions(dict):
    """Module -> the subscription in force now; ``operator_ended``: the modules not in force whose latest
    subscription carries the operator's mark (its end or terms were the operator's), so that only the operator can
    reopen them: what a refused call should tell the caller."""

    operator_ended: frozenset[str] = frozenset()


def active_subscriptions(db: Database, tenant_id: int) -> Subscriptions:
    """Module -> the subscription in force now, for the request path's cache (with ``operator_ended``)."""
    now = utcnow()
    out = Subscriptions()
    with db.session() as s:
        t = s.get(Tenant, tenant_id)
        if t is None:
            return out
        latest: dict[str, Subscription] = {}
        for sub in s.scalars(select(Subscription).where(Subscription.tenant_id == tenant_id)
                             .order_by(Subscription.starts_at, Subscription.id)):
            latest[sub.module] = sub
            info = _sub_info(sub, t.name)
            if info.active_at(now):
                out[info.module] = info
        out.operator_ended = frozenset(m for m, sub in latest.items() if m not in out and sub.operator_managed)
    return out


# --------------------------------------------------------------------------------------------- API keys
def hash_secret(pepper: str, secret: str) -> str:
    """Keys are 256-bit random, so a keyed hash (HMAC-SHA256 with the server secret) is the right strength;
    a slow password hash would only slow every request down."""
    return hmac.new(pepper.encode(), secret.encode(), hashlib.sha256).hexdigest()


# a key id as SFAI makes them (k and hex digits), in `sfai apikey list` and the usage records
KEY_ID_PATTERN = r"^k[0-9a-f]{1,32}$"


def key_id_of(text: str) -> str:
    """The key id a caller named: ``text`` itself, or the id of a whole key pasted (``sfai_kID_secret``)."""
    parts = split_token(text)
    return parts[0] if parts else text


def split_token(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None. The key id goes to the database: only letters and digits
    (``k`` and hex), so that a NUL or other odd text is no key rather than a query PostgreSQL refuses (a 500)."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[2]:
        return None
    if not (parts[1].isascii() and parts[1].isalnum() and len(parts[1]) <= 32):
        return None
    return parts[1], parts[2]


def key_modules(text: str | None) -> tuple[str, ...] | None:
    """``api_keys.modules`` (JSON text, migration 0017) as the modules' names; None: unscoped."""
    if text is None:
        return None
    try:
        names = json.loads(text)
    except ValueError:
        return ()  # not written by SFAI: a key that may call no module rather than every one
    return tuple(m for m in MODULES if m in names) if isinstance(names, list) else ()


def _key_info(k: ApiKey, tenant: str) -> ApiKeyInfo:
    return ApiKeyInfo(k.key_id, tenant, k.name, k.role, as_utc(k.created_at), as_utc(k.revoked_at),
                      as_utc(k.expires_at), key_modules(k.modules), as_utc(k.last_used_at))


def create_api_key(
    db: Database,
    pepper: str,
    tenant: str,
    role: str,
    name: str | None = None,
    *,
    expires_at: str | datetime | date | None = None,
    modules: list[str] | tuple[str, ...] | None = None,
) -> NewApiKey:
    """A new key of ``tenant``. ``expires_at`` (see :func:`parse_expiry`; None: never) and ``modules`` (the
    modules it may call; None: every module the tenant holds) are checked before anything is written."""
    check_role(role)
    check_label(name, "key name", 100)
    expires = parse_expiry(expires_at)
    scope = check_key_modules(modules)
    key_id = "k" + secrets.token_hex(6)
    secret = secrets.token_urlsafe(32).replace("_", "-")
    with db.session() as s:
        t = _find_tenant(s, tenant)
        tenant = t.name
        k = ApiKey(
            key_id=key_id,
            tenant_id=t.id,
            name=name or f"{role}-key",
            role=role,
            secret_hash=hash_secret(pepper, secret),
            created_at=utcnow(),
            expires_at=expires,
            modules=None if scope is None else json.dumps(list(scope)),
        )
        s.add(k)
        s.flush()
        return NewApiKey(_key_info(k, tenant), f"{KEY_PREFIX}_{key_id}_{secret}")


def list_api_keys(db: Database, tenant: str) -> list[ApiKeyInfo]:
    with db.session() as s:
        t = _find_tenant(s, tenant)
        return [
            _key_info(k, t.name) for k in s.scalars(select(ApiKey).where(ApiKey.tenant_id == t.id).order_by(ApiKey.id))
        ]


def revoke_api_key(
    db: Database, key_id: str, *, tenant: str | None = None, keep_an_admin: bool = False
) -> ApiKeyInfo:
    """Revoke a key, named by its id or as the whole key (pasted from a leak report: its id is used, and its secret
    is neither echoed nor kept). With ``tenant`` given, a key of another tenant is reported as not found. With
    ``keep_an_admin`` (a tenant admin's own call), the tenant's last active admin key is not revoked: that locked
    the tenant out of its administration until the operator made a key."""
    key_id = key_id_of(key_id)
    with db.session() as s:
        row = s.execute(
            select(ApiKey, Tenant.name).join(Tenant, Tenant.id == ApiKey.tenant_id).where(ApiKey.key_id == key_id)
        ).first()
        if row is None or (tenant is not None and row[1] != tenant_key(tenant)):
            shown = key_id if len(key_id) <= 40 else key_id[:40] + "..."  # not 5,000 characters echoed back
            raise NotFound(f"API key {shown!r} not found")
        k, tname = row
        if keep_an_admin and k.revoked_at is None and k.role == "admin":
            _lock_tenant(s, k.tenant_id)  # two admins revoking each other's key at once: one is the last
            others = s.scalar(select(func.count()).select_from(ApiKey).where(
                ApiKey.tenant_id == k.tenant_id, ApiKey.role == "admin", ApiKey.revoked_at.is_(None),
                ApiKey.key_id != k.key_id))
            if not others:
                raise Conflict(f"{k.key_id} is the tenant's last active admin key: revoking it would leave nobody to "
                               "manage keys and subscriptions; create another admin key first (POST /v1/apikeys), "
                               "or ask your operator", code="last_admin_key")
        if k.revoked_at is None:
            s.execute(update(ApiKey).where(ApiKey.id == k.id).values(revoked_at=utcnow()))
            s.refresh(k)
        return _key_info(k, tname)


def resolve_api_key(db: Database, pepper: str, token: str) -> AuthContext | None:
    """The caller behind ``token``, or None for a malformed, unknown, revoked or expired key."""
    caller, _ = resolve_api_key_state(db, pepper, token)
    if caller is not None and caller.expires_at is not None and caller.expires_at <= utcnow():
        return None
    return caller


def resolve_api_key_state(db: Database, pepper: str, token: str) -> tuple[AuthContext | None, AuthContext | None]:
    """(the caller behind ``token``, None for a malformed, unknown or revoked key; and for a revoked key whose
    secret is right, whose it was: its tenant's usage log records that it is still being used). An expired key's
    caller comes back with its ``expires_at``: the caller (serving.access) refuses it by the clock, cached or not."""
    parts = split_token(token)
    if parts is None:
        return None, None
    key_id, secret = parts
    with db.session() as s:
        row = s.execute(
            select(ApiKey, Tenant).join(Tenant, Tenant.id == ApiKey.tenant_id).where(ApiKey.key_id == key_id)
        ).first()
    if row is None:
        return None, None
    k, t = row
    if not hmac.compare_digest(k.secret_hash, hash_secret(pepper, secret)):
        return None, None
    scope = key_modules(k.modules)
    ctx = AuthContext(tenant_id=t.id, tenant=t.name, ksic_code=t.ksic_code, key_id=k.key_id, role=k.role,
                      expires_at=as_utc(k.expires_at), modules=None if scope is None else frozenset(scope))
    return (None, ctx) if k.revoked_at is not None else (ctx, None)
