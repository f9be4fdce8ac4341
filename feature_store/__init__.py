"""SFAI feature store: declared feature views, a Parquet offline store, point-in-time training frames,
and an online store (SQLite or Redis) for serving."""

from feature_store import entities
from feature_store.entities import ENTITIES, Entity
from feature_store.types import Field
from feature_store.view import CREATED, TIMESTAMP, FeatureView

__all__ = ["ENTITIES", "CREATED", "TIMESTAMP", "Entity", "FeatureView", "Field", "entities"]
