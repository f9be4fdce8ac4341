"""MQTT ingest: ``factory/{tenant}/{view}`` messages into the feature store, offline and online.

A message is one JSON object (a row of the view) or a JSON array of them. Messages are buffered and written
per (tenant, view) in batches. A message that cannot be ingested (not JSON, unknown tenant or view, a row that
fails validation) is counted and kept aside with the reason in
``$SFAI_HOME/quarantine/mqtt-YYYY-MM-DD.jsonl``; the subscriber never stops for it.

Who may publish to ``factory/<tenant>/...`` is the broker's business (its ACLs): SFAI trusts the topic.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from serving.errors import InvalidInput, SfaiError, parse_json

log = logging.getLogger("sfai.mqtt")


def topic_regex(pattern: str) -> tuple[str, re.Pattern]:
    """``factory/{tenant}/{view}`` -> (``factory/+/+``, a regex capturing tenant and view)."""
    if "{tenant}" not in pattern or "{view}" not in pattern:
        raise ValueError(f"topic pattern {pattern!r} must contain {{tenant}} and {{view}}")
    subscribe = pattern.replace("{tenant}", "+").replace("{view}", "+")
    rx = re.escape(pattern).replace(r"\{tenant\}", r"(?P<tenant>[^/]+)").replace(r"\{view\}", r"(?P<view>[^/]+)")
    return subscribe, re.compile("^" + rx + "$")


@dataclass
class IngestStats:
    received: int = 0
    rows_written: int = 0
    batches: int = 0
    bad: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "received": self.received,
            "rows_written": self.rows_written,
            "batches": self.batches,
            "bad": self.bad,
            "reasons": dict(self.reasons),
        }


class Quarantine:
    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def put(self, topic: str, payload: bytes, reason: str) -> None:
        now = datetime.now(UTC)
        line = json.dumps(
            {
                "received_at": now.isoformat(),
                "topic": topic,
                "payload": payload.decode("utf-8", errors="replace"),
                "reason": reason,
            },
            ensure_ascii=False,
        )
        with self._lock, open(self.dir / f"mqtt-{now:%Y-%m-%d}.jsonl", "a", encoding="utf-8") as f:
            f.write(line + "\n")


class MqttIngestor:
    """Routes messages to ``store_for(tenant).ingest(view, records)``; testable without a broker."""

    def __init__(
        self,
        store_for: Callable[[str], object],
        quarantine: Quarantine,
        *,
        pattern: str = "factory/{tenant}/{view}",
        batch_size: int = 1000,
        flush_interval_s: float = 0.5,
    ) -> None:
        self.store_for = store_for
        self.quarantine = quarantine
        self.subscribe_topic, self._rx = topic_regex(pattern)
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.stats = IngestStats()
        self._q: queue.SimpleQueue = queue.SimpleQueue()

    # called from the MQTT network thread: cheap, never raises
    def on_message(self, topic: str, payload: bytes) -> None:
        self._q.put((topic, payload))

    def _bad(self, topic: str, payload: bytes, reason: str) -> None:
        self.stats.bad += 1
        kind = reason.split(":", 1)[0]
        self.stats.reasons[kind] = self.stats.reasons.get(kind, 0) + 1
        self.quarantine.put(topic, payload, reason)

    def _parse(self, topic: str, payload: bytes) -> tuple[str, str, list[dict]] | None:
        m = self._rx.match(topic)
        if not m:
            self._bad(topic, payload, f"topic: {topic!r} does not match the subscription pattern")
            return None
        try:
            body = parse_json(payload, "the message")
        except InvalidInput as e:
            self._bad(topic, payload, f"json: {e.message}")
            return None
        records = body if isinstance(body, list) else [body]
        if not records or not all(isinstance(r, dict) for r in records):
            self._bad(topic, payload, "json: expected an object or a non-empty array of objects")
            return None
        return m["tenant"], m["view"], records

    def drain(self, max_wait_s: float | None = None) -> int:
        """Take what arrived (waiting up to ``max_wait_s`` for the first message) and write it."""
        groups: dict[tuple[str, str], list[tuple[str, bytes, list[dict]]]] = {}
        n = 0
        try:
            item = self._q.get(timeout=max_wait_s) if max_wait_s else self._q.get_nowait()
        except queue.Empty:
            return 0
        while True:
            topic, payload = item
            self.stats.received += 1
            n += 1
            parsed = self._parse(topic, payload)
            if parsed:
                groups.setdefault(parsed[:2], []).append((topic, payload, parsed[2]))
            if n >= self.batch_size:
                break
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                break
        for (tenant, view), msgs in groups.items():
            self._write(tenant, view, msgs)
        return n

    def _write(self, tenant: str, view: str, msgs: list[tuple[str, bytes, list[dict]]]) -> None:
        try:
            store = self.store_for(tenant)
        except SfaiError as e:
            for topic, payload, _ in msgs:
                self._bad(topic, payload, f"tenant: {e.message}")
            return
        rows = [r for _, _, recs in msgs for r in recs]
        try:
            store.ingest(view, rows)
            self.stats.rows_written += len(rows)
            self.stats.batches += 1
            return
        except SfaiError:
            pass
        except Exception as e:  # noqa: BLE001 - a storage failure must not stop the subscriber
            log.exception("MQTT batch for %s/%s failed", tenant, view)
            for topic, payload, _ in msgs:
                self._bad(topic, payload, f"storage: {e}")
            return
        # the batch had a bad message: write message by message, keeping the bad ones aside
        for topic, payload, recs in msgs:
            try:
                store.ingest(view, recs)
                self.stats.rows_written += len(recs)
                self.stats.batches += 1
            except SfaiError as e:
                self._bad(topic, payload, f"{'view' if e.status == 404 else 'validation'}: {e.message}")
            except Exception as e:  # noqa: BLE001
                self._bad(topic, payload, f"storage: {e}")


def run_mqtt(
    ingestor: MqttIngestor,
    broker: str,
    *,
    duration_s: float | None = None,
    max_messages: int | None = None,
    on_progress: Callable[[IngestStats], None] | None = None,
    on_ready: Callable[[], None] | None = None,
    client_id: str | None = None,
) -> IngestStats:
    """Subscribe and ingest until interrupted, ``duration_s`` passes, or ``max_messages`` arrived.

    With a ``client_id`` the broker keeps a persistent session (QoS 1): messages published while this subscriber
    is cut off from the broker are queued there and delivered when it reconnects (paho reconnects by itself,
    within 1-30 s), so an outage between the two loses nothing. Without one, the session is clean."""
    import paho.mqtt.client as mqtt

    url = urlparse(broker if "://" in broker else f"mqtt://{broker}")
    if url.scheme not in ("mqtt", "tcp", "mqtts"):
        raise ValueError(f"broker URL {broker!r}: use mqtt://host:port")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "", clean_session=not client_id)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    if url.username:
        client.username_pw_set(url.username, url.password)
    if url.scheme == "mqtts":
        client.tls_set()
    subscribed = threading.Event()

    def on_connect(c, _userdata, _flags, reason_code, _props):  # noqa: ANN001
        if reason_code.is_failure:
            log.error("MQTT connect refused: %s", reason_code)
            return
        c.subscribe(ingestor.subscribe_topic, qos=1)  # again after every reconnect

    def on_disconnect(_c, _userdata, _flags, reason_code, _props):  # noqa: ANN001
        if reason_code.is_failure:
            log.warning("MQTT broker connection lost (%s); reconnecting", reason_code)

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_message = lambda _c, _u, msg: ingestor.on_message(msg.topic, msg.payload)
    try:
        client.connect(url.hostname or "127.0.0.1", url.port or (8883 if url.scheme == "mqtts" else 1883), keepalive=30)
    except OSError as e:
        raise ConnectionError(f"cannot reach the MQTT broker at {broker}: {e}") from None
    client.loop_start()
    try:
        if not subscribed.wait(10):
            raise ConnectionError(f"the MQTT broker at {broker} did not confirm the subscription")
        if on_ready:
            on_ready()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while True:
            ingestor.drain(max_wait_s=ingestor.flush_interval_s)
            if on_progress:
                on_progress(ingestor.stats)
            if max_messages is not None and ingestor.stats.received >= max_messages:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
        while ingestor.drain():  # what is still queued
            pass
    finally:
        client.loop_stop()
        client.disconnect()
    return ingestor.stats
