"""MQTT ingest: ``factory/{tenant}/{view}`` messages into the feature store, offline and online.

A message is one JSON object (a row of the view) or a JSON array of them. Messages are buffered and written
per (tenant, view) in batches. A message that cannot be ingested (not JSON, unknown tenant or view, a row that
fails validation) is counted and kept aside with the reason in
``$SFAI_HOME/quarantine/mqtt-YYYY-MM-DD.jsonl``; the subscriber never stops for it. A batch holding bad messages
is split in halves until they are found, so that the good ones are still written a few large batches at a time
(writing each message alone, one Parquet file each, left the subscriber far behind a busy broker, which then
dropped messages).

Who may publish to ``factory/<tenant>/...`` is the broker's business (its ACLs): SFAI trusts the topic.
"""

from __future__ import annotations

import base64
import json
import logging
import math
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


TOPIC_MAX_BYTES = 65535  # MQTT: a topic is a UTF-8 string of at most 65,535 bytes
CLIENT_ID_MAX_BYTES = 256  # MQTT allows 65,535 bytes; brokers commonly cap far lower, and so do we
_PLACEHOLDERS = ("tenant", "view")


def _utf8(text: str, what: str) -> bytes:
    """``text`` as MQTT's UTF-8 (no NUL character), or ``ValueError`` naming ``what``."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid UTF-8") from None
    if b"\0" in data:
        raise ValueError(f"{what} must not contain a NUL character")
    return data


def topic_regex(pattern: str) -> tuple[str, re.Pattern]:
    """``factory/{tenant}/{view}`` -> (``factory/+/+``, a regex capturing tenant and view).

    ``{tenant}`` and ``{view}`` must each appear exactly once, each as a whole topic level. Other levels are
    literal text, or MQTT wildcards: ``+`` (any one level) and, as the last level only, ``#`` (any levels)."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("topic pattern is empty: use e.g. 'factory/{tenant}/{view}'")
    shown = pattern if len(pattern) <= 80 else pattern[:80] + "..."
    if len(_utf8(pattern, f"topic pattern {shown!r}")) > TOPIC_MAX_BYTES:
        raise ValueError(f"topic pattern {shown!r} is longer than {TOPIC_MAX_BYTES} bytes")
    levels = pattern.split("/")
    seen = dict.fromkeys(_PLACEHOLDERS, 0)
    subscribe, rx = [], []
    for i, level in enumerate(levels):
        if level in ("{tenant}", "{view}"):
            key = level[1:-1]
            seen[key] += 1
            if seen[key] > 1:
                raise ValueError(f"topic pattern {shown!r} has {level} more than once")
            subscribe.append("+")
            rx.append(f"/(?P<{key}>[^/]+)")
        elif "{" in level or "}" in level:
            raise ValueError(
                f"topic pattern {shown!r}: level {level!r} is not allowed; {{tenant}} and {{view}} must each be "
                "a whole topic level (between '/'), and there are no other placeholders"
            )
        elif level == "+":
            subscribe.append("+")
            rx.append("/[^/]*")
        elif level == "#":
            if i != len(levels) - 1:
                raise ValueError(f"topic pattern {shown!r}: the MQTT wildcard '#' may only be the last level")
            subscribe.append("#")
            rx.append("(?:/.*)?")  # '#' also matches its parent level
        elif "+" in level or "#" in level:
            raise ValueError(
                f"topic pattern {shown!r}: the MQTT wildcards '+' and '#' must be a whole topic level, "
                f"not part of {level!r}"
            )
        else:
            subscribe.append(level)
            rx.append("/" + re.escape(level))
    missing = [f"{{{k}}}" for k, n in seen.items() if n == 0]
    if missing:
        raise ValueError(f"topic pattern {shown!r} must contain {{tenant}} and {{view}} (missing {', '.join(missing)})")
    # every part but '#' (never the first level here) starts with its '/' separator
    return "/".join(subscribe), re.compile("^" + "".join(rx)[1:] + "$", re.S)


def parse_broker(broker: str) -> tuple[str, int, object]:
    """``mqtt://[user:password@]host[:port]`` (also ``tcp://``, ``mqtts://``, or a bare ``host:port``) ->
    (host, port, the parsed URL); ``ValueError`` for a URL without a host, a bad port or a path."""
    text = (broker or "").strip()
    if not text:
        raise ValueError("broker URL is empty: use mqtt://host:port")
    url = urlparse(text if "://" in text else f"mqtt://{text}")
    if url.scheme not in ("mqtt", "tcp", "mqtts"):
        raise ValueError(f"broker URL {broker!r}: use mqtt://host:port")
    try:
        port = url.port
    except ValueError:
        raise ValueError(f"broker URL {broker!r}: the port must be a number from 1 to 65535") from None
    if not url.hostname:
        raise ValueError(f"broker URL {broker!r} names no host: use mqtt://host:port")
    if port == 0:
        raise ValueError(f"broker URL {broker!r}: the port must be a number from 1 to 65535")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise ValueError(f"broker URL {broker!r}: expected mqtt://host:port, with no path or query")
    return url.hostname, port or (8883 if url.scheme == "mqtts" else 1883), url


