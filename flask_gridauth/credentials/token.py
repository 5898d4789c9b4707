"""The bootstrap token: configured, read from its file, or generated.

Where the token comes from, in order: ``GRIDAUTH_API_TOKEN`` (``False`` means
there is none at all), the environment variable ``GRIDAUTH_TOKEN_ENV`` names,
the token file, else a new token (printed once). ``GRIDAUTH_TOKEN_PERSIST =
False`` makes a new one on every start and never writes it.

Several workers starting at once must agree on one token. In our own token
file a generated token is hard-linked into place: the link either succeeds
whole or fails because another worker won, whose file is then read. Inside an
app's settings file (``GRIDAUTH_TOKEN_FILE_KEY``) the workers take turns under
a lock on the file's folder. How the files are written and read is
:mod:`.token_file`'s part.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .. import config as c
from ..errors import ConfigurationError, Unauthorized
from ..principal import Principal
from .parse import MAX_CREDENTIAL_LENGTH, classify_token
from .token_file import find_at, folder_lock, load_settings, read_token_file, store_at, write_json, write_token_file

logger = logging.getLogger("flask_gridauth")

#: A configured token shorter than this is refused.
MIN_TOKEN_LENGTH = 16
#: A configured token shorter than this is accepted with a warning.
SHORT_TOKEN_LENGTH = 32
#: Printed once to stderr when a token is generated (``GRIDAUTH_TOKEN_BANNER`` changes it).
BANNER = "AUTH TOKEN (save this — shown only once): {token}"
#: Printable ASCII without whitespace: what a configured token may hold.
CONFIGURED_TOKEN_RE = re.compile(r"[!-~]+")
#: A dotted path inside a JSON settings file: ``gateway.api.auth_token``.
FILE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
#: Bytes of randomness in a generated token (``secrets.token_urlsafe(32)``: 43 characters).
TOKEN_BYTES = 32


def token_digest(token: str) -> bytes:
    """SHA-256 of the token: the only form kept in memory after start-up."""
    return hashlib.sha256(token.encode("ascii")).digest()


def reads_as_other_kind(token: str, key_prefix: str) -> bool:
    """Whether a bearer ``token`` would be taken for a JWT or an API key, and so never reach us."""
    try:
        return classify_token(token, key_prefix).kind != "token"
    except Unauthorized:  # starts like a JWT without being one: refused before any verifier
        return True


def validate_token(token: object, source: str, key_prefix: str | None = None) -> str:
    """A configured token must be a usable bearer token: 16-4096 printable ASCII, no whitespace.

    With ``key_prefix``, a token that would be read as a JWT or an API key of
    that prefix is refused too: such a token could never authenticate.
    Messages name ``source``, never the token.
    """
    if (
        not isinstance(token, str)
        or not CONFIGURED_TOKEN_RE.fullmatch(token)
        or not MIN_TOKEN_LENGTH <= len(token) <= MAX_CREDENTIAL_LENGTH
    ):
        raise ConfigurationError(
            f"the bootstrap token from {source} must be {MIN_TOKEN_LENGTH}-{MAX_CREDENTIAL_LENGTH}"
            " printable ASCII characters without whitespace"
        )
    if key_prefix is not None and reads_as_other_kind(token, key_prefix):
        raise ConfigurationError(
            f"the bootstrap token from {source} is shaped like a JWT or an API key ({key_prefix}_live_...,"
            f" {key_prefix}_test_...), so it would be verified as one and never work: choose another"
        )
    return token


@dataclass(frozen=True)
class TokenSettings:
    """The bootstrap-token part of ``app.config``, checked once at start-up."""

    #: ``False``: no bootstrap token at all; else the configured token, or ``None``.
    configured: str | None | bool
    env_name: str = "GRIDAUTH_API_TOKEN"
    prefix: str = ""
    persist: bool = True
    file: str = "gridauth-token.json"
    file_key: tuple[str, ...] | None = None
    banner: str = BANNER
    key_prefix: str = "grd"
    #: Where the configured token came from, for error messages.
    source: str = field(default="GRIDAUTH_API_TOKEN")
    #: Prefixes of an app's own kinds (``@auth.verifier(prefix=...)``): a generated token never starts with one.
    avoid: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], key_prefix: str) -> TokenSettings:
        """Read and check ``GRIDAUTH_API_TOKEN`` and the ``GRIDAUTH_TOKEN_*`` keys."""
        env_name = config.get(c.TOKEN_ENV, "GRIDAUTH_API_TOKEN")
        if not isinstance(env_name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env_name):
            raise ConfigurationError("GRIDAUTH_TOKEN_ENV must be an environment variable name")
        prefix = config.get(c.TOKEN_PREFIX, "")
        if not isinstance(prefix, str) or len(prefix) > 64 or (prefix and not CONFIGURED_TOKEN_RE.fullmatch(prefix)):
            raise ConfigurationError("GRIDAUTH_TOKEN_PREFIX must be at most 64 printable ASCII characters")
        if reads_as_other_kind(prefix + "A" * 43, key_prefix):
            raise ConfigurationError(
                "GRIDAUTH_TOKEN_PREFIX would make every token look like a JWT or an API key: choose another"
            )
        persist = config.get(c.TOKEN_PERSIST, True)
        if not isinstance(persist, bool):
            raise ConfigurationError("GRIDAUTH_TOKEN_PERSIST must be True or False")
        path = config.get(c.TOKEN_FILE) or "gridauth-token.json"
        if not isinstance(path, str | os.PathLike):
            raise ConfigurationError("GRIDAUTH_TOKEN_FILE must be a path")
        file_key = config.get(c.TOKEN_FILE_KEY)
        if file_key is not None and (not isinstance(file_key, str) or not FILE_KEY_RE.fullmatch(file_key)):
            raise ConfigurationError("GRIDAUTH_TOKEN_FILE_KEY must be a dotted path such as 'gateway.api.auth_token'")
        banner = config.get(c.TOKEN_BANNER, BANNER)
        if not isinstance(banner, str) or "{token}" not in banner:
            raise ConfigurationError("GRIDAUTH_TOKEN_BANNER must be a string holding '{token}'")

        configured = config.get(c.API_TOKEN)
        source = "GRIDAUTH_API_TOKEN"
        if configured is None:
            configured = os.environ.get(env_name) or None
            source = f"the environment variable {env_name}"
        if configured is not False and configured is not None:
            configured = validate_token(configured, source, key_prefix)
        return cls(
            configured=configured,
            env_name=env_name,
            prefix=prefix,
            persist=persist,
            file=os.fspath(path),
            file_key=tuple(file_key.split(".")) if file_key else None,
            banner=banner,
            key_prefix=key_prefix,
            source=source,
        )

    def new_token(self) -> str:
        """A fresh random token with the prefix; one that would read as another kind is drawn again."""
        if self.avoid and self.prefix.startswith(self.avoid):
            raise ConfigurationError("GRIDAUTH_TOKEN_PREFIX starts with the prefix of an app's own credential kind")
        while True:
            token = self.prefix + secrets.token_urlsafe(TOKEN_BYTES)
            if not reads_as_other_kind(token, self.key_prefix) and not token.startswith(self.avoid):
                return token

    def check_rotatable(self) -> None:
        """A :class:`ConfigurationError` unless the token lives in the token file."""
        if self.configured is False:
            raise ConfigurationError("GRIDAUTH_API_TOKEN is False: this app has no bootstrap token")
        if self.configured is not None:
            raise ConfigurationError(
                f"the bootstrap token comes from GRIDAUTH_API_TOKEN (config or the environment variable"
                f" {self.env_name}): change it there"
            )
        if not self.persist:
            raise ConfigurationError("GRIDAUTH_TOKEN_PERSIST is False: every start makes a new token already")

    def announce(self, token: str) -> None:
        """Print the banner once to stderr: the only place a generated token is ever shown."""
        print(self.banner.replace("{token}", token), file=sys.stderr, flush=True)


def resolve_token(settings: TokenSettings) -> str | None:
    """The bootstrap token, ``None`` when there is none; a generated one is printed once."""
    if settings.configured is False:
        return None
    if isinstance(settings.configured, str):
        if len(settings.configured) < SHORT_TOKEN_LENGTH:
            # Allowed (local tools use short ones), but it holds every scope: say so loudly.
            logger.warning(
                "the bootstrap token from %s is shorter than %d characters: it holds every scope, so use a long"
                " random one (python -c 'import secrets; print(secrets.token_urlsafe(32))')",
                settings.source,
                SHORT_TOKEN_LENGTH,
            )
        return settings.configured
    if not settings.persist:
        token = settings.new_token()
        settings.announce(token)
        return token
    if settings.file_key is not None:
        return _from_settings_file(settings)
    if os.path.exists(settings.file):
        return _read(settings)
    token = settings.new_token()
    if not write_token_file(settings.file, token, replace=False):
        return _read(settings)  # another worker won the race: use its token
    settings.announce(token)
    return token


def bootstrap_digest(config: Mapping[str, Any], key_prefix: str) -> bytes | None:
    """The SHA-256 of this app's bootstrap token, ``None`` when ``GRIDAUTH_API_TOKEN`` is ``False``."""
    token = resolve_token(TokenSettings.from_config(config, key_prefix))
    return None if token is None else token_digest(token)


