"""A SaaS API in the style of Griddy: Clerk session JWTs (RS256 via JWKS) and ``grd_`` API keys.

Browser users send their Clerk session token; scripts and CI jobs send an API
key they made themselves at ``/api/v1/api-keys``. Both carry permissions from
one catalog: a JWT's ``permissions`` claim, a key's ``scopes``. There is no
bootstrap token: nobody holds a superuser credential.

    CLERK_ISSUER=https://your-app.clerk.accounts.dev \\
    CLERK_JWKS_URL=https://your-app.clerk.accounts.dev/.well-known/jwks.json \\
    python examples/saas_clerk.py
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, request

from flask_gridauth import GridAuth, api_keys_blueprint, current_principal, require_scope

app = Flask(__name__)
app.config["SECRET_KEY"] = os.environ["GRIDDY_SECRET_KEY"]  # signs the key list's cursors
# --- gridauth configuration
app.config.update(
    GRIDAUTH_STORAGE_URI=os.environ.get("GRIDDY_STORAGE_URI", "sqlite:///griddy.db"),
    GRIDAUTH_API_TOKEN=False,
    GRIDAUTH_JWT_ISSUERS=[
        {"issuer": os.environ["CLERK_ISSUER"], "jwks_url": os.environ["CLERK_JWKS_URL"], "algorithms": ["RS256"]}
    ],
)
GridAuth(app)
app.register_blueprint(api_keys_blueprint, url_prefix="/api/v1")
# --- end of gridauth configuration


@app.get("/api/v1/catalog")
@require_scope("catalog:read")
def catalog() -> dict[str, Any]:
    """The catalog, for any caller holding ``catalog:read``."""
    return {"items": ["grid-a", "grid-b"], "caller": current_principal.kind}


@app.post("/api/v1/holdings")
@require_scope("holdings:write")
def add_holding() -> tuple[dict[str, Any], int]:
    """Record a holding for the caller."""
    return {"owner": current_principal.owner, "holding": request.get_json(silent=True)}, 201


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8080")))
