"""Prediction serving: champion models per tenant in ONNX Runtime, and request bodies turned into frames.

``ModelCache.champion(tenant, family)`` resolves the registry's champion (re-checked every ``ttl_s``) and keeps
loaded sessions in an LRU bounded by ``capacity``. When an alias moves (``sfai models promote``), the next
resolution loads the new version while requests in flight finish on the old one: nothing is dropped. A model the
request names (``"model"``) must exist and be one of the family's: otherwise 404, never another model.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa

from feature_store.validate import MAX_DECODED_BYTES, read_ipc_bytes, read_parquet_bytes
from feature_store.validate import _too_big as too_big
from feature_store.view import TIMESTAMP
from models.families import get_family
from models.registry import ModelRegistry, find_champion, find_named
from serving.db import Database
from serving.errors import InvalidInput, NotFound, shown
from serving.handlers import read_json
from serving.runtime import ModelIntegrityError, OnnxModel

log = logging.getLogger("sfai.models")

MAX_RECORDS = 10_000  # the most a deployment may allow; Settings.max_batch_records may set fewer
ARROW_STREAM = "application/vnd.apache.arrow.stream"
OPTIONS = ("explain", "start", "horizon", "recent_failure_rate", "threshold", "top_k")
BODY_FIELDS = frozenset({"entity_ids", "view", "model", *OPTIONS})  # besides "records"
EXPLAIN_BY_DEFAULT = 1_000  # bigger batches get top features only when asked: occlusion multiplies the model runs
ENTITY_ID = "entity_id"  # added to each answer row of a prediction by entity id: the id it answers, as sent
UNITS = "sfai_units"  # frame.attrs of engine cycles read by entity id: unit number -> entity id
VIEW = "sfai_view"  # frame.attrs of rows read by entity id: the feature view they were read from
MAX_FORECAST_ENTITIES = 16  # meters per energy forecast by entity id: each reads weeks of history offline
# added to each answer row of a prediction by entity id: the time of the reading it stood on (UTC, ISO 8601 with Z:
# the online row's, or for remaining life and energy the latest cycle or row read) and its age at answer time
READING_AT, READING_AGE = "reading_at", "reading_age_s"
READINGS = "sfai_readings"  # frame.attrs of rows read by entity id: each entity's reading time, in the ids' order


def clock() -> datetime:
    """Now, in UTC: the time a reading's age (``reading_age_s``) is counted to."""
    return datetime.now(UTC)


class ModelCache:
    def __init__(self, db: Database, home: Path, *, capacity: int = 64, ttl_s: float = 2.0) -> None:
        self.db, self.home, self.capacity, self.ttl_s = db, Path(home), capacity, ttl_s
        self._resolved: dict[tuple, tuple[float, tuple[str, int, Path, str]]] = {}
        self._loaded: OrderedDict[tuple[str, str, int], OnnxModel] = OrderedDict()
        # the version last served per (tenant, family, preferred): kept serving when a newer one fails to load
        self._last_good: dict[tuple, tuple[str, int, Path, str]] = {}
        self._listings: dict[str, tuple[float, list]] = {}  # tenant -> (expiry, its registered versions)
        self._lock = threading.Lock()

    def listing(self, tenant: str) -> list:
        """The tenant's registered versions (``ModelVersion``, aliases included), read from the registry at most
        once per ``ttl_s``, like the champions served: the module status endpoints list them on every call."""
        hit = self._listings.get(tenant)
        if hit is None or hit[0] <= time.monotonic():
            versions = ModelRegistry(self.db, self.home, tenant).list()
            hit = self._listings[tenant] = (time.monotonic() + self.ttl_s, versions)
        return hit[1]

    def cached_listing(self, tenant: str) -> list | None:
        """:meth:`listing` when it is fresh (no I/O: safe on the event loop), else None."""
        hit = self._listings.get(tenant)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def champion(self, tenant: str, family: str, preferred: str | None = None, *, refresh: bool = False) -> OnnxModel:
        """The model to serve, resolved from the registry when ``refresh``, unknown or older than ``ttl_s``."""
        _check_name(preferred)
        key = (tenant, family, preferred)
        now = time.monotonic()
        hit = self._resolved.get(key)
        if refresh or hit is None or hit[0] <= now:
            reg = ModelRegistry(self.db, self.home, tenant)
            mv = find_named(reg, family, preferred) if preferred else find_champion(reg, family)
            # the TTL counts from the answer, not from the question: a slow registry read is not expired on arrival
            hit = (time.monotonic() + self.ttl_s, (mv.name, mv.version, mv.path, mv.sha256))
            self._resolved[key] = hit
        name, version, path, sha256 = hit[1]
        mkey = (tenant, name, version)
        with self._lock:
            model = self._loaded.get(mkey)
            if model is not None:
                self._loaded.move_to_end(mkey)
                self._last_good[key] = hit[1]
                return model
        try:
            # checksum verified on load, against the registry's record: a file another deployment (or anyone) wrote
            # over this version's folder since it was registered is refused, not served as this version
            model = OnnxModel(path, name=name, sha256=sha256)
        except ModelIntegrityError as e:
            good = self._last_good.get(key)
            if good is None or good == hit[1]:
                # the operator's message (the file's path on this server) goes to the log; the tenant's caller is
                # told what is wrong without the server's paths (operator audit)
                log.error("%s (tenant %s, %s v%s)", e.message, tenant, name, version)
                raise ModelIntegrityError(
                    f"model {name} version {version} cannot be served: its file is missing or does not match the "
                    "checksum recorded when it was registered (the server's log says which; an operator restores "
                    "it, or it is trained and registered again)") from None
            # a new champion whose file is damaged: refuse it, keep serving the version served before
            log.error("%s; tenant %s keeps serving %s v%s", e.message, tenant, good[0], good[1])
            self._resolved[key] = (now + self.ttl_s, good)
            return self.champion(tenant, family, preferred)
        self._add(mkey, model)
        self._last_good[key] = hit[1]
        return model

    def _add(self, mkey: tuple, model: OnnxModel) -> None:
        with self._lock:
            self._loaded[mkey] = model
            while len(self._loaded) > self.capacity:
                self._loaded.popitem(last=False)

    def preload(self, tenants: list[str]) -> int:
        """Load the champions of ``tenants`` (up to the capacity), so first calls are fast."""
        n = 0
        for tenant in tenants:
            for mv in ModelRegistry(self.db, self.home, tenant).list():
                if "champion" in mv.aliases and n < self.capacity:
                    family = mv.name.split("-")[0]
                    self.champion(tenant, family, mv.name)
                    n += 1
        return n

    def cached(
        self, tenant: str, family: str, preferred: str | None = None, *, claim: bool = True
    ) -> OnnxModel | None:
        """The champion when it is resolved, fresh and loaded (no I/O: safe on the event loop), else None: then
        the caller resolves it with ``champion(..., refresh=True)``.

        With ``claim``, an expired entry is served once more to everyone else while this caller refreshes it,
        so that the requests arriving at expiry make one registry lookup, not one each (an alias move still
        shows within one TTL plus that lookup). ``claim=False`` only looks (a caller that will not refresh)."""
        _check_name(preferred)
        key = (tenant, family, preferred)
        hit = self._resolved.get(key)
        if hit is None:
            return None
        now = time.monotonic()
        if hit[0] <= now:
            if claim:
                self._resolved[key] = (now + self.ttl_s, hit[1])  # the others keep this version meanwhile
            return None
        name, version, _, _ = hit[1]
        return self._loaded.get((tenant, name, version))

    def invalidate(self) -> None:
        """Forget which versions are champions (they are read from the registry again on the next call)."""
        self._resolved.clear()
        self._listings.clear()


