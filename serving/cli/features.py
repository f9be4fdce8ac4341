"""Feature store commands: declare views, ingest files and MQTT streams, materialize, inspect."""

from __future__ import annotations

import importlib.util
import json
import sys
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from serving.cli.common import database, emit_json, info, settings
from serving.errors import InvalidInput

features_app = typer.Typer(help="Feature views: declare, list, materialize.", no_args_is_help=True)
ingest_app = typer.Typer(help="Ingest data into a tenant's feature store.", no_args_is_help=True)

TenantOpt = Annotated[str | None, typer.Option("--tenant", "-t", help="tenant (default: the local tenant)")]


def _not_empty(value: str, option: str) -> str:
    """``value``, or a usage error naming ``option`` when it is empty (never a silent fall back to a default)."""
    if not value.strip():
        raise typer.BadParameter("must not be empty", param_hint=f"'{option}'")
    return value


def _when(value: str | None, option: str):  # noqa: ANN202 - datetime | None
    """``value`` (ISO time, or 'now') as an aware UTC datetime; a usage error naming ``option`` otherwise."""
    import pandas as pd

    if value is None:
        return None
    if _not_empty(value, option).strip().lower() == "now":
        return datetime.now(UTC)
    try:
        t = pd.Timestamp(value.strip())
    except (ValueError, TypeError, OverflowError) as e:
        reason = " ".join(str(e).split()).split(",")[0] or type(e).__name__
        raise typer.BadParameter(f"{value!r} is not an ISO time ({reason})", param_hint=f"'{option}'") from None
    if pd.isna(t):
        raise typer.BadParameter(f"{value!r} is not an ISO time", param_hint=f"'{option}'")
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.to_pydatetime()


def _tenant(name: str | None) -> str:
    """The named tenant, or the local default tenant (created on first use) for a data scientist's files."""
    from serving import tenancy

    if name is not None:
        return _not_empty(name, "--tenant")
    s = settings()
    return tenancy.ensure_tenant(database(), s.default_tenant, "C29", "local workspace").name


def store_for(tenant: str | None):  # noqa: ANN201
    from feature_store.store import FeatureStore

    return FeatureStore(settings(), database(), _tenant(tenant))


