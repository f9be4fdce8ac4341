"""What /openapi.json says of the prediction endpoints besides their family's rows (``serving.routers.modules``):
the ``entity_id`` that an answer by entity id adds to each row."""

from __future__ import annotations

from fastapi import APIRouter

from serving.predictions import ENTITY_ID

ENTITY_ID_FIELD = {
    "anyOf": [{"type": "string"}, {"type": "integer"}],
    "description": "with entity_ids only: the entity this row answers, as sent (the family's own id is kept)",
}
ENTITY_IDS = ("instead of records: the entities' latest features from the online store (an energy forecast reads "
              "each meter's recent history from the offline store); each answer row names its entity_id")


def document_entity_id(router: APIRouter, family: str) -> None:
    """Add ``entity_id`` to the answer rows of ``family``'s prediction route on ``router``, and say so where the
    body's ``entity_ids`` are described. The rows' schema is replaced, not updated: it is the family's shared one."""
    route = next(r for r in router.routes if getattr(r, "name", None) == f"predict_{family}")
    extra = route.openapi_extra
    items = extra["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["predictions"]["items"]
    items["properties"] = {**items["properties"], ENTITY_ID: ENTITY_ID_FIELD}
    body = extra["requestBody"]["content"]["application/json"]["schema"]["properties"]
    body["entity_ids"] = {**body["entity_ids"], "description": ENTITY_IDS}