def _check_name(preferred: object) -> None:
    if preferred is not None and (not isinstance(preferred, str) or not preferred.strip()):
        raise InvalidInput(f'"model" must be a registered model name (a string); got {preferred!r}')


@functools.cache
def scorer(family: str):  # noqa: ANN201
    """The family's ``score(model, frame, **options) -> DataFrame`` (its predict module; no torch). A frame of
    online-store entities (:func:`records_frame` of :class:`EntityRows`) is answered with each row's ``entity_id``;
    energy forecasts each meter from its history."""
    score = _predict_module(family).score

    @functools.wraps(score)
    def scored(model, frame: pd.DataFrame, **options) -> pd.DataFrame:  # noqa: ANN001
        ids = frame.attrs.get(ENTITY_ID)
        if ids is None:
            return score(model, frame, **options)
        times = frame.attrs.get(READINGS) or [None] * len(ids)
        if family == "energy":
            return _with_readings(_forecast_meters(score, model, frame, ids, options), ids, times)
        if family == "rul":  # one answer per unit, in unit order: each unit is one entity's
            units = frame.attrs.get(UNITS) or _entity_units(frame, ids)
            out = score(model, frame, unit_names=units, **options)  # warnings name the entities, not unit numbers
            out[ENTITY_ID] = pd.Series(out["unit"].map(units), dtype=object)
            return _with_readings(out, ids, times)
        try:  # failure and defect: one answer per row, in the rows' order
            out = score(model, frame, **options)
        except InvalidInput as e:
            raise entity_error(e, ids, lambda i: frame.iloc[i].to_dict(), frame.attrs.get(VIEW), family) from None
        out[ENTITY_ID] = pd.Series(ids, index=out.index, dtype=object)
        return _with_readings(out, ids, times)

    return scored


@functools.cache  # asked on every prediction call
def record_scorer(family: str):  # noqa: ANN201
    """The family's ``score_records(model, records, **options) -> list[dict]`` where it has one (no pandas), else
    None. Records that are online-store entities (:class:`EntityRows`) are answered with each one's ``entity_id``."""
    score = getattr(_predict_module(family), "score_records", None)
    if score is None:
        return None

    @functools.wraps(score)
    def scored(model, records: list[dict], **options) -> list[dict]:  # noqa: ANN001
        try:
            out = score(model, records, **options)
        except InvalidInput as e:
            if not isinstance(records, EntityRows):
                raise
            raise entity_error(e, records.ids, records.__getitem__, records.view, family) from None
        if isinstance(records, EntityRows):
            now = clock()
            for row, entity, record in zip(out, records.ids, records, strict=True):
                row[ENTITY_ID] = entity
                at = record.get(TIMESTAMP)
                row[READING_AT], row[READING_AGE] = at, reading_age(at, now)
        return out

    return scored


# "column 'Torque [Nm]' row 2: expected a number, got an empty cell", as the families' checks name a cell
_CELL = re.compile(r"(?:column (?P<column>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\") )?row (?P<row>\d+)\b")