def _views_in(path: Path) -> list:
    from feature_store import FeatureView

    if not path.exists():
        raise typer.BadParameter(f"{path} does not exist")
    if not path.is_file() or path.suffix != ".py":
        what = "a folder" if path.is_dir() else "not a .py file"
        raise typer.BadParameter(f"{path} is {what}: expected a Python file defining FeatureView objects")
    spec = importlib.util.spec_from_file_location(f"sfai_views_{path.stem}", path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
        raise typer.BadParameter(f"{path}: expected a Python file defining FeatureView objects")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SystemExit as e:
        raise ValueError(f"{path} exited while loading (sys.exit({e.code!r})); nothing was applied") from None
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
    with closing(store_for(tenant)) as fs:
        applied = fs.apply(*_views_in(path))
    for r in applied:
        typer.echo(f"{r.view.name}\t{r.version}\t{r.status}")


@features_app.command("list")
def features_list(tenant: TenantOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The tenant's views: name, version, entity, features."""
    with closing(store_for(tenant)) as fs:
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
    t0, t1 = _when(start, "--start"), _when(end, "--end")
    if t0 is not None and t0 >= (t1 or datetime.now(UTC)):
        raise typer.BadParameter(
            f"{start!r} is not before {'--end ' + repr(end) if end is not None else 'now'}", param_hint="'--start'"
        )
    with closing(store_for(tenant)) as fs:
        if t0 is not None:
            n = fs.materialize(view, t0, t1 or datetime.now(UTC))
        else:
            n = fs.materialize_incremental(view, t1)
    typer.echo(n)


@features_app.command("compact")
def features_compact(
    view: Annotated[str, typer.Argument(help="feature view")],
    tenant: TenantOpt = None,
    min_files: Annotated[int, typer.Option(help="compact partitions with at least this many files", min=2)] = 8,
) -> None:
    """Merge each date partition's small Parquet files (one per ingest call) into one; prints a JSON report.
    Run it when no training job reads the view (such a job could find a file gone and need a rerun)."""
    with closing(store_for(tenant)) as fs:
        rep = fs.compact(view, min_files=min_files)
    emit_json({"tenant": fs.tenant, "view": view, "partitions": rep.partitions, "files_before": rep.files_before,
               "files_after": rep.files_after, "rows": rep.rows, "duplicates": rep.duplicates})


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
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give a CSV or Parquet file")
    name = path.stem if view is None else _not_empty(view, "--view")
    try:
        with closing(store_for(tenant)) as fs:
            rep = fs.ingest(name, path, write_online=not no_online)
    except InvalidInput as e:  # "no rows", "row 3, column ...": with the file they are about
        if e.message.startswith(f"{path.name}: "):
            raise
        raise InvalidInput(f"{path.name}: {e.message}") from None
    emit_json(
        {
            "tenant": fs.tenant,
            "view": rep.view,
            "rows": rep.rows,
            "files": rep.files,
            "partitions": rep.partitions,
            "online_updated": rep.online_updated,
            "online_skipped_older": rep.online_skipped_older,
        }
    )


@ingest_app.command("mqtt")
def ingest_mqtt(
    broker: Annotated[str, typer.Option(help="mqtt://host:port (user:password@ allowed)")] = "mqtt://127.0.0.1:1883",
    topic: Annotated[str, typer.Option(help="topic pattern with {tenant} and {view}")] = "factory/{tenant}/{view}",
    duration: Annotated[
        float | None, typer.Option(help="stop after this many seconds (default: until Ctrl-C or SIGTERM)")
    ] = None,
    max_messages: Annotated[int | None, typer.Option(help="stop after this many messages", min=1)] = None,
    batch_size: Annotated[int, typer.Option(help="messages per write", min=1)] = 1000,
    flush_interval: Annotated[
        float, typer.Option(help="seconds a batch waits to fill to --batch-size before it is written")
    ] = 0.5,
    client_id: Annotated[
        str | None,
        typer.Option(help="MQTT client id; the broker queues messages for it while it is away (default: "
                     "sfai-ingest-<hash of the host name>; '' for a clean session). Each subscriber needs its own"),
    ] = None,
    mqtt_version: Annotated[
        str, typer.Option(help="MQTT protocol: 5, or 3.1.1 for a broker without MQTT 5 (Azure IoT Hub, older ones)")
    ] = "5",
    error_topic: Annotated[
        str | None,
        typer.Option(help="also notice each message kept aside on ERROR_TOPIC/<tenant>/<view> (or "
                     "ERROR_TOPIC/_unmatched), JSON with the reason, so that the sender learns of it; "
                     "e.g. sfai/errors"),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="serve Prometheus metrics (messages, rows per view, last write, set aside by reason, "
                     "pending, connection) on this port", min=1, max=65535),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(help="address for --metrics-port (0.0.0.0: every interface, e.g. in a container)")
    ] = "127.0.0.1",
) -> None:
    """Subscribe to MQTT (5, or 3.1.1 with --mqtt-version; QoS 1) and ingest every message into its tenant's view;
    bad messages are counted and kept aside under $SFAI_HOME/quarantine. A message is acknowledged once written or
    kept aside; Ctrl-C or SIGTERM writes what was taken and stops. Prints the final counts as JSON.

    The broker holds what this subscriber has not taken yet, up to its own limit, and drops the rest of a burst:
    raise Mosquitto's max_queued_messages (default 1000) as deploy/mosquitto.conf does."""
    import math
    import signal
    import threading

    from feature_store.mqtt import (
        IngestCollector,
        MqttIngestor,
        Quarantine,
        check_error_topic,
        check_run_options,
        default_client_id,
        run_mqtt,
        topic_regex,
    )
    from feature_store.online import online_store_for
    from feature_store.store import FeatureStore

    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise typer.BadParameter(f"{duration} is not a number of seconds above 0", param_hint="'--duration'")
    if not (math.isfinite(flush_interval) and 0 < flush_interval <= 60):
        raise typer.BadParameter(f"{flush_interval} is not a number of seconds above 0 and at most 60",
                                 param_hint="'--flush-interval'")
    cid = default_client_id() if client_id is None else client_id
    subscribe_topic, _ = topic_regex(topic)  # a bad pattern, broker URL or client id: one line before anything opens
    check_run_options(broker, client_id=cid, duration_s=duration, max_messages=max_messages, protocol=mqtt_version)
    if error_topic is not None:
        check_error_topic(error_topic, subscribe_topic)
    s = settings()
    db = database()
    stores: dict[str, FeatureStore] = {}

    def get(tenant: str) -> FeatureStore:
        if tenant not in stores:
            stores[tenant] = FeatureStore(s, db, tenant, online=online)
        return stores[tenant]

    ing = MqttIngestor(get, Quarantine(s.home / "quarantine"), pattern=topic, batch_size=batch_size,
                       flush_interval_s=flush_interval)
    metrics_server = None
    if metrics_port is not None:
        from prometheus_client import CollectorRegistry, start_http_server

        registry = CollectorRegistry()
        registry.register(IngestCollector(ing))
        try:
            metrics_server, _ = start_http_server(metrics_port, addr=metrics_host, registry=registry)
        except OSError as e:  # the port is taken, or the address is not this host's
            raise ValueError(f"cannot serve metrics on {metrics_host}:{metrics_port}: {e.strerror or e}") from None
        info(f"mqtt: metrics on http://{metrics_host}:{metrics_port}/metrics")
    online = online_store_for(s)
    last = [0.0]

    def progress(st) -> None:  # noqa: ANN001
        import time

        if time.monotonic() - last[0] > 5:
            last[0] = time.monotonic()
            info(f"mqtt: {st.received} messages, {st.rows_written} rows written, {st.bad} set aside")

    def ready() -> None:
        info(f"mqtt: subscribed to {ing.subscribe_topic} on {broker}")
        sys.stderr.flush()

    # SIGTERM (docker stop, systemd) and Ctrl-C stop the subscriber as the end of --duration does: what it took is
    # written or kept aside and acknowledged, the counts printed. (SIGTERM used to end it where it was: the 347
    # messages it held, already acknowledged, were lost.) A second signal ends it at once; what it holds then is not
    # acknowledged, and the broker sends it again to the next subscriber with this client id.
    stop = threading.Event()
    caught: list[int] = []
    previous: dict[int, object] = {}

    def on_signal(signum, _frame) -> None:  # noqa: ANN001
        caught.append(signum)
        stop.set()
        signal.signal(signum, previous[signum])

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        stats = run_mqtt(
            ing, broker, duration_s=duration, max_messages=max_messages, on_progress=progress, on_ready=ready,
            client_id=cid or None, stop=stop, protocol=mqtt_version, error_topic=error_topic,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        online.close()
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()
    typer.echo(json.dumps(stats.as_dict()))
    if caught:
        info(f"mqtt: stopped by {signal.Signals(caught[0]).name} after writing or setting aside every message taken")
