"""The feature registry: each tenant's declared views and their versions, in the metadata database."""

from __future__ import annotations

import difflib
import json
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from feature_store.view import FeatureView, short_repr
from serving.db import Database
from serving.db.tables import FeatureViewRecord, FeatureViewState
from serving.errors import Conflict, InvalidInput, NotFound
from serving.tenancy import as_utc, utcnow

log = logging.getLogger("sfai.features")


def _load(record: FeatureViewRecord) -> FeatureView:
    """A stored view; ``InvalidInput`` naming it when it can no longer be loaded (e.g. a name registered before
    names were limited, too long for a directory), so that one such row does not break the tenant's commands."""
    try:
        return FeatureView.from_spec(json.loads(record.spec), stored=True)
    except (ValueError, TypeError, KeyError) as e:
        raise InvalidInput(
            f"stored feature view {short_repr(record.name)} (version {record.version}) cannot be used: "
            f"{' '.join(str(e).split()) or type(e).__name__}"
        ) from None


@dataclass(frozen=True, slots=True)
class Registered:
    view: FeatureView
    version: int
    status: str  # "created", "updated", "unchanged"


class Registry:
    def __init__(self, db: Database, tenant_id: int) -> None:
        self.db = db
        self.tenant_id = tenant_id

    def apply(self, view: FeatureView) -> Registered:
        """Register ``view``, or a new version of it; an incompatible change raises ``Conflict``."""
        with self.db.session() as s:
            cur = self._latest(s, view.name)
            if cur is None:
                version, status = 1, "created"
            else:
                old = _load(cur)
                if cur.fingerprint == view.fingerprint():
                    return Registered(old, cur.version, "unchanged")
                problems = old.incompatibilities(view)
                if problems:
                    raise Conflict(
                        f"feature view {view.name!r} (version {cur.version}) cannot change that way: "
                        + "; ".join(problems)
                        + ". Stored data would no longer match; declare a new view name instead."
                    )
                version, status = cur.version + 1, "updated"
            s.add(
                FeatureViewRecord(
                    tenant_id=self.tenant_id,
                    name=view.name,
                    version=version,
                    fingerprint=view.fingerprint(),
                    spec=json.dumps(view.to_spec(), sort_keys=True),
                    created_at=utcnow(),
                )
            )
        return Registered(view, version, status)

    def get(self, name: str) -> tuple[FeatureView, int]:
        with self.db.session() as s:
            cur = self._latest(s, name)
        if cur is None:
            raise NotFound(self._not_found(name))
        return _load(cur), cur.version

    def _not_found(self, name: str) -> str:
        """What to do next: a near name, the tenant's own views, or how a view is declared."""
        with self.db.session() as s:
            names = sorted(set(s.scalars(
                select(FeatureViewRecord.name).where(FeatureViewRecord.tenant_id == self.tenant_id)
            ).all()))
        # a typo's near name only: at difflib's default 0.6, 'secom_features' was "did you mean 'cmapss_features'?",
        # another dataset's view (the shared '_features' made them look alike)
        near = difflib.get_close_matches(name, names, n=1, cutoff=0.85)
        if near:
            hint = f"did you mean {near[0]!r}?"
        elif names:
            shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
            hint = f"this tenant's views: {shown}; declare another with 'sfai features apply FILE.py'"
        else:
            hint = ("this tenant has no views yet: 'sfai ingest' of a known dataset declares its view; declare "
                    "others with 'sfai features apply FILE.py'")
        return f"feature view {name!r} not found; {hint}"

    def list(self) -> list[tuple[FeatureView, int]]:
        """The latest version of each view; a stored view that cannot be loaded is left out with a warning
        naming it (``get`` on it raises the reason)."""
        with self.db.session() as s:
            latest = (
                select(FeatureViewRecord.name, func.max(FeatureViewRecord.version).label("v"))
                .where(FeatureViewRecord.tenant_id == self.tenant_id)
                .group_by(FeatureViewRecord.name)
                .subquery()
            )
            rows = s.scalars(
                select(FeatureViewRecord)
                .join(latest, (FeatureViewRecord.name == latest.c.name) & (FeatureViewRecord.version == latest.c.v))
                .where(FeatureViewRecord.tenant_id == self.tenant_id)
                .order_by(FeatureViewRecord.name)
            ).all()
        out = []
        for r in rows:
            try:
                out.append((_load(r), r.version))
            except InvalidInput as e:
                log.warning("%s (left out)", e.message)
        return out

    def history(self, name: str) -> list[int]:
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(FeatureViewRecord.version)
                    .where(FeatureViewRecord.tenant_id == self.tenant_id, FeatureViewRecord.name == name)
                    .order_by(FeatureViewRecord.version)
                )
            )

    # incremental materialization --------------------------------------------------------------------
    def materialized_until(self, name: str) -> datetime | None:
        with self.db.session() as s:
            st = s.get(FeatureViewState, (self.tenant_id, name))
            return as_utc(st.materialized_until) if st else None

    def set_materialized_until(self, name: str, until: datetime) -> None:
        with self.db.session() as s:
            st = s.get(FeatureViewState, (self.tenant_id, name))
            if st is None:
                s.add(FeatureViewState(tenant_id=self.tenant_id, name=name, materialized_until=until))
            else:
                st.materialized_until = until

    def _latest(self, s, name: str) -> FeatureViewRecord | None:  # noqa: ANN001
        return s.scalars(
            select(FeatureViewRecord)
            .where(FeatureViewRecord.tenant_id == self.tenant_id, FeatureViewRecord.name == name)
            .order_by(FeatureViewRecord.version.desc())
            .limit(1)
        ).first()
