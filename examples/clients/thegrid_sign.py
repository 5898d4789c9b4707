# Signed trading requests from Python with nothing but cryptography and requests (signed-string version 1).
import base64
import hashlib
import json
import os
import time

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

BASE_URL = "http://127.0.0.1:8080"
private_key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(os.environ["GRID_TRADING_PRIVATE_KEY"]))
public_key = private_key.public_key().public_bytes_raw()
fingerprint = base64.b64encode(hashlib.sha256(public_key).digest()).decode().rstrip("=")


def signed(method: str, path: str, body: str = "") -> dict[str, str]:
    """The three headers over <timestamp><METHOD><path><body>."""
    timestamp = str(int(time.time()))
    signature = private_key.sign(f"{timestamp}{method}{path}{body}".encode())
    return {
        "x-thegrid-signature": base64.b64encode(signature).decode(),
        "x-thegrid-timestamp": timestamp,
        "x-thegrid-fingerprint": fingerprint,
    }


body = json.dumps({"symbol": "GRID-A", "side": "buy", "quantity": 1})
headers = {**signed("POST", "/v1/orders", body), "Content-Type": "application/json"}
order = requests.post(f"{BASE_URL}/v1/orders", data=body, headers=headers, timeout=30)
print(order.status_code, json.dumps(order.json()))
balances = requests.get(f"{BASE_URL}/v1/balances", headers=signed("GET", "/v1/balances"), timeout=30)
print(balances.status_code, json.dumps(balances.json()))
