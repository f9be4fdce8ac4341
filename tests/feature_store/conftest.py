import os
import uuid

import pytest

from feature_store import FeatureView, Field, entities
from feature_store.online import open_online_store
from feature_store.store import FeatureStore
from serving import tenancy
from tests.conftest import require_service

REDIS_URL = os.environ.get("SFAI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_problem() -> str | None:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
        return None
    except Exception as e:  # noqa: BLE001
        return f"Redis not reachable at {REDIS_URL}: {e}"


@pytest.fixture(params=["sqlite", "redis"])
def online(request, tmp_path):
    if request.param == "sqlite":
        store = open_online_store("sqlite", tmp_path)
        yield store
        store.close()
        return
    require_service(redis_problem())
    prefix = f"sfai-test:{uuid.uuid4().hex[:8]}:"
    store = open_online_store(REDIS_URL, tmp_path, redis_prefix=prefix)
    yield store
    for key in store.client.scan_iter(match=prefix + "*", count=1000):
        store.client.delete(key)
    store.close()


# one row of STATS, as MES systems send it
REC = {
    "machine_id": "m1",
    "event_timestamp": "2026-03-01T00:00:00Z",
    "temp_mean": 70.5,
    "vib_rms": 1.2,
    "alarm": False,
    "mode": "run",
}

STATS = FeatureView(
    name="machine_stats",
    entity=entities.machine,
    schema=[
        Field(name="temp_mean", dtype="float32"),
        Field(name="vib_rms", dtype="float64"),
        Field(name="alarm", dtype="bool"),
        Field(name="mode", dtype="string"),
    ],
    description="rolling sensor statistics per machine",
    owner="maintenance-team",
    tags={"module": "maintenance"},
)


@pytest.fixture
def store(settings, db, online):
    tenancy.create_tenant(db, "acme", "C29")
    fs = FeatureStore(settings, db, "acme", online=online)
    fs.apply(STATS)
    return fs


def online_write_fails_once(monkeypatch, store: FeatureStore) -> None:  # noqa: ANN001
    """The store's next online write fails as a Redis outage does (a 503); the writes after it succeed."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    real, calls = type(store.online).write, [0]

    def flaky(self, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls[0] += 1
        if calls[0] == 1:
            raise RedisConnectionError("online store down")
        return real(self, *a, **k)

    monkeypatch.setattr(type(store.online), "write", flaky)
