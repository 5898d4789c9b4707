"""A local agent server in the style of Grip: one ``grip_`` token, kept in ``~/.grip/config.json``.

On the first start the token is generated, written at ``gateway.api.auth_token``
inside ``~/.grip/config.json`` (every other setting there is kept; the file is
made 0600) and printed once to stderr. Every route but ``/health`` and the
OAuth callback needs it as ``Authorization: Bearer grip_...``.

    python examples/local_agent_grip.py            # 127.0.0.1:8080 (GRIP_PORT changes it)
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, request

from flask_gridauth import GridAuth, public
from flask_gridauth.errors import ErrorInfo

app = Flask(__name__)
# --- gridauth configuration
app.config.update(
    GRIDAUTH_STORAGE_URI="memory://",  # the token is the only credential: nothing to store
    GRIDAUTH_TOKEN_FILE=os.path.expanduser("~/.grip/config.json"),
    GRIDAUTH_TOKEN_FILE_KEY="gateway.api.auth_token",
    GRIDAUTH_TOKEN_PREFIX="grip_",
    GRIDAUTH_TOKEN_BANNER="AUTH TOKEN (save this — shown only once ):\n{token}",
    GRIDAUTH_RATELIMIT_TOKEN="60/minute",
)
auth = GridAuth(app)


@auth.error_handler
def detail(error: ErrorInfo) -> tuple[dict[str, str], int]:
    """Grip's error body: ``{"detail": "Authentication required"}``."""
    return {"detail": error.message}, error.status


# --- end of gridauth configuration


@app.post("/api/v1/chat")
def chat() -> dict[str, Any]:
    """The agent's answer to one message."""
    message = (request.get_json(silent=True) or {}).get("message", "")
    return {"reply": f"You said: {message}"}


@app.get("/api/v1/sessions")
def sessions() -> dict[str, Any]:
    """The conversation sessions."""
    return {"sessions": []}


@app.get("/health")
@public
def health() -> dict[str, str]:
    """Liveness, without a token."""
    return {"status": "ok"}


@app.get("/api/v1/mcp/callback")
@public
def mcp_callback() -> dict[str, str]:
    """Where the OAuth provider redirects the user's browser: no bearer token there."""
    return {"status": "received"}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("GRIP_PORT", "8080")))
