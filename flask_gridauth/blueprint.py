"""``api_keys_blueprint``: /health, /me and the /api-keys routes. (In progress.)"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from .errors import StorageError
from .extension import get_state
from .principal import current_principal
from .scopes import public

api_keys_blueprint = Blueprint("gridauth", __name__)


@api_keys_blueprint.get("/health")
@public
def health() -> tuple[dict[str, Any], int]:
    """200 when storage answers, else 503."""
    try:
        get_state().storage.ping()
    except StorageError:
        return {"status": "unavailable"}, 503
    return {"status": "ok"}, 200


@api_keys_blueprint.get("/me")
def me() -> dict[str, Any]:
    """The caller's principal."""
    return current_principal.to_dict()
