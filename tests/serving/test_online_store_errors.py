"""A Redis online store that answers but refuses calls for a reason of its own (its memory full under noeviction:
OOM; a replica after a failover: READONLY; a long script: BUSY; a replica cut off: MASTERDOWN) is an unavailable
online store, 503 ``online_store_unavailable``: ingesting 20,000 rows into a 2-MB Redis had been a 500 with a
traceback, the breaker closed, the offline rows stored (security audit). An error of the call itself stays one."""

import json
import shutil
import socket
import subprocess
import time
import uuid

import pyarrow.parquet as pq
import pytest
import redis
from fastapi.testclient import TestClient
from redis._parsers.base import BaseParser

from feature_store import FeatureView, Field, entities
from feature_store.online.redis import OnlineStoreRefused, RedisOnlineStore
from feature_store.store import FeatureStore
from serving.app import create_app
from tests.serving.helpers import bearer, make_tenant

PEPPER = "test-secret-0123456789"


def _refusing(reply: str) -> RedisOnlineStore:
    """A store whose every write gets the Redis error ``reply`` (as redis-py parses it off the wire)."""
    store = RedisOnlineStore("redis://127.0.0.1:1/0")
    store.breaker.retry_s = 0.05

    def upsert(**_kw):
        raise BaseParser.parse_error(reply)

    store._upsert = upsert
    return store


@pytest.mark.parametrize(("reply", "opens"), [
    ("OOM command not allowed when used memory > 'maxmemory'.", False),
    ("READONLY You can't write against a read only replica.", False),
    ("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.", False),
    ("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.", True),
    ("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", True),
    ("ERR Error running script (call to f_1): @user_script:7: -OOM command not allowed", False),  # Redis < 7
])
def test_a_server_refusal_is_the_store_unavailable(reply, opens):
    store = _refusing(reply)
    with pytest.raises(OnlineStoreRefused, match="the online store \\(Redis\\) refuses the call") as e:
        store.write("acme", "v", {"m-1": (1, {"x": 1.0})})
    assert isinstance(e.value, redis.ConnectionError)  # the API's 503 online_store_unavailable
    assert e.value.code == reply.replace("ERR Error running script (call to f_1): @user_script:7: -", "").split()[0]
    assert store.breaker.open is opens  # writes refused: reads still work, the breaker stays closed
    store.close()


@pytest.mark.parametrize("reply", ["ERR wrong number of arguments for 'set' command",
                                   "WRONGTYPE Operation against a key holding the wrong kind of value",
                                   "ERR user_script:1: Script attempted to access nonexistent global variable 'x'"])
def test_an_error_of_the_call_itself_is_not_an_outage(reply):
    store = _refusing(reply)
    with pytest.raises(redis.ResponseError) as e:
        store.write("acme", "v", {"m-1": (1, {"x": 1.0})})
    assert not isinstance(e.value, redis.ConnectionError) and not store.breaker.open
    store.close()


@pytest.fixture
def small_redis(tmp_path):
    """A redis-server of its own with 2 MB of memory and no eviction (the audit's), on a free port."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--maxmemory", "2mb", "--maxmemory-policy", "noeviction", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    admin = redis.Redis.from_url(url, socket_timeout=2)
    try:
        for _ in range(100):
            try:
                admin.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield url, admin
    finally:
        admin.close()
        proc.terminate()
        proc.wait(10)


def test_an_ingest_into_a_full_redis_is_a_503_carried_out_in_part(settings, db, small_redis):
    url, admin = small_redis
    s = settings.model_copy(update={"online_store": url, "redis_prefix": f"sfai-test:{uuid.uuid4().hex[:8]}:"})
    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    fs = FeatureStore(s, db, "acme")
    fs.apply(FeatureView(name="press_readings", entity=entities.machine,
                         schema=[Field(name="torque_nm", dtype="float64")]))
    fs.close()
    rows = [{"machine_id": f"press-{i:05d}", "event_timestamp": "2026-12-01T00:00:00Z", "torque_nm": 40.0}
            for i in range(20_000)]
    body = json.dumps({"records": rows})
    h = {**bearer(acme.mes), "content-type": "application/json", "idempotency-key": "batch-1"}
    with TestClient(create_app(s, db=db)) as client:
        def ingest(headers=h, content=body):
            return client.post("/v1/ingest/press_readings", content=content, headers=headers)

        for _ in range(2):  # the first call and a retry with its key while Redis is still full
            r = ingest()
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "online_store_unavailable" and r.headers["retry-after"] == "5"
            message = r.json()["error"]["message"]
            assert "carried out in part: the 20000 rows are stored in the offline store" in message, message
            assert "retry the call with the same Idempotency-Key" in message, message
        read = client.post("/v1/features/online", json={"view": "press_readings", "entity_ids": ["press-00000"]},
                           headers=bearer(acme.mes))
        assert read.status_code == 200, read.text  # reads still answered: the breaker did not open for a full store
        admin.config_set("maxmemory", "0")  # room again: the retry finishes the call
        r = ingest()
        assert r.status_code == 200, r.text
        assert r.json()["rows"] == 20_000 and r.json()["online_updated"] == 20_000
        assert ingest().headers.get("idempotent-replayed") == "true"
        last = client.post("/v1/features/online", json={"view": "press_readings", "entity_ids": ["press-19999"]},
                           headers=bearer(acme.mes))
        assert last.json()["rows"][0]["torque_nm"] == 40.0

        admin.execute_command("REPLICAOF", "127.0.0.1", "1")  # a replica after a failover: writes are refused
        try:
            one = json.dumps({"records": [{**rows[0], "event_timestamp": "2026-12-02T00:00:00Z"}]})
            r = ingest({**bearer(acme.mes), "content-type": "application/json"}, one)
            assert r.status_code == 503 and r.json()["error"]["code"] == "online_store_unavailable", r.text
            assert "the 1 rows are stored in the offline store" in r.json()["error"]["message"]
            assert "send the same batch again" in r.json()["error"]["message"]
        finally:
            admin.execute_command("REPLICAOF", "NO", "ONE")
    fs = FeatureStore(s, db, "acme")
    files = fs.offline.files("acme", "press_readings")
    assert sum(pq.read_metadata(f).num_rows for f in files) == 20_001  # the retries stored nothing twice
    fs.close()
