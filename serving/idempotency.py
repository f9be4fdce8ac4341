"""``Idempotency-Key``: a call that changes something, sent again after a timeout, is done once.

Background solves keep the key on their job (``serving/scheduling.py``); ingest calls keep it in ``ingest_requests``
with the call's answer. Either way a key holds for ``IDEMPOTENCY_S`` per tenant: a retry with it gets the first
call's answer, and the same key with another request is a 409 (which of the two did the caller mean?).
"""
from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from serving.db import Database
from serving.db.tables import IngestRequest
from serving.errors import Conflict, InvalidInput
from serving.tenancy import as_utc, utcnow

IDEMPOTENCY_S = 24 * 3600  # how long a key stands: a retry within it gets the first answer (migrations 0011, 0013)
# an ingest's answer that marks its rows stored offline but not online (the online store failed): the retry with its
# key writes the online rows only
PARTIAL = "_offline_only"
# a key claimed by a call that never finished (its process was killed while storing the rows): taken over after this
ABANDONED_S = 600


def check_key(value: str | None) -> str | None:
    """The ``Idempotency-Key`` header as given, or None; 422 for one that is no key."""
    if value is None:
        return None
    if not 1 <= len(value) <= 100 or not all(" " < c <= "~" for c in value):
        raise InvalidInput("Idempotency-Key must be 1-100 printable ASCII characters without spaces (e.g. a UUID), "
                           f"got {value[:40]!r}{'...' if len(value) > 40 else ''}")
    return value


def reused(key: str, what: str) -> Conflict:
    return Conflict(f"the Idempotency-Key {key[:40]!r} was used for another request ({what}) within 24 hours: send "
                    "a new key for a new request, or the same request to get the first one's answer",
                    code="idempotency_key_reused")


def request_hash(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        data = p.encode() if isinstance(p, str) else p
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


class IngestOnce:
    """One ingest per (tenant, key): :meth:`claim` before storing the rows, :meth:`finish` with the answer after,
    :meth:`release` where the call failed (nothing was stored: the same request may be sent again). A call whose
    rows were stored offline but not online (the online store failed) finishes with a ``PARTIAL`` answer, which
    :meth:`claim` hands to the retry: it writes the online rows only."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def claim(self, tenant_id: int, key: str, digest: str) -> dict | None:
        """None: this call holds the key and stores its rows. Else the answer the first call gave (a 409 for
        another request with the key, or while the first is still storing)."""
        for _ in range(3):
            try:
                return self._claim(tenant_id, key, digest)
            except IntegrityError:
                continue  # another call claimed the key between the read and the insert: read it again
        raise Conflict(f"a call with the Idempotency-Key {key[:40]!r} is being stored: retry in a second",
                       code="idempotency_key_in_use", headers={"Retry-After": "1"})

    def _claim(self, tenant_id: int, key: str, digest: str) -> dict | None:
        now = utcnow()
        with self.db.session() as s:
            row = s.get(IngestRequest, (tenant_id, key))
            if row is not None:
                created = as_utc(row.created_at)
                if created < now - timedelta(seconds=IDEMPOTENCY_S) or (
                        row.result is None and created < now - timedelta(seconds=ABANDONED_S)):
                    s.delete(row)  # expired, or left by a call that never finished: the key is free again
                    s.flush()
                    row = None
            if row is not None:
                if row.request_hash != digest:
                    raise reused(key, "another batch")
                if row.result is None:
                    raise Conflict(f"a call with the Idempotency-Key {key[:40]!r} is still storing its rows: retry "
                                   "in a second to get its answer", code="idempotency_key_in_use",
                                   headers={"Retry-After": "1"})
                return json.loads(row.result)
            # the tenant's expired keys go as new ones come (an index on the tenant and time finds them)
            s.execute(delete(IngestRequest).where(
                IngestRequest.tenant_id == tenant_id,
                IngestRequest.created_at < now - timedelta(seconds=IDEMPOTENCY_S)))
            s.add(IngestRequest(tenant_id=tenant_id, idempotency_key=key, request_hash=digest, result=None,
                                created_at=now))
        return None

    def finish(self, tenant_id: int, key: str, answer: dict) -> None:
        with self.db.session() as s:
            s.execute(update(IngestRequest).where(IngestRequest.tenant_id == tenant_id,
                                                  IngestRequest.idempotency_key == key)
                      .values(result=json.dumps(answer)))

    def release(self, tenant_id: int, key: str) -> None:
        with self.db.session() as s:
            s.execute(delete(IngestRequest).where(IngestRequest.tenant_id == tenant_id,
                                                  IngestRequest.idempotency_key == key,
                                                  IngestRequest.result.is_(None)))
