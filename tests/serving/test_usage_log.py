"""The usage log: every authenticated call recorded, hash-chained, append-only, exportable, kept 3 years."""

import csv
import io
import json
import threading
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from serving import tenancy
from serving.app import create_app
from serving.db import Database
from serving.db.tables import UsageRecord
from serving.errors import InvalidInput
from serving.tenancy import utcnow
from serving.usage import (
    GENESIS,
    ChainKey,
    ChainKeyMismatch,
    UsageEntry,
    UsageWriter,
    append_entries,
    chain_hash,
    check_chain_key,
    export_usage,
    purge_before,
    verify_chain,
)
from tests.serving.helpers import KEY, bearer, make_tenant
from tests.sfai_cli import run_sfai

PEPPER = "test-secret-0123456789"


def entry(i: int, tenant_id: int = 1, ts=None, module="quality") -> UsageEntry:
    return UsageEntry(
        ts=ts or utcnow(),
        tenant_id=tenant_id,
        key_id="kabc",
        module=module,
        method="POST",
        endpoint="/v1/quality/defect/predict",
        status=200,
        latency_us=1000 + i,
        request_id=f"req-{i}",
        model_version="defect@3",
    )


def unguard(db: Database, conn) -> None:
    """What someone with database admin rights can do: switch the append-only guard off."""
    if db.is_sqlite:
        conn.execute(text("DROP TRIGGER usage_log_no_update"))
        conn.execute(text("DROP TRIGGER usage_log_retention"))
    else:
        conn.execute(text("ALTER TABLE usage_log DISABLE TRIGGER usage_log_guard"))


def test_every_authenticated_call_is_recorded(client, db):
    acme = make_tenant(db, PEPPER, "acme", modules=("quality",))
    client.get("/v1/quality/status", headers={**bearer(acme.mes), "X-Request-ID": "r-ok"})
    client.get("/v1/energy/status", headers={**bearer(acme.mes), "X-Request-ID": "r-403"})
    client.get("/v1/usage", headers={**bearer(acme.mes), "X-Request-ID": "r-role"})
    client.get("/v1/quality/status", headers=bearer("sfai_kdead_beef"))  # unauthenticated: no tenant to log
    rows = client.get("/v1/usage", headers=bearer(acme.admin)).json()
    by_id = {r["request_id"]: r for r in rows["records"]}
    assert set(by_id) == {"r-ok", "r-403", "r-role"}
    ok = by_id["r-ok"]
    assert (ok["tenant"], ok["module"], ok["method"], ok["endpoint"], ok["status"]) == (
        "acme",
        "quality",
        "GET",
        "/v1/quality/status",
        200,
    )
    assert ok["key_id"] == acme.mes.split("_")[1] and ok["latency_ms"] > 0 and ok["ts"].endswith("Z")
    assert by_id["r-403"]["status"] == 403 and by_id["r-403"]["module"] == "energy"
    assert by_id["r-role"]["status"] == 403 and by_id["r-role"]["module"] is None
    assert rows["by_module"]["quality"] == {"calls": 1, "ok": 1, "client_errors": 0, "server_errors": 0, "refused": 0}
    assert rows["by_module"]["energy"]["client_errors"] == rows["by_module"]["energy"]["refused"] == 1
    platform = client.get("/v1/usage?module=platform", headers=bearer(acme.admin)).json()["records"]
    assert "r-role" in {r["request_id"] for r in platform} and all(r["module"] is None for r in platform)
    assert [r["request_id"] for r in client.get("/v1/usage?module=quality", headers=bearer(acme.admin)).json()[
        "records"]] == ["r-ok"]
    # ?tenant=other answered the caller's own log without a word (integration audit): an unknown parameter is a 422
    for query, words in (("module=qualiti", "unknown module 'qualiti'"), ("from=2026-12-31&to=2026-01-01", "after"),
                         ("tenant=bravo", "unknown query parameter 'tenant': this endpoint takes "),
                         ("modul=quality", "unknown query parameter 'modul'")):
        for path in ("/v1/usage", "/v1/usage/export"):
            r = client.get(f"{path}?{query}", headers=bearer(acme.admin))
            assert r.status_code == 422 and words in r.json()["error"]["message"], (path, r.text)
    takes = client.get("/v1/usage?tenant=x", headers=bearer(acme.admin)).json()["error"]["message"]
    assert "before_seq, from, key_id, limit, module, to" in takes, takes
    assert client.get("/v1/usage/export?format=json&module=quality&key_id=" + acme.mes.split("_")[1],
                      headers=bearer(acme.admin)).status_code == 200


