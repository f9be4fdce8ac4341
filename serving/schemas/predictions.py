"""What /openapi.json says of the prediction endpoints besides their family's rows (``serving.routers.modules``):
the ``entity_id``, ``reading_at`` and ``reading_age_s`` that an answer by entity id adds to each row, and its
stale-reading warning."""

from __future__ import annotations

from fastapi import APIRouter

from serving.predictions import ENTITY_ID, READING_AGE, READING_AT

ENTITY_ID_FIELD = {
    "anyOf": [{"type": "string"}, {"type": "integer"}],
    "description": "with entity_ids only: the entity this row answers, as sent (the family's own id is kept)",
}
READING_AT_FIELD = {
    "type": "string", "format": "date-time",
    "description": "with entity_ids only: when the reading this row stood on was taken (UTC, ISO 8601 ending in Z): "
    "the entity's latest online row (failure, defect), its latest cycle read (remaining life) or its latest meter "
    "row read (energy)",
}
READING_AGE_FIELD = {
    "type": "integer",
    "description": "with entity_ids only: that reading's age in whole seconds when the answer was made (negative: "
    "stamped after the server's clock). Over SFAI_STALE_READING_S (default 3600) the answer's warnings name the "
    "entity",
}
STALE_WARNING = ("by entity id: entities whose reading is older than SFAI_STALE_READING_S seconds (default 3600; "
                 "'stale readings: ...', naming each with its reading time and age: a sensor feed stopped?)")
ENTITY_IDS = ("instead of records: the entities' latest features from the online store (an energy forecast reads "
              "each meter's recent history from the offline store); each answer row names its entity_id")


def document_entity_id(router: APIRouter, family: str) -> None:
    """Add ``entity_id`` to the answer rows of ``family``'s prediction route on ``router``, and say so where the
    body's ``entity_ids`` are described. The rows' schema is replaced, not updated: it is the family's shared one."""
    route = next(r for r in router.routes if getattr(r, "name", None) == f"predict_{family}")
    extra = route.openapi_extra
    items = extra["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["predictions"]["items"]
    items["properties"] = {**items["properties"], ENTITY_ID: ENTITY_ID_FIELD, READING_AT: READING_AT_FIELD,
                           READING_AGE: READING_AGE_FIELD}
    answer = extra["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
    said = answer.get("warnings", {}).get("description")
    answer["warnings"] = {"type": "array", "items": {"type": "string"},
                          "description": f"{said}; {STALE_WARNING}" if said else STALE_WARNING[0].upper()
                          + STALE_WARNING[1:]}
    body = extra["requestBody"]["content"]["application/json"]["schema"]["properties"]
    body["entity_ids"] = {**body["entity_ids"], "description": ENTITY_IDS}
