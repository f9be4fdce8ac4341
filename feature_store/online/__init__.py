"""Online stores: the latest feature values per entity, for serving. SQLite by default, Redis by URL."""

from feature_store.online.base import OnlineStore, online_store_for, open_online_store

__all__ = ["OnlineStore", "online_store_for", "open_online_store"]
