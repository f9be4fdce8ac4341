"""MQTT ingest through the real Mosquitto broker: good messages land, bad ones are kept aside with a reason."""

import json
import socket
import threading
import uuid

import pytest

from feature_store import FeatureView, Field, entities
from feature_store.mqtt import MqttIngestor, Quarantine, check_run_options, run_mqtt, topic_regex
from feature_store.store import FeatureStore
from serving import tenancy
from tests.conftest import require_service
from tests.feature_store.conftest import REC, STATS

BROKER = "mqtt://127.0.0.1:1883"



def _drop_session(mqtt, client_id: str) -> None:  # noqa: ANN001 - the paho.mqtt.client module
    """Drop a test subscriber's persistent session from the broker (it would keep queueing for it)."""
    cleaner = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    cleaner.connect("127.0.0.1", 1883)
    cleaner.disconnect()

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
        _drop_session(mqtt, client_id)
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
        _drop_session(mqtt, client_id)
    stats = result["stats"]
    assert stats.received >= 15 and stats.bad == 0, stats
    assert fs.offline.row_count("acme", "machine_stats") >= 15
    ids = [f"{b}{i}" for b in "abc" for i in range(5)]
    got = fs.get_online_features("machine_stats", ids, ["temp_mean"])
    assert all(g["temp_mean"] == 70.5 for g in got), got
    online.close()


# ------------------------------------------------------------------------------------------------ hostile messages
# Found by a fuzz pass publishing hostile payloads; these drive the ingestor directly (what the broker hands it).
TOPIC = "factory/acme/machine_stats"


@pytest.fixture
def acme_store(settings, db, tmp_path):
    from feature_store.online import open_online_store

    tenancy.create_tenant(db, "acme", "C29")
    online = open_online_store("sqlite", tmp_path)
    fs = FeatureStore(settings, db, "acme", online=online)
    fs.apply(STATS)
    yield fs
    online.close()


def kept_aside(tmp_path) -> list[dict]:
    return [json.loads(line) for f in (tmp_path / "q").glob("*.jsonl") for line in f.read_text().splitlines()]


def test_a_batch_with_bad_messages_is_split_not_written_message_by_message(acme_store, tmp_path):
    """A bad message in a batch used to make the ingestor write every message of the batch alone: one Parquet file
    and one online write each. Under a burst (3,000 messages, one in 50 bad) the subscriber fell so far behind
    that Mosquitto dropped 1,434 of them. Now the batch is split in halves down to the bad messages."""
    calls = []

    class Counting:
        def ingest(self, view, rows):  # noqa: ANN001, ANN202
            calls.append(len(rows))
            return acme_store.ingest(view, rows)

    ing = MqttIngestor(lambda t: Counting(), Quarantine(tmp_path / "q"))
    for i in range(200):
        rec = {**REC, "machine_id": f"m{i}", "temp_mean": "hot" if i % 50 == 7 else float(i)}
        ing.on_message(TOPIC, json.dumps(rec).encode())
    assert ing.drain() == 200
    assert (ing.stats.rows_written, ing.stats.bad) == (196, 4), ing.stats
    assert len(calls) < 60, len(calls)  # was 201: the batch, then each message alone
    got = acme_store.get_online_features("machine_stats", [f"m{i}" for i in range(200)], ["temp_mean"])
    assert [g["temp_mean"] for g in got] == [None if i % 50 == 7 else float(i) for i in range(200)]
    assert acme_store.offline.row_count("acme", "machine_stats") == 196
    assert sorted(k["reason"] for k in kept_aside(tmp_path)) == ["validation: row 1, column 'temp_mean': 'hot' is "
                                                                "not a valid float32"] * 4


def test_a_failing_store_sets_the_batch_aside_and_the_subscriber_goes_on(acme_store, tmp_path):
    """Opening a tenant's store can fail for reasons other than an unknown tenant (the metadata database is away):
    that used to raise out of ``drain`` and stop the subscriber, losing the messages it had taken."""

    def store_for(tenant):  # noqa: ANN001, ANN202
        if tenant == "down":
            raise RuntimeError("database is locked")
        return acme_store

    ing = MqttIngestor(store_for, Quarantine(tmp_path / "q"))
    ing.on_message("factory/down/machine_stats", json.dumps(REC).encode())
    ing.on_message(TOPIC, json.dumps(REC).encode())
    assert ing.drain() == 2
    assert (ing.stats.rows_written, ing.stats.bad, ing.stats.reasons) == (1, 1, {"storage": 1})
    assert kept_aside(tmp_path)[0]["reason"] == "storage: database is locked"
    assert acme_store.get_online_features("machine_stats", ["m1"])[0]["temp_mean"] == 70.5


