"""Metadata database: tenants, subscriptions, API keys, usage log.

SQLite (WAL) by default, PostgreSQL by URL (``SFAI_DATABASE_URL``); the same code for both.
"""

from serving.db.engine import Database, make_engine, migrate

__all__ = ["Database", "make_engine", "migrate"]
