"""A local API server in the style of PraisonAI's generated servers.

``PRAISONAI_API_TOKEN`` sets the bearer token; without it a new one is made
on every start and printed to stderr (never written to disk).
``PRAISONAI_API_AUTH=disabled`` turns authentication off (with a loud
warning). ``/health`` is always open.

    python examples/local_agent_praisonai.py       # PRAISONAI_API_HOST / PRAISONAI_API_PORT
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, request

from flask_gridauth import GridAuth, public

app = Flask(__name__)
# --- gridauth configuration
app.config.update(
    GRIDAUTH_STORAGE_URI="memory://",
    GRIDAUTH_TOKEN_ENV="PRAISONAI_API_TOKEN",
    GRIDAUTH_AUTH_ENV="PRAISONAI_API_AUTH",
    GRIDAUTH_TOKEN_PERSIST=False,
    GRIDAUTH_TOKEN_BANNER="[praisonai-api] generated API token: {token}",
)
GridAuth(app)
# --- end of gridauth configuration


@app.get("/agents")
def agents() -> dict[str, Any]:
    """The agents this server runs."""
    return {"agents": [{"name": "assistant"}]}


@app.post("/chat")
def chat() -> dict[str, Any]:
    """One turn of a conversation."""
    message = (request.get_json(silent=True) or {}).get("message", "")
    return {"response": f"You asked: {message}"}


@app.get("/health")
@public
def health() -> dict[str, str]:
    """Liveness, for monitoring: no token needed."""
    return {"status": "healthy"}


if __name__ == "__main__":
    host = os.environ.get("PRAISONAI_API_HOST", "127.0.0.1")
    app.run(host=host, port=int(os.environ.get("PRAISONAI_API_PORT", "8080")))
