"""A SaaS API in the style of ChatGrid: ``cgk_`` API keys and Supabase JWTs (HS256) with every scope.

API keys hold ``read``, ``write`` or ``admin`` (each includes the one before);
a Supabase access token holds all three. Keys are managed at
``/v1/me/api-keys`` by a caller with ``admin``.

    SUPABASE_URL=https://xyz.supabase.co SUPABASE_JWT_SECRET=... python examples/saas_supabase.py
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, request

from flask_gridauth import GridAuth, current_principal, make_api_keys_blueprint

app = Flask(__name__)
app.config["SECRET_KEY"] = os.environ["CHATGRID_SECRET_KEY"]  # signs the key list's cursors
# --- gridauth configuration
app.config.update(
    GRIDAUTH_STORAGE_URI=os.environ.get("CHATGRID_STORAGE_URI", "sqlite:///chatgrid.db"),
    GRIDAUTH_KEY_PREFIX="cgk",
    GRIDAUTH_API_TOKEN=False,
    GRIDAUTH_JWT_ISSUERS=[
        {
            "issuer": os.environ["SUPABASE_URL"] + "/auth/v1",
            "secret": os.environ["SUPABASE_JWT_SECRET"],
            "algorithms": ["HS256"],
            "audience": "authenticated",
            "all_scopes": True,
        }
    ],
)
GridAuth(app)
app.register_blueprint(make_api_keys_blueprint(health=False, me=False, openapi=False), url_prefix="/v1/me")
# --- end of gridauth configuration

BOARDS: list[dict[str, Any]] = []


@app.get("/v1/boards")
def list_boards() -> dict[str, Any]:
    """The caller's boards (GET needs ``read``)."""
    return {"object": "list", "data": [b for b in BOARDS if b["owner"] == current_principal.owner]}


@app.post("/v1/boards")
def create_board() -> tuple[dict[str, Any], int]:
    """A new board (POST needs ``write``)."""
    board = {"name": (request.get_json(silent=True) or {}).get("name", ""), "owner": current_principal.owner}
    BOARDS.append(board)
    return board, 201


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8080")))