def test_a_message_that_cannot_be_kept_aside_does_not_stop_the_subscriber(acme_store, tmp_path, caplog):
    class FullDisk(Quarantine):
        def put(self, topic, payload, reason):  # noqa: ANN001, ANN202
            raise OSError(28, "No space left on device")

    ing = MqttIngestor(lambda t: acme_store, FullDisk(tmp_path / "q"))
    ing.on_message(TOPIC, b"{not json")
    ing.on_message(TOPIC, json.dumps(REC).encode())
    assert ing.drain() == 2
    assert (ing.stats.rows_written, ing.stats.bad) == (1, 1)
    assert "could not be kept aside" in caplog.text and "No space left" in caplog.text


def test_a_payload_that_is_not_utf8_is_kept_aside_byte_for_byte(acme_store, tmp_path):
    """It was kept as text with U+FFFD for the bad bytes: the message could not be recovered from the quarantine."""
    import base64

    payloads = [b'{"machine_id": "m\xff\xfe1"}', b"\x00\x01\x80binary", json.dumps(REC).encode().replace(b'"m1"',
                b'"m\xed\xa0\x801"')]  # the last: a surrogate written into the bytes (not UTF-8)
    ing = MqttIngestor(lambda t: acme_store, Quarantine(tmp_path / "q"))
    for p in payloads:
        ing.on_message(TOPIC, p)
    ing.drain()
    kept = kept_aside(tmp_path)
    assert [base64.b64decode(k["payload_base64"]) for k in kept] == payloads
    assert all("payload" not in k and k["reason"].startswith("json: ") for k in kept), kept
    assert "surrogate" in kept[2]["reason"]  # was "validation: cannot read the input data: 'utf-8' codec can't ..."


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        # json would keep the last of the two values without a word
        (b'{"machine_id": "m1", "machine_id": "m2", "event_timestamp": "2026-03-01T00:00:00Z", "temp_mean": 1, '
         b'"vib_rms": 1, "alarm": false, "mode": "run"}', "json: the message names the key 'machine_id' twice"),
        # stored as the keys "nan" and "inf"
        (json.dumps(REC).replace('"m1"', "NaN").encode(), "row 1, column 'machine_id': nan is not a valid key"),
        (json.dumps(REC).replace('"m1"', "-Infinity").encode(), "row 1, column 'machine_id': -inf is not a valid key"),
        # stored as true
        (json.dumps({**REC, "alarm": 5}).encode(), "row 1, column 'alarm': 5 is not a valid bool"),
        (json.dumps({**REC, "alarm": 0.5}).encode(), "row 1, column 'alarm': 0.5 is not a valid bool"),
        # stored at the time of the ingest
        (json.dumps({**REC, "event_timestamp": "now"}).encode(), "'now' is not a valid timestamp"),
        (json.dumps({**REC, "event_timestamp": "today"}).encode(), "'today' is not a valid timestamp"),
        # named no row ("its values of type string cannot be read as timestamp")
        (json.dumps({**REC, "event_timestamp": "03/01/2026"}).encode(),
         "row 1, column 'event_timestamp': '03/01/2026' is not a valid timestamp"),
        (json.dumps({**REC, "event_timestamp": None}).encode(), "row 1, column 'event_timestamp': missing timestamp"),
        # in an array: the row without 'mode' was stored with mode null (alone, the same row is refused)
        (json.dumps([REC, {k: v for k, v in REC.items() if k != "mode"} | {"machine_id": "m2"}]).encode(),
         "row 2: missing column 'mode'"),
    ],
)
def test_hostile_values_are_set_aside_with_the_reason(acme_store, tmp_path, payload, reason):
    ing = MqttIngestor(lambda t: acme_store, Quarantine(tmp_path / "q"))
    ing.on_message(TOPIC, payload)
    ing.drain()
    assert (ing.stats.rows_written, ing.stats.bad) == (0, 1), ing.stats
    assert reason in kept_aside(tmp_path)[0]["reason"]
    assert acme_store.offline.files("acme", "machine_stats") == []