def entity_error(error: InvalidInput, ids: list, row_of, view: str | None, family: str) -> InvalidInput:  # noqa: ANN001
    """A family's refusal of rows read by entity id, worded for the entities: the row it names is an entity's, its
    column one of the view's features. An entity whose latest stored reading lacks a feature the model needs had
    failed the whole batch with "column 'Torque [Nm]' row 2: expected a number, got an empty cell", naming neither
    the machine nor the view's feature (integration audit). ``row_of(i)``: the i-th entity's row (a dict)."""
    found = _CELL.search(error.message)
    if found is None or not 1 <= int(found.group("row")) <= len(ids):
        return error
    i = int(found.group("row")) - 1
    entity, row = ids[i], row_of(i)
    where = f" in view {view!r}" if view else ""
    column = ast.literal_eval(found.group("column")) if found.group("column") else None
    feature = _view_feature(row, column, family, "empty" in error.message) if column is not None else None
    if feature is not None and _empty(row.get(feature)):
        stamp = row.get(TIMESTAMP)
        at = f" (of {stamp})" if stamp is not None and not _empty(stamp) else ""
        theirs = f" (the model's {column!r})" if column != feature else ""
        return InvalidInput(
            f"entity {entity!r}: its latest stored reading{where}{at} lacks {feature!r}{theirs}, which the model "
            f"needs: send a complete reading for it (POST /v1/ingest/{view or '<view>'}), or leave it out of "
            f'"entity_ids" ({error.message})', code=error.code, status=error.status, headers=error.headers)
    return InvalidInput(f"entity {entity!r}{where}: {error.message}", code=error.code, status=error.status,
                        headers=error.headers)


def _view_feature(row: dict, column: str, family: str, empty_cell: bool) -> str | None:
    """The view's feature in ``row`` that a family's check named ``column``: itself, or the feature the family reads
    under that name (failure: ``torque_nm`` is 'Torque [Nm]'), or else, for a check that found an empty cell, the
    row's one empty feature."""
    if column in row:
        return column
    features = getattr(_predict_module(family), "F", None)
    for store, raw in getattr(features, "STORE_NAMES", {}).items():
        if raw == column and store in row:
            return store
    empty = [k for k, v in row.items() if k != TIMESTAMP and _empty(v)]
    return empty[0] if empty_cell and len(empty) == 1 else None


def _empty(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


@functools.cache
def _records_reader(family: str):  # noqa: ANN202
    return getattr(_predict_module(family), "records_frame", None)


@functools.cache
def _fields_checker(family: str):  # noqa: ANN202
    return getattr(_predict_module(family), "check_fields", None)


def records_frame(family: str, rows: pd.DataFrame | list[dict], *, from_store: bool = False) -> pd.DataFrame:
    """The rows a family's ``score`` takes: JSON records as a frame, through the family's ``records_frame`` where it
    has one, and an Arrow or Parquet body's columns through its ``check_fields`` (failure and defect: a field the
    model does not know is refused, a typo that would otherwise be carried unread: a defect measurement misnamed
    in a batch body was scored as missing). Online-store rows (``from_store``) are taken as they are: they also
    hold the view's entity key and any features the view declares for other uses."""
    if not isinstance(rows, list):
        check = _fields_checker(family)
        if check is not None:
            check(rows.columns)
        return rows
    if isinstance(rows, EntityRows):  # the answer names each entity (``scorer``); a forecast needs each one's history
        if family == "energy":
            frame = meter_history(rows)
        elif family == "rul":
            frame = unit_history(rows)
        else:
            frame = pd.DataFrame.from_records(rows)
        frame.attrs[ENTITY_ID] = rows.ids
        frame.attrs[VIEW] = rows.view
        if READINGS not in frame.attrs:  # the online rows' own times (meter_history and unit_history set the last read)
            frame.attrs[READINGS] = [row.get(TIMESTAMP) for row in rows]
        return frame
    read = None if from_store else _records_reader(family)
    return read(rows) if read is not None else pd.DataFrame.from_records(rows)


def _predict_module(family: str):  # noqa: ANN202
    return importlib.import_module(get_family(family).predict_module)


ARROW_TYPES = frozenset({ARROW_STREAM, "application/vnd.apache.arrow.file"})
PARQUET_TYPES = frozenset({"application/vnd.apache.parquet", "application/x-parquet"})
# an Arrow or Parquet prediction body is refused from its schema, before a value is decoded, past these: no family
# reads more columns (a defect record: 590 measurements and 7 known extras), nor more cells than 10,000 of them
MAX_BODY_COLUMNS = 1_000
MAX_BODY_CELLS = MAX_RECORDS * 600
# past this many cells, a column the model does not know is refused before decoding too; a smaller body (decoded in
# well under a millisecond) is checked after, in the route's order: a missing model (404) first
EARLY_FIELDS_CELLS = 50_000
_BINARY_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError, ValueError)


def decode_frame(raw: bytes, kind: str, limit: int, family: str | None, *, file: bool = False) -> pd.DataFrame:
    """An Arrow IPC (``kind`` "arrow"; ``file``: the IPC file format) or Parquet ("parquet") prediction body as a
    frame. Blocking (a worker thread's, :func:`read_frame`). What the body's schema and metadata show to be
    unacceptable is refused before any value is decoded (``validate.read_ipc_bytes`` and ``read_parquet_bytes``
    read the row count from the metadata and call ``bounded`` with it): more than ``limit`` rows, more than
    ``MAX_DECODED_BYTES`` at 8 bytes a cell, more than ``MAX_BODY_COLUMNS`` columns, a column named twice, a column
    ``family``'s model does not know (its ``check_fields``; in a body of over ``EARLY_FIELDS_CELLS`` cells, a smaller
    one is checked when it is scored), more than ``MAX_BODY_CELLS`` cells; then the decoding
    is bounded as those functions bound it (the sizes of the compressed buffers)."""
    what = "Arrow" if kind == "arrow" else "Parquet"
    try:
        names = _body_columns(raw, kind, file)

        def bounded(rows: int) -> None:  # from the schema and the row count the metadata declares, before decoding
            check_batch(rows, limit)
            if rows * 8 * len(names) > MAX_DECODED_BYTES:  # at least 8 bytes a cell: refused as validate words it
                raise too_big(what, rows * 8 * len(names))
            check_body_columns(names, family if rows * len(names) > EARLY_FIELDS_CELLS else None)
            if rows * len(names) > MAX_BODY_CELLS:
                raise InvalidInput(f"the {what} body holds {rows:,} rows of {len(names):,} columns: at most "
                                   f"{MAX_BODY_CELLS:,} cells per request; send fewer rows or only the model's columns")

        if kind == "arrow":  # bounded: a compressed Arrow body of a few KB can decode to gigabytes
            table = read_ipc_bytes(raw, file=file, check_rows=bounded)
        else:
            table = read_parquet_bytes(raw, check_rows=bounded)
    except _BINARY_ERRORS as e:
        raise InvalidInput(f"cannot read the {what} body: {e}") from None
    check_batch(table.num_rows, limit)
    return _limit(table.to_pandas(), limit)