def resolve_bootstrap(config: Mapping[str, Any], key_prefix: str, avoid: tuple[str, ...] = ()) -> str | None:
    """This app's bootstrap token (``None`` when turned off); a generated one never starts with ``avoid``."""
    return resolve_token(replace(TokenSettings.from_config(config, key_prefix), avoid=avoid))


#: The longest prefix an app's kind may register (``registry.PREFIX_RE``).
MAX_KIND_PREFIX = 32


def token_heads(token: str, salt: bytes) -> frozenset[bytes]:
    """Keyed digests of the token's first 2..32 characters: enough to ask "does it start with p?" later.

    Kept instead of the token so that a kind registered after start-up can be
    checked against it; never logged or shown.
    """
    top = min(len(token), MAX_KIND_PREFIX)
    return frozenset(hmac.digest(salt, token[:n].encode("ascii"), "sha256") for n in range(2, top + 1))


def starts_with(heads: frozenset[bytes], salt: bytes, prefix: str) -> bool:
    """Whether the token of ``heads`` starts with ``prefix``."""
    return hmac.digest(salt, prefix.encode("ascii", "replace"), "sha256") in heads


def rotate_token(settings: TokenSettings) -> str:
    """Write a new token where the app keeps it and return it; nothing is printed here.

    A :class:`ConfigurationError` when the token is not kept in a file: configured,
    turned off, or not persisted.
    """
    settings.check_rotatable()
    token = settings.new_token()
    if settings.file_key is not None:
        with folder_lock(settings.file):
            data = load_settings(settings.file)
            store_at(data, settings.file_key, token, settings.file)
            write_json(settings.file, data)
    else:
        write_token_file(settings.file, token, replace=True)
    return token


