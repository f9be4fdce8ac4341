"""``sfai ingest cmapss|ai4i|secom|steel-energy PATH [--tenant T]`` (and ``c22-demo``), and ``industries_app``.
``cmapss --subset FD00x`` names the subset of a file whose name does not (``units.txt``).

``serving/cli/main.py`` calls ``register(ingest_app)``; each command prints a one-line JSON run report on
stdout, progress and ``warning: ...`` lines on stderr; errors are raised as ValueError / InvalidInput (one line,
exit 1).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from pipelines.defaults import DEFAULT_MAX_BAD_SHARE, MAX_WORKERS

TenantOpt = Annotated[str | None, typer.Option("--tenant", "-t", help="tenant (default: the local tenant)")]
EngineOpt = Annotated[str | None, typer.Option(
    "--engine", help="local, or ray (default: ray when SFAI_RAY_ADDRESS names a cluster, else local)")]
WorkersOpt = Annotated[
    int | None, typer.Option("--workers", help=f"CPUs of a local Ray, 1 to {MAX_WORKERS} (default: all)")
]
BadOpt = Annotated[
    float, typer.Option("--max-bad-share", help="fail when more than this share of rows is bad", min=0, max=1)
]
NoOnlineOpt = Annotated[bool, typer.Option("--no-online", help="offline store only")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars on stderr")]
METER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")  # --meter-id: an id a push or a topic can name too


def _ingest(dataset: str, path: Path | None, tenant, engine, workers, max_bad_share, no_online, quiet, **kw) -> None:  # noqa: ANN001, ANN003
    from pipelines.runner import check_workers, run_pipeline
    from serving.cli.features import store_for
    from serving.settings import ray_address

    check_workers(dataset, workers, "--workers")  # before anything is read or a Ray is started
    engine = engine or ("ray" if ray_address() else "local")
    if path is not None and not path.exists():
        raise ValueError(f"{path}: no such file or folder")
    store = store_for(tenant)
    try:
        report = run_pipeline(
            dataset,
            path,
            store=store,
            engine=engine,
            workers=workers,
            max_bad_share=max_bad_share,
            write_online=not no_online,
            progress=not quiet and sys.stderr.isatty(),  # a bar at a terminal; a log file gets the stage lines
            read_kwargs=kw or None,
            on_stage=None if quiet else (lambda s: typer.echo(f"{dataset}: {s}", err=True)),
        )
    finally:
        store.close()
    for line in report.warnings:  # not progress: shown with --quiet too
        typer.echo(f"warning: {line}", err=True)
    sys.stdout.write(json.dumps(report.as_dict(), ensure_ascii=False, default=str) + "\n")


def _command(dataset: str, help_text: str):  # noqa: ANN202
    def command(
        path: Path,
        tenant: TenantOpt = None,
        engine: EngineOpt = None,
        workers: WorkersOpt = None,
        max_bad_share: BadOpt = DEFAULT_MAX_BAD_SHARE,
        no_online: NoOnlineOpt = False,
        quiet: QuietOpt = False,
    ) -> None:
        _ingest(dataset, path, tenant, engine, workers, max_bad_share, no_online, quiet)

    command.__annotations__["path"] = Annotated[Path, typer.Argument(help=help_text)]
    command.__doc__ = f"Run the {dataset} pipeline on PATH into the tenant's feature store; prints a JSON run report."
    return command


def cmapss_command(
    path: Annotated[Path, typer.Argument(help="a C-MAPSS train_FD00x.txt file, or a folder of them")],
    tenant: TenantOpt = None,
    subset: Annotated[str | None, typer.Option(
        "--subset", help="FD001|FD002|FD003|FD004: the file's subset, for a file whose name does not say it "
        "(units.txt); default: the FD00x in the file's name")] = None,
    engine: EngineOpt = None,
    workers: WorkersOpt = None,
    max_bad_share: BadOpt = DEFAULT_MAX_BAD_SHARE,
    no_online: NoOnlineOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run the cmapss pipeline on PATH into the tenant's feature store; prints a JSON run report."""
    from pipelines.adapters.cmapss import check_subset

    kw = {} if subset is None else {"subset": check_subset(subset)}  # before anything is read
    _ingest("cmapss", path, tenant, engine, workers, max_bad_share, no_online, quiet, **kw)