def _body_columns(raw: bytes, kind: str, file: bool) -> list[str]:
    """The column names of an Arrow or Parquet body, from its schema (Arrow's first message, Parquet's footer),
    less a pandas frame's stored index (``__index_level_0__`` of a filtered frame), which decoding makes the index
    again: it had been refused as an unknown feature, in bodies over ``EARLY_FIELDS_CELLS`` cells only (review)."""
    if kind == "arrow":
        buf = pa.py_buffer(raw)
        schema = pa.ipc.open_file(buf).schema if file else pa.ipc.open_stream(buf).schema
    else:
        import pyarrow.parquet as pq

        schema = pq.read_schema(pa.BufferReader(raw))
    try:
        index = {c for c in (schema.pandas_metadata or {}).get("index_columns", ()) if isinstance(c, str)}
    except (ValueError, TypeError, AttributeError):  # pandas metadata that is not JSON, or not an object
        index = set()
    return [n for n in schema.names if n not in index]


def check_body_columns(names: list[str], family: str | None) -> None:
    """The columns of an Arrow or Parquet prediction body, before its values are read: at most
    ``MAX_BODY_COLUMNS``, each named once, and (failure, defect) each one the family's model knows."""
    if len(names) > MAX_BODY_COLUMNS:
        raise InvalidInput(f"the body holds {len(names):,} columns: at most {MAX_BODY_COLUMNS:,} per request (send "
                           "the model's features only)")
    seen: set = set()
    for n in names:
        if n in seen:
            raise InvalidInput(f"the body names column {str(n)[:80]!r} twice: which one holds the readings?")
        seen.add(n)
    check = _fields_checker(family) if family else None
    if check is not None:
        check(names)


def _route_family(request) -> str | None:  # noqa: ANN001
    """The model family of the prediction route called (``fastpath.ROUTES``, filled by ``add_predict_route``)."""
    from serving import fastpath

    route = fastpath.ROUTES.get(request.scope.get("path", ""))
    return route.family if route is not None else None


async def _in_turn(request, turns, tenant_id: int | None, fn):  # noqa: ANN001, ANN202
    """``fn()`` in a worker thread, in the calling tenant's scoring turn (``serving.turns.TenantTurns``)."""
    if turns is None:
        platform = getattr(request.app.state, "platform", None)
        turns = getattr(platform, "turns", None)
    if tenant_id is None:  # the caller the route authenticated (ANONYMOUS, tenant 0, without keys)
        tenant_id = getattr(getattr(request.state, "sfai_auth", None), "tenant_id", 0)
    if turns is None:
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(fn)
    return await turns.run(tenant_id, fn)


async def read_frame(  # noqa: ANN201
    request, limit: int = MAX_RECORDS, *, family: str | None = None, turns=None, tenant_id: int | None = None,  # noqa: ANN001
):
    """A request body as rows: JSON ``{"records": [...], ...options}`` (a list of dicts, as sent), Arrow IPC
    stream or Parquet (a DataFrame).

    Returns (rows or None, the JSON body's other fields). ``entity_ids`` (online-store lookups) are returned
    in the options for the caller to resolve. More than ``limit`` rows is a 422.

    An Arrow or Parquet body is decoded by :func:`decode_frame` in a worker thread, in the tenant's scoring turn
    (``turns``, a :class:`serving.turns.TenantTurns`, and ``tenant_id``; by default the platform's and the
    caller's), and checked against ``family``'s fields (by default the family of the route called) before it is.
    """
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    raw = await request.body()
    if not raw:
        raise InvalidInput("empty request body")
    binary = "arrow" if ctype in ARROW_TYPES else "parquet" if ctype in PARQUET_TYPES else None
    if binary is not None:
        # decoded in a worker thread, in the tenant's turn: a 0.42-MB zstd stream of 10,000 x 3,300 columns held the
        # event loop 1.8 s, and every tenant's calls (/healthz too) with it (security audit)
        options = _binary_options(request)
        family = family or _route_family(request)
        decode = functools.partial(decode_frame, raw, binary, limit, family, file=ctype.endswith(".file"))
        frame = await _in_turn(request, turns, tenant_id, decode)
        return frame, options
    # a CSV, or a Parquet file sent as octet-stream, had been read as JSON ("not valid JSON: ... byte 0x80"). JSON is
    # read under the types every JSON endpoint reads it under (serving.handlers.JSON_READ): JSON's own, and what a
    # client sends when it names none (curl -d sends form-urlencoded; some send text/plain)
    send = ("JSON (application/json), an Arrow IPC stream (application/vnd.apache.arrow.stream) or Parquet "
            "(application/vnd.apache.parquet)")
    # a reading named twice in one record: which is true? (as ingest asks); a big body is read in a worker thread
    body = await read_json(raw, ctype, send)
    if not isinstance(body, dict):
        raise InvalidInput('expected a JSON object: {"records": [...]} or {"entity_ids": [...], "view": ...}')
    if request.query_params:
        _with_query_options(body, query_options(request.query_params))
    records = body.pop("records", None)
    if records is None:
        if "entity_ids" not in body:
            raise InvalidInput('the body needs "records" (feature rows) or "entity_ids" (online-store lookup)')
        return None, body
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise InvalidInput('"records" must be a non-empty list of objects')
    check_one_source(body)
    return _limit(records, limit), body


