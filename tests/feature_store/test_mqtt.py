"""MQTT ingest through the real Mosquitto broker: good messages land, bad ones are kept aside with a reason."""

import json
import socket
import threading
import uuid

import pytest

from feature_store.mqtt import MqttIngestor, Quarantine, check_run_options, run_mqtt, topic_regex
from feature_store.store import FeatureStore
from serving import tenancy
from tests.conftest import require_service
from tests.feature_store.conftest import REC, STATS

BROKER = "mqtt://127.0.0.1:1883"


def broker_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def need_broker():
    require_service(None if broker_up() else "Mosquitto not reachable at 127.0.0.1:1883")


def test_mqtt_ingest_end_to_end(need_broker, settings, db, online, tmp_path):
    import paho.mqtt.client as mqtt

    tenancy.create_tenant(db, "acme", "C29")
    FeatureStore(settings, db, "acme", online=online).apply(STATS)
    prefix = f"sfai-test-{uuid.uuid4().hex[:8]}"
    stores = {}

    def store_for(t):
        if t not in stores:
            stores[t] = FeatureStore(settings, db, t, online=online)
        return stores[t]

    quarantine = Quarantine(tmp_path / "quarantine")
    ing = MqttIngestor(store_for, quarantine, pattern=prefix + "/{tenant}/{view}", flush_interval_s=0.1)
    ready = threading.Event()
    messages = [
        (f"{prefix}/acme/machine_stats", json.dumps(REC)),
        (f"{prefix}/acme/machine_stats", json.dumps([{**REC, "machine_id": f"m{i}"} for i in range(2, 6)])),
        (f"{prefix}/acme/machine_stats", "{not json"),
        (f"{prefix}/acme/machine_stats", json.dumps({**REC, "temp_mean": "hot"})),
        (f"{prefix}/acme/no_such_view", json.dumps(REC)),
        (f"{prefix}/nobody/machine_stats", json.dumps(REC)),
        (f"{prefix}/acme/machine_stats", json.dumps([1, 2])),
        (f"{prefix}/acme/machine_stats", json.dumps({**REC, "machine_id": "m9"})),
        (f"{prefix}/acme/machine_stats", "[" * 5000 + "]" * 5000),  # quarantined, not the subscriber's end
    ]
    result = {}
    t = threading.Thread(
        target=lambda: result.update(
            stats=run_mqtt(ing, BROKER, max_messages=len(messages), duration_s=30, on_ready=ready.set)
        )
    )
    t.start()
    assert ready.wait(15), "subscriber did not start"
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", 1883)
    pub.loop_start()
    for topic, payload in messages:
        pub.publish(topic, payload, qos=1).wait_for_publish(5)
    pub.loop_stop()
    pub.disconnect()
    t.join(40)
    stats = result["stats"]
    assert stats.received == len(messages)
    assert stats.rows_written == 6 and stats.bad == 6
    assert stats.reasons == {"json": 3, "validation": 1, "view": 1, "tenant": 1}
    fs = store_for("acme")
    assert fs.offline.row_count("acme", "machine_stats") == 6
    got = fs.get_online_features("machine_stats", ["m1", "m5", "m9"], ["temp_mean"])
    assert [g["temp_mean"] for g in got] == [70.5, 70.5, 70.5]
    kept = [json.loads(line) for f in (tmp_path / "quarantine").glob("*.jsonl") for line in f.read_text().splitlines()]
    assert len(kept) == 6 and all(k["reason"] and k["topic"].startswith(prefix) for k in kept)
    assert any("'temp_mean'" in k["reason"] for k in kept) and any(k["payload"] == "{not json" for k in kept)
    assert any("nested too deeply" in k["reason"] for k in kept)


def test_topic_pattern_needs_tenant_and_view():
    with pytest.raises(ValueError, match="tenant"):
        MqttIngestor(lambda t: None, None, pattern="factory/{view}")


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("a/{tenant}x/{view}", "whole topic level"),  # was a paho traceback in its thread, then a timeout
        ("{tenant}/{tenant}/{view}", "more than once"),  # was "error: error: redefinition of group name"
        ("{tenant}/{view}/{view}", "more than once"),
        ("f/{tenants}/{view}", "whole topic level"),
        ("f/{tenant}/{view}/a+b", "must be a whole topic level"),
        ("f/#/{tenant}/{view}", "only be the last level"),
        ("f/{tenant}", "missing {view}"),
        ("", "empty"),
        ("f\0/{tenant}/{view}", "NUL"),
        ("x" * 70_000 + "/{tenant}/{view}", "longer than 65535 bytes"),
    ],
)
def test_topic_pattern_is_refused_up_front(pattern, why):
    with pytest.raises(ValueError, match=why) as e:
        topic_regex(pattern)
    assert len(str(e.value)) < 300


def test_topic_pattern_wildcards_follow_mqtt():
    sub, rx = topic_regex("site/+/{tenant}/{view}/#")
    assert sub == "site/+/+/+/#"
    assert rx.match("site/line1/acme/machine_stats").groupdict() == {"tenant": "acme", "view": "machine_stats"}
    assert rx.match("site/line1/acme/machine_stats/extra/levels")["view"] == "machine_stats"
    assert rx.match("site/line1/acme") is None
    sub, rx = topic_regex("a(b)/x.y/{view}/{tenant}")  # regex characters are literal text
    assert sub == "a(b)/x.y/+/+" and rx.match("a(b)/x.y/v/t")["tenant"] == "t" and not rx.match("ab/xzy/v/t")


