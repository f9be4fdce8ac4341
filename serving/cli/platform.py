"""Platform commands: tenants, subscriptions, API keys, the usage log, the database, the server."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from serving import tenancy
from serving.cli.common import database, emit_json, info, settings
from serving.errors import InvalidInput
from serving.usage import export_usage, parse_when, purge_before, verify_chain

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


def _asdict(obj) -> dict:  # noqa: ANN001
    return {k: getattr(obj, k) for k in obj.__slots__}


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
def tenant_show(name: str, as_json: JsonOpt = True) -> None:
    """One tenant with its subscriptions and keys (JSON)."""
    db = database()
    t = tenancy.get_tenant(db, name)
    emit_json(
        {
            **_asdict(t),
            "subscriptions": [_asdict(s) for s in tenancy.list_subscriptions(db, name)],
            "api_keys": [_asdict(k) for k in tenancy.list_api_keys(db, name)],
        }
    )


@tenant_app.command("subscribe")
def tenant_subscribe(
    name: Annotated[str, typer.Argument(help="tenant name")],
    modules: Annotated[list[str], typer.Argument(help="quality, maintenance, energy, scheduling or all")],
    plan: Annotated[str, typer.Option(help=f"one of {', '.join(tenancy.PLANS)}")] = tenancy.DEFAULT_PLAN,
    quota: Annotated[int | None, typer.Option(help="requests per month, overriding the plan's", min=0)] = None,
    until: Annotated[str | None, typer.Option(help="end date (ISO); default: open-ended")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Subscribe a tenant to modules (or change their plan); prints one line per module."""
    mods = _modules(modules)
    if not mods:
        raise InvalidInput("name at least one module")
    ends = parse_when(until, "until")
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
    modules: Annotated[list[str], typer.Argument(help="modules to end now")],
) -> None:
    """End a tenant's subscriptions now (history and usage log are kept); prints the modules ended."""
    db = database()
    for m in _modules(modules):
        tenancy.unsubscribe(db, name, m)
        typer.echo(m)


# ------------------------------------------------------------------------------------------------ apikey
@apikey_app.command("create")
def apikey_create(
    tenant: TenantOpt,
    role: Annotated[str, typer.Option(help=f"one of {', '.join(tenancy.ROLES)}")],
    name: Annotated[str | None, typer.Option(help="a label, e.g. 'mes-line-3'")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API key; prints the key (shown this once, stored hashed)."""
    new = tenancy.create_api_key(database(), settings().secret_key, tenant, role, name)
    if as_json:
        emit_json({**_asdict(new.info), "api_key": new.token})
        return
    typer.echo(new.token)
    info(f"key {new.info.key_id} ({new.info.role}) for tenant {tenant}: store it now, it is not shown again")


@apikey_app.command("list")
def apikey_list(tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """List a tenant's keys: id, role, name, state."""
    keys = tenancy.list_api_keys(database(), tenant)
    if as_json:
        emit_json([_asdict(k) for k in keys])
        return
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
        typer.echo(f"{k.key_id}\t{k.role}\t{state}\t{k.name}")


@apikey_app.command("revoke")
def apikey_revoke(
    key_id: Annotated[str, typer.Argument(help="the key id (kxxxxxxxxxxxx), from 'sfai apikey list'")],
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="only if the key belongs to this tenant")] = None,
) -> None:
    """Revoke a key; prints its id."""
    k = tenancy.revoke_api_key(database(), key_id, tenant=tenant)
    typer.echo(k.key_id)


# ------------------------------------------------------------------------------------------------ usage
@usage_app.command("verify")
def usage_verify(as_json: JsonOpt = False) -> None:
    """Recompute the usage log's hash chain; exit 1 naming the first edited, inserted or deleted row."""
    r = verify_chain(database())
    if as_json:
        emit_json(_asdict(r))
    elif r.ok:
        typer.echo(f"ok: {r.rows} records verified (last seq {r.last_seq})")
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
) -> None:
    """Export usage records, oldest first."""
    db = database()
    tenant_id = tenancy.get_tenant(db, tenant).id if tenant else None
    chunks = export_usage(db, fmt, tenant_id=tenant_id, start=parse_when(from_, "from"), end=parse_when(to, "to"))
    if output is None:
        for c in chunks:
            sys.stdout.write(c)
        return
    tmp = output.with_name(output.name + ".part")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        for c in chunks:
            f.write(c)
    os.replace(tmp, output)
    info(f"wrote {output}")


@usage_app.command("purge")
def usage_purge(
    before: Annotated[str, typer.Option(help="delete records older than this ISO date; at least three years ago")],
) -> None:
    """Delete records older than three years (the chain stays verifiable); prints how many."""
    when = parse_when(before, "before")
    n = purge_before(database(), when, retention_days=settings().usage_retention_days)
    typer.echo(n)


# ------------------------------------------------------------------------------------------------ db
@db_app.command("migrate")
def db_migrate() -> None:
    """Bring the schema up to date (also done on every start)."""
    db = database()
    typer.echo(db.engine.url.render_as_string(hide_password=True))


# ------------------------------------------------------------------------------------------------ serve, demo
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes", min=1)] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Serve the API and the web console."""
    import uvicorn

    s = settings()
    database()  # migrate once here, before the workers start
    if workers > 1:
        mp = (s.home / "prometheus").resolve()
        mp.mkdir(parents=True, exist_ok=True)
        for f in mp.glob("*.db"):
            f.unlink()
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(mp))
    db_url = database().engine.url.render_as_string(hide_password=True)
    info(f"SFAI API on http://{host}:{port} (docs: /docs), database {db_url}")
    uvicorn.run(
        "serving.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        # SFAI reads no client address (keys, not addresses, identify callers), so X-Forwarded-* need no parsing on
        # every request; and no "server: uvicorn" header tells a scanner what answers
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=s.keep_alive_s,
    )


def demo(
    tenant: Annotated[str, typer.Option(help="demo tenant name")] = "demo",
    ksic: Annotated[str, typer.Option(help="its KSIC division")] = "C22",
    data: Annotated[bool, typer.Option(help="load the synthetic C22 injection-moulding data (first time only)")] = True,
    models: Annotated[
        bool, typer.Option(help="train a quick demo model per family without a champion (first time: 20-50 s)")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Prepare the demo tenant (every module, synthetic C22 data, one trained model per prediction endpoint) and
    print a new admin API key for it."""
    db = database()
    t = tenancy.ensure_tenant(db, tenant, ksic, "SFAI demo factory (injection moulding)")
    if data:
        from feature_store.store import FeatureStore
        from pipelines.runner import run_pipeline

        store = FeatureStore(settings(), db, t.name)
        if not store.list_views():  # a fresh demo: generate and ingest a week of moulding data
            report = run_pipeline("c22-demo", None, store=store)
            info(f"demo data: {report.rows_ok} rows of synthetic injection-moulding data in the feature store")
        store.close()
    active = tenancy.active_subscriptions(db, t.id)
    for m in tenancy.MODULES:
        if m not in active:
            tenancy.subscribe(db, t.name, m, plan="enterprise")
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