def test_a_deeply_nested_value_is_refused_at_once(acme_store, tmp_path):
    """A 5 KB message with an object 900 levels deep as a value kept the subscriber busy for 8-10 s (Arrow inferring
    its type), twice when it came in a batch; a stream of them would stall ingestion."""
    import time

    nested = '{"a": ' * 900 + "1" + "}" * 900
    payload = json.dumps(REC).replace('"run"', nested).encode()
    ing = MqttIngestor(lambda t: acme_store, Quarantine(tmp_path / "q"))
    for _ in range(3):
        ing.on_message(TOPIC, payload)
    ing.on_message(TOPIC, json.dumps({**REC, "machine_id": "m2"}).encode())
    t0 = time.monotonic()
    ing.drain()
    assert time.monotonic() - t0 < 2
    assert (ing.stats.rows_written, ing.stats.bad) == (1, 3)
    reason = kept_aside(tmp_path)[0]["reason"]
    assert reason.startswith("validation: row 1, column 'mode': {'a': {'a': {...}}} is not a single value")


def test_a_row_past_the_thousandth_is_checked_like_the_first(acme_store, tmp_path):
    """Messages are written together: a row past the 1,000th of a batch with a misspelt column was stored without
    a word, its value dropped (Arrow takes the columns of the first row); alone the same message is refused."""
    ing = MqttIngestor(lambda t: acme_store, Quarantine(tmp_path / "q"))
    for i in range(600):
        rows = [{**REC, "machine_id": f"m{i}", "event_timestamp": f"2026-03-01T0{h}:00:00Z"} for h in (1, 2)]
        ing.on_message(TOPIC, json.dumps(rows).encode())
    typo = {k: v for k, v in REC.items() if k != "temp_mean"} | {"machine_id": "late", "temp_maen": 99.0}
    ing.on_message(TOPIC, json.dumps(typo).encode())
    assert ing.drain() == 601
    assert (ing.stats.rows_written, ing.stats.bad) == (1200, 1), ing.stats
    assert "unknown column 'temp_maen'" in kept_aside(tmp_path)[0]["reason"]
    assert acme_store.get_online_features("machine_stats", ["late"])[0]["event_timestamp"] is None


def test_odd_but_valid_values_are_stored(acme_store, tmp_path):
    """Fractions finer than a microsecond (OPC UA and .NET write 100 ns: 7 digits) were refused with "its values of
    type string cannot be read as timestamp"; a timestamp feature sent as null was refused when alone."""
    view = FeatureView(name="machine_seen", entity=entities.machine,
                       schema=[Field(name="last_seen", dtype="timestamp"), Field(name="alarm", dtype="bool")])
    acme_store.apply(view)
    ing = MqttIngestor(lambda t: acme_store, Quarantine(tmp_path / "q"))
    topic = "factory/acme/machine_seen"
    for mid, ts, seen, alarm in [("m1", "2026-03-01T00:00:00.1234567Z", None, 1),
                                 ("m2", "2026-03-01T09:00:00.123456789+09:00", "2026-02-28T23:59:59.9999999Z", 0)]:
        ing.on_message(topic, json.dumps({"machine_id": mid, "event_timestamp": ts, "last_seen": seen,
                                          "alarm": alarm}).encode())
        ing.drain()  # one at a time: each alone
    assert (ing.stats.rows_written, ing.stats.bad) == (2, 0), kept_aside(tmp_path)
    got = acme_store.get_online_features("machine_seen", ["m1", "m2"])
    assert got[0] == {"machine_id": "m1", "event_timestamp": "2026-03-01T00:00:00.123456+00:00", "last_seen": None,
                      "alarm": True}
    assert got[1]["event_timestamp"] == "2026-03-01T00:00:00.123456+00:00"
    assert got[1]["last_seen"] == "2026-02-28T23:59:59.999999+00:00" and got[1]["alarm"] is False