@pytest.mark.parametrize(
    ("options", "why"),
    [
        ({"broker": ""}, "empty"),
        ({"broker": "mqtt://"}, "names no host"),  # used to connect to 127.0.0.1 silently
        ({"broker": "mqtt://:1883"}, "names no host"),
        ({"broker": "mqtt://h:0"}, "port"),
        ({"broker": "mqtt://h:99999"}, "port"),
        ({"broker": "mqtt://h/topic"}, "no path"),
        ({"client_id": "c" * 70_000}, "at most 256"),  # was struct.error "'H' format requires 0 <= number"
        ({"duration_s": float("nan")}, "finite"),  # ran forever
        ({"duration_s": -1.0}, "above 0"),
        ({"duration_s": float("inf")}, "finite"),
        ({"max_messages": -5}, "at least 1"),
    ],
)
def test_run_options_are_refused_before_connecting(options, why):
    options = {"broker": "mqtt://127.0.0.1:1", **options}  # nothing listens there: no connection is tried
    with pytest.raises(ValueError, match=why):
        check_run_options(**options)
    broker = options.pop("broker")
    ing = MqttIngestor(lambda t: None, None)
    with pytest.raises(ValueError, match=why):
        run_mqtt(ing, broker, **options)


def test_wildcard_pattern_end_to_end(need_broker, settings, db, tmp_path):
    """'+' and a trailing '#' subscribe as MQTT means them; tenant and view still come from their levels."""
    import paho.mqtt.client as mqtt

    from feature_store.online import open_online_store

    tenancy.create_tenant(db, "acme", "C29")
    online = open_online_store("sqlite", tmp_path)
    fs = FeatureStore(settings, db, "acme", online=online)
    fs.apply(STATS)
    prefix = f"sfai-test-{uuid.uuid4().hex[:8]}"
    ing = MqttIngestor(lambda t: fs, Quarantine(tmp_path / "q"), pattern=prefix + "/+/{tenant}/{view}/#",
                       flush_interval_s=0.1)
    ready = threading.Event()
    result = {}
    client_id = f"sfai-t-{uuid.uuid4().hex[:8]}"
    t = threading.Thread(target=lambda: result.update(stats=run_mqtt(
        ing, BROKER, max_messages=2, duration_s=20, on_ready=ready.set, client_id=client_id)))
    t.start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    try:
        assert ready.wait(15), "subscriber did not start"
        pub.connect("127.0.0.1", 1883)
        pub.loop_start()
        pub.publish(f"{prefix}/line1/acme/machine_stats", json.dumps(REC), qos=1).wait_for_publish(5)
        pub.publish(f"{prefix}/line2/acme/machine_stats/cell/7", json.dumps({**REC, "machine_id": "m2"}),
                    qos=1).wait_for_publish(5)
        t.join(30)
    finally:
        pub.loop_stop()
        pub.disconnect()
        online.close()
        cleaner = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        cleaner.connect("127.0.0.1", 1883)  # drop the persistent session from the broker
        cleaner.disconnect()
    stats = result["stats"]
    assert (stats.received, stats.rows_written, stats.bad) == (2, 2, 0), stats


def test_broker_outage_loses_no_message(need_broker, settings, db, tmp_path):
    """The link to the broker is cut while machines keep publishing, then restored: the subscriber reconnects by
    itself and its persistent session delivers what was published meanwhile. Every message becomes a row."""
    import time

    import paho.mqtt.client as mqtt

    from feature_store.online import open_online_store
    from tests.serving.proxy import ToggleProxy

    tenancy.create_tenant(db, "acme", "C29")
    online = open_online_store("sqlite", tmp_path)
    fs = FeatureStore(settings, db, "acme", online=online)
    fs.apply(STATS)
    prefix = f"sfai-test-{uuid.uuid4().hex[:8]}"
    client_id = f"sfai-t-{uuid.uuid4().hex[:8]}"
    ing = MqttIngestor(lambda t: fs, Quarantine(tmp_path / "q"), pattern=prefix + "/{tenant}/{view}",
                       flush_interval_s=0.1)
    proxy = ToggleProxy(1883).start()
    ready = threading.Event()
    result = {}
    t = threading.Thread(target=lambda: result.update(stats=run_mqtt(
        ing, f"mqtt://127.0.0.1:{proxy.port}", max_messages=15, duration_s=60, on_ready=ready.set,
        client_id=client_id)))
    t.start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    try:
        assert ready.wait(15), "subscriber did not start"
        pub.connect("127.0.0.1", 1883)  # the machines publish straight to the broker
        pub.loop_start()

        def publish(batch: str) -> None:
            for i in range(5):
                rec = {**REC, "machine_id": f"{batch}{i}"}
                pub.publish(f"{prefix}/acme/machine_stats", json.dumps(rec), qos=1).wait_for_publish(5)

        publish("a")
        deadline = time.monotonic() + 10
        while ing.stats.received < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        proxy.stop()  # the subscriber's link to the broker goes down
        publish("b")  # ... while the machines go on publishing
        time.sleep(0.5)
        proxy.start()
        publish("c")
        t.join(60)
    finally:
        proxy.stop()
        pub.loop_stop()
        pub.disconnect()
        cleaner = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        cleaner.connect("127.0.0.1", 1883)  # drop the persistent session from the broker
        cleaner.disconnect()
    stats = result["stats"]
    assert stats.received >= 15 and stats.bad == 0, stats
    assert fs.offline.row_count("acme", "machine_stats") >= 15
    ids = [f"{b}{i}" for b in "abc" for i in range(5)]
    got = fs.get_online_features("machine_stats", ids, ["temp_mean"])
    assert all(g["temp_mean"] == 70.5 for g in got), got
    online.close()