def check_run_options(
    broker: str, *, client_id: str | None = None, duration_s: float | None = None, max_messages: int | None = None
) -> None:
    """Refuse what ``run_mqtt`` cannot honour, before anything connects (``ValueError``, one line)."""
    parse_broker(broker)
    if client_id:
        if len(_utf8(client_id, "the MQTT client id")) > CLIENT_ID_MAX_BYTES:
            raise ValueError(
                f"the MQTT client id is {len(client_id.encode())} bytes long; at most {CLIENT_ID_MAX_BYTES}"
            )
    if duration_s is not None and not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration must be a finite number of seconds above 0, got {duration_s}")
    if max_messages is not None and max_messages < 1:
        raise ValueError(f"max messages must be at least 1, got {max_messages}")


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
        """One line: when, the topic, the payload and why. A payload that is not UTF-8 is kept exactly, in
        ``payload_base64`` instead of ``payload`` (as text its bad bytes would be lost)."""
        now = datetime.now(UTC)
        kept = {"received_at": now.isoformat(), "topic": topic}
        try:
            kept["payload"] = payload.decode("utf-8")
        except UnicodeDecodeError:
            kept["payload_base64"] = base64.b64encode(payload).decode("ascii")
        kept["reason"] = reason
        line = json.dumps(kept, ensure_ascii=False)
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
        try:
            self.quarantine.put(topic, payload, reason)
        except (OSError, ValueError) as e:  # a full disk: say so, and go on with the next message
            log.error("MQTT message on %r (%d bytes) could not be kept aside (%s): %s", topic, len(payload), e, reason)

    def _parse(self, topic: str, payload: bytes) -> tuple[str, str, list[dict]] | None:
        m = self._rx.match(topic)
        if not m:
            self._bad(topic, payload, f"topic: {topic!r} does not match the subscription pattern")
            return None
        try:
            body = parse_json(payload, "the message", unique_keys=True)
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
        except Exception as e:  # noqa: BLE001 - e.g. the metadata database is away: keep the batch, go on
            log.exception("MQTT batch for %s/%s: cannot open the tenant's feature store", tenant, view)
            for topic, payload, _ in msgs:
                self._bad(topic, payload, f"storage: {e}")
            return
        self._write_part(store, tenant, view, msgs)

    def _write_part(self, store, tenant: str, view: str, msgs: list[tuple[str, bytes, list[dict]]]) -> None:  # noqa: ANN001
        """Write ``msgs`` as one batch; if one of them is bad, each half the same way (in order, so that of two rows
        with the same entity and time the later message's is written last), down to the bad message itself."""
        rows = [r for _, _, recs in msgs for r in recs]
        try:
            store.ingest(view, rows)
            self.stats.rows_written += len(rows)
            self.stats.batches += 1
            return
        except SfaiError as e:
            if e.status == 404 or len(msgs) == 1:  # no such view (for every message here), or the bad message
                for topic, payload, _ in msgs:
                    self._bad(topic, payload, f"{'view' if e.status == 404 else 'validation'}: {e.message}")
                return
        except Exception as e:  # noqa: BLE001 - a storage failure must not stop the subscriber
            log.exception("MQTT batch for %s/%s failed", tenant, view)
            for topic, payload, _ in msgs:
                self._bad(topic, payload, f"storage: {e}")
            return
        half = len(msgs) // 2
        self._write_part(store, tenant, view, msgs[:half])
        self._write_part(store, tenant, view, msgs[half:])


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

    check_run_options(broker, client_id=client_id, duration_s=duration_s, max_messages=max_messages)
    host, port, url = parse_broker(broker)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "", clean_session=not client_id)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    if url.username:
        client.username_pw_set(url.username, url.password)
    if url.scheme == "mqtts":
        client.tls_set()
    subscribed = threading.Event()
    refused: list[str] = []  # why the broker refused the connection or the subscription (first answer)

    def on_connect(c, _userdata, _flags, reason_code, _props):  # noqa: ANN001
        if reason_code.is_failure:
            log.error("MQTT connect refused: %s", reason_code)
            if not subscribed.is_set():
                refused.append(f"refused the connection ({reason_code})")
                subscribed.set()
            return
        try:
            c.subscribe(ingestor.subscribe_topic, qos=1)  # again after every reconnect
        except Exception as e:  # noqa: BLE001 - in paho's thread: report it, do not print a traceback
            log.error("MQTT subscribe to %r failed: %s", ingestor.subscribe_topic, e)
            if not subscribed.is_set():
                refused.append(f"refused the subscription to {ingestor.subscribe_topic!r} ({e})")
                subscribed.set()

    def on_disconnect(_c, _userdata, _flags, reason_code, _props):  # noqa: ANN001
        if reason_code.is_failure:
            log.warning("MQTT broker connection lost (%s); reconnecting", reason_code)

    def on_subscribe(_c, _userdata, _mid, reason_codes, _props):  # noqa: ANN001
        bad = [str(rc) for rc in reason_codes if getattr(rc, "is_failure", False)]
        if bad:
            log.error("MQTT subscription to %r refused: %s", ingestor.subscribe_topic, ", ".join(bad))
        if not subscribed.is_set():
            if bad:
                refused.append(f"refused the subscription to {ingestor.subscribe_topic!r} ({', '.join(bad)})")
            subscribed.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_subscribe = on_subscribe
    client.on_message = lambda _c, _u, msg: ingestor.on_message(msg.topic, msg.payload)
    try:
        client.connect(host, port, keepalive=30)
    except OSError as e:
        raise ConnectionError(f"cannot reach the MQTT broker at {broker}: {e}") from None
    client.loop_start()
    try:
        if not subscribed.wait(10):
            raise ConnectionError(f"the MQTT broker at {broker} did not confirm the subscription")
        if refused:
            raise ConnectionError(f"the MQTT broker at {broker} {refused[0]}")
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
