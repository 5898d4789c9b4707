"""Add a credential kind of your own: OAuth 2.0 access tokens checked by token introspection (RFC 7662).

Your authorization server issues opaque tokens that start with ``oat_``. A
request that sends one (``Authorization: Bearer oat_...`` or ``x-api-key``) is
verified by asking the server's introspection endpoint; every other credential
kind keeps working beside it, and ``@require_kind`` can restrict a route to it.

Run it: ``python examples/custom_verifier.py``. It starts a small introspection
server on a loopback port, then sends requests to the app and checks the answers.
"""

from __future__ import annotations

import json
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from flask import Flask

from flask_gridauth import GridAuth, Principal, Unavailable, current_principal, require_kind, require_scope

# -- a stand-in authorization server (yours runs elsewhere) --------------------------

#: The tokens the authorization server knows: token -> its introspection answer.
ISSUED: dict[str, dict[str, Any]] = {
    "oat_live_4f7c2a": {"active": True, "sub": "user_42", "client_id": "reports-cli", "scope": "reports:write read"},
    "oat_expired_91b0": {"active": False},
}
#: The credentials the app uses to call the introspection endpoint.
CLIENT_ID, CLIENT_SECRET = "gridauth-app", secrets.token_urlsafe(16)


class IntrospectionHandler(BaseHTTPRequestHandler):
    """``POST /introspect`` with ``token=...`` (form-encoded, HTTP Basic client auth), as RFC 7662 says."""

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        """Answer ``{"active": ...}`` for the token; 401 for a caller without the client credentials."""
        expected = "Basic " + _basic(CLIENT_ID, CLIENT_SECRET)
        if self.headers.get("Authorization") != expected:
            self._answer(401, {"error": "invalid_client"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        token = (form.get("token") or [""])[0]
        self._answer(200, ISSUED.get(token, {"active": False}))

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """Quiet."""


def _basic(user: str, password: str) -> str:
    import base64

    return base64.b64encode(f"{user}:{password}".encode()).decode()


# -- the app ---------------------------------------------------------------------------


def create_app(introspection_url: str) -> Flask:
    """An API that accepts the usual credentials plus OAuth tokens checked by introspection."""
    app = Flask(__name__)
    app.config["GRIDAUTH_STORAGE_URI"] = "memory://"
    app.config["GRIDAUTH_API_TOKEN"] = False  # this demo needs no bootstrap token
    auth = GridAuth(app)

    @auth.verifier("oauth", prefix="oat_")
    def introspect(token: str) -> Principal | None:
        """Ask the authorization server about ``token``; ``None`` (a 401) unless it is active."""
        request = urllib.request.Request(  # noqa: S310 - a configured https:// (here loopback) URL
            introspection_url,
            data=urllib.parse.urlencode({"token": token, "token_type_hint": "access_token"}).encode(),
            headers={"Authorization": "Basic " + _basic(CLIENT_ID, CLIENT_SECRET), "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=3) as response:  # noqa: S310
                answer = json.load(response)
        except (OSError, ValueError):
            # The authorization server is down: fail closed with 503, never let the request through.
            raise Unavailable() from None
        if answer.get("active") is not True or not isinstance(answer.get("sub"), str):
            return None
        return Principal(
            kind="oauth",
            id=str(answer.get("client_id") or answer["sub"]),
            owner=answer["sub"],
            scopes=frozenset(str(answer.get("scope", "")).split()),  # expanded: reports:write gives reports:read
        )

    @app.get("/reports")
    @require_scope("reports:read")
    def reports() -> dict[str, Any]:
        return {"owner": current_principal.owner, "kind": current_principal.kind}

    @app.post("/exports")
    @require_scope("reports:write")
    @require_kind("oauth")
    def exports() -> dict[str, Any]:
        return {"exported_for": current_principal.owner}

    return app


def main() -> None:
    """Start the introspection server, then check what the app answers."""
    server = HTTPServer(("127.0.0.1", 0), IntrospectionHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        app = create_app(f"http://127.0.0.1:{server.server_port}/introspect")
        client = app.test_client()
        ok = client.get("/reports", headers={"Authorization": "Bearer oat_live_4f7c2a"})
        assert ok.status_code == 200 and ok.get_json() == {"owner": "user_42", "kind": "oauth"}, ok.get_json()
        assert client.get("/reports", headers={"x-api-key": "oat_live_4f7c2a"}).status_code == 200
        assert client.post("/exports", headers={"Authorization": "Bearer oat_live_4f7c2a"}).status_code == 200
        inactive = client.get("/reports", headers={"Authorization": "Bearer oat_expired_91b0"})
        assert inactive.status_code == 401 and inactive.headers["WWW-Authenticate"] == "Bearer"
        # API keys still work beside OAuth tokens, but /exports takes OAuth tokens only.
        with app.app_context():
            _, raw_key = app.extensions["gridauth"].keys.create(name="ci", scopes=["reports:admin"], owner="user_42")
        assert client.get("/reports", headers={"x-api-key": raw_key}).status_code == 200
        assert client.post("/exports", headers={"x-api-key": raw_key}).status_code == 403
        print("custom verifier example: ok")
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