def check_one_source(body: dict) -> None:
    """A body with ``records`` (already taken out of ``body``) may not also ask for an online-store lookup."""
    if "entity_ids" in body or "view" in body:
        raise InvalidInput('send "records" or "entity_ids" with "view", not both')


class EntityRows(list):
    """Online-store rows, one per entity id in the request's order, that keep the ids as sent (each answer row
    carries its entity's, ``entity_id``: a client matches answers to machines without relying on their order),
    and the store and view they were read from (an energy forecast reads each meter's history there)."""

    def __init__(self, rows: list[dict], ids: list, store, view: str) -> None:  # noqa: ANN001
        super().__init__(rows)
        self.ids, self.store, self.view = list(ids), store, view
        self.first_day: str | None = None  # an energy forecast's "start": its history is read from before it


def entity_rows(fs, view: str, ids: list) -> EntityRows:  # noqa: ANN001
    """The online store's latest features of ``ids`` in ``view``, one row each, for scoring. An id that is not a
    string or an integer is a 422; an entity the store has no live row for (never ingested by this tenant, or
    older than the view's time-to-live) is a 404 naming it, rather than a row of empty cells to score."""
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, (str, int)):
            raise InvalidInput(f'"entity_ids" must be strings or integers; got {i!r}')
    rows = fs.get_online_features(view, ids)
    missing = [str(i) for i, row in zip(ids, rows, strict=True) if row.get(TIMESTAMP) is None]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise NotFound(
            f"no online features in view {view!r} for entity {', '.join(map(repr, missing[:5]))}{more} "
            "(never ingested, or older than the view's time-to-live)"
        )
    return EntityRows(rows, ids, fs, view)


def _entity_units(frame: pd.DataFrame, ids: list) -> dict:
    """unit -> entity id for RUL rows read by entity id: two entities holding the same unit would be scored as one
    engine's cycles (and answered once), so that is refused, naming them."""
    if "unit" not in frame.columns:
        return {}  # the model refuses the rows, naming the column
    units: dict = {}
    for entity, unit in zip(ids, pd.to_numeric(frame["unit"], errors="coerce"), strict=True):
        if pd.notna(unit) and units.setdefault(unit, entity) != entity:
            raise InvalidInput(f"entities {units[unit]!r} and {entity!r} both hold unit {unit:g}: a remaining useful "
                               "life by entity id needs one unit per entity")
    return units


# an energy forecast by entity id -------------------------------------------------------------------------------
# The online store keeps a meter's latest reading only; a day-ahead forecast reads at least a week of them (and its
# day-type profile up to ``PROFILE_LOOKBACK`` days). So the meter's recent readings are read from the tenant's
# offline store, as they were ingested (a gap stays a gap, for the model to handle as it would in records).
USAGE = {"usage_kwh": "Usage_kWh", "Usage_kWh": "Usage_kWh"}  # a view's usage column -> the model's
CO2 = {"co2_t": "CO2(tCO2)"}
METER = "__sfai_meter"  # the position of each history row's entity among the ids (a column of the history frame)


def meter_history(rows: EntityRows) -> pd.DataFrame:
    """The energy model's series (``date``, ``Usage_kWh`` and ``CO2(tCO2)`` where the view has it) of each meter in
    ``rows``: its readings of the ``PROFILE_LOOKBACK`` days (and one) up to its latest (the online row's time), from
    the offline store. ``date`` is the interval end in the plant's local time (Korea, as ``sfai ingest
    steel-energy`` read the DAEWOO file) with its UTC offset, as a client would send it; the store keeps UTC
    instants."""
    from models.energy import features as EF
    from pipelines.adapters.steel_energy import TZ

    if len(rows) > MAX_FORECAST_ENTITIES:
        raise InvalidInput(f"an energy forecast by entity id takes at most {MAX_FORECAST_ENTITIES} meters per "
                           f"request (each reads weeks of history); got {len(rows)}")
    view = rows.store.get_view(rows.view)
    names = view.feature_names
    usage = next((c for c in USAGE if c in names), None)
    if usage is None:
        more = f" and {len(names) - 8} more" if len(names) > 8 else ""
        raise InvalidInput(f"feature view {view.name!r} holds no energy readings: a forecast by entity id reads a "
                           f"meter's 'usage_kwh' history (as steel_energy_features holds it); it has "
                           f"{', '.join(names[:8])}{more}")
    co2 = next((c for c in CO2 if c in names), None)
    span = pd.Timedelta(days=EF.PROFILE_LOOKBACK + 1)
    first = _day_start(rows.first_day, TZ)
    parts, latest = [], []
    for i, row in enumerate(rows):
        until = pd.Timestamp(row[TIMESTAMP])
        since = until - span if first is None else min(until - span, first - span)  # a backtest from an earlier day
        part = _readings(rows.store, view, row[view.join_key], since, until, [c for c in (usage, co2) if c])
        stamps = pd.DatetimeIndex(part.pop(TIMESTAMP))
        latest.append(_last_time(stamps, row))
        local = stamps.tz_convert(TZ)
        part = part.rename(columns={usage: USAGE[usage], **({co2: CO2[co2]} if co2 else {})})
        part.insert(0, EF.DATE, local.map(pd.Timestamp.isoformat))
        part[METER] = i
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    frame.attrs[READINGS] = latest  # each meter's latest row read: the forecasts from it rest on it
    return frame