def test_the_export_filters_by_module_as_the_list_does(client, db):
    """``GET /v1/usage/export?module=`` keeps the records of one module, or with ``platform`` those of none, as
    ``GET /v1/usage`` does (the console's Export CSV passes the module chosen in its filter)."""
    acme = make_tenant(db, PEPPER, "acme", modules=("quality", "energy"))
    client.get("/v1/quality/status", headers={**bearer(acme.mes), "X-Request-ID": "q-1"})
    client.get("/v1/energy/status", headers={**bearer(acme.mes), "X-Request-ID": "e-1"})
    client.get("/v1/tenant", headers={**bearer(acme.mes), "X-Request-ID": "p-1"})

    def export(query: str, fmt: str = "csv") -> list[dict]:
        r = client.get(f"/v1/usage/export?format={fmt}&{query}", headers=bearer(acme.admin))
        assert r.status_code == 200, r.text
        return list(csv.DictReader(io.StringIO(r.text))) if fmt == "csv" else json.loads(r.text)

    everything = {r["request_id"] for r in export("")}
    assert {"q-1", "e-1", "p-1"} <= everything
    assert [r["request_id"] for r in export("module=quality")] == ["q-1"]
    assert [r["request_id"] for r in export("module=energy", "json")] == ["e-1"]
    platform = export("module=platform")
    assert "p-1" in {r["request_id"] for r in platform} and all(r["module"] == "" for r in platform)
    assert all(r["module"] is None for r in export("module=platform", "json"))
    assert {r["endpoint"] for r in platform} >= {"/v1/tenant", "/v1/usage/export"}  # the exports are platform calls too
    # the file is named after what it holds, as the console names it
    disposition = client.get("/v1/usage/export?format=json&module=energy", headers=bearer(acme.admin)).headers
    assert disposition["content-disposition"] == 'attachment; filename="sfai-usage-acme-energy.json"'
    whole = client.get("/v1/usage/export?format=csv", headers=bearer(acme.admin)).headers["content-disposition"]
    assert whole == 'attachment; filename="sfai-usage-acme.csv"'
    assert {r["request_id"] for r in export("module=scheduling")} == set()  # a module with no calls: the header only


