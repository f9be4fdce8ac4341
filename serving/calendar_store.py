"""Plant calendars: each tenant's own days off and working days, read by its energy forecasts.

A row of ``plant_calendar_days`` (migration 0015) is one date of one tenant: ``day_off`` (a summer shutdown day, a
company holiday: forecast as a public holiday) or ``working`` (a working Saturday, a public holiday worked through:
forecast as a working day), with an optional note. The table lives in the metadata database that every API
process shares (PostgreSQL when the platform scales out), so a calendar written through one process is read by
every other one on its next forecast. ``PUT /v1/energy/calendar`` replaces a tenant's calendar whole.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from sqlalchemy import Date, DateTime, ForeignKey, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from models.energy.calendar import KINDS, PlantCalendar
from serving.db import Database
from serving.db.tables import Base, Tenant
from serving.errors import InvalidInput, shown
from serving.tenancy import as_utc, utc_text, utcnow

MAX_DAYS = 1000  # dates per calendar: about three years of a plant's exceptions, each one a row of a small query
MAX_NOTE = 200  # characters of a date's note
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)  # the dates a calendar may hold
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
FIELDS = ("date", "kind", "note")


class PlantCalendarDay(Base):
    """One date of a tenant's plant calendar (migration 0015)."""

    __tablename__ = "plant_calendar_days"
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # day_off or working
    note: Mapped[str | None] = mapped_column(String(MAX_NOTE), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def check_days(body: object) -> list[dict]:
    """The entries of a calendar body ``{"days": [{"date": "YYYY-MM-DD", "kind": "day_off"|"working", "note": ...},
    ...]}``, checked and sorted by date; anything else is refused naming the entry and what it needs."""
    if not isinstance(body, dict):
        raise InvalidInput('expected a JSON object: {"days": [{"date": "YYYY-MM-DD", "kind": "day_off"}, ...]}')
    unknown = [k for k in body if k != "days"]
    if unknown:
        raise InvalidInput(f"unknown field {shown(str(unknown[0])[:60])} in the calendar body (it takes \"days\")")
    days = body.get("days")
    if not isinstance(days, list):
        raise InvalidInput('"days" must be a list of {"date": "YYYY-MM-DD", "kind": "day_off" or "working", '
                           '"note": optional text} (an empty list clears the calendar)')
    if len(days) > MAX_DAYS:
        raise InvalidInput(f'"days" holds {len(days):,} dates; a plant calendar holds at most {MAX_DAYS:,}')
    out, seen = [], {}
    for i, entry in enumerate(days):
        where = f"days[{i}]"
        if not isinstance(entry, dict):
            raise InvalidInput(f'{where} must be an object {{"date": "YYYY-MM-DD", "kind": "day_off" or "working"}}; '
                               f"got {shown(entry)[:60]}")
        extra = [k for k in entry if k not in FIELDS]
        if extra:
            raise InvalidInput(f"{where} has the unknown field {shown(str(extra[0])[:60])} (it takes date, kind, "
                               "note)")
        day = _day(entry.get("date"), where)
        kind = entry.get("kind")
        if kind not in KINDS:
            raise InvalidInput(f'{where} ({day}): "kind" must be "day_off" or "working"; got '
                               f"{shown(kind)[:60] if 'kind' in entry else 'none'}")
        note = entry.get("note")
        if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE or not note.isprintable()):
            raise InvalidInput(f'{where} ({day}): "note" must be text of at most {MAX_NOTE} printable characters, '
                               "or left out")
        if day in seen:
            raise InvalidInput(f"{where}: date {day} is given twice (also days[{seen[day]}]): give each date once")
        seen[day] = i
        out.append({"date": day, "kind": kind, "note": note.strip() or None if note else None})
    return sorted(out, key=lambda e: e["date"])


def _day(value: object, where: str) -> date:
    if not isinstance(value, str) or not _ISO_DAY.match(value.strip()):
        raise InvalidInput(f'{where}: "date" must be a date written YYYY-MM-DD; got '
                           f"{shown(value)[:60] if value is not None else 'none'}")
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f'{where}: "date" {value.strip()!r} is no date of the calendar') from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidInput(f'{where}: "date" {day} is outside {FIRST_DAY} to {LAST_DAY}')
    return day


def read_days(db: Database, tenant_id: int) -> tuple[list[dict], str | None]:
    """The tenant's calendar, in date order (``date`` as YYYY-MM-DD), and when it was last set (UTC text, or None
    for a tenant that never set one)."""
    with db.session() as s:
        rows = s.scalars(select(PlantCalendarDay).where(PlantCalendarDay.tenant_id == tenant_id)
                         .order_by(PlantCalendarDay.day)).all()
    days = [{"date": r.day.isoformat(), "kind": r.kind, **({"note": r.note} if r.note else {})} for r in rows]
    updated = max((as_utc(r.updated_at) for r in rows), default=None)
    return days, (utc_text(updated) if updated else None)


def replace_days(db: Database, tenant_id: int, days: list[dict]) -> None:
    """Set the tenant's calendar to ``days`` (checked by :func:`check_days`), in one transaction. Two calls at
    once for one tenant take turns on its tenant row (PostgreSQL's row lock; SQLite writes one at a time)."""
    now = utcnow()
    with db.session() as s:
        s.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())
        s.execute(delete(PlantCalendarDay).where(PlantCalendarDay.tenant_id == tenant_id))
        s.add_all(PlantCalendarDay(tenant_id=tenant_id, day=e["date"], kind=e["kind"], note=e["note"], updated_at=now)
                  for e in days)


def plant_calendar(db: Database, tenant_id: int) -> PlantCalendar:
    """The tenant's calendar as the forecast reads it (empty where it has none: the public calendar)."""
    with db.session() as s:
        rows = s.execute(select(PlantCalendarDay.day, PlantCalendarDay.kind)
                         .where(PlantCalendarDay.tenant_id == tenant_id)).all()
    return PlantCalendar.of((d, k) for d, k in rows) or PlantCalendar()


def calendar_of_tenant(tenant: str) -> PlantCalendar | None:
    """The stored calendar of the tenant named ``tenant`` in the CLI's database (``sfai predict energy`` with a
    registered model, whose manifest names its tenant); None where it has none."""
    from serving.cli.common import database
    from serving.errors import NotFound
    from serving.tenancy import get_tenant

    db = database()
    try:
        tenant_id = get_tenant(db, tenant).id
    except NotFound:  # a model copied from another installation: no calendar of its tenant here
        return None
    return plant_calendar(db, tenant_id) or None
