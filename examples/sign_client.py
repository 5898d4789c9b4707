"""Call the example server (examples/quickstart.py) with Ed25519-signed requests.

1. ``flask --app examples/quickstart.py gridauth keygen --out client-key.pem``
   prints the public key; register it with the bootstrap token::

       curl -X POST http://127.0.0.1:8080/api/v1/api-keys -H "Authorization: Bearer $TOKEN" \\
            -H "Content-Type: application/json" \\
            -d '{"type": "signing", "name": "trader", "public_key": "<public key>", "scopes": ["trade", "read"]}'

2. ``GRIDAUTH_URL=http://127.0.0.1:8080 GRIDAUTH_KEY_FILE=client-key.pem python examples/sign_client.py``

It signs three ways: by hand (version 1, nothing but ``cryptography``), with
``GridSigner`` for requests, and with ``GridSigner`` for httpx (version 2).
Exits non-zero if the server refuses any of them.
"""

from __future__ import annotations

# --- signing by hand (version 1) ---------------------------------------------
import base64
import hashlib
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def key_fingerprint(private_key: Ed25519PrivateKey) -> str:
    """Standard base64, without padding, of the SHA-256 of the raw public key."""
    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def signed_headers(private_key: Ed25519PrivateKey, method: str, path: str, body: bytes = b"") -> dict[str, str]:
    """Version 1 headers: sign <unix seconds><METHOD><path with query><raw body>."""
    timestamp = str(int(time.time()))
    message = timestamp.encode() + method.encode() + path.encode() + body
    signature = private_key.sign(message)
    return {
        "X-Grid-Signature": base64.b64encode(signature).decode(),
        "X-Grid-Timestamp": timestamp,
        "X-Grid-Fingerprint": key_fingerprint(private_key),
    }


# --- end of signing by hand ---------------------------------------------------


def main() -> int:
    """Place an order three ways and read the boards; 0 when every call succeeds."""
    import json
    import os
    from pathlib import Path

    import httpx
    import requests

    from flask_gridauth.client import GridSigner, load_private_key

    base = os.environ.get("GRIDAUTH_URL", "http://127.0.0.1:8080").rstrip("/")
    private_key = load_private_key(Path(os.environ.get("GRIDAUTH_KEY_FILE", "client-key.pem")).read_bytes())
    json_type = {"Content-Type": "application/json"}
    results = []

    def order(quantity: int) -> bytes:
        # Ed25519 is deterministic: two identical requests in the same second carry the same
        # signature, and the server refuses the second as a replay. Real orders differ anyway.
        return json.dumps({"symbol": "ACME", "quantity": quantity}).encode()

    # By hand, version 1.
    body = order(10)
    headers = signed_headers(private_key, "POST", "/orders", body) | json_type
    results.append(("by hand (v1)", requests.post(base + "/orders", data=body, headers=headers, timeout=10)))

    # requests, version 2 (the default).
    with requests.Session() as session:
        session.auth = GridSigner(private_key)
        results.append(("requests (v2)", session.post(base + "/orders", data=order(20), headers=json_type, timeout=10)))
        results.append(("requests GET (v2)", session.get(base + "/boards", params={"page": "1"}, timeout=10)))

    # httpx, version 2.
    with httpx.Client(base_url=base, auth=GridSigner(private_key), timeout=10) as client:
        results.append(("httpx (v2)", client.post("/orders", content=order(30), headers=json_type)))

    ok = True
    for label, response in results:
        print(f"{label}: {response.status_code} {response.text.strip()}")
        ok = ok and response.status_code < 300
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
