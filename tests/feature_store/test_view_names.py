"""Feature view names are bounded (they name directories); a view stored before the bound never breaks a tenant."""

import json
import logging

import pytest

from feature_store import FeatureView, Field, entities
from feature_store.store import FeatureStore
from serving.db.tables import FeatureViewRecord
from serving.errors import InvalidInput
from serving.tenancy import get_tenant, utcnow
from tests.feature_store.conftest import REC, STATS


def view(name: str) -> FeatureView:
    return FeatureView(name=name, entity=entities.machine, schema=[Field(name="temp_mean", dtype="float32")])


def test_view_names_are_1_to_64_identifier_characters():
    assert view("v" * 64).name == "v" * 64
    for bad in ("v" * 65, "a" * 300, "", "1abc", "a-b", "a b"):
        with pytest.raises(ValueError, match="must be 1 to 64 characters") as e:
            view(bad)
        assert len(str(e.value)) < 200  # a 300-character name is cut in the message
    # a spec sent to the store (API, restore) is checked the same way
    with pytest.raises(ValueError, match="1 to 64"):
        FeatureView.from_spec({**STATS.to_spec(), "name": "x" * 65})


def _store_raw(db, tenant: str, name: str) -> None:
    """A view as an older SFAI (no name bound) registered it."""
    spec = {**view("placeholder").to_spec(), "name": name}
    with db.session() as s:
        s.add(FeatureViewRecord(tenant_id=get_tenant(db, tenant).id, name=name, version=1, fingerprint="0" * 16,
                                spec=json.dumps(spec, sort_keys=True), created_at=utcnow()))


def test_a_stored_long_name_still_works_where_the_disk_allows(store):
    """65..255 bytes: registered before the bound, its data may exist on disk: it stays listed and usable."""
    legacy = "m" * 90  # within String(100), so on PostgreSQL too
    _store_raw(store.db, "acme", legacy)
    fresh = FeatureStore(store.settings, store.db, "acme", online=store.online)
    assert sorted(v.name for v, _ in fresh.list_views()) == sorted(["machine_stats", legacy])
    assert fresh.ingest(legacy, [{"machine_id": "m1", "event_timestamp": REC["event_timestamp"], "temp_mean": 1.5}])
    assert fresh.offline.row_count("acme", legacy) == 1


def test_a_stored_name_too_long_for_a_directory_is_left_out_and_named(store, caplog):
    """A 300-character name (SQLite took it before the bound; 'File name too long' broke every command of the
    tenant): the other views still list and ingest; the view itself is a one-line error naming it."""
    if not store.db.is_sqlite:
        pytest.skip("PostgreSQL's String(100) never stored such a name")
    broken = "a" * 300
    _store_raw(store.db, "acme", broken)
    fresh = FeatureStore(store.settings, store.db, "acme", online=store.online)
    with caplog.at_level(logging.WARNING, logger="sfai.features"):
        assert [v.name for v, _ in fresh.list_views()] == ["machine_stats"]
    assert "'aaaaaaaaaa" in caplog.text and "300 characters" in caplog.text
    assert fresh.ingest("machine_stats", [REC]).rows == 1
    with pytest.raises(InvalidInput, match=r"stored feature view 'a+'\.\.\. \(300 characters\).*longer than 255"):
        fresh.ingest(broken, [REC])
    with pytest.raises(InvalidInput, match="300 characters"):
        fresh.get_view(broken)
