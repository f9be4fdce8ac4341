"""MQTT ingest: ``factory/{tenant}/{view}`` messages into the feature store, offline and online.

A message is one JSON object (a row of the view) or a JSON array of them. Messages are buffered and written
per (tenant, view) in batches. A message that cannot be ingested (not JSON, unknown tenant or view, a row that
fails validation) is counted and kept aside with the reason in
``$SFAI_HOME/quarantine/mqtt-YYYY-MM-DD.jsonl``; the subscriber never stops for it. A batch holding bad messages
is split in halves until they are found, so that the good ones are still written a few large batches at a time
(writing each message alone, one Parquet file each, left the subscriber far behind a busy broker, which then
dropped messages).

Delivery is at least once: QoS 1 over MQTT 5 (or 3.1.1, for brokers without 5), each message acknowledged only once
it is written or kept aside, and the broker asked (MQTT 5's Receive Maximum; with 3.1.1 its own in-flight window) to
send no more unacknowledged messages than the subscriber holds in memory. A
message held when the subscriber stops or dies is the broker's still, and comes again. Oversized messages (bytes or
records) are kept aside as ``size``.

Who may publish to ``factory/<tenant>/...`` is the broker's business (its ACLs): SFAI trusts the topic.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import logging
import math
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from serving.errors import InvalidInput, SfaiError, parse_json
from serving.tenancy import utc_text

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


PROTOCOLS = ("5", "3.1.1")  # MQTT versions the subscriber speaks (5 unless the broker has only 3.1.1)
UNMATCHED = "_unmatched"  # the error topic's level for a message whose topic names no tenant and view
# reject notices that may wait in memory while the broker is away (publish answers "queue full" beyond it)
MAX_QUEUED_NOTICES = 10_000


def error_topics(error_topic: str, where: tuple[str, str] | None) -> str:
    """Where the notice for a message kept aside goes: ``<error_topic>/<tenant>/<view>``, or
    ``<error_topic>/_unmatched`` when its topic names no tenant and view (so a broker ACL can give each tenant its
    own notices, and only its own)."""
    return f"{error_topic}/{where[0]}/{where[1]}" if where else f"{error_topic}/{UNMATCHED}"


def check_error_topic(error_topic: str, subscribe_topic: str) -> None:
    """``ValueError`` (one line) for an error topic that cannot be published to, or whose notices the subscription
    itself would take in again (each would be kept aside and noticed again, without end)."""
    from paho.mqtt.client import topic_matches_sub

    if not error_topic:
        raise ValueError("the error topic is empty: use e.g. 'sfai/errors'")
    shown = error_topic if len(error_topic) <= 80 else error_topic[:80] + "..."
    if len(_utf8(error_topic, f"error topic {shown!r}")) > TOPIC_MAX_BYTES // 2:
        raise ValueError(f"error topic {shown!r} is longer than {TOPIC_MAX_BYTES // 2} bytes")
    if "+" in error_topic or "#" in error_topic or error_topic.startswith("$") or error_topic.endswith("/"):
        raise ValueError(f"error topic {shown!r} must be a plain topic: no '+' or '#', no leading '$', no trailing '/'")
    for probe in (error_topics(error_topic, ("tenant", "view")), error_topics(error_topic, None)):
        if topic_matches_sub(subscribe_topic, probe):
            raise ValueError(f"error topic {shown!r}: its notices ({probe}) would match the subscription "
                             f"{subscribe_topic!r} and be ingested again; choose a topic outside it, "
                             "e.g. 'sfai/errors'")


def check_run_options(
    broker: str, *, client_id: str | None = None, duration_s: float | None = None, max_messages: int | None = None,
    protocol: str = "5",
) -> None:
    """Refuse what ``run_mqtt`` cannot honour, before anything connects (``ValueError``, one line)."""
    parse_broker(broker)
    if protocol not in PROTOCOLS:
        raise ValueError(f"the MQTT version must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
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
    duplicates: int = 0  # rows not stored again: the same as a row of an earlier message in the batch
    online_failed: int = 0  # rows stored offline whose online write failed (``sfai features materialize`` loads them)
    notices: int = 0  # reject notices published on the error topic
    notices_dropped: int = 0  # reject notices not published (no connection and a full outgoing queue)
    # per (tenant, view): rows written and when the last of them was (the metrics' "has this line stopped sending")
    view_rows: dict[tuple[str, str], int] = field(default_factory=dict)
    view_last_write: dict[tuple[str, str], float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "received": self.received,
            "rows_written": self.rows_written,
            "batches": self.batches,
            "bad": self.bad,
            "reasons": dict(self.reasons),
            "duplicates": self.duplicates,
            "online_failed": self.online_failed,
            **({"notices": self.notices, "notices_dropped": self.notices_dropped}
               if self.notices or self.notices_dropped else {}),
        }


# What one message may hold. The REST API reads bodies of up to 100 MiB and 100,000 records; a sensor message is a
# few hundred bytes, and a gateway's batch a few thousand rows. One message of 48 MB (300,000 rows) was stored, and
# held the subscriber (and every message behind it) for its whole parse and write. Larger messages are set aside.
MAX_PAYLOAD_BYTES = 10 * 2**20
MAX_RECORDS = 100_000
# An oversized payload is kept aside by its first bytes, its size and its SHA-256: enough to find the sender, without
# a device that repeats a 50 MB message filling the disk with copies.
QUARANTINE_HEAD_BYTES = 64 * 2**10
# What the broker may have handed over and not yet had acknowledged (the MQTT 5 Receive Maximum the subscriber asks
# for), and the payload bytes it may hold in memory meanwhile: a writer that falls behind makes the broker hold the
# rest (up to its own max_queued_messages) instead of this process growing without bound.
MAX_PENDING_BYTES = 256 * 2**20
RECEIVE_MAXIMUM_LIMIT = 65_535  # MQTT 5: a two-byte integer


def default_client_id() -> str:
    """``sfai-ingest-`` and 10 hex digits of the host name's SHA-256 (22 characters): the same on every start on one
    host, so that its persistent session is found again, and within the 23 characters every MQTT 3.1.1 broker must
    accept. The host name cut to 23 characters made ``sfai-ingest-plant-line-`` of ``plant-line-1`` and
    ``plant-line-2``: two subscribers that took the session from each other."""
    digest = hashlib.sha256(socket.gethostname().encode("utf-8", "surrogatepass")).hexdigest()
    return f"sfai-ingest-{digest[:10]}"


class Quarantine:
    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def put(
        self, topic: str, payload: bytes, reason: str, *, size: int | None = None, sha256: str | None = None
    ) -> None:
        """One line: when, the topic, the payload and why. A payload that is not UTF-8 is kept exactly, in
        ``payload_base64`` instead of ``payload`` (as text its bad bytes would be lost). ``size``: ``payload`` is the
        first bytes of a message of that many bytes (``payload_bytes``, ``payload_sha256``; ``payload_truncated``)."""
        now = datetime.now(UTC)
        kept = {"received_at": utc_text(now), "topic": topic}
        try:
            kept["payload"] = payload.decode("utf-8")
        except UnicodeDecodeError as e:
            if size is not None and e.start >= len(payload) - 3:  # cut inside a character at the end of the head
                kept["payload"] = payload[: e.start].decode("utf-8", "replace")
            else:
                kept["payload_base64"] = base64.b64encode(payload).decode("ascii")
        if size is not None:
            kept.update(payload_truncated=True, payload_bytes=size, payload_sha256=sha256)
        kept["reason"] = reason
        line = json.dumps(kept, ensure_ascii=False)
        with self._lock, open(self.dir / f"mqtt-{now:%Y-%m-%d}.jsonl", "a", encoding="utf-8") as f:
            f.write(line + "\n")


@dataclass(slots=True, eq=False)
class _Msg:
    """A message taken from the broker, until it is written or kept aside and then acknowledged."""

    topic: str
    payload: bytes  # the first QUARANTINE_HEAD_BYTES of an oversized one
    ack: Callable[[], object] | None  # sends the PUBACK (None: QoS 0, or no broker)
    size: int  # the payload's size as received
    sha256: str | None = None  # an oversized payload's
    records: list[dict] | None = None
    done: bool = False  # written or kept aside: may be acknowledged


class _Pending:
    """Messages handed over by the network thread, bounded in count and payload bytes: ``put`` waits while it is
    full (one message is always let in when nothing is queued), so that a writer that falls behind holds the network
    thread instead of this process's memory growing; with the Receive Maximum it asked for, the broker does not send
    more than ``max_messages`` unacknowledged ones in the first place."""

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        self.max_messages, self.max_bytes = max_messages, max_bytes
        self._items: collections.deque[_Msg] = collections.deque()
        self._bytes = 0
        self._cond = threading.Condition()
        self.closed = False

    def put(self, msg: _Msg) -> bool:
        """False once closed (the message is not acknowledged: the broker sends it again)."""
        size = len(msg.payload)
        with self._cond:
            while self._items and (len(self._items) >= self.max_messages or self._bytes + size > self.max_bytes):
                if self.closed:
                    return False
                self._cond.wait(0.2)
            if self.closed:
                return False
            self._items.append(msg)
            self._bytes += size
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> _Msg | None:
        """The oldest message, waiting up to ``timeout`` seconds (None: not at all) for one."""
        with self._cond:
            if not self._items and timeout:
                self._cond.wait_for(lambda: self._items, timeout)
            if not self._items:
                return None
            msg = self._items.popleft()
            self._bytes -= len(msg.payload)
            self._cond.notify_all()
            return msg

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)


def _row_key(row: dict) -> tuple | None:
    """A row's identity for dropping exact repeats: every column, value and the value's type (``1``, ``1.0`` and
    ``true`` differ); None for a row holding a list or an object (refused by validation anyway)."""
    try:
        key = tuple(sorted((k, type(v).__name__, v) for k, v in row.items()))
        hash(key)
    except TypeError:
        return None
    return key


class MqttIngestor:
    """Routes messages to ``store_for(tenant).ingest(view, records)``; testable without a broker.

    A message is acknowledged (``ack``, given with it to ``on_message``) only once it is written or kept aside:
    what the subscriber holds when it stops, or dies, is still the broker's and comes again (QoS 1: at least once).
    Messages are written ``batch_size`` at a time, or what arrived within ``flush_interval_s`` of the first one,
    so that a steady stream makes few large Parquet files and no message waits longer than that."""

    def __init__(
        self,
        store_for: Callable[[str], object],
        quarantine: Quarantine,
        *,
        pattern: str = "factory/{tenant}/{view}",
        batch_size: int = 1000,
        flush_interval_s: float = 0.5,
        max_pending: int | None = None,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        max_records: int = MAX_RECORDS,
    ) -> None:
        self.store_for = store_for
        self.quarantine = quarantine
        self.subscribe_topic, self._rx = topic_regex(pattern)
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        # what arrives while batches are written: the broker holds the rest, up to its max_queued_messages (1,000 by
        # default), and drops what is past it. Of a 20,000-message burst on a default Mosquitto a window of two
        # batches lost 9,744, one of ten none (5,350 to 5,827 when paho acknowledged at once); memory stays bounded
        # by max_pending_bytes
        self.max_pending = min(max_pending or max(10 * batch_size, 1000), RECEIVE_MAXIMUM_LIMIT)
        self.max_payload_bytes = max_payload_bytes
        self.max_records = max_records
        self.stats = IngestStats()
        self._q = _Pending(self.max_pending, max(max_pending_bytes, 1))
        # called with (tenant and view or None, notice) for each message kept aside (``run_mqtt``'s error topic)
        self.on_reject: Callable[[tuple[str, str] | None, dict], None] | None = None
        self.connected: bool | None = None  # the broker connection, while ``run_mqtt`` runs (None: no broker)

    # called from the MQTT network thread: cheap, never raises (it may wait while the writer is behind)
    def on_message(self, topic: str, payload: bytes, ack: Callable[[], object] | None = None) -> bool:
        """Hand a message over; ``ack`` is called once it is written or kept aside. False: it was not taken (the
        subscriber is stopping) and must not be acknowledged."""
        size = len(payload)
        if size > self.max_payload_bytes:  # keep what identifies it, not the whole of it
            msg = _Msg(topic, bytes(payload[:QUARANTINE_HEAD_BYTES]), ack, size, hashlib.sha256(payload).hexdigest())
        else:
            msg = _Msg(topic, payload, ack, size)
        return self._q.put(msg)

    def close(self) -> None:
        """Take no more messages (``on_message`` answers False; a network thread waiting to hand one over goes on
        without it); what is queued can still be drained. A stop would otherwise never end while messages keep
        coming: each drain made room for more."""
        self._q.close()

    def pending(self) -> int:
        return len(self._q)

    def _bad(self, msg: _Msg, reason: str) -> None:
        self.stats.bad += 1
        kind = reason.split(":", 1)[0]
        self.stats.reasons[kind] = self.stats.reasons.get(kind, 0) + 1
        try:
            if msg.sha256 is not None:
                self.quarantine.put(msg.topic, msg.payload, reason, size=msg.size, sha256=msg.sha256)
            else:
                self.quarantine.put(msg.topic, msg.payload, reason)
        except (OSError, ValueError) as e:  # a full disk: say so, and go on with the next message (not acknowledged:
            log.error(  # the broker sends it again after a reconnect)
                "MQTT message on %r (%d bytes) could not be kept aside (%s): %s", msg.topic, msg.size, e, reason
            )
            return
        msg.done = True
        if self.on_reject is not None:
            m = self._rx.match(msg.topic)
            notice = {"received_at": utc_text(datetime.now(UTC)), "topic": msg.topic,
                      "kind": kind, "reason": reason, "payload_bytes": msg.size,
                      "payload_sha256": msg.sha256 or hashlib.sha256(msg.payload).hexdigest()}
            try:
                self.on_reject((m["tenant"], m["view"]) if m else None, notice)
            except Exception as e:  # noqa: BLE001 - a notice is a courtesy: the message is kept aside already
                self.stats.notices_dropped += 1
                log.warning("MQTT reject notice for %r not published: %s", msg.topic, _one_line(e))

    def _parse(self, msg: _Msg) -> tuple[str, str] | None:
        m = self._rx.match(msg.topic)
        if not m:
            self._bad(msg, f"topic: {msg.topic!r} does not match the subscription pattern")
            return None
        if msg.sha256 is not None:
            self._bad(msg, f"size: the message is {msg.size:,} bytes; at most {self.max_payload_bytes:,} are read "
                           "(send smaller messages)")
            return None
        try:
            body = parse_json(msg.payload, "the message", unique_keys=True)
        except InvalidInput as e:
            self._bad(msg, f"json: {e.message}")
            return None
        if isinstance(body, dict) and list(body) == ["records"] and isinstance(body["records"], list):
            body = body["records"]  # the REST body's shape, {"records": [...]}, as POST /v1/ingest/{view} takes it
        records = body if isinstance(body, list) else [body]
        if not records or not all(isinstance(r, dict) for r in records):
            self._bad(msg, "json: expected an object or a non-empty array of objects")
            return None
        if len(records) > self.max_records:
            self._bad(msg, f"size: the message holds {len(records):,} records; at most {self.max_records:,} are read "
                           "from one message (send smaller messages)")
            return None
        msg.records = records
        return m["tenant"], m["view"]

    def drain(self, max_wait_s: float | None = None) -> int:
        """Take a batch and write it, then acknowledge its messages (in the order they came). Waits up to
        ``max_wait_s`` for the first message; given a wait, the batch then fills for up to ``flush_interval_s``
        (or to ``batch_size``): a write per message arrival made 3,870 files of 20,000 messages sent at 1,000 a
        second. Without a wait it takes only what is queued (a stop flushes at once)."""
        first = self._q.get(max_wait_s)
        if first is None:
            return 0
        batch = [first]
        deadline = time.monotonic() + self.flush_interval_s if max_wait_s else None
        while len(batch) < self.batch_size:
            wait = None if deadline is None else deadline - time.monotonic()
            msg = self._q.get(wait if wait is not None and wait > 0 else None)
            if msg is None:
                break
            batch.append(msg)
        groups: dict[tuple[str, str], list[_Msg]] = {}
        for msg in batch:
            self.stats.received += 1
            where = self._parse(msg)
            if where:
                groups.setdefault(where, []).append(msg)
        for (tenant, view), msgs in groups.items():
            self._write(tenant, view, msgs)
        for msg in batch:
            if msg.done and msg.ack is not None:
                try:
                    msg.ack()
                except Exception as e:  # noqa: BLE001 - the connection is gone: the broker sends it again
                    log.warning("MQTT acknowledgement on %r not sent: %s", msg.topic, e)
        return len(batch)

    def _write(self, tenant: str, view: str, msgs: list[_Msg]) -> None:
        try:
            store = self.store_for(tenant)
        except SfaiError as e:
            for msg in msgs:
                self._bad(msg, f"tenant: {e.message}")
            return
        except Exception as e:  # noqa: BLE001 - e.g. the metadata database is away: keep the batch, go on
            log.error("MQTT batch for %s/%s: cannot open the tenant's feature store: %s", tenant, view, _one_line(e))
            for msg in msgs:
                self._bad(msg, f"storage: {_one_line(e)}")
            return
        self._write_part(store, tenant, view, msgs, logged=[])

    def _write_part(self, store, tenant: str, view: str, msgs: list[_Msg], *, logged: list) -> None:  # noqa: ANN001
        """Write ``msgs`` as one batch; if it fails for one of them (a bad row, or a storage error: a partition
        folder that cannot be made), each half the same way (in order, so that of two rows with the same entity
        and time the later message's is written last), down to the message itself, which alone is kept aside.

        A row repeating a row of an earlier message of the batch (a QoS 1 message delivered twice, a device sending
        its reading again) is not written twice; each message alone keeps its own rows (and its row numbers)."""
        rows, seen, repeats = [], set(), 0
        for msg in msgs:
            keys = [_row_key(r) for r in msg.records]
            for r, k in zip(msg.records, keys, strict=True):
                if k is not None and k in seen:
                    repeats += 1
                else:
                    rows.append(r)
            seen.update(k for k in keys if k is not None)
        try:
            store.ingest(view, rows)
        except SfaiError as e:
            if e.status == 404 or len(msgs) == 1:  # no such view (for every message here), or the bad message
                for msg in msgs:
                    self._bad(msg, f"{'view' if e.status == 404 else 'validation'}: {e.message}")
                return
        except Exception as e:  # noqa: BLE001 - a storage failure must not stop the subscriber
            if getattr(e, "sfai_written_offline", None) is not None:  # stored; only the online copy is behind
                log.error("MQTT batch for %s/%s: %d rows stored offline, but the online store failed (%s); run "
                          "'sfai features materialize %s' once it is back", tenant, view, len(rows), _one_line(e), view)
                self._written(msgs, rows, repeats, (tenant, view))
                self.stats.online_failed += len(rows)
                return
            if not logged:
                logged.append(e)
                log.error("MQTT batch for %s/%s: the feature store failed (%s); messages it fails for are kept aside",
                          tenant, view, _one_line(e))
            if len(msgs) == 1:
                self._bad(msgs[0], f"storage: {_one_line(e)}")
                return
        else:
            self._written(msgs, rows, repeats, (tenant, view))
            return
        half = len(msgs) // 2
        self._write_part(store, tenant, view, msgs[:half], logged=logged)
        self._write_part(store, tenant, view, msgs[half:], logged=logged)

    def _written(self, msgs: list[_Msg], rows: list, repeats: int, where: tuple[str, str]) -> None:
        st = self.stats
        st.view_rows[where] = st.view_rows.get(where, 0) + len(rows)
        st.view_last_write[where] = time.time()
        self.stats.rows_written += len(rows)
        self.stats.batches += 1
        self.stats.duplicates += repeats
        for msg in msgs:
            msg.done = True


class IngestCollector:
    """The subscriber's counts for Prometheus (``sfai ingest mqtt --metrics-port``): what came, what was written
    (per tenant and view, with the time of the last write: an alert on its age finds a line that stopped sending),
    what was kept aside by reason, what waits in memory, and whether the broker connection is up."""

    def __init__(self, ingestor: MqttIngestor) -> None:
        self.ingestor = ingestor

    def collect(self):  # noqa: ANN201 - prometheus_client's collector protocol
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        st = self.ingestor.stats
        for name, doc, value in (
            ("sfai_mqtt_messages_received", "MQTT messages taken from the broker", st.received),
            ("sfai_mqtt_rows_written", "rows written to the feature store", st.rows_written),
            ("sfai_mqtt_batches_written", "batches written", st.batches),
            ("sfai_mqtt_duplicate_rows", "rows not stored again (a copy within a batch)", st.duplicates),
            ("sfai_mqtt_online_failed_rows", "rows stored offline whose online write failed", st.online_failed),
            ("sfai_mqtt_notices_published", "reject notices published on the error topic", st.notices),
            ("sfai_mqtt_notices_dropped", "reject notices that could not be published", st.notices_dropped),
        ):
            c = CounterMetricFamily(name, doc)
            c.add_metric([], value)
            yield c
        bad = CounterMetricFamily("sfai_mqtt_messages_set_aside", "messages kept aside in the quarantine, by reason",
                                  labels=["reason"])
        for reason, n in sorted(st.reasons.items()):
            bad.add_metric([reason], n)
        yield bad
        rows = CounterMetricFamily("sfai_mqtt_view_rows_written", "rows written per tenant and view",
                                   labels=["tenant", "view"])
        last = GaugeMetricFamily("sfai_mqtt_view_last_write_timestamp_seconds",
                                 "when rows were last written per tenant and view (Unix time)",
                                 labels=["tenant", "view"])
        for (tenant, view), n in sorted(dict(st.view_rows).items()):
            rows.add_metric([tenant, view], n)
            last.add_metric([tenant, view], st.view_last_write.get((tenant, view), 0.0))
        yield rows
        yield last
        g = GaugeMetricFamily("sfai_mqtt_pending_messages", "messages taken and not yet written or kept aside")
        g.add_metric([], self.ingestor.pending())
        yield g
        if self.ingestor.connected is not None:
            g = GaugeMetricFamily("sfai_mqtt_connected", "1 while the broker connection is up")
            g.add_metric([], 1.0 if self.ingestor.connected else 0.0)
            yield g


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


SESSION_EXPIRY_S = 0xFFFFFFFF  # MQTT 5: a persistent session never expires (as an MQTT 3.1.1 one); 0 ends it
SESSION_TAKEN_OVER = 142  # MQTT 5 DISCONNECT reason: another client connected with this client id
_FLAPS = 3  # connections lost within _FLAP_WINDOW_S that point at a client id used twice
_FLAP_WINDOW_S = 60.0


def run_mqtt(
    ingestor: MqttIngestor,
    broker: str,
    *,
    duration_s: float | None = None,
    max_messages: int | None = None,
    on_progress: Callable[[IngestStats], None] | None = None,
    on_ready: Callable[[], None] | None = None,
    client_id: str | None = None,
    stop: threading.Event | None = None,
    protocol: str = "5",
    error_topic: str | None = None,
) -> IngestStats:
    """Subscribe and ingest until interrupted (Ctrl-C, or ``stop`` set), ``duration_s`` passes, or ``max_messages``
    arrived; then write what was taken, acknowledge it and disconnect.

    MQTT 5, QoS 1, acknowledged by hand: a message is acknowledged once it is written or kept aside, so one that
    this process held when it stopped or died is sent again. The subscriber asks for a Receive Maximum of
    ``ingestor.max_pending``: the broker sends no more unacknowledged messages than that and holds the rest.
    ``protocol="3.1.1"`` for a broker without MQTT 5 (Azure IoT Hub, older ones): the same manual acknowledgements;
    the broker's own in-flight window (Mosquitto's max_inflight_messages) then bounds what it sends unacknowledged.

    With a ``client_id`` the broker keeps a persistent session: messages published while this subscriber is cut off
    or stopped are queued there and delivered when it reconnects (paho reconnects by itself, within 1-30 s), so an
    outage or a restart loses nothing (up to the broker's max_queued_messages). Without one, the session is clean:
    what is published while it is away is not kept for it.

    ``error_topic``: each message kept aside is also noticed, QoS 1, on ``<error_topic>/<tenant>/<view>`` (or
    ``<error_topic>/_unmatched``) as ``{"received_at", "topic", "kind", "reason", "payload_bytes",
    "payload_sha256"}``, so that the sending MES or gateway learns of it; the payload itself stays in the
    quarantine file."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    check_run_options(broker, client_id=client_id, duration_s=duration_s, max_messages=max_messages,
                      protocol=protocol)
    if error_topic is not None:
        check_error_topic(error_topic, ingestor.subscribe_topic)
    host, port, url = parse_broker(broker)
    v5 = protocol == "5"
    if v5:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "", protocol=mqtt.MQTTv5,
                             manual_ack=True)
    else:  # a persistent session is the 3.1.1 clean-session flag
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "", protocol=mqtt.MQTTv311,
                             clean_session=not client_id, manual_ack=True)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    if url.username:
        client.username_pw_set(url.username, url.password)
    if url.scheme == "mqtts":
        client.tls_set()
    subscribed = threading.Event()
    closed = threading.Event()  # the connection we closed is gone
    flushed = threading.Event()  # the broker answered after reading our last acknowledgements
    closing = [False]
    refused: list[str] = []  # why the broker refused the connection or the subscription (first answer)
    drops: list[float] = []  # when the connection was lost (recently)
    generation = [0]  # connections made: a packet id is only acknowledged on the connection that delivered it

    def on_connect(c, _userdata, _flags, reason_code, _props):  # noqa: ANN001
        generation[0] += 1
        ingestor.connected = not reason_code.is_failure
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
        ingestor.connected = False
        if closing[0]:
            closed.set()
            return
        if not reason_code.is_failure:
            return
        now = time.monotonic()
        drops[:] = [t for t in drops if now - t < _FLAP_WINDOW_S] + [now]
        if client_id and (reason_code == SESSION_TAKEN_OVER or len(drops) >= _FLAPS):
            why = "the broker says the session was taken over" if reason_code == SESSION_TAKEN_OVER else (
                f"the connection was lost {len(drops)} times within a minute ({reason_code})")
            log.error("MQTT: %s: another client with the client id %r is the likely cause (each subscriber needs its "
                      "own --client-id); reconnecting", why, client_id)
        else:
            log.warning("MQTT broker connection lost (%s); reconnecting", reason_code)

    def on_subscribe(_c, _userdata, _mid, reason_codes, _props):  # noqa: ANN001
        bad = [str(rc) for rc in reason_codes if getattr(rc, "is_failure", False)]
        if bad:
            log.error("MQTT subscription to %r refused: %s", ingestor.subscribe_topic, ", ".join(bad))
        if not subscribed.is_set():
            if bad:
                refused.append(f"refused the subscription to {ingestor.subscribe_topic!r} ({', '.join(bad)})")
            subscribed.set()

    def on_unsubscribe(_c, _userdata, _mid, _reason_codes, _props):  # noqa: ANN001
        flushed.set()  # the only unsubscribe: the round trip before disconnecting

    def on_message(c, _userdata, msg) -> None:  # noqa: ANN001
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # a broker that passed on a topic that is not UTF-8: kept aside as such
            topic = msg._topic.decode("utf-8", "replace")
        mid, qos, gen = msg.mid, msg.qos, generation[0]

        def ack() -> None:
            # after a reconnect the broker sends an unacknowledged message again (and acknowledging the old packet id
            # could, in a clean session, acknowledge another message that has it now)
            if generation[0] == gen:
                c.ack(mid, qos)

        ingestor.on_message(topic, msg.payload, ack=None if qos == 0 else ack)

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_subscribe = on_subscribe
    client.on_unsubscribe = on_unsubscribe
    client.on_message = on_message
    if error_topic is not None:
        from paho.mqtt.client import topic_matches_sub

        client.max_queued_messages_set(MAX_QUEUED_NOTICES)

        def notice(where: tuple[str, str] | None, body: dict) -> None:
            topic = error_topics(error_topic, where)
            if topic_matches_sub(ingestor.subscribe_topic, topic):  # a tenant or view named like a literal level
                raise ValueError(f"{topic} matches the subscription")
            info = client.publish(topic, json.dumps(body, ensure_ascii=False), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:  # no connection: queued
                raise ConnectionError(mqtt.error_string(info.rc))
            ingestor.stats.notices += 1

        ingestor.on_reject = notice
    try:
        if v5:
            props = Properties(PacketTypes.CONNECT)
            props.ReceiveMaximum = ingestor.max_pending
            if client_id:
                props.SessionExpiryInterval = SESSION_EXPIRY_S
            client.connect(host, port, keepalive=30, clean_start=not client_id, properties=props)
        else:
            client.connect(host, port, keepalive=30)
    except OSError as e:
        raise ConnectionError(f"cannot reach the MQTT broker at {broker}: {e}") from None
    client.loop_start()
    finished = False
    try:
        if not subscribed.wait(10):
            raise ConnectionError(f"the MQTT broker at {broker} did not confirm the subscription")
        if refused:
            raise ConnectionError(f"the MQTT broker at {broker} {refused[0]}")
        if on_ready:
            on_ready()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        try:
            while not (stop is not None and stop.is_set()):
                ingestor.drain(max_wait_s=ingestor.flush_interval_s)
                if on_progress:
                    on_progress(ingestor.stats)
                if max_messages is not None and ingestor.stats.received >= max_messages:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
        except KeyboardInterrupt:  # Ctrl-C: stop as at the end, writing what was taken
            pass
        ingestor.close()  # what comes from now on stays the broker's (in a persistent session: sent again later)
        while ingestor.drain():  # what is queued: written, kept aside, acknowledged
            pass
        # A round trip before closing: the broker answers only after reading every acknowledgement sent before it.
        # Closing a socket with unread messages in it (the broker goes on sending) resets the connection, and the
        # broker dropped the last acknowledgements unread: 9 to 38 messages came again after a restart, stored twice.
        client.unsubscribe(f"sfai-ingest/flush/{uuid.uuid4().hex}")  # a filter nobody subscribed to: no effect
        flushed.wait(5)
        finished = True
    finally:
        ingestor.close()
        closing[0] = True
        client.disconnect()  # after the acknowledgements queued before it
        if finished:
            closed.wait(5)
        client.loop_stop()
    return ingestor.stats
