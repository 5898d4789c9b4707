"""A trading-style API in the style of TheGrid: consumption keys and Ed25519-signed trading requests.

- Consumption keys (scope ``inference``) call the OpenAI-compatible
  ``POST /v1/chat/completions`` with ``Authorization: Bearer`` and the
  Anthropic-compatible ``POST /v1/messages`` with ``x-api-key``: the same key
  works on both, so the official ``openai`` and ``anthropic`` SDKs work as is.
- Trading keys are Ed25519 public keys registered at ``/v1/api-keys``; every
  trading request carries ``x-thegrid-signature``, ``x-thegrid-timestamp`` and
  ``x-thegrid-fingerprint`` over ``<timestamp><METHOD><path><body>``.

    python examples/trading_api.py        # the bootstrap token is printed once; PORT changes the port
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, request

from flask_gridauth import GridAuth, api_keys_blueprint, current_principal, require_kind, require_scope

app = Flask(__name__)
app.config["SECRET_KEY"] = os.environ.get("THEGRID_SECRET_KEY", "dev-only-" + "x" * 32)
# --- gridauth configuration
app.config.update(
    GRIDAUTH_STORAGE_URI=os.environ.get("THEGRID_STORAGE_URI", "sqlite:///thegrid.db"),
    GRIDAUTH_SIGNATURE_HEADER_PREFIX="X-TheGrid",
    GRIDAUTH_SIGNATURE_REPLAY="unsafe",  # an identical GET may be repeated; orders never
)
GridAuth(app)
app.register_blueprint(api_keys_blueprint, url_prefix="/v1")
# --- end of gridauth configuration


def _prompt() -> str:
    body = request.get_json(silent=True) or {}
    messages = body.get("messages") or [{}]
    content = messages[-1].get("content", "")
    return content if isinstance(content, str) else str(content)


@app.post("/v1/chat/completions")
@require_scope("inference")
def chat_completions() -> dict[str, Any]:
    """An OpenAI-compatible chat completion (a canned answer)."""
    model = (request.get_json(silent=True) or {}).get("model", "Text-Prime")
    return {
        "id": "chatcmpl-grid-1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"Echo: {_prompt()}"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }


@app.post("/v1/messages")
@require_scope("inference")
def messages() -> dict[str, Any]:
    """An Anthropic-compatible message (a canned answer)."""
    model = (request.get_json(silent=True) or {}).get("model", "Text-Prime")
    return {
        "id": "msg_grid_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": f"Echo: {_prompt()}"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 2},
    }


@app.get("/v1/balances")
@require_kind("signature")
@require_scope("trade:read")
def balances() -> dict[str, Any]:
    """The account's balances: signed requests only, whatever scopes another credential holds."""
    return {"owner": current_principal.owner, "balances": {"USD": "1000.00"}, "kind": current_principal.kind}


@app.post("/v1/orders")
@require_kind("signature")
@require_scope("trade:write")
def place_order() -> tuple[dict[str, Any], int]:
    """Place an order."""
    return {"order": request.get_json(silent=True), "status": "accepted", "kind": current_principal.kind}, 201


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8080")))
