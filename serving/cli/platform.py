"""Platform commands: tenants, subscriptions, API keys, the usage log, the database, the server."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, TextIO

import typer

from serving import __version__, tenancy
from serving.cli.common import check_output, database, emit_json, info, settings
from serving.errors import Conflict, InvalidInput, NotFound
from serving.logs import stamped
from serving.settings import check_forwarded_allow_ips, guessable_secret, unknown_variables
from serving.usage import (
    ChainKey,
    ChainKeyMismatch,
    check_chain_key,
    check_module,
    export_usage,
    parse_when,
    purge_before,
    retention_cut,
    verify_chain,
)

tenant_app = typer.Typer(help="Tenants (factories) and their module subscriptions.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys: shown once, stored hashed, revocable.", no_args_is_help=True)
usage_app = typer.Typer(help="The usage log: verify its hash chain, export it.", no_args_is_help=True)
db_app = typer.Typer(help="The metadata database.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of plain text")]
TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="tenant name")]


def _modules(values: list[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        for m in v.split(","):
            m = m.strip()
            if m == "all":
                out.extend(tenancy.MODULES)
            elif m:
                out.append(tenancy.check_module(m))
    return list(dict.fromkeys(out))


# ------------------------------------------------------------------------------------------------ tenant
@tenant_app.command("create")
def tenant_create(
    name: Annotated[str, typer.Argument(help="tenant name: lowercase letters, digits, '-'")],
    ksic: Annotated[str, typer.Option("--ksic", "-k", help="KSIC manufacturing division, C10-C34")],
    display_name: Annotated[str | None, typer.Option(help="name shown to people")] = None,
    module: Annotated[list[str], typer.Option("--module", "-m", help="subscribe at once (repeat, or 'all')")] = [],  # noqa: B006
    plan: Annotated[str, typer.Option(help="plan for --module subscriptions")] = tenancy.DEFAULT_PLAN,
    as_json: JsonOpt = False,
) -> None:
    """Create a tenant; prints its name."""
    modules = _modules(module)
    tenancy.check_plan(plan)
    db = database()
    t = tenancy.create_tenant(db, name, ksic, display_name)
    for m in modules:
        tenancy.subscribe(db, t.name, m, plan=plan)
    if as_json:
        emit_json({**_asdict(t), "modules": modules})
    else:
        typer.echo(t.name)
        info(
            f"created tenant {t.name} ({t.ksic_code} {t.ksic_name_en})"
            + (f", subscribed to {', '.join(modules)}" if modules else "")
        )


# the names the API gives these fields (GET /v1/subscriptions), so that the CLI's JSON and the API's agree
_API_NAMES = {"operator_managed": "managed_by_operator"}


def _asdict(obj) -> dict:  # noqa: ANN001
    return {_API_NAMES.get(k, k): getattr(obj, k) for k in obj.__slots__}


@tenant_app.command("list")
def tenant_list(as_json: JsonOpt = False) -> None:
    """List tenants: name, KSIC code, active modules."""
    db = database()
    rows = []
    for t in tenancy.list_tenants(db):
        mods = sorted(tenancy.active_subscriptions(db, t.id))
        rows.append({**_asdict(t), "modules": mods})
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        typer.echo(f"{r['name']}\t{r['ksic_code']}\t{','.join(r['modules']) or '-'}\t{r['display_name']}")


@tenant_app.command("show")
def tenant_show(name: str, as_json: JsonOpt = False) -> None:
    """One tenant with its subscriptions and keys (--json: the whole record)."""
    db = database()
    t = tenancy.get_tenant(db, name)
    subs, keys = tenancy.list_subscriptions(db, name), tenancy.list_api_keys(db, name)
    if as_json:
        now = tenancy.utcnow()
        emit_json({**_asdict(t), "subscriptions": [_asdict(s) for s in subs],
                   "api_keys": [k.public(now) for k in keys]})
        return
    typer.echo(f"{t.name}\t{t.display_name}\t{t.ksic_code} {t.ksic_name_en}\tcreated {t.created_at:%Y-%m-%d}")
    now = tenancy.utcnow()
    typer.echo("subscriptions:" if subs else "subscriptions: none")
    for s in subs:
        state = _subscription_state(s, now)
        quota = s.request_quota if s.request_quota is not None else "unlimited"
        typer.echo(f"  {s.module}\t{s.plan}\t{quota}\t{state}")
    typer.echo("api keys:" if keys else "api keys: none")
    for k in keys:
        typer.echo("  " + _key_line(k, now))


def _subscription_state(s, now: datetime) -> str:  # noqa: ANN001 - a tenancy.SubscriptionInfo
    if s.starts_at > now:
        return f"starts {s.starts_at:%Y-%m-%d %H:%M}Z"
    if s.ends_at is None:
        return "active"
    return f"{'active, ends' if s.ends_at > now else 'ended'} {s.ends_at:%Y-%m-%d %H:%M}Z"


def _minute(ts: datetime | None, none: str) -> str:
    return none if ts is None else f"{ts:%Y-%m-%d %H:%M}Z"


def _key_line(k, now: datetime | None = None) -> str:  # noqa: ANN001 - a tenancy.ApiKeyInfo
    """id, role, state, modules, expiry, last use, name (tab-separated; the name last, as it may hold spaces)."""
    state = k.state_at(now or tenancy.utcnow())
    if state == "revoked":
        state = f"revoked {k.revoked_at:%Y-%m-%d}"
    modules = "all" if k.modules is None else ",".join(k.modules)
    return (f"{k.key_id}\t{k.role}\t{state}\t{modules}\t{_minute(k.expires_at, 'no-expiry')}\t"
            f"{_minute(k.last_used_at, 'never-used')}\t{k.name}")


@tenant_app.command("subscribe")
def tenant_subscribe(
    name: Annotated[str, typer.Argument(help="tenant name")],
    modules: Annotated[list[str], typer.Argument(help="quality, maintenance, energy, scheduling or all")],
    plan: Annotated[str, typer.Option(help=f"one of {', '.join(tenancy.PLANS)}")] = tenancy.DEFAULT_PLAN,
    quota: Annotated[
        int | None, typer.Option(help="requests per month, overriding the plan's", min=0, max=tenancy.MAX_QUOTA)
    ] = None,
    until: Annotated[str | None, typer.Option(
        help="when it ends (ISO; UTC without an offset: a date alone ends at its 00:00 UTC, 09:00 KST, so give the day "
             "after the last day of use); default: open-ended")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Subscribe a tenant to modules (or change their plan); prints one line per module."""
    mods = _modules(modules)
    if not mods:
        raise InvalidInput("name at least one module")
    ends = _when(until, "until")
    db = database()
    subs = [
        tenancy.subscribe(db, name, m, plan=plan, request_quota="plan" if quota is None else quota, ends_at=ends)
        for m in mods
    ]
    if as_json:
        emit_json([_asdict(s) for s in subs])
        return
    for s in subs:
        typer.echo(f"{s.module}\t{s.plan}\t{s.request_quota if s.request_quota is not None else 'unlimited'}")