def steel_energy_command(
    path: Annotated[Path, typer.Argument(help="the DAEWOO steel 15-minute energy CSV, or a plant meter's file of "
                                              "date and Usage_kWh in its layout")],
    tenant: TenantOpt = None,
    meter_id: Annotated[str | None, typer.Option(
        "--meter-id", help="the meter the file's readings are stored under (its id in pushes and forecasts by id; "
        "default: daewoo-gwangyang, the DAEWOO file's meter)")] = None,
    engine: EngineOpt = None,
    workers: WorkersOpt = None,
    max_bad_share: BadOpt = DEFAULT_MAX_BAD_SHARE,
    no_online: NoOnlineOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run the steel-energy pipeline on PATH into the tenant's feature store; prints a JSON run report."""
    kw = {}
    if meter_id is not None:
        if not METER_ID.fullmatch(meter_id):
            raise ValueError(f"--meter-id {meter_id[:80]!r}: use 1 to 100 letters, digits and . _ : - , starting "
                             "with a letter or digit")
        kw["meter_id"] = meter_id
    _ingest("steel-energy", path, tenant, engine, workers, max_bad_share, no_online, quiet, **kw)


def demo_command(
    tenant: TenantOpt = None,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same data)")] = 0,
    machines: Annotated[int, typer.Option(help="moulding machines", min=1)] = 4,
    days: Annotated[int, typer.Option(help="days of data", min=1)] = 7,
    engine: EngineOpt = None,
    quiet: QuietOpt = False,
    into_any_tenant: Annotated[bool, typer.Option(
        "--into-any-tenant", help="also into a tenant that 'sfai demo' did not make (its data stays there)")] = False,
) -> None:
    """Generate the synthetic C22 injection-moulding demo and ingest it; prints a JSON run report."""
    if tenant is not None and not into_any_tenant:
        _check_demo_tenant(tenant)
    _ingest("c22-demo", None, tenant, engine, None, DEFAULT_MAX_BAD_SHARE, False, quiet,
            seed=seed, machines=machines, days=days)


def _check_demo_tenant(name: str) -> None:
    """Synthetic data goes into the local default tenant or a tenant 'sfai demo' made: in a factory's own tenant it
    would sit beside the real data for good (a feature store keeps what it took in), as 'sfai demo' refuses too."""
    from serving import tenancy
    from serving.cli.common import database, settings
    from serving.cli.platform import DEMO_DISPLAY_NAME
    from serving.errors import Conflict, NotFound

    try:
        t = tenancy.get_tenant(database(), tenancy.check_tenant_name(name))
    except NotFound:
        return  # the store's own message names the missing tenant
    if t.display_name != DEMO_DISPLAY_NAME and t.name != settings().default_tenant:
        raise Conflict(
            f"tenant {t.name!r} was not made by 'sfai demo': c22-demo would add synthetic machines to its feature "
            "store for good; use the demo tenant ('sfai demo'), or pass --into-any-tenant if that is what you want"
        )


def register(ingest_app: typer.Typer) -> None:
    """Add the dataset pipelines to ``sfai ingest``."""
    ingest_app.command("cmapss")(cmapss_command)
    ingest_app.command("ai4i")(_command("ai4i", "the AI4I 2020 CSV"))
    ingest_app.command("secom")(_command("secom", "the SECOM CSV (row_id, label, timestamp, f001..f590)"))
    ingest_app.command("steel-energy")(steel_energy_command)
    ingest_app.command("c22-demo")(demo_command)


industries_app = typer.Typer(help="Industry profiles of the 25 KSIC manufacturing divisions.", no_args_is_help=True)


@industries_app.command("list")
def industries_list() -> None:
    """One line per division: code, modules, public dataset, English name."""
    from pipelines.industries import list_profiles

    for p in list_profiles():
        typer.echo(f"{p.code}\t{','.join(p.modules)}\t{p.public_dataset or p.demo or '-'}\t{p.name_en}")


@industries_app.command("show")
def industries_show(code: Annotated[str, typer.Argument(help="C10..C34 (or 10..34)")]) -> None:
    """One division's profile as JSON."""
    from pipelines.industries import get_profile

    typer.echo(json.dumps(get_profile(code).as_dict(), ensure_ascii=False))
