"""The example API server: `make demo` runs it on 127.0.0.1:8080 with SQLite storage.

On the first start it prints the bootstrap token once. Create a key with it:

    curl -X POST http://127.0.0.1:8080/api/v1/api-keys -H "Authorization: Bearer $TOKEN" \\
         -H "Content-Type: application/json" -d '{"name": "script", "scopes": ["read"]}'
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

from flask import Flask, request

from flask_gridauth import GridAuth, api_keys_blueprint, current_principal, dashboard_blueprint, public, require_scope
from flask_gridauth.credentials.token import write_token_file


def instance_secret(instance_path: str) -> str:
    """A secret key kept in the instance folder (mode 0600): made once, then read by every worker and restart."""
    path = os.path.join(instance_path, "secret-key.json")
    # The token file's writer creates the file atomically and exclusively, so racing workers agree.
    write_token_file(path, secrets.token_hex(32), replace=False)
    with open(path, encoding="utf-8") as fh:
        return str(json.load(fh)["token"])


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The example app: a few private routes, one public one, and the key blueprint."""
    app = Flask(__name__, instance_path=os.environ.get("GRIDAUTH_INSTANCE_PATH") or None)
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    # Signs the dashboard's session cookie and the key-list cursors: every worker needs the same one.
    app.config["SECRET_KEY"] = os.environ.get("GRIDAUTH_SECRET_KEY") or instance_secret(app.instance_path)
    app.config.update(config or {})
    GridAuth(app)
    app.register_blueprint(api_keys_blueprint, url_prefix="/api/v1")
    app.register_blueprint(dashboard_blueprint, url_prefix="/dashboard")

    @app.get("/boards")
    def boards() -> dict[str, Any]:
        """Any key with `read` (the GET default)."""
        return {"owner": current_principal.owner, "boards": ["main", "ideas"]}

    @app.post("/holdings")
    @require_scope("holdings:write")
    def holdings() -> tuple[dict[str, Any], int]:
        """Needs the namespaced `holdings:write` scope."""
        return {"received": request.get_json(silent=True)}, 201

    @app.post("/orders")
    @require_scope("trade")
    def orders() -> tuple[dict[str, Any], int]:
        """The sensitive call: meant for Ed25519-signed requests."""
        return {"order": request.get_json(silent=True), "by": current_principal.kind}, 201

    @app.get("/")
    @public
    def index() -> dict[str, str]:
        """Public: no credential needed."""
        return {"service": "flask_gridauth example", "docs": "/api/v1/health"}

    return app


if __name__ == "__main__":
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8080"))
    create_app().run(host=host, port=port)
