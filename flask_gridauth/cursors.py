"""Pagination cursors for the list routes: opaque, sealed, owner-bound.

A cursor is the position, the owner and the time encrypted with AES-256-GCM
under a key derived from the app's ``SECRET_KEY`` (else the bootstrap token's
digest, the same in every worker): it reveals nothing, not even how many keys
exist, and another owner's cursor is refused like a forged one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

from .errors import InvalidRequest
from .extension import get_state
from .schema import MAX_CURSOR

#: Seconds a pagination cursor stays valid.
CURSOR_MAX_AGE = 24 * 3600
_CURSOR_INFO = b"flask_gridauth pagination cursor v2"
_CURSOR_RE = re.compile(r"[A-Za-z0-9_-]{40,}")


def _cursor_key() -> bytes:
    """The AES-256 key of cursors, from a secret every worker shares: the app's, else the token's digest."""
    secret: str | bytes | None = current_app.secret_key
    if not secret:
        # The token digest is the same in every worker (config, env or the shared token file),
        # so one worker reads another's cursors. Without auth there is no owner to protect.
        secret = get_state().token_digest or b""
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=_CURSOR_INFO).derive(raw)


def _owner_tag(owner: str | None) -> str | None:
    """A short digest of the owner: a cursor stays small whatever the owner's name (sealed anyway)."""
    return None if owner is None else hashlib.sha256(owner.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def make_cursor(seq: int, owner: str | None) -> str:
    """An opaque cursor that continues a listing after ``seq``.

    The position, the owner and the time are encrypted (AES-256-GCM, a fresh
    nonce each time): a cursor reveals nothing, not even how many keys exist.
    """
    payload = json.dumps({"s": seq, "o": _owner_tag(owner), "t": int(time.time())}, separators=(",", ":")).encode()
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_cursor_key()).encrypt(nonce, payload, _CURSOR_INFO)
    return base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")


def read_cursor(cursor: str, owner: str | None) -> int:
    """The ``seq`` a cursor continues from; 422 if it was forged, is stale or is another owner's.

    Every refusal is the same 422, so a cursor tells nothing about another owner's keys.
    """
    bad = InvalidRequest("cursor is not valid", field="cursor")
    if len(cursor) > MAX_CURSOR or not _CURSOR_RE.fullmatch(cursor):
        raise bad
    try:
        blob = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(AESGCM(_cursor_key()).decrypt(blob[:12], blob[12:], _CURSOR_INFO))
    except (ValueError, InvalidTag):
        raise bad from None
    seq = payload.get("s") if isinstance(payload, dict) else None
    issued = payload.get("t") if isinstance(payload, dict) else None
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0 or payload.get("o") != _owner_tag(owner):
        raise bad
    if not isinstance(issued, int) or not 0 <= time.time() - issued <= CURSOR_MAX_AGE:
        raise bad
    return seq
