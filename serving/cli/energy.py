"""``sfai energy calendar show|set``: a tenant's plant calendar from the command line, as ``GET`` and ``PUT
/v1/energy/calendar`` give and set it (the same checks, the same table)."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Annotated

import typer

from serving.cli.common import database, emit_json, info
from serving.cli.features import _tenant
from serving.errors import InvalidInput

energy_app = typer.Typer(help="The energy module: the tenant's plant calendar.", no_args_is_help=True)
calendar_app = typer.Typer(help="The plant calendar: the tenant's own days off and working days, which its energy "
                           "forecasts read.", no_args_is_help=True)
energy_app.add_typer(calendar_app, name="calendar")

TenantOpt = Annotated[str | None, typer.Option("--tenant", "-t", help="tenant (default: the local tenant)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of plain text")]
MAX_FILE_BYTES = 1_000_000  # 1,000 dates with notes take ~250 KB


def _tenant_id(tenant: str | None) -> tuple[str, int]:
    from serving.tenancy import get_tenant

    t = get_tenant(database(), _tenant(tenant))
    return t.name, t.id


def _show(name: str, days: list[dict], updated: str | None, as_json: bool) -> None:
    if as_json:
        emit_json({"tenant": name, "count": len(days), "updated_at": updated, "days": days})
        return
    if not days:
        info(f"tenant {name!r} has no plant calendar: its forecasts read Korea's public calendar")
        return
    for d in days:
        typer.echo(f"{d['date']}  {d['kind']:<8} {d.get('note') or ''}".rstrip())
    info(f"{len(days)} dates, set {updated}")


@calendar_app.command("show")
def calendar_show(tenant: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """The tenant's plant calendar: one date a line (date, kind, note), in date order."""
    from serving.calendar_store import read_days

    name, tid = _tenant_id(tenant)
    _show(name, *read_days(database(), tid), as_json)


def read_calendar_file(path: Path) -> list[dict]:
    """The dates of a calendar file, checked as the API checks a body: JSON (``{"days": [...]}``, as ``PUT
    /v1/energy/calendar`` takes, or the list itself), or CSV with the columns ``date,kind`` and an optional
    ``note`` (a CSV error names the file's row)."""
    from serving.calendar_store import check_days
    from serving.errors import parse_json

    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InvalidInput(f"{path.name}: {path.stat().st_size:,} bytes; a calendar file holds at most "
                           f"{MAX_FILE_BYTES:,}")
    raw = path.read_bytes()
    if path.suffix.lower() == ".json":
        body = parse_json(raw, path.name, unique_keys=True)
        return check_days({"days": body} if isinstance(body, list) else body)
    if path.suffix.lower() != ".csv":
        raise InvalidInput(f"{path.name}: give a .json file ({{\"days\": [...]}}) or a .csv file (date,kind,note)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path.name} is not UTF-8 text") from None
    reader = csv.DictReader(text.splitlines())
    header = [c.strip() for c in reader.fieldnames or []]
    if "date" not in header or "kind" not in header or any(c not in ("date", "kind", "note") for c in header):
        raise InvalidInput(f"{path.name}: the header must be date,kind with an optional note; it is "
                           f"{','.join(header) or 'empty'}")
    days = []
    for row in reader:
        if None in row:  # more cells than the header names
            raise InvalidInput(f"{path.name} row {reader.line_num}: more cells than the header's {len(header)}")
        entry = {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items()}
        if not entry.get("note"):
            entry.pop("note", None)
        days.append(entry)
    try:
        return check_days({"days": days})
    except InvalidInput as e:  # days[i] is the file's row i + 2 (after the header), for rows of one line
        raise InvalidInput(f"{path.name}: " + re.sub(r"days\[(\d+)\]", lambda m: f"row {int(m.group(1)) + 2}",
                                                     e.message)) from None


@calendar_app.command("set")
def calendar_set(
    file: Annotated[Path, typer.Option("--file", "-f", help="JSON ({\"days\": [{\"date\": \"2018-08-01\", "
                                       "\"kind\": \"day_off\"}]}) or CSV (date,kind,note)")],
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replace the tenant's plant calendar with the file's dates (an empty list or a CSV with only its header
    clears it): day_off dates are forecast as public holidays, working dates as working days."""
    from serving.calendar_store import read_days, replace_days

    days = read_calendar_file(file)
    name, tid = _tenant_id(tenant)
    replace_days(database(), tid, days)
    if as_json:
        _show(name, *read_days(database(), tid), as_json)
    else:
        info(f"plant calendar of {name!r} set from {file.name}: {len(days)} dates (day_off "
             f"{sum(d['kind'] == 'day_off' for d in days)}, working {sum(d['kind'] == 'working' for d in days)})")