def _last_time(stamps: pd.DatetimeIndex, row: dict) -> str | None:
    """The latest of an entity's offline readings ``stamps`` (UTC) as its reading time (``reading_at``); where none
    were read, its online row's."""
    if not len(stamps):
        return row.get(TIMESTAMP)
    from serving.tenancy import utc_text

    return utc_text(stamps.max().to_pydatetime())


def _day_start(day: object, tz: str) -> pd.Timestamp | None:
    """An energy forecast's ``start`` (a day, or a time: its day) as that day's 00:00 on the plant's clock; None for
    none or one that is no date (the forecast itself refuses it, naming it)."""
    if not isinstance(day, str) or not day.strip():
        return None
    try:
        stamp = pd.Timestamp(day.strip()[:10])
    except (ValueError, OverflowError):
        return None
    return None if pd.isna(stamp) else stamp.tz_localize(tz)


def unit_history(rows: EntityRows) -> pd.DataFrame:
    """The cycles of each engine in ``rows`` (``unit, cycle, op_setting_1..3, sensor_1..21``, as the C-MAPSS files
    hold them; ``unit`` is each entity's engine number, :func:`_engine_numbers`), read up to its latest cycle from the
    offline store: a remaining useful life reads a unit's recent cycles, and the online store keeps its last one.
    A view that holds ``unit`` itself (the files' rows, as sent) is read from the online rows as before."""
    from pipelines.adapters.cmapss import MAX_CYCLE, SENSORS, SETTINGS

    view = rows.store.get_view(rows.view)
    names = view.feature_names
    if "unit" in names:
        return pd.DataFrame.from_records(rows)
    need = ["cycle", *SETTINGS, *SENSORS]
    if not all(c in names for c in need):
        raise InvalidInput(f"feature view {view.name!r} holds no engine cycles: a remaining useful life by entity id "
                           "reads a unit's cycles (cycle, op_setting_1..3 and the 21 sensors, as cmapss_features "
                           "holds them)")
    span = pd.Timedelta(hours=MAX_CYCLE)  # a cycle is stamped an hour after the one before (pipelines.adapters.cmapss)
    numbers = _engine_numbers(rows.ids)
    parts, latest = [], []
    for row, unit in zip(rows, numbers, strict=True):
        until = pd.Timestamp(row[TIMESTAMP])
        part = _readings(rows.store, view, row[view.join_key], until - span, until, need)
        latest.append(_last_time(pd.DatetimeIndex(part.pop(TIMESTAMP)), row))  # the unit's latest cycle read
        part = part.rename(columns={s: f"sensor_{j + 1}" for j, s in enumerate(SENSORS)})
        part.insert(0, "unit", unit)
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    frame.attrs[UNITS] = dict(zip(numbers, rows.ids, strict=True))
    frame.attrs[READINGS] = latest
    return frame


_ENGINE_ID = re.compile(r"-[ut](\d{1,9})$")  # cmapss_features' ids: FD001-u003 (engine 3), FD001-t003 (NASA's test)


def _engine_numbers(ids: list) -> list[int]:
    """Each entity's ``unit`` in the answer: its engine number where every id names one as ``cmapss_features`` does
    (``FD001-u003`` -> 3) and no two name the same; else 1, 2, ... in the request's order (an answer of unit 1 and
    2 for engines 3 and 7 had misled: the rows carry ``entity_id`` either way)."""
    found = [_ENGINE_ID.search(str(i)) for i in ids]
    numbers = [int(m.group(1)) for m in found if m]
    if len(numbers) == len(ids) and len(set(numbers)) == len(numbers) and min(numbers, default=1) >= 1:
        return numbers
    return list(range(1, len(ids) + 1))


def _readings(fs, view, key, since: pd.Timestamp, until: pd.Timestamp, columns: list[str]) -> pd.DataFrame:  # noqa: ANN001
    """The entity's readings in (since, until] from the offline store, as the decimals they were sent as (the store
    keeps float32: 3.17 is not 3.1700000762939453 here)."""
    out = fs.entity_history(view.name, key, since.to_pydatetime(), until.to_pydatetime(), columns).to_pandas()
    for c in columns:  # float32 -> its shortest decimal, then float64
        if out[c].dtype == "float32":
            out[c] = out[c].to_numpy().astype(str).astype(float)
    return out


def _forecast_meters(score, model, frame: pd.DataFrame, ids: list, options: dict) -> pd.DataFrame:  # noqa: ANN001
    """Each meter's forecasts from its history (:func:`meter_history`), tagged with its entity id. Without a
    ``start``: the latest the readings allow, from the 00:00 after the meter's last complete day (today's while
    today's readings come in, tomorrow's once its 24:00 reading is in), not one per day of the history read. A
    meter whose history is too short is a 422 naming it and saying what the forecast needs."""
    from models.energy import features as EF

    parts = []
    for i, entity in enumerate(ids):
        history = frame[frame[METER] == i].drop(columns=METER)
        opts = dict(options)
        try:
            if opts.get("start") is None and len(history):
                after = pd.Timestamp(history[EF.DATE].iloc[-1]).tz_localize(None) + EF.STEP
                opts["start"] = f"{after.floor('D'):%Y-%m-%d}"
            out = score(model, history.reset_index(drop=True), **opts)
        except InvalidInput as e:
            held = f"{len(history)} readings" if len(history) else "no readings"
            raise InvalidInput(f"entity {entity!r} ({held} in the {EF.PROFILE_LOOKBACK + 1} days up to its latest, in "
                               f"the offline store): {e.message}") from None
        out[ENTITY_ID] = pd.Series([entity] * len(out), index=out.index, dtype=object)
        parts.append(out)
    answer = pd.concat(parts, ignore_index=True)
    answer.attrs = {  # each meter's notes, named
        **{k: parts[0].attrs[k] for k in ("emission_factor_t_per_kwh",) if k in parts[0].attrs},  # the model's
        "filled_intervals": sum(int(p.attrs.get("filled_intervals", 0)) for p in parts),
        "warnings": [f"entity {entity!r}: {w}" for entity, p in zip(ids, parts, strict=True)
                     for w in p.attrs.get("warnings", [])],
        # the days the meters' forecasts cover that were no ordinary weekday, once each (every meter reads the
        # tenant's one calendar)
        "calendar_used": sorted({d["date"]: d for p in parts for d in p.attrs.get("calendar_used", [])}.values(),
                                key=lambda d: d["date"]),
    }
    return answer


