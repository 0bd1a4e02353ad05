"""POST /v1/providers (admin) and GET /v1/providers (staff)."""
from __future__ import annotations

import psycopg

from services.common.auth import require_staff
from services.common.errors import ApiError
from services.common.json_body import Blueprint, require_json

from .. import slot_store
from .common import pool
from .schemas import NewProviderSchema, ProviderListSchema, ProviderSchema

blp = Blueprint("providers", __name__, description="Pain-management providers (admin)")


@blp.route("/v1/providers", methods=["POST"])
@require_staff("admin")
@require_json
@blp.arguments(NewProviderSchema)
@blp.response(201, ProviderSchema)
@blp.alt_response(401, description="No valid staff token")
@blp.alt_response(403, description="Not an admin")
@blp.alt_response(409, description="A provider of that name already works at that location")
@blp.alt_response(422, description="Invalid fields, named in `error.fields`")
def add_provider(body):
    try:
        with pool().connection() as conn:
            return slot_store.add_provider(conn, body["name"], body["specialty"], body["location"])
    except psycopg.errors.UniqueViolation:
        raise ApiError(409, "provider_exists",
                       "A provider of that name already works at that location.") from None


@blp.route("/v1/providers", methods=["GET"])
@require_staff()
@blp.response(200, ProviderListSchema)
@blp.alt_response(401, description="No valid staff token")
def list_providers():
    with pool().connection() as conn:
        return {"items": slot_store.list_providers(conn), "next_cursor": None}