def test_the_log_and_the_export_filter_by_key(client, db, sfai_env):
    """``key_id=`` was silently ignored: a tenant admin auditing a leaked key saw every key's calls (tenant-admin
    audit). The list, its counts, the export and `sfai usage export --key-id` keep that key's calls only; a value
    that is no key id is a 422."""
    import subprocess
    import sys
    from pathlib import Path

    acme = make_tenant(db, PEPPER, "acme", modules=("quality",))
    mes_id = acme.mes.split("_")[1]
    for _ in range(2):
        client.get("/v1/quality/status", headers=bearer(acme.mes))
    client.get("/v1/tenant", headers=bearer(acme.admin))
    page = client.get(f"/v1/usage?key_id={mes_id}", headers=bearer(acme.admin)).json()
    assert page["total"] == 2 and {r["key_id"] for r in page["records"]} == {mes_id}
    assert page["by_module"] == {"quality": {"calls": 2, "ok": 2, "client_errors": 0, "server_errors": 0, "refused": 0}}
    rows = list(csv.DictReader(io.StringIO(client.get(f"/v1/usage/export?key_id={mes_id}",
                                                      headers=bearer(acme.admin)).text)))
    assert [r["key_id"] for r in rows] == [mes_id, mes_id]
    # each record names its key as the key list does, a revoked key too (the id alone told the admin nothing)
    assert {r["key_name"] for r in page["records"]} == {r["key_name"] for r in rows} == {"mes"}
    tenancy.revoke_api_key(db, mes_id)
    every = client.get("/v1/usage", headers=bearer(acme.admin)).json()["records"]
    assert {(r["key_id"], r["key_name"]) for r in every} == {(mes_id, "mes"), (acme.admin.split("_")[1], "admin")}
    for bad in ("nokey", "k" + "0" * 40, "kXYZ"):
        assert client.get(f"/v1/usage?key_id={bad}", headers=bearer(acme.admin)).status_code == 422
    url = db.engine.url.render_as_string(hide_password=False)
    cli = subprocess.run([str(Path(sys.executable).with_name("sfai")), "usage", "export", "--tenant", "acme",
                          "--key-id", acme.mes],  # the whole key: its id is used
                         env={**sfai_env, "SFAI_DATABASE_URL": url}, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert [r["key_id"] for r in csv.DictReader(io.StringIO(cli.stdout))] == [mes_id, mes_id]


def test_chain_verifies_and_detects_an_edited_row(db):
    append_entries(db, [entry(i) for i in range(20)], key=KEY)
    r = verify_chain(db, key=KEY)
    assert (r.ok, r.rows, r.last_seq) == (True, 20, 20)
    with db.engine.begin() as c:
        unguard(db, c)
        c.execute(text("UPDATE usage_log SET status = 500 WHERE seq = 7"))
    r = verify_chain(db, key=KEY)
    assert not r.ok and r.seq == 7 and "modified" in r.problem


def test_chain_detects_a_deleted_row_and_a_truncated_tail(db):
    append_entries(db, [entry(i) for i in range(10)], key=KEY)
    with db.engine.begin() as c:
        unguard(db, c)
        c.execute(text("DELETE FROM usage_log WHERE seq = 10"))
    r = verify_chain(db, key=KEY)
    assert not r.ok and "head records row 10" in r.problem
    with db.engine.begin() as c:
        c.execute(text("DELETE FROM usage_log WHERE seq = 4"))
    r = verify_chain(db, key=KEY)
    assert not r.ok and r.seq == 4 and "missing" in r.problem


def test_chain_detects_a_rewritten_row_with_a_fresh_hash(db):
    """An edit that recomputes the row's own hash still breaks the link to the next row."""
    from serving.usage import chain_hash

    append_entries(db, [entry(i) for i in range(5)], key=KEY)
    with db.engine.begin() as c:
        unguard(db, c)
        t = UsageRecord.__table__
        row = c.execute(select(t).where(t.c.seq == 3)).mappings().one()
        forged = entry(99)
        forged.ts, forged.request_id = row["ts"], row["request_id"]
        forged.status = 404
        h = chain_hash(row["prev_hash"], 3, forged, key=KEY)  # even with the key
        c.execute(
            text("UPDATE usage_log SET status = 404, latency_us = :l, hash = :h WHERE seq = 3"),
            {"l": forged.latency_us, "h": h},
        )
    r = verify_chain(db, key=KEY)
    assert not r.ok and r.seq == 4 and "does not link" in r.problem


def _rewrite_chain(db, c, hasher) -> None:  # noqa: ANN001
    """Rewrite every record's status to 200 and re-chain it with ``hasher(prev, record)``, head included: what
    someone who can write the database (and drop its triggers) can do."""
    t = UsageRecord.__table__
    prev = GENESIS
    for row in c.execute(select(t).order_by(t.c.seq)).all():
        e = UsageEntry(ts=row.ts, tenant_id=row.tenant_id, key_id=row.key_id, module=row.module, method=row.method,
                       endpoint=row.endpoint, status=200, latency_us=row.latency_us, request_id=row.request_id,
                       model_version=row.model_version)
        h = hasher(prev, row.seq, e)
        c.execute(text("UPDATE usage_log SET status = 200, prev_hash = :p, hash = :h WHERE seq = :s"),
                  {"p": prev, "h": h, "s": row.seq})
        prev = h
    c.execute(text("UPDATE usage_chain SET last_hash = :h"), {"h": prev})


def test_a_rewritten_chain_does_not_verify_without_the_key(db):
    """The hashes were plain SHA-256: whoever could write the database could edit records and recompute the whole
    chain, and verify passed. They are keyed now (HMAC under SFAI_SECRET_KEY): a rewrite with plain hashes, or
    with another key, fails at its first row, and moving the keyed start past the rows fails on its mark."""
    append_entries(db, [entry(i) for i in range(6)], key=KEY)
    with db.engine.connect() as c:
        assert c.execute(text("SELECT keyed_from FROM usage_chain")).scalar() == 1
    with db.engine.begin() as c:
        unguard(db, c)
    for hasher in (
        lambda prev, seq, e: chain_hash(prev, seq, e, key=None),
        lambda prev, seq, e: chain_hash(prev, seq, e, key=ChainKey("a-guessed-secret-0123456789")),
    ):
        with db.engine.begin() as c:
            _rewrite_chain(db, c, hasher)
        r = verify_chain(db, key=KEY)
        assert not r.ok and r.seq == 1 and "modified" in r.problem, r
    with db.engine.begin() as c:  # the plain rewrite again, with the keyed start moved past it
        _rewrite_chain(db, c, lambda prev, seq, e: chain_hash(prev, seq, e, key=None))
        c.execute(text("UPDATE usage_chain SET keyed_from = 7"))
    r = verify_chain(db, key=KEY)
    assert not r.ok and "keyed start" in r.problem, r
    with db.engine.begin() as c:
        c.execute(text("UPDATE usage_chain SET keyed_mark = NULL, keyed_from = 2"))
    r = verify_chain(db, key=KEY)
    assert not r.ok and "not signed" in r.problem, r
    # the honest chain, re-keyed with the right key, verifies again (the test's rewrite itself is sound)
    with db.engine.begin() as c:
        _rewrite_chain(db, c, lambda prev, seq, e: chain_hash(prev, seq, e, key=KEY))
        c.execute(text("UPDATE usage_chain SET keyed_from = 1, keyed_mark = :m"), {"m": KEY.mark(1)})
    assert verify_chain(db, key=KEY).ok


def test_a_server_with_another_secret_refuses_to_write_the_log(settings, db):
    """Records hashed with another key would never verify: the server says so at start, and a writer with the
    wrong key refuses to append (the caller gets a 503, never an unlogged answer)."""
    append_entries(db, [entry(0)], key=KEY)
    other = ChainKey("another-secret-0123456789")
    with pytest.raises(ChainKeyMismatch, match="another SFAI_SECRET_KEY"):
        append_entries(db, [entry(1)], key=other)
    with pytest.raises(ChainKeyMismatch):
        check_chain_key(db, other)
    check_chain_key(db, KEY)
    r = verify_chain(db, key=other)
    assert not r.ok and "does not verify with this SFAI_SECRET_KEY" in r.problem
    assert verify_chain(db, key=KEY).ok and verify_chain(db, key=KEY).rows == 1
    with pytest.raises(ChainKeyMismatch):
        create_app(settings.model_copy(update={"secret_key": "another-secret-0123456789"}), db=db)
    with TestClient(create_app(settings, db=db)) as client:  # the deployment's own secret serves
        assert client.get("/v1/industries").status_code == 200


def test_the_cli_refuses_another_secret_before_making_a_key_or_verifying(settings, db, sfai_env):
    """`sfai apikey create` with another SFAI_SECRET_KEY printed a key that every server refused, and `sfai usage
    verify` called the log tampered (operator's audit): both say the secret is not the deployment's, in one line."""
    make_tenant(db, PEPPER, "acme", modules=())
    append_entries(db, [entry(0)], key=ChainKey(settings.secret_key))  # a server ran: the chain is keyed
    keys = [k.key_id for k in tenancy.list_api_keys(db, "acme")]
    env = {**sfai_env, "SFAI_SECRET_KEY": "Another-Secret-Key-9876543210abc"}
    for args in (("apikey", "create", "--tenant", "acme", "--role", "mes"), ("usage", "verify")):
        r = run_sfai(*args, env=env)
        assert r.returncode == 1 and r.stdout == "", (args, r.stdout)
        assert r.stderr.startswith("error: SFAI_SECRET_KEY is not the secret this deployment runs with"), r.stderr
    assert [k.key_id for k in tenancy.list_api_keys(db, "acme")] == keys  # no key was made
    r = run_sfai("usage", "verify", env=sfai_env)
    assert r.returncode == 0 and r.stdout.startswith("ok: 1 records verified"), r.stdout + r.stderr


def test_database_refuses_edits_and_young_deletes(db):
    append_entries(db, [entry(i) for i in range(3)], key=KEY)
    for stmt in ("UPDATE usage_log SET status = 500 WHERE seq = 1", "DELETE FROM usage_log WHERE seq = 1"):
        with pytest.raises(DBAPIError, match="append-only|three years"):
            with db.engine.begin() as c:
                c.execute(text(stmt))
    assert verify_chain(db, key=KEY).rows == 3


def test_purge_keeps_three_years_and_the_chain(db):
    old = utcnow() - timedelta(days=4 * 365)
    append_entries(db, [entry(i, ts=old + timedelta(minutes=i)) for i in range(5)], key=KEY)
    append_entries(db, [entry(i) for i in range(5, 8)], key=KEY)
    with pytest.raises(InvalidInput, match="kept"):
        purge_before(db, utcnow() - timedelta(days=30), key=KEY)
    assert purge_before(db, utcnow() - timedelta(days=3 * 365 + 2), key=KEY) == 5
    r = verify_chain(db, key=KEY)
    assert r.ok and r.rows == 3 and r.last_seq == 8
    assert purge_before(db, utcnow() - timedelta(days=3 * 365 + 2), key=KEY) == 0


def test_the_cli_purges_what_has_expired_and_counts_first(settings, db, sfai_env, tmp_path):
    """A cron job's ``--before $(date -d '3 years ago')`` is refused in the years after a 29 February (three calendar
    years are 1,095 days there, the log keeps 1,096), one day in four (operator's audit). ``--expired`` cuts at the
    retention period itself; ``--dry-run`` counts and deletes nothing; the export that archives the rows first is
    its owner's to read (0600, as backups are; it was 0644)."""
    import stat
    import subprocess

    key = ChainKey(settings.secret_key)
    old = utcnow() - timedelta(days=4 * 365)
    append_entries(db, [entry(i, ts=old + timedelta(minutes=i)) for i in range(4)], key=key)
    append_entries(db, [entry(i) for i in range(4, 6)], key=key)

    def run(*args: str) -> subprocess.CompletedProcess:
        return run_sfai("usage", *args, env=sfai_env)

    archive = tmp_path / "usage-archive.csv"
    assert run("export", "--output", str(archive)).returncode == 0
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    for args in (("purge",), ("purge", "--expired", "--before", "2020-01-01")):
        r = run(*args)
        assert r.returncode == 1 and r.stderr.strip().splitlines() == [
            "error: give --before DATE or --expired (every record past the retention period), one of them"], r.stderr
    assert run("purge", "--expired", "--dry-run").stdout == "4\n"
    assert verify_chain(db, key=key).rows == 6  # counted, not deleted
    assert run("purge", "--expired").stdout == "4\n"
    r = verify_chain(db, key=key)
    assert r.ok and r.rows == 2
    assert run("purge", "--expired").stdout == "0\n"


def test_deleting_the_first_rows_does_not_pass_as_a_purge(db):
    """The anchor a purge leaves was unsigned: deleting today's first rows and pointing the anchor at the last one
    deleted (its hash is in plain sight) verified as a purge. A purge now signs its anchor with the row's time,
    and verify wants that signature and a row past the retention period."""
    old = utcnow() - timedelta(days=4 * 365)
    append_entries(db, [entry(i, ts=old + timedelta(minutes=i)) for i in range(3)], key=KEY)
    append_entries(db, [entry(i) for i in range(3, 10)], key=KEY)
    assert purge_before(db, utcnow() - timedelta(days=3 * 365 + 2), key=KEY) == 3
    assert verify_chain(db, key=KEY).ok  # a real purge
    with db.engine.connect() as c:
        signed = c.execute(text("SELECT anchor_seq, anchor_hash, anchor_ts, anchor_mark FROM usage_chain")).one()
        h5 = c.execute(text("SELECT hash FROM usage_log WHERE seq = 5")).scalar_one()
    with db.engine.begin() as c:  # delete today's rows 4 and 5, and move the anchor as a purge would
        unguard(db, c)
        c.execute(text("DELETE FROM usage_log WHERE seq <= 5"))
        c.execute(text("UPDATE usage_chain SET anchor_seq = 5, anchor_hash = :h"), {"h": h5})
    r = verify_chain(db, key=KEY)
    assert not r.ok and "purge anchor (row 5) was modified" in r.problem, r
    with db.engine.begin() as c:  # ... with the old anchor's signature removed, as if from before signed purges
        c.execute(text("UPDATE usage_chain SET anchor_mark = NULL"))
    r = verify_chain(db, key=KEY)
    assert not r.ok and "without a signed purge" in r.problem, r
    now = utcnow()
    with db.engine.begin() as c:  # ... or signed by someone who holds the key, but with young rows
        c.execute(text("UPDATE usage_chain SET anchor_mark = :m, anchor_ts = :t"),
                  {"m": KEY.anchor_mark(5, h5, now), "t": now})
    r = verify_chain(db, key=KEY)
    assert not r.ok and "younger than the" in r.problem, r
    assert signed.anchor_seq == 3 and signed.anchor_mark is not None


def test_a_purge_under_another_secret_deletes_nothing(db):
    """A purge signs its anchor: under another SFAI_SECRET_KEY it would delete rows and leave an anchor that never
    verifies. It is refused before any row is deleted."""
    old = utcnow() - timedelta(days=4 * 365)
    append_entries(db, [entry(i, ts=old + timedelta(minutes=i)) for i in range(3)], key=KEY)
    with pytest.raises(ChainKeyMismatch):
        purge_before(db, utcnow() - timedelta(days=3 * 365 + 2), key=ChainKey("another-secret-0123456789"))
    assert verify_chain(db, key=KEY).rows == 3


def test_group_commit_from_many_threads_keeps_one_chain(db):
    w = UsageWriter(db, key=KEY, max_batch=64)
    w.start()
    try:

        def work(k):
            for i in range(25):
                w.write(entry(k * 100 + i))

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        w.close()
    r = verify_chain(db, key=KEY)
    assert r.ok and r.rows == 200
    assert w.records == 200 and w.batches < 200  # writes were grouped


def test_two_processes_worth_of_writers_do_not_fork_the_chain(settings, db):
    """Two writers with their own engines (as two uvicorn workers have) append to one chain."""
    other = Database(settings.resolved_database_url, run_migrations=False)
    writers = [UsageWriter(db, key=KEY), UsageWriter(other, key=KEY)]
    for w in writers:
        w.start()
    try:

        def work(w, k):
            for i in range(30):
                w.write(entry(k * 1000 + i))

        threads = [threading.Thread(target=work, args=(writers[k % 2], k)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for w in writers:
            w.close()
        other.dispose()
    r = verify_chain(db, key=KEY)
    assert r.ok and r.rows == 120


def test_failed_log_write_answers_503_not_2xx(client, db, app):
    acme = make_tenant(db, PEPPER, "acme")
    assert client.get("/v1/quality/status", headers=bearer(acme.mes)).status_code == 200
    with db.engine.begin() as c:  # the log table becomes unwritable
        if db.is_sqlite:
            c.execute(text("DROP TRIGGER usage_log_no_update"))
            c.execute(text("DROP TRIGGER usage_log_retention"))
        c.execute(text("ALTER TABLE usage_log RENAME TO usage_log_moved"))
    r = client.get("/v1/quality/status", headers=bearer(acme.mes))
    assert r.status_code == 503 and r.json()["error"]["code"] == "usage_log_unavailable"
    assert "not performed" in r.json()["error"]["message"] and r.headers["retry-after"] == "5"
    # a change is made by the time its record fails: it had been answered "not performed, retry" (and a retried
    # ingest stored its rows again, a retried job submission queued a second job)
    r = client.post("/v1/apikeys", json={"role": "mes", "name": "line-2"}, headers=bearer(acme.admin))
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert "was carried out" in r.json()["error"]["message"], r.text
    assert "line-2" in [k.name for k in tenancy.list_api_keys(db, "acme")]


def test_export_csv_and_json_own_tenant_only(client, db):
    acme = make_tenant(db, PEPPER, "acme")
    other = make_tenant(db, PEPPER, "other")
    for i in range(3):
        client.get("/v1/quality/status", headers={**bearer(acme.mes), "X-Request-ID": f"acme-{i}"})
    client.get("/v1/quality/status", headers={**bearer(other.mes), "X-Request-ID": "other-0"})
    r = client.get("/v1/usage/export?format=csv", headers=bearer(acme.admin))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    # the export call itself is logged before its answer starts, so it is in its own export
    assert [x["request_id"] for x in rows][:3] == ["acme-0", "acme-1", "acme-2"]
    assert [x["endpoint"] for x in rows[3:]] == ["/v1/usage/export"]
    assert {x["tenant"] for x in rows} == {"acme"}
    assert list(rows[0]) == [
        "seq",
        "ts",
        "tenant",
        "key_id",
        "module",
        "method",
        "endpoint",
        "status",
        "latency_ms",
        "model_version",
        "request_id",
        "hash",
        "key_name",
        "calls",
        "quota_counted",
    ]
    assert {x["calls"] for x in rows} == {"1"}
    data = json.loads(client.get("/v1/usage/export?format=json", headers=bearer(acme.admin)).text)
    assert [x["request_id"] for x in data][:3] == ["acme-0", "acme-1", "acme-2"]
    assert all(x["tenant"] == "acme" for x in data)
    # time window: nothing before 'from', nothing at or after 'to'
    future = (utcnow() + timedelta(days=1)).date().isoformat()
    assert (
        list(
            csv.DictReader(
                io.StringIO(client.get(f"/v1/usage/export?format=csv&from={future}", headers=bearer(acme.admin)).text)
            )
        )
        == []
    )
    past = (utcnow() - timedelta(days=1)).date().isoformat()
    windowed = json.loads(
        client.get(f"/v1/usage/export?format=json&from={past}&to={future}", headers=bearer(acme.admin)).text
    )
    assert len(windowed) >= 3
    r = client.get(f"/v1/usage/export?format=json&from={future}&to={past}", headers=bearer(acme.admin))
    assert r.status_code == 422 and "after" in r.json()["error"]["message"]


@pytest.mark.parametrize("query", ["before_seq=" + "9" * 30, "before_seq=9223372036854775808", "limit=" + "9" * 30])
def test_out_of_range_paging_is_a_422(client, db, query):
    """A page cursor past SQLite's 64-bit integers once reached the database and ended in a 500 (found by
    benchmarks/fuzz_api.py); it is refused with the one error shape."""
    acme = make_tenant(db, PEPPER, "acme", modules=("quality",))
    r = client.get(f"/v1/usage?{query}", headers=bearer(acme.admin))
    assert r.status_code == 422 and r.json()["error"]["code"], r.text
    assert client.get("/v1/usage?before_seq=9223372036854775807", headers=bearer(acme.admin)).status_code == 200


def test_record_numbers_are_the_tenants_own(client, db):
    """A tenant's records are numbered 1, 2, 3, ... in its own log: the numbers it sees (and pages by) say
    nothing about how many calls other tenants made in between (they once were the place in the whole log)."""
    acme = make_tenant(db, PEPPER, "acme")
    other = make_tenant(db, PEPPER, "other")
    for i in range(4):
        client.get("/v1/quality/status", headers={**bearer(acme.mes), "X-Request-ID": f"acme-{i}"})
        for j in range(3):
            client.get("/v1/quality/status", headers={**bearer(other.mes), "X-Request-ID": f"other-{i}-{j}"})
    page = client.get("/v1/usage?limit=3", headers=bearer(acme.admin)).json()
    assert [r["seq"] for r in page["records"]] == [4, 3, 2] and page["next_before_seq"] == 2
    assert [r["request_id"] for r in page["records"]] == ["acme-3", "acme-2", "acme-1"]
    older = client.get("/v1/usage?before_seq=2", headers=bearer(acme.admin)).json()["records"]
    assert [(r["seq"], r["request_id"]) for r in older] == [(1, "acme-0")]
    mine = list(csv.DictReader(io.StringIO(client.get("/v1/usage/export", headers=bearer(acme.admin)).text)))
    assert [int(r["seq"]) for r in mine] == list(range(1, len(mine) + 1))  # no gaps where "other" called
    theirs = json.loads(client.get("/v1/usage/export?format=json", headers=bearer(other.admin)).text)
    assert [r["seq"] for r in theirs] == list(range(1, 14)) and "log_seq" not in theirs[0]
    # the operator's export of every tenant also gives each record's place in the whole chain
    everything = list(csv.DictReader(io.StringIO("".join(export_usage(db, "csv", tenant_id=None)))))
    assert list(everything[0])[:2] == ["log_seq", "seq"]
    assert [int(r["log_seq"]) for r in everything] == list(range(1, len(everything) + 1))
    assert [r["seq"] for r in everything if r["tenant"] == "acme"] == [r["seq"] for r in mine]
    assert verify_chain(db, key=KEY).ok


def test_chain_detects_a_renumbered_record(db):
    append_entries(db, [entry(i, tenant_id=1 + i % 2) for i in range(6)], key=KEY)
    assert verify_chain(db, key=KEY).ok
    with db.engine.begin() as c:
        unguard(db, c)
        c.execute(text("UPDATE usage_log SET tenant_seq = 7 WHERE seq = 5"))  # tenant 1's third record
    r = verify_chain(db, key=KEY)
    assert not r.ok and r.seq == 5 and "numbered 7" in r.problem and "expected 3" in r.problem
    with db.engine.begin() as c:
        c.execute(text("UPDATE usage_log SET tenant_seq = 3 WHERE seq = 5"))
        c.execute(text("UPDATE usage_tenant_heads SET last_seq = 2 WHERE tenant_id = 2"))
    r = verify_chain(db, key=KEY)
    assert not r.ok and "tenant 2's log ends at record 3 but its head records 2" in r.problem


def test_numbers_go_on_after_a_purge(db):
    """A purge that takes all of a tenant's records does not restart its numbering at 1."""
    old = utcnow() - timedelta(days=4 * 365)
    append_entries(db, [entry(i, tenant_id=1 + i % 2, ts=old + timedelta(minutes=i)) for i in range(6)], key=KEY)
    append_entries(db, [entry(6, tenant_id=1)], key=KEY)
    assert purge_before(db, utcnow() - timedelta(days=3 * 365 + 2), key=KEY) == 6
    append_entries(db, [entry(7, tenant_id=2), entry(8, tenant_id=1)], key=KEY)
    with db.engine.connect() as c:
        rows = c.execute(text("SELECT tenant_id, tenant_seq FROM usage_log ORDER BY seq")).all()
    assert [tuple(r) for r in rows] == [(1, 4), (2, 4), (1, 5)]
    assert verify_chain(db, key=KEY).ok


@pytest.mark.parametrize(
    "query", ["from=9999-12-31T23:59:59-01:00", "to=0001-01-01T00:00:00%2B01:00", "from=0001-01-01T00:30:00%2B01:00"]
)
def test_times_out_of_range_in_utc_are_a_422(client, db, query):
    """A bound whose offset takes it past year 9999 (or before year 1) in UTC overflowed in the query: a 500 from
    /v1/usage, and from the export a 200 whose stream broke off empty."""
    acme = make_tenant(db, PEPPER, "acme")
    for path in ("/v1/usage", "/v1/usage/export"):
        r = client.get(f"{path}?{query}", headers=bearer(acme.admin))
        assert r.status_code == 422 and "out of range" in r.json()["error"]["message"], (path, r.status_code, r.text)


def test_a_tenant_cannot_find_its_records_place_in_the_whole_chain(client, db):
    """The ``hash`` a tenant sees is a receipt of the chain hash. With the chain hash itself, a tenant whose two
    records were neighbours in the chain recomputed the second from the first and guessed places: the match told
    it the record's place in the whole log, that is, how many calls the other tenants made."""
    from datetime import datetime

    from serving.usage import chain_hash, receipt

    acme = make_tenant(db, PEPPER, "acme")
    other = make_tenant(db, PEPPER, "other")
    for i in range(5):
        client.get("/v1/quality/status", headers={**bearer(other.mes), "X-Request-ID": f"other-{i}"})
    for i in range(2):  # two neighbours in the chain
        client.get("/v1/quality/status", headers={**bearer(acme.mes), "X-Request-ID": f"acme-{i}"})
    mine = list(csv.DictReader(io.StringIO(client.get("/v1/usage/export", headers=bearer(acme.admin)).text)))
    first, second = mine[0], mine[1]
    assert (first["request_id"], second["request_id"]) == ("acme-0", "acme-1")
    guesses = 0
    for tenant_id in range(1, 4):
        for seq in range(1, 50):
            e = UsageEntry(
                ts=datetime.fromisoformat(second["ts"].replace("Z", "+00:00")), tenant_id=tenant_id,
                key_id=second["key_id"], module=second["module"] or None, method=second["method"],
                endpoint=second["endpoint"], status=int(second["status"]),
                latency_us=round(float(second["latency_ms"]) * 1000), request_id=second["request_id"],
                model_version=second["model_version"] or None,
            )
            assert chain_hash(first["hash"], seq, e, second["ts"], key=KEY) != second["hash"], f"found: seq {seq}"
            guesses += 1
    assert guesses == 147
    # the receipt is the chain hash's: an operator finds each of the tenant's records in the chain
    listed = client.get("/v1/usage", headers=bearer(acme.admin)).json()["records"]
    everything = csv.DictReader(io.StringIO("".join(export_usage(db, "csv", tenant_id=None))))
    chain = {r["request_id"]: r["hash"] for r in everything}
    assert all(r["hash"] == receipt(chain[r["request_id"]]) != chain[r["request_id"]] for r in mine + listed)


def test_an_export_holds_no_connection_while_its_reader_is_away(db):
    """A client reading an export slowly held one of the pool's connections until the last page: a few slow
    exports took the whole PostgreSQL pool. Each page now gives its connection back before it is sent."""
    from serving import tenancy

    tenancy.create_tenant(db, "acme", "C29")
    append_entries(db, [entry(i) for i in range(7)], key=KEY)
    stream = export_usage(db, "json", tenant_id=tenancy.get_tenant(db, "acme").id, chunk=2)
    got = [next(stream), next(stream)]  # "[" and the first record: the first page is read, the rest waits
    assert db.engine.pool.checkedout() == 0
    got += list(stream)
    assert [r["request_id"] for r in json.loads("".join(got))] == [f"req-{i}" for i in range(7)]
    assert db.engine.pool.checkedout() == 0


def test_an_offsets_plus_sent_unencoded_is_read_as_the_offset(client, db):
    """``from=2026-12-07T07:46:00+09:00`` in a URL without %2B reaches the server as "... 09:00" (a + in a query is
    a space), and was a 422 telling the admin, who had sent ISO, to send ISO (tenant-admin audit). It is read as
    the offset it was."""
    acme = make_tenant(db, PEPPER, "acme")
    client.get("/v1/tenant", headers=bearer(acme.mes))
    plain = client.get("/v1/usage?from=2000-01-01T09:00:00%2B09:00", headers=bearer(acme.admin))
    sent = client.get("/v1/usage?from=2000-01-01T09:00:00+09:00", headers=bearer(acme.admin))
    assert sent.status_code == 200 and sent.json()["total"] == plain.json()["total"] + 1  # + the first list call
    assert sent.json()["from"] == "2000-01-01T09:00:00 09:00"  # as it arrived
    from serving.usage import parse_when

    assert parse_when("2026-12-07T07:46:00 09:00", "from") == parse_when("2026-12-07T07:46:00+09:00", "from")
    assert parse_when("2026-12-07 07:46 09:00", "from").hour == 22  # 07:46 in Korea is 22:46 UTC the day before


def test_the_access_log_has_a_line_per_request_when_asked(settings, db, caplog):
    """No request was logged anywhere but the usage log, which holds authenticated calls only: 401s, 404s and
    scanners left no trace (operator's audit). ``SFAI_ACCESS_LOG=true`` logs one line per request, with the key's
    id, never the key."""
    acme = make_tenant(db, PEPPER, "acme", modules=("quality",))
    with TestClient(create_app(settings.model_copy(update={"access_log": True}), db=db)) as client, \
            caplog.at_level("INFO", logger="sfai.access"):
        client.get("/v1/quality/status", headers={**bearer(acme.mes), "X-Request-ID": "r-ok"})
        client.get("/v1/quality/status", headers=bearer("sfai_kdeadbeef0000_nope"))
        client.get("/wp-login.php")
    lines = [r.getMessage() for r in caplog.records if r.name == "sfai.access"]
    key_id = acme.mes.split("_")[1]
    assert len(lines) == 3, lines
    assert lines[0].startswith("GET /v1/quality/status 200 ") and f"tenant=acme key={key_id} request=r-ok" in lines[0]
    assert lines[1].startswith("GET /v1/quality/status 401 ") and "tenant=- key=-" in lines[1]
    assert lines[2].startswith("GET /wp-login.php 404 ")
    assert not any(acme.mes in line for line in lines)
    caplog.clear()
    with TestClient(create_app(settings, db=db)) as client, caplog.at_level("INFO", logger="sfai.access"):
        client.get("/v1/quality/status", headers=bearer(acme.mes))
    assert not [r for r in caplog.records if r.name == "sfai.access"]  # off by default


def test_quota_counted_adds_up_to_the_quota_count(settings, db):
    """Each record says whether it counted against its module's quota, so a tenant adds up its month from the export
    as the quota counts: a module's answered calls (a 404 too) yes; its quota read (status), a refusal (403 of a
    module not held, 429 of the rate limit) and a call of no module no."""
    from serving.usage import count_calls, query_usage

    acme = make_tenant(db, PEPPER, "acme", modules=("quality",))
    h = bearer(acme.mes)
    # 3 calls at once, then one per 5 s
    app = create_app(settings.model_copy(update={"rate_limits": {"standard": 0.2}, "rate_limit_burst_s": 15}), db=db)
    with TestClient(app) as client:
        codes = [client.get("/v1/quality/status", headers=h).status_code]
        codes += [client.post("/v1/quality/defect/predict", json={"records": [{"x": 1}]}, headers=h).status_code
                  for _ in range(3)]
        codes += [client.get("/v1/energy/status", headers=h).status_code,
                  client.get("/v1/tenant", headers=bearer(acme.admin)).status_code]
        assert codes == [200, 404, 404, 429, 403, 200], codes
        exported = list(csv.DictReader(io.StringIO(client.get("/v1/usage/export?format=csv",
                                                              headers=bearer(acme.admin)).text)))
    tenant_id = tenancy.get_tenant(db, "acme").id
    records = query_usage(db, tenant_id, limit=100)["records"]
    by_status = sorted((r["endpoint"], r["status"], r["quota_counted"]) for r in records)
    assert by_status == sorted([
        ("/v1/quality/defect/predict", 404, True), ("/v1/quality/defect/predict", 404, True),
        ("/v1/quality/defect/predict", 429, False), ("/v1/energy/status", 403, False), ("/v1/tenant", 200, False),
        ("/v1/usage/export", 200, False), ("/v1/quality/status", 200, False),
    ]), by_status
    month = utcnow().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert sum(r["quota_counted"] for r in records if r["module"] == "quality") == \
        count_calls(db, tenant_id, "quality", month) == 2
    assert [r["quota_counted"] for r in exported if r["status"] == "404"] == ["True", "True"]