# the reading each answer stood on ----------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)  # an MES asks about the same machines' latest readings again and again
def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def reading_age(at: str | None, now: datetime) -> int | None:
    """Whole seconds from the reading time ``at`` (the online store's ISO text) to ``now``; negative for a reading
    stamped after the server's clock (a sensor clock ahead)."""
    if not at:
        return None
    return int((now - _parse_time(at)).total_seconds())


def _with_readings(out: pd.DataFrame, ids: list, times: list) -> pd.DataFrame:
    """``out`` (rows of predictions by entity id, each naming its ``entity_id``) with each row's ``reading_at`` and
    ``reading_age_s`` (at :func:`clock`'s now): the reading of its entity (``times``, in the ids' order)."""
    now = clock()
    by_entity = {(type(e), e): t for e, t in zip(ids, times, strict=True)}
    at = [by_entity.get((type(e), e)) for e in out[ENTITY_ID]]
    ages = [reading_age(t, now) for t in at]
    out[READING_AT] = pd.Series(at, index=out.index, dtype=object)
    out[READING_AGE] = pd.Series(ages, index=out.index, dtype="int64" if None not in ages else object)
    return out


def _age_words(seconds: int) -> str:
    if seconds >= 2 * 86_400:
        return f"{seconds / 86_400:,.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 60:.0f} minutes"


STALE_SHOWN = 10  # entities named in the stale-reading warning (each row carries its own age)


def stale_readings(answer: pd.DataFrame | list[dict], threshold_s: float, view: str | None) -> list[str]:
    """The warning for an answer by entity id whose readings are older than ``threshold_s`` seconds
    (``SFAI_STALE_READING_S``; 0: none), naming each such entity, its reading time and age: its prediction is the
    machine's (unit's, meter's) of then, not of now, and an MES operator had trusted it (a stalled sensor feed)."""
    if not threshold_s:
        return []
    if isinstance(answer, pd.DataFrame):
        if READING_AGE not in answer.columns:
            return []
        triples = zip(answer[ENTITY_ID], answer[READING_AT], answer[READING_AGE], strict=True)
    else:
        triples = ((r.get(ENTITY_ID), r.get(READING_AT), r.get(READING_AGE)) for r in answer)
    old: dict = {}
    for entity, at, age in triples:
        if age is not None and age > threshold_s:
            old.setdefault((type(entity), entity), (entity, at, int(age)))
    if not old:
        return []
    shown = ", ".join(f"{e!r} read at {at} ({age:,} s, {_age_words(age)} ago)"
                      for e, at, age in list(old.values())[:STALE_SHOWN])
    more = f" and {len(old) - STALE_SHOWN:,} more" if len(old) > STALE_SHOWN else ""
    count = f"{len(old):,} entities' readings are" if len(old) > 1 else "1 entity's reading is"
    return [f"stale readings: {count} older than {threshold_s:,g} s (SFAI_STALE_READING_S): {shown}{more}. Their "
            "predictions describe them as they were then, not now (a sensor feed stopped?): send fresh readings "
            f"(POST /v1/ingest/{view or '<view>'}); each row's reading_age_s says how old its reading is"]


def with_warnings(notes: dict | None, warnings: list[str]) -> dict | None:
    """``notes`` (the answer's fields beside its predictions) with ``warnings`` added to its ``warnings``."""
    if not warnings:
        return notes
    notes = dict(notes or {})
    notes["warnings"] = [*notes.get("warnings", []), *warnings]
    return notes


def with_stale_warning(notes: dict | None, answer: pd.DataFrame | list[dict], threshold_s: float,
                       view: str | None) -> dict | None:
    """``notes`` with the :func:`stale_readings` warning added to its ``warnings``, where there is one."""
    return with_warnings(notes, stale_readings(answer, threshold_s, view))


def unnamed_model_warning(versions: list, family: str, model: OnnxModel) -> list[str]:
    """The warning of a call that named no ``model`` where the tenant has several of ``family``'s (``rul-fd001`` and
    ``rul-fd002``: engines of other operating conditions): which one answered, and how to name another."""
    from models.registry import other_champions

    others = other_champions(versions, family, model.name)
    if not others:
        return []
    return [f'no "model" named: scored with {model.name} (version {model.version}). This tenant also has '
            f'{", ".join(others)}: name the model of these records\' machines with "model" (e.g. "model": '
            f'"{others[0]}")']


_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def _with_query_options(body: dict, query: dict) -> None:
    """Options in the query string of a JSON call join the body's (an MES's generated client sends them there, as
    the API description lists them): ``?threshold=0.2`` had been ignored, the model's own threshold answered, and
    ``?model=nope`` or a misspelt option passed unread. The rows stay the body's; an option given in both places
    must agree."""
    for name in ("records", "entity_ids", "view"):
        if name in query:
            raise InvalidInput(f'"{name}" goes in the JSON body, not the query string')
    for name, value in query.items():
        if name in body and body[name] != value:
            raise InvalidInput(f'"{name}" is given twice, {shown(value)} in the query string and {shown(body[name])} '
                               "in the body: give it once")
        body[name] = value


