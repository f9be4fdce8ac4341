"""``sfai admin``: operator commands: backup and restore of the whole deployment or of one tenant."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from serving.cli.common import database, emit_json, info, settings

admin_app = typer.Typer(help="Operators: back up and restore the deployment or one tenant.", no_args_is_help=True)

TenantOpt = Annotated[str | None, typer.Option("--tenant", "-t", help="only this tenant (default: all)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of plain text")]


@admin_app.command("backup")
def backup_cmd(
    out: Annotated[Path, typer.Argument(help="the backup file to write (.tar.gz), in a folder that exists")],
    tenant: TenantOpt = None,
    force: Annotated[bool, typer.Option("--force", help="replace the file if it exists")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Back up the metadata database, the model registry and the feature store (of one tenant, or all) into one
    file; prints its path. An existing file is kept unless --force."""
    from serving.backup import backup

    r = backup(settings(), database(), out, tenant, force=force)
    if as_json:
        emit_json({"path": str(r.path), "scope": r.scope, "tenants": r.tenants, "rows": r.rows, "files": r.files,
                   "bytes": r.bytes})
        return
    typer.echo(str(r.path))
    info(f"backed up {r.scope}: {len(r.tenants)} tenant(s), {sum(r.rows.values()):,} rows "
         f"({r.rows.get('usage_log', 0):,} usage records), {r.files} files, {r.bytes / 1e6:.1f} MB")


@admin_app.command("restore")
def restore_cmd(
    archive: Annotated[Path, typer.Argument(help="a file written by 'sfai admin backup'")],
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="restore only this tenant (into a deployment without it)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore a backup: all of it into an empty database, or one tenant (--tenant) into a deployment that does
    not hold it. The online feature store is rebuilt from the restored offline store."""
    from serving.backup import restore

    r = restore(settings(), database(), archive, tenant)
    for w in r.warnings:
        info(f"warning: {w}")
    if as_json:
        emit_json({"scope": r.scope, "tenants": r.tenants, "rows": r.rows, "files": r.files,
                   "online_rows": r.online_rows, "warnings": r.warnings})
        return
    typer.echo(" ".join(r.tenants))
    info(f"restored {r.scope}: {len(r.tenants)} tenant(s), {sum(r.rows.values()):,} rows "
         f"({r.rows.get('usage_log', 0):,} usage records), {r.files} files, {r.online_rows:,} online feature rows")