def token_principal(owner: str) -> Principal:
    """The bootstrap token's principal: every scope, every owner's keys."""
    return Principal(kind="token", id="token", owner=owner, scopes=frozenset({"*"}))


def verify_token(token: str, digest: bytes, principal: Principal) -> Principal:
    """``principal`` if ``token`` is the bootstrap token, else 401."""
    if not hmac.compare_digest(token_digest(token), digest):
        raise Unauthorized()
    return principal


# -- files (written and read by token_file.py) ------------------------------


def _read(settings: TokenSettings) -> str:
    """The token in our own token file, checked like a configured one."""
    return validate_token(read_token_file(settings.file), f"the token file {settings.file}", settings.key_prefix)


def _from_settings_file(settings: TokenSettings) -> str:
    """The token at ``GRIDAUTH_TOKEN_FILE_KEY`` in a JSON settings file, generated there if absent."""
    assert settings.file_key is not None  # noqa: S101 - the caller checked
    path, file_key = settings.file, settings.file_key
    source = f"{'.'.join(file_key)} in the token file {path}"
    with folder_lock(path):
        data = load_settings(path)
        found = find_at(data, file_key, path)
        if found is not None and found != "":
            return validate_token(found, source, settings.key_prefix)
        token = settings.new_token()
        store_at(data, file_key, token, path)
        write_json(path, data)
    settings.announce(token)
    return token