def _binary_options(request) -> dict:  # noqa: ANN001
    options = query_options(request.query_params)
    check_one_source(options)  # the rows are the body: no online-store lookup besides
    return options


def query_options(params) -> dict:  # noqa: ANN001
    """Options given in the query string (with any body), typed as a JSON body would carry them:
    ``explain=true`` a boolean, ``horizon=96`` an integer; anything else stays text for ``_option`` to refuse. An
    option given twice (``?threshold=0.9&threshold=0.1``) is refused: which one was meant?"""
    names = [k for k, _ in params.multi_items()] if hasattr(params, "multi_items") else list(params)
    if len(names) != len(set(names)):
        twice = sorted({k for k in names if names.count(k) > 1})
        raise InvalidInput(f'"{twice[0][:40]}" is given twice in the query string: give it once')
    out: dict = dict(params)
    flag = str(out.get("explain", "")).strip().lower()
    if flag in _TRUE or flag in _FALSE:
        out["explain"] = flag in _TRUE
    for key in ("horizon", "top_k"):
        steps = str(out.get(key, "")).strip()
        if steps.isascii() and steps.isdigit():
            out[key] = int(steps)
    for key in ("recent_failure_rate", "threshold"):
        if key in out:
            try:
                out[key] = float(str(out[key]).strip())
            except ValueError:
                pass  # text: refused, naming the value
    return out


# what a family's answer frame may say beside its rows (``attrs``): an energy forecast's gap-filled intervals and the
# emission factor its co2_p50 was computed with
NOTES = ("filled_intervals", "warnings", "emission_factor_t_per_kwh", "calendar_used")


def answer_notes(frame: pd.DataFrame) -> dict | None:
    """The notes a scored frame carries for the JSON answer beside its predictions: an energy forecast's count of
    gap-filled intervals and its warnings (origins left out, intervals filled), which a client should see."""
    notes = {k: frame.attrs[k] for k in NOTES if k in frame.attrs}
    return notes or None


def arrow_stream(frame: pd.DataFrame, notes: dict | None = None) -> tuple[int, bytes]:
    """(rows, predictions as an Arrow IPC stream): the answer to ``Accept: application/vnd.apache.arrow.stream``.
    ``notes`` (what a JSON answer says beside its predictions: warnings, an energy forecast's ``calendar_used``...)
    go in the stream's schema metadata, each as ``sfai.<name>`` holding its JSON text."""
    ids = frame.get(ENTITY_ID)
    if ids is not None and len({type(i) for i in ids}) > 1:  # ids sent as text and numbers: one Arrow type, text
        frame = frame.assign(**{ENTITY_ID: ids.map(str)})
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if notes:
        table = table.replace_schema_metadata({
            **(table.schema.metadata or {}),
            **{f"sfai.{name}".encode(): json.dumps(value, ensure_ascii=False, default=str).encode()
               for name, value in notes.items()}})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return len(frame), sink.getvalue().to_pybytes()


def check_batch(count: int, limit: int, what: str = "records") -> None:
    if count > limit:
        raise InvalidInput(f"at most {limit} {what} per request; got {count}")


def _limit(frame: pd.DataFrame | list[dict], limit: int) -> pd.DataFrame | list[dict]:
    check_batch(len(frame), limit)
    if len(frame) == 0:
        raise InvalidInput("no records")
    return frame


@functools.cache
def family_options(family: str) -> tuple[str, ...]:
    """The body options the family's scorer takes (``explain`` for failure and defect, ``recent_failure_rate`` for
    defect, ``start`` and ``horizon`` for energy, none for RUL)."""
    params = inspect.signature(scorer(family)).parameters
    return tuple(k for k in OPTIONS if k in params)


def prediction_options(body: dict, family: str, explain: bool, rows: int) -> dict:
    """The body's scoring options, checked; ``explain`` on by default for explaining families' small batches.
    An option the family does not take is a 422 naming it."""
    allowed = family_options(family)
    unknown = [k for k in body if k not in BODY_FIELDS]
    if unknown:
        raise InvalidInput(
            f"unknown field {unknown[0]!r} in the request (it takes records or entity_ids with view, model, "
            + ", ".join(allowed or ("no other options",))
            + ")"
        )
    for k in OPTIONS:
        if k in body and k not in allowed:
            takes = ", ".join(f'"{o}"' for o in allowed) or "no options"
            raise InvalidInput(f'"{k}" is not an option of the {family} model (it takes {takes})')
    options = {k: _option(k, body[k]) for k in allowed if body.get(k) is not None}  # null: the default
    if explain and rows <= EXPLAIN_BY_DEFAULT:
        options.setdefault("explain", True)
    elif explain and family == "defect":  # not explained for its size: None, which the answer's warnings say
        options.setdefault("explain", None)
    return options


def _option(key: str, value):  # noqa: ANN202, ANN001
    if key == "explain":
        if not isinstance(value, bool):
            raise InvalidInput('"explain" must be true or false')
        return value
    if key == "horizon":  # one wording for every bad horizon, as the CLI and the model give it; a JSON body's "96"
        from models.energy.predict import check_horizon  # is text, not a number (a query string's was made one)

        return check_horizon(value, text=False)
    if key in ("recent_failure_rate", "top_k"):  # the model checks them (a share from 0 to 1; 1 to 590)
        return value
    if key == "threshold":
        return check_threshold(value)
    return str(value)


def check_threshold(value: object) -> float:
    """A caller's decision threshold (``threshold``, ``sfai predict --threshold``): a probability from 0 to 1."""
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if number is None or not 0.0 <= float(number) <= 1.0:  # NaN fails both
        raise InvalidInput('"threshold" must be a probability from 0 to 1 (a row is predicted positive at or above '
                           f"it; default: the threshold the model ships with); got {shown(value)}")
    return float(number)