@tenant_app.command("unsubscribe")
def tenant_unsubscribe(
    name: Annotated[str, typer.Argument(help="tenant name")],
    modules: Annotated[list[str], typer.Argument(help="modules to end now, or 'all' (every active one)")],
) -> None:
    """End a tenant's subscriptions now, all or none (history and usage log are kept); prints the modules
    ended."""
    names = [m.strip() for v in modules for m in v.split(",") if m.strip()]
    if not names:
        raise InvalidInput("name at least one module, or 'all'")
    wanted = _modules(names)  # checks every name
    if "all" in names:
        wanted = None
    ended = tenancy.unsubscribe_many(database(), name, wanted)
    for s in ended:
        typer.echo(s.module)
    if wanted is None:
        info(f"ended every active subscription of {ended[0].tenant}: {', '.join(s.module for s in ended)}")


# ------------------------------------------------------------------------------------------------ apikey
@apikey_app.command("create")
def apikey_create(
    tenant: TenantOpt,
    role: Annotated[str, typer.Option(help=f"one of {', '.join(tenancy.ROLES)}")],
    name: Annotated[str | None, typer.Option(help="a label, e.g. 'mes-line-3'")] = None,
    expires: Annotated[str | None, typer.Option(
        help="when the key stops working: an ISO date (2026-12-31: the end of that day UTC) or a date and time with "
             "its offset (2026-12-31T18:00:00+09:00); default: it does not expire")] = None,
    modules: Annotated[str | None, typer.Option(
        help="the modules the key may call, comma-separated (quality,energy); default: every module the tenant "
             "holds")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API key; prints the key (shown this once, stored hashed)."""
    expires_at = tenancy.parse_expiry(expires, what="--expires")  # checked before the database is opened
    scope = None if modules is None else tenancy.check_key_modules(
        [m.strip() for m in modules.split(",") if m.strip()], what="--modules")
    db = database()
    _deployment_secret(db)
    new = tenancy.create_api_key(db, settings().secret_key, tenant, role, name, expires_at=expires_at, modules=scope)
    if as_json:
        emit_json({**new.info.public(tenancy.utcnow()), "api_key": new.token})
        return
    typer.echo(new.token)
    k = new.info
    limits = "".join([f", modules {','.join(k.modules)}" if k.modules is not None else "",
                      f", expires {tenancy.utc_text(k.expires_at)}" if k.expires_at is not None else ""])
    info(f"key {k.key_id} ({k.role}{limits}) for tenant {tenant}: store it now, it is not shown again")


@apikey_app.command("list")
def apikey_list(tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """List a tenant's keys, one a line, tab-separated: id, role, state (active, revoked DATE, expired), modules
    (or all), expiry (UTC, or no-expiry), last use (UTC, within a minute or two, or never-used), name."""
    keys = tenancy.list_api_keys(database(), tenant)
    now = tenancy.utcnow()
    if as_json:
        emit_json([k.public(now) for k in keys])
        return
    for k in keys:
        typer.echo(_key_line(k, now))


@apikey_app.command("revoke")
def apikey_revoke(
    key_id: Annotated[str, typer.Argument(help="the key id (kxxxxxxxxxxxx, from 'sfai apikey list') or the key")],
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="only if the key belongs to this tenant")] = None,
) -> None:
    """Revoke a key; prints its id (and says so on stderr when it was revoked before)."""
    started = tenancy.utcnow()  # (the whole key pasted, sfai_kxxxxxxxxxxxx_..., is revoked by its id)
    k = tenancy.revoke_api_key(database(), key_id, tenant=tenant)
    if k.revoked_at is not None and k.revoked_at < started:
        info(f"{k.key_id} was already revoked at {k.revoked_at:%Y-%m-%d %H:%M:%S} UTC; nothing changed")
    typer.echo(k.key_id)


def _deployment_secret(db, what: str = "an API key made with it would work on none of its servers") -> None:  # noqa: ANN001
    """Refuse a SFAI_SECRET_KEY other than the one the deployment runs with (its usage chain's keyed mark says
    which): `sfai apikey create` with another secret printed a key that every server refused, and `sfai usage
    verify` called the log tampered (operator's audit). A deployment whose servers never ran cannot tell."""
    try:
        check_chain_key(db, ChainKey(settings().secret_key))
    except ChainKeyMismatch:
        raise InvalidInput(f"SFAI_SECRET_KEY is not the secret this deployment runs with (its usage log is keyed "
                           f"with another): {what}; set the deployment's secret") from None
    _guessable_secret(db)


def _guessable_secret(db) -> None:  # noqa: ANN001
    """Outside development, a guessable SFAI_SECRET_KEY (a repeated stretch, a run such as 0123456789abcdef) is
    refused while the deployment has no API key and no usage record (choosing another costs nothing then), and
    warned of once it has: its keys' hashes and its usage log depend on it, and refusing it would leave the
    upgraded servers unable to start (reviewer)."""
    s = settings()
    if s.environment in ("development", "test") or not guessable_secret(s.secret_key):
        return
    from sqlalchemy import func, select

    from serving.db.tables import ApiKey, UsageRecord

    with db.engine.connect() as conn:
        used = conn.execute(select(func.count()).select_from(ApiKey)).scalar() or conn.execute(
            select(UsageRecord.seq).limit(1)).first() is not None
    advice = "use 32 random characters, e.g. from python -c 'import secrets; print(secrets.token_urlsafe(32))'"
    if not used:
        raise InvalidInput(f"SFAI_SECRET_KEY is guessable (a short stretch repeated, or a run such as "
                           f"0123456789abcdef): {advice}")
    info("warning: SFAI_SECRET_KEY is guessable (a short stretch repeated, or a run such as 0123456789abcdef), and "
         "this deployment's API keys and usage log depend on it: plan a move to a new deployment secret "
         "(docs/deploy.md, 'A guessable secret')")


# ------------------------------------------------------------------------------------------------ usage
@usage_app.command("verify")
def usage_verify(as_json: JsonOpt = False) -> None:
    """Recompute the usage log's hash chain; exit 1 naming the first edited, inserted or deleted row."""
    db = database()
    _deployment_secret(db, "its records cannot be verified with it")
    r = verify_chain(db, key=ChainKey(settings().secret_key))
    if as_json:
        emit_json(_asdict(r))
    elif r.ok:
        keyed = (f"keyed with SFAI_SECRET_KEY from row {r.keyed_from} on" if r.keyed_from <= 1
                 else f"rows before {r.keyed_from} from before SFAI keyed the chain, plain SHA-256")
        typer.echo(f"ok: {r.rows} records verified (last seq {r.last_seq}; {keyed})")
    if not r.ok:
        if not as_json:
            typer.echo(f"error: usage log tampered: {r.problem}", err=True)
        raise typer.Exit(1)


@usage_app.command("export")
def usage_export(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="tenant name (default: every tenant)")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv or json")] = "csv",
    from_: Annotated[str | None, typer.Option("--from", help="ISO date/time, inclusive (UTC)")] = None,
    to: Annotated[str | None, typer.Option("--to", help="ISO date/time, exclusive (UTC)")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file (default: stdout)")] = None,
    module: Annotated[str | None, typer.Option(
        help=f"only one module's calls: {', '.join(tenancy.MODULES)}, or platform (calls outside them)")] = None,
    key_id: Annotated[str | None, typer.Option("--key-id", help="only one key's calls (its id, k...)")] = None,
) -> None:
    """Export usage records, oldest first: each tenant's numbered in its own log (seq); without --tenant, every
    tenant's, with each record's place in the whole chain first (log_seq)."""
    check_module(module)
    if key_id is not None:
        key_id = tenancy.key_id_of(key_id)  # the whole key pasted: its id
        if not re.fullmatch(tenancy.KEY_ID_PATTERN, key_id):
            raise InvalidInput(f"--key-id {key_id[:40]!r} is no key id: expected k and hex digits, as "
                               "'sfai apikey list' shows them")
    if output is not None:
        _check_output(output)
        settings().refuse_state_file(output)
    db = database()
    tenant_id = tenancy.get_tenant(db, tenant).id if tenant else None
    chunks = export_usage(db, fmt, tenant_id=tenant_id, start=_when(from_, "from"), end=_when(to, "to"),
                          module=module, key_id=key_id)
    if output is None:
        for c in chunks:
            sys.stdout.write(c)
        return
    try:
        with _atomic_text(output) as f:
            for c in chunks:
                f.write(c)
    except OSError as e:
        raise InvalidInput(f"cannot write {output}: {e.strerror or e}") from None
    info(f"wrote {output}")


def _when(value: str | None, option: str, *, required: bool = False) -> datetime | None:
    """``--OPTION``'s date; given empty (``--until ""``, a shell variable that was not set), it is refused rather
    than read as "none" (an open-ended subscription, the whole log)."""
    if value is not None and not value.strip():
        raise InvalidInput(f"--{option} is empty: give an ISO date such as 2026-01-31"
                           + ("" if required else ", or leave the option out"))
    return parse_when(value, option)


def _check_output(path: Path) -> None:
    """``check_output``: refuse a folder, a device or a missing folder before any work."""
    check_output(path, "usage.csv")


@contextmanager
def _atomic_text(path: Path) -> Iterator[TextIO]:
    """A text file written beside ``path`` and moved onto it when complete; removed if anything fails."""
    # mkstemp's 0600: the usage log (every tenant's, with chain hashes) is its owner's to read, as backups are
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with open(fd, "w", encoding="utf-8", newline="") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@usage_app.command("purge")
def usage_purge(
    before: Annotated[str | None, typer.Option(
        help="delete records older than this ISO date; at least three years ago")] = None,
    expired: Annotated[bool, typer.Option(
        "--expired", help="delete every record past the retention period (for a cron job: `--before` three "
        "calendar years ago is refused in the years after a 29 February, which make 1,096 days)")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print how many would be deleted; delete nothing")] = False,
) -> None:
    """Delete records older than three years (the chain stays verifiable); prints how many. Export them first
    (sfai usage export --to DATE) where they must be archived."""
    if expired == (before is not None):
        raise InvalidInput("give --before DATE or --expired (every record past the retention period), one of them")
    days = settings().usage_retention_days
    when = retention_cut(days) if expired else _when(before, "before", required=True)
    n = purge_before(database(), when, key=ChainKey(settings().secret_key), retention_days=days, dry_run=dry_run)
    typer.echo(n)


# ------------------------------------------------------------------------------------------------ db
@db_app.command("migrate")
def db_migrate() -> None:
    """Bring the schema up to date (also done by 'sfai serve' and 'sfai demo'; other commands refuse an older
    schema: the older release's servers may still run on it). Stop the older release's servers first."""
    db = database(upgrade=True)
    typer.echo(db.engine.url.render_as_string(hide_password=True))
    found, now = db.revisions
    info(f"schema migrated from revision {found or '(empty database)'} to {now}" if found != now
         else f"schema already at revision {now}, this release's newest: nothing to do")


@db_app.command("status")
def db_status() -> None:
    """The database's schema revision against this release's; exits 1 where they differ (a script's check before
    it starts servers). Changes nothing."""
    from serving.db import Database
    from serving.db.engine import known_revisions, schema_revisions

    s = settings()
    db = Database(s.resolved_database_url, run_migrations=False)
    try:
        found, newest = schema_revisions(db.engine)
    finally:
        db.engine.dispose()
    typer.echo(f"database {db.engine.url.render_as_string(hide_password=True)}: schema revision {found or 'none'}; "
               f"this release ({__version__}) needs {newest}")
    if found != newest:
        known = found is None or found in known_revisions()
        raise InvalidInput("the schema is empty: run 'sfai db migrate'" if found is None else
                           "the schema is behind this release: stop the older release's servers, then run 'sfai db "
                           "migrate'" if known else "the schema is newer than this release: a newer release "
                           "migrated it; run that release")


# ------------------------------------------------------------------------------------------------ serve, demo
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes", min=1)] = 1,
    log_level: Annotated[
        str, typer.Option(help="uvicorn log level: critical, error, warning, info, debug or trace")
    ] = "info",
    forwarded_allow_ips: Annotated[str | None, typer.Option(
        help="behind a proxy or load balancer: its addresses (comma-separated), whose X-Forwarded-For names the "
             "client; the failed-key limit then counts per client, not per proxy (default: SFAI_FORWARDED_ALLOW_IPS; "
             "unset: the connection's address). Not *: a client reaching the port itself would name any address",
    )] = None,
) -> None:
    """Serve the API and the web console."""
    import uvicorn
    from uvicorn.config import LOG_LEVELS

    if not host.strip():
        raise InvalidInput("--host is empty; give the address to listen on, e.g. 127.0.0.1 (0.0.0.0: every one)")
    if log_level.lower() not in LOG_LEVELS:
        raise InvalidInput(f"unknown --log-level {log_level!r}: expected one of {', '.join(LOG_LEVELS)}")
    _check_listen(host, port)
    s = settings()
    database(upgrade=True)  # migrate once here, before the workers start
    if s.usage_log_enabled:
        check_chain_key(database(), ChainKey(s.secret_key))  # another secret than the log's: one line, no 503s
    _guessable_secret(database())
    proxies = (forwarded_allow_ips if forwarded_allow_ips is not None else s.forwarded_allow_ips or "").strip()
    try:
        check_forwarded_allow_ips(proxies, "--forwarded-allow-ips")
    except ValueError as e:
        raise InvalidInput(str(e)) from None
    if s.environment == "development" and not _loopback_only(host):
        info(f"warning: listening on {host} in development: the development secret, an open /metrics (every tenant's "
             "call counts) and no TLS; for other machines set SFAI_ENVIRONMENT=production and SFAI_SECRET_KEY "
             "(docs/deploy.md)")
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # the workers' metrics files, one folder per instance: instances sharing SFAI_HOME (a shared volume) neither
        # delete nor count each other's series, and each instance's /metrics is its own (scraped one by one)
        mp = (s.home / "prometheus" / f"{socket.gethostname()}-{port}").resolve()
        _drop_idle_metrics(mp.parent)
        mp.mkdir(parents=True, exist_ok=True)
        for f in mp.glob("*.db"):  # this instance's last run
            f.unlink()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(mp)
    for line in unknown_variables():
        info(stamped(line, logging.WARNING))
    db_url = database().engine.url.render_as_string(hide_password=True)
    info(stamped(f"SFAI API on http://{_host_port(host, port)} (docs: /docs), database {db_url}"))
    try:
        _run_uvicorn(uvicorn, host, port, workers, log_level, proxies, s)
    except KeyboardInterrupt:
        info(stamped("SFAI API stopped (Ctrl-C)"))
    except SystemExit as e:
        if e.code != 128 + signal.SIGTERM:
            raise
        info(stamped("SFAI API stopped (SIGTERM)"))


def _run_uvicorn(uvicorn, host: str, port: int, workers: int, log_level: str, proxies: str, s) -> None:  # noqa: ANN001
    """Ctrl-C and SIGTERM are how a server is stopped: uvicorn shuts down gracefully, then raises the signal again
    for the handler it found, which had printed "error: terminated (SIGTERM)" and exited non-zero after a clean
    stop. The caller says it stopped instead, and exits 0."""
    from serving.logs import server_log_config

    uvicorn.run(
        "serving.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        log_config=server_log_config(log_level),  # one line per record, each with its UTC time
        access_log=False,
        # keys, not addresses, identify callers: the address only keys the failed-key limit, so X-Forwarded-For is
        # read only from the proxies named; and no "server: uvicorn" header tells a scanner what answers
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        server_header=False,
        timeout_keep_alive=s.keep_alive_s,
    )


METRICS_IDLE_DAYS = 7


def _drop_idle_metrics(root: Path) -> None:
    """Removes the metrics folders of instances gone for ``METRICS_IDLE_DAYS`` (a container recreated has another
    host name, and its old folder would stay for good); a live instance writes its files with every request."""
    cutoff = time.time() - METRICS_IDLE_DAYS * 86400
    for folder in root.glob("*-*") if root.is_dir() else []:
        files = list(folder.glob("*.db"))
        if folder.is_dir() and all(f.stat().st_mtime < cutoff for f in files) and folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _loopback_only(host: str) -> bool:
    """Whether every address ``host`` names is this machine's loopback (reachable from no other machine)."""
    try:
        addrs = socket.getaddrinfo(host, None, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
        return all(ipaddress.ip_address(a[4][0].split("%")[0]).is_loopback for a in addrs)
    except (OSError, UnicodeError, ValueError):
        return False


def _check_listen(host: str, port: int) -> None:
    """Bind (and close) a socket on every address ``host`` names, as uvicorn will, so that an unknown host, an
    address not on this machine or a port in use is one clear line before uvicorn starts."""
    where = _host_port(host, port)
    try:
        addrs = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
        for family, kind, proto, _, addr in dict.fromkeys(addrs):
            with socket.socket(family, kind, proto) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn (asyncio) does
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(addr)
    except (OSError, UnicodeError) as e:  # socket.gaierror is an OSError; a bad IDNA name a UnicodeError
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise InvalidInput(f"cannot listen on {where} ({reason})") from None


DEMO_DISPLAY_NAME = "SFAI demo factory (injection moulding)"
DEMO_KSIC = "C22"


def _demo_tenant(db, name: str, ksic: str | None) -> tuple[tenancy.TenantInfo, bool]:  # noqa: ANN001
    """The demo tenant ``name``: created (KSIC ``ksic``, default C22), or the one an earlier ``sfai demo`` made.
    A tenant someone else set up is refused, never changed, and so is another KSIC than the demo tenant's."""
    code = tenancy.check_ksic(ksic) if ksic is not None else None  # refused even when the tenant exists
    try:
        t = tenancy.get_tenant(db, tenancy.check_tenant_name(name))
    except NotFound:
        try:
            return tenancy.create_tenant(db, name, code or DEMO_KSIC, DEMO_DISPLAY_NAME), True
        except Conflict:  # created concurrently
            t = tenancy.get_tenant(db, name)
    if t.display_name != DEMO_DISPLAY_NAME:
        raise Conflict(
            f"tenant {t.name!r} exists and was not made by 'sfai demo' ({t.ksic_code} {t.ksic_name_en}); demo "
            "subscribes every module on the enterprise plan and loads sample data, so it leaves tenants it did not "
            "make alone: pick another name with --tenant"
        )
    if code is not None and code != t.ksic_code:
        raise Conflict(
            f"the demo tenant {t.name!r} is {t.ksic_code} ({t.ksic_name_en}), not {code}: a tenant's KSIC does not "
            f"change; leave out --ksic, or make another demo tenant with --tenant NAME --ksic {code}"
        )
    return t, False


def demo(
    tenant: Annotated[str, typer.Option(help="demo tenant name")] = "demo",
    ksic: Annotated[
        str | None, typer.Option(help=f"its KSIC division, for a new demo tenant (default {DEMO_KSIC})")
    ] = None,
    data: Annotated[bool, typer.Option(help="load the synthetic C22 injection-moulding data (first time only)")] = True,
    models: Annotated[
        bool, typer.Option(help="train a quick demo model per family without a champion (first time: about 10 s)")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Prepare the demo tenant (every module, synthetic C22 data, one trained model per prediction endpoint) and
    print a new admin API key for it. Run again, it reuses the tenant it made; it refuses a tenant it did not
    make."""
    db = database(upgrade=True)  # make run's first step: an upgrade's too
    _deployment_secret(db)  # before any work: the key it prints would not work
    t, created = _demo_tenant(db, tenant, ksic)
    if data:
        from feature_store.store import FeatureStore
        from pipelines.runner import run_pipeline

        store = FeatureStore(settings(), db, t.name)
        if not store.list_views():  # a fresh demo: generate and ingest a week of moulding data
            report = run_pipeline("c22-demo", None, store=store)
            info(f"demo data: {report.rows_ok} rows of synthetic injection-moulding data in the feature store")
        store.close()
    active = tenancy.active_subscriptions(db, t.id)
    added = [m for m in tenancy.MODULES if m not in active]
    for m in added:
        tenancy.subscribe(db, t.name, m, plan="enterprise")
    if added and not created:  # a demo tenant whose subscriptions were ended since: said, not silent
        info(f"demo tenant '{t.name}': subscribed again to {', '.join(added)} (enterprise plan)")
    trained = []
    if models:  # before the key is made, so that the training lines do not push it out of sight
        from models.demo import TrainingUnavailable, train_demo_models

        try:
            trained = train_demo_models(settings(), db, t.name, progress=not as_json)
        except TrainingUnavailable as e:
            info(f"note: no demo models: {e}; the prediction endpoints answer 404 until a model is trained")
    new = tenancy.create_api_key(db, settings().secret_key, t.name, "admin", "demo-admin")
    if as_json:
        emit_json(
            {
                "tenant": t.name,
                "api_key": new.token,
                "key_id": new.info.key_id,
                "models_trained": [{"name": m.name, "version": m.version} for m in trained],
            }
        )
        return
    typer.echo(new.token)
    info(f"demo tenant '{t.name}' ({t.ksic_code} {t.ksic_name_en}) subscribed to {', '.join(tenancy.MODULES)}")
