"""``sfai apikey create --expires/--modules``, ``apikey list`` and ``tenant show --json`` with a key's expiry,
modules, last use and state; bad values are one ``error:`` line and a non-zero exit, and make no key. The commands
run in-process (the ``sfai`` fixture of test_cli_platform_inputs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from serving import tenancy
from tests.serving.helpers import TEST_SECRET, make_tenant
from tests.serving.test_cli_platform_inputs import sfai  # noqa: F401 - the fixture


@pytest.mark.parametrize(("args", "words"), [
    (("--expires", "2099-01-01T08:00"), ["error: --expires '2099-01-01T08:00' has no UTC offset", "2099-01-01T08:00Z"]),
    (("--expires", "2020-01-01T00:00:00Z"), ["error: --expires 2020-01-01T00:00:00Z is in the past"]),
    (("--expires", "soon"), ["error: invalid --expires 'soon'", "2026-12-31"]),
    (("--expires", ""), ["error: --expires is empty"]),
    (("--expires", "2026-13-45"), ["error: invalid --expires '2026-13-45'"]),
    (("--modules", "quality,paint"), ["error: unknown module 'paint' in --modules", "quality, maintenance"]),
    (("--modules", ""), ["error: --modules is empty"]),
    (("--modules", " , "), ["error: --modules is empty"]),
    (("--modules", "energy,energy"), ["error: --modules names 'energy' more than once"]),
])
def test_bad_expires_or_modules_is_one_error_line_and_makes_no_key(sfai, db, args, words):  # noqa: F811
    make_tenant(db, TEST_SECRET, "acme")
    before = len(tenancy.list_api_keys(db, "acme"))
    r = sfai("apikey", "create", "--tenant", "acme", "--role", "mes", *args)
    assert r.out == ""
    line = r.error  # asserts one error line, a non-zero exit and no traceback
    assert all(w in line for w in words), line
    assert len(tenancy.list_api_keys(db, "acme")) == before


def test_create_with_expires_and_modules_then_list_and_show(sfai, db):  # noqa: F811
    make_tenant(db, TEST_SECRET, "acme", modules=("quality", "energy"))
    day = (datetime.now(UTC) + timedelta(days=10)).date()
    r = sfai("apikey", "create", "--tenant", "acme", "--role", "mes", "--name", "line 3", "--expires",
             day.isoformat(), "--modules", "energy, quality")
    assert r.rc == 0, r.err
    token = r.out.strip()
    key_id = tenancy.key_id_of(token)
    assert token.startswith("sfai_") and "modules quality,energy" in r.err and "expires" in r.err
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
    ctx = tenancy.resolve_api_key(db, TEST_SECRET, token)
    assert ctx.expires_at == end and ctx.modules == frozenset({"quality", "energy"})

    r = sfai("apikey", "create", "--tenant", "acme", "--role", "admin", "--expires", "2099-05-01T09:00:00+09:00",
             "--json")
    assert r.rc == 0, r.err
    made = json.loads(r.out)
    assert made["expires_at"].startswith("2099-05-01T00:00:00") and made["modules"] is None
    assert made["state"] == "active" and made["last_used_at"] is None and made["api_key"].startswith("sfai_")

    lines = {line.split("\t")[0]: line.split("\t") for line in sfai("apikey", "list", "--tenant", "acme").out
             .splitlines()}
    assert lines[key_id] == [key_id, "mes", "active", "quality,energy", f"{end:%Y-%m-%d %H:%M}Z", "never-used",
                             "line 3"]
    with db.engine.begin() as conn:  # used a while ago, and another key expired
        from sqlalchemy import text

        conn.execute(text("UPDATE api_keys SET last_used_at = :t WHERE key_id = :k"),
                     {"t": datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC), "k": key_id})
        conn.execute(text("UPDATE api_keys SET expires_at = :t WHERE key_id = :k"),
                     {"t": datetime(2026, 1, 1, tzinfo=UTC), "k": made["key_id"]})
    lines = {line.split("\t")[0]: line.split("\t") for line in sfai("apikey", "list", "--tenant", "acme").out
             .splitlines()}
    assert lines[key_id][5] == "2026-03-04 05:06Z"
    assert lines[made["key_id"]][2:5] == ["expired", "all", "2026-01-01 00:00Z"]
    listed = {k["key_id"]: k for k in json.loads(sfai("apikey", "list", "--tenant", "acme", "--json").out)}
    assert listed[key_id]["modules"] == ["quality", "energy"]
    assert listed[key_id]["last_used_at"].startswith("2026-03-04T05:06:07")
    assert listed[made["key_id"]]["state"] == "expired"
    shown = {k["key_id"]: k for k in json.loads(sfai("tenant", "show", "acme", "--json").out)["api_keys"]}
    assert shown == listed
    text_show = sfai("tenant", "show", "acme").out
    assert f"  {key_id}\tmes\tactive\tquality,energy\t" in text_show
