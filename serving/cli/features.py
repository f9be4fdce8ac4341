"""Feature store commands: declare views, ingest files and MQTT streams, materialize, inspect."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from serving.cli.common import database, emit_json, info, settings

features_app = typer.Typer(help="Feature views: declare, list, materialize.", no_args_is_help=True)
ingest_app = typer.Typer(help="Ingest data into a tenant's feature store.", no_args_is_help=True)

TenantOpt = Annotated[str | None, typer.Option("--tenant", "-t", help="tenant (default: the local tenant)")]


def _tenant(name: str | None) -> str:
    """The named tenant, or the local default tenant (created on first use) for a data scientist's files."""
    from serving import tenancy

    if name:
        return name
    s = settings()
    return tenancy.ensure_tenant(database(), s.default_tenant, "C29", "local workspace").name


def store_for(tenant: str | None):  # noqa: ANN201
    from feature_store.store import FeatureStore

    return FeatureStore(settings(), database(), _tenant(tenant))


def _views_in(path: Path) -> list:
    from feature_store import FeatureView

    if not path.exists():
        raise typer.BadParameter(f"{path} does not exist")
    spec = importlib.util.spec_from_file_location(f"sfai_views_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    views = [v for v in vars(module).values() if isinstance(v, FeatureView)]
    if not views:
        raise ValueError(f"{path} declares no FeatureView")
    return views


@features_app.command("apply")
def features_apply(
    path: Annotated[Path, typer.Argument(help="a Python file declaring FeatureView objects")],
    tenant: TenantOpt = None,
) -> None:
    """Register (or evolve) the views declared in PATH; prints 'name version status' per view."""
    fs = store_for(tenant)
    for r in fs.apply(*_views_in(path)):
        typer.echo(f"{r.view.name}\t{r.version}\t{r.status}")


@features_app.command("list")
def features_list(tenant: TenantOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The tenant's views: name, version, entity, features."""
    fs = store_for(tenant)
    rows = [
        {
            "name": v.name,
            "version": ver,
            "join_key": v.join_key,
            "features": {f.name: f.dtype for f in v.schema},
            "rows": fs.offline.row_count(fs.tenant, v.name),
        }
        for v, ver in fs.list_views()
    ]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        typer.echo(f"{r['name']}\tv{r['version']}\t{r['join_key']}\t{r['rows']} rows\t{','.join(r['features'])}")


@features_app.command("materialize")
def features_materialize(
    view: Annotated[str, typer.Argument(help="feature view")],
    tenant: TenantOpt = None,
    start: Annotated[str | None, typer.Option(help="ISO time (default: since the last incremental run)")] = None,
    end: Annotated[str | None, typer.Option(help="ISO time (default: now)")] = None,
) -> None:
    """Load the latest value per entity into the online store; prints the number of entities."""
    fs = store_for(tenant)
    n = fs.materialize(view, start, end or "now") if start else fs.materialize_incremental(view, end)
    typer.echo(n)


@features_app.command("compact")
def features_compact(
    view: Annotated[str, typer.Argument(help="feature view")],
    tenant: TenantOpt = None,
    min_files: Annotated[int, typer.Option(help="compact partitions with at least this many files", min=2)] = 8,
) -> None:
    """Merge each date partition's small Parquet files (one per ingest call) into one; prints a JSON report.
    Run it when no training job reads the view (such a job could find a file gone and need a rerun)."""
    fs = store_for(tenant)
    rep = fs.compact(view, min_files=min_files)
    emit_json({"tenant": fs.tenant, "view": view, "partitions": rep.partitions, "files_before": rep.files_before,
               "files_after": rep.files_after, "rows": rep.rows})


@ingest_app.command("csv")
def ingest_csv(
    path: Annotated[Path, typer.Argument(help="a CSV or Parquet file with the view's columns")],
    view: Annotated[str | None, typer.Option(help="the feature view to append to (default: the file's name)")] = None,
    tenant: TenantOpt = None,
    no_online: Annotated[bool, typer.Option("--no-online", help="offline store only")] = False,
) -> None:
    """Append a file's rows to a feature view (offline and online); prints a JSON report."""
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    fs = store_for(tenant)
    rep = fs.ingest(view or path.stem, path, write_online=not no_online)
    emit_json(
        {
            "tenant": fs.tenant,
            "view": rep.view,
            "rows": rep.rows,
            "files": rep.files,
            "partitions": rep.partitions,
            "online_updated": rep.online_updated,
        }
    )


@ingest_app.command("mqtt")
def ingest_mqtt(
    broker: Annotated[str, typer.Option(help="mqtt://host:port (user:password@ allowed)")] = "mqtt://127.0.0.1:1883",
    topic: Annotated[str, typer.Option(help="topic pattern with {tenant} and {view}")] = "factory/{tenant}/{view}",
    duration: Annotated[float | None, typer.Option(help="stop after this many seconds")] = None,
    max_messages: Annotated[int | None, typer.Option(help="stop after this many messages")] = None,
    batch_size: Annotated[int, typer.Option(help="messages per write", min=1)] = 1000,
    client_id: Annotated[
        str | None,
        typer.Option(help="MQTT client id; the broker queues messages for it while it is away (default: "
                     "sfai-ingest-<host>; '' for a clean session)"),
    ] = None,
) -> None:
    """Subscribe to MQTT and ingest every message into its tenant's view; bad messages are counted and kept
    aside under $SFAI_HOME/quarantine. Prints the final counts as JSON."""
    from feature_store.mqtt import MqttIngestor, Quarantine, run_mqtt
    from feature_store.online import online_store_for
    from feature_store.store import FeatureStore

    s = settings()
    db = database()
    online = online_store_for(s)
    stores: dict[str, FeatureStore] = {}

    def get(tenant: str) -> FeatureStore:
        if tenant not in stores:
            stores[tenant] = FeatureStore(s, db, tenant, online=online)
        return stores[tenant]

    ing = MqttIngestor(get, Quarantine(s.home / "quarantine"), pattern=topic, batch_size=batch_size)
    last = [0.0]

    def progress(st) -> None:  # noqa: ANN001
        import time

        if time.monotonic() - last[0] > 5:
            last[0] = time.monotonic()
            info(f"mqtt: {st.received} messages, {st.rows_written} rows written, {st.bad} set aside")

    def ready() -> None:
        info(f"mqtt: subscribed to {ing.subscribe_topic} on {broker}")
        sys.stderr.flush()

    try:
        import socket

        cid = f"sfai-ingest-{socket.gethostname()}"[:23] if client_id is None else client_id
        stats = run_mqtt(
            ing, broker, duration_s=duration, max_messages=max_messages, on_progress=progress, on_ready=ready,
            client_id=cid or None,
        )
    except KeyboardInterrupt:
        while ing.drain():
            pass
        stats = ing.stats
    finally:
        online.close()
    typer.echo(json.dumps(stats.as_dict()))
