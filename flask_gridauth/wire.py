"""The signed-request wire format, shared by the server and the Python client; no Flask.

What a client signs (:func:`signed_message`) and how a public key is named
(:func:`fingerprint`) live here, once, so that the client imports only this
core module and the server's verifier cannot drift from it.
"""

from __future__ import annotations

import base64
import hashlib


def fingerprint(raw_public_key: bytes) -> str:
    """Standard base64, without padding, of the SHA-256 of a raw 32-byte public key."""
    return base64.b64encode(hashlib.sha256(raw_public_key).digest()).rstrip(b"=").decode("ascii")


def signed_message(version: str, timestamp: str, method: str, host: str, target: bytes, body: bytes) -> bytes:
    """The bytes a client signs.

    Version 1: ``<timestamp><METHOD><target><body>`` (``host`` unused).
    Version 2: ``<timestamp>\\n<METHOD>\\n<host>\\n<target>\\n<hex SHA-256 of body>``.
    ``target`` is the path with its query, as bytes on the wire.
    """
    if version == "1":
        return b"".join((timestamp.encode("ascii"), method.encode("ascii"), target, body))
    digest = hashlib.sha256(body).hexdigest()
    return b"\n".join(
        (timestamp.encode("ascii"), method.encode("ascii"), host.encode("ascii"), target, digest.encode("ascii"))
    )
