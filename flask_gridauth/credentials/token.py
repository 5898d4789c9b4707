"""The bootstrap token: configured, read from its file, or generated once.

Several workers starting at once must agree on one token, so a generated
token is written to a private temporary file and hard-linked into place: the
link either succeeds whole or fails because another worker won, whose file is
then read. Nobody ever reads a half-written file.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import sys
import time
from typing import Any

from ..errors import ConfigurationError, Unauthorized
from ..principal import Principal
from .parse import MAX_CREDENTIAL_LENGTH, TOKEN_RE

logger = logging.getLogger("flask_gridauth")

#: A configured token shorter than this is accepted with a warning.
MIN_TOKEN_LENGTH = 32
#: Printed once to stderr when a token is generated.
BANNER = "AUTH TOKEN (save this — shown only once): {token}"


def token_digest(token: str) -> bytes:
    """SHA-256 of the token: the only form kept in memory after start-up."""
    return hashlib.sha256(token.encode("ascii")).digest()


def validate_token(token: object, source: str) -> str:
    """A configured token must be a usable bearer token."""
    if not isinstance(token, str) or not TOKEN_RE.fullmatch(token) or len(token) > MAX_CREDENTIAL_LENGTH:
        raise ConfigurationError(
            f"the bootstrap token from {source} must be 1-4096 characters of A-Z a-z 0-9 - . _ ~ + /"
        )
    return token


def _read(path: str) -> str:
    # A writer that could not hard-link (see _create) may still be writing: retry briefly.
    for _ in range(50):
        try:
            with open(path, encoding="utf-8") as fh:
                data: Any = json.load(fh)
            return validate_token(data["token"], f"the token file {path}")
        except (ValueError, KeyError, TypeError):
            time.sleep(0.02)
        except OSError as exc:
            raise ConfigurationError(f"cannot read the token file {path}: {exc.strerror}") from None
    raise ConfigurationError(f"the token file {path} is not valid: delete it to generate a new token")


def write_token_file(path: str, token: str, *, replace: bool) -> bool:
    """Write ``token`` to ``path`` with mode 0600; without ``replace``, ``False`` if it exists."""
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"token": token, "created_at": int(time.time())}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    except OSError as exc:
        raise ConfigurationError(f"cannot write the token file {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def resolve_token(configured: object, token_file: str) -> str:
    """The bootstrap token: config or environment, else the file, else a new one (printed once)."""
    if configured is None:
        configured = os.environ.get("GRIDAUTH_API_TOKEN") or None
    if configured is not None:
        token = validate_token(configured, "GRIDAUTH_API_TOKEN")
        if len(token) < MIN_TOKEN_LENGTH:
            # Allowed (tests and local tools use short ones), but it holds every scope: say so loudly.
            logger.warning(
                "GRIDAUTH_API_TOKEN is shorter than %d characters: it holds every scope, so use a long random one"
                " (python -c 'import secrets; print(secrets.token_urlsafe(32))')",
                MIN_TOKEN_LENGTH,
            )
        return token
    if os.path.exists(token_file):
        return _read(token_file)
    token = secrets.token_urlsafe(32)
    if not write_token_file(token_file, token, replace=False):
        return _read(token_file)  # another worker won the race: use its token
    print(BANNER.format(token=token), file=sys.stderr, flush=True)
    return token


def token_principal(owner: str) -> Principal:
    """The bootstrap token's principal: every scope, every owner's keys."""
    return Principal(kind="token", id="token", owner=owner, scopes=frozenset({"*"}))


def verify_token(token: str, digest: bytes, principal: Principal) -> Principal:
    """``principal`` if ``token`` is the bootstrap token, else 401."""
    if not hmac.compare_digest(token_digest(token), digest):
        raise Unauthorized()
    return principal
