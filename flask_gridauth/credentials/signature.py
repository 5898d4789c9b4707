"""Ed25519-signed requests: the signed string, its checks, and the replay cache.

A signed request carries ``<P>-Signature``, ``<P>-Timestamp``,
``<P>-Fingerprint`` and optionally ``<P>-Signature-Version`` (``P`` is
``GRIDAUTH_SIGNATURE_HEADER_PREFIX``). Verification runs cheapest first:
header shapes and the clock (401, no storage, no cryptography), the body size
(413, no hashing), one storage look-up by fingerprint, one Ed25519 verify, and
only then the replay cache, so unsigned junk can never fill it.

The request target is the path and query as the client sent them: the raw
path from ``RAW_URI``/``REQUEST_URI`` (percent-encoding kept), rebuilt from
``SCRIPT_NAME`` + ``PATH_INFO`` when the server gives neither, and the query
from ``QUERY_STRING``, which WSGI servers pass undecoded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

from .. import config as c
from ..bounded_cache import BoundedCache, MakeCache
from ..errors import ConfigurationError, InvalidRequest, PayloadTooLarge, Unauthorized
from ..principal import Principal
from ..records import check_record, utcnow
from ..storage import Storage
from ..wire import fingerprint, signed_message
from .api_key import principal_for, touch_if_due
from .ed25519 import is_safe_public_key

logger = logging.getLogger("flask_gridauth")
#: Loaded public keys a verifier keeps (its ``signing_keys`` cache).
MAX_KEY_OBJECTS = 4096
_UNLOADED: Any = object()

Expander = Callable[[Iterable[str]], frozenset[str]]

#: Signed-string versions this module knows.
KNOWN_VERSIONS = ("1", "2")
#: ``GRIDAUTH_SIGNATURE_REPLAY`` values: refuse every replay, or only those of unsafe methods.
REPLAY_MODES = ("all", "unsafe")
#: Methods RFC 9110 calls safe: under ``"unsafe"`` their signatures may be used again in the window.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: The message of the 401 for a signature seen before (it is shown only after the signature verified).
REPLAYED = "Signature already used"
#: The 401 message, to the key's holder only, for a signature made before the storage server's last start.
SIGNED_BEFORE_RESTART = "Signature made before the storage restarted: sign the request again"
#: Body limit for signed requests when ``MAX_CONTENT_LENGTH`` is ``None``: the
#: whole body is held in memory to be verified, so it is never unbounded.
DEFAULT_MAX_BODY = 10 * 1024 * 1024
#: Largest accepted ``GRIDAUTH_SIGNATURE_TOLERANCE``, in seconds.
MAX_TOLERANCE = 3600

#: A header-name prefix: letters and digits in dash-separated words.
HEADER_PREFIX_RE = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")
#: Unix seconds in canonical ASCII decimal: no sign, space, dot, exponent,
#: underscore, leading zero or non-ASCII digit (``str.isdigit`` accepts "¹").
TIMESTAMP_RE = re.compile(r"[1-9][0-9]{0,11}")
#: Standard base64 of 32 bytes without padding; the last character carries two
#: zero bits, so only one spelling of each fingerprint matches.
FINGERPRINT_RE = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]")
#: Characters a path keeps unescaped when it must be rebuilt (RFC 3986 ``pchar`` and ``/``).
PATH_SAFE = "/:@!$&'()*+,;=-._~"
#: Length of the standard base64 of a 64-byte signature.
SIGNATURE_B64_LENGTH = 88
#: The 422 message for a public key that is not the strict base64 of 32 bytes.
BAD_PUBLIC_KEY = "public_key must be the standard base64 of a raw 32-byte Ed25519 key"


def load_public_key(public_key: object) -> tuple[str, str]:
    """Validate a base64 Ed25519 public key: ``(canonical base64, fingerprint)``, else 422.

    The key must be strict standard base64 of exactly 32 bytes that encode, in
    canonical form, a point of prime order: small-order and mixed-order points
    (which let one signature verify for many messages) are refused.
    """
    if not isinstance(public_key, str) or len(public_key) != 44:
        raise InvalidRequest(BAD_PUBLIC_KEY, field="public_key")
    try:
        raw = base64.b64decode(public_key, validate=True)
    except ValueError:  # binascii.Error, or a non-ASCII str
        raise InvalidRequest(BAD_PUBLIC_KEY, field="public_key") from None
    encoded = base64.b64encode(raw).decode("ascii")
    if len(raw) != 32 or encoded != public_key:
        raise InvalidRequest(BAD_PUBLIC_KEY, field="public_key")
    if not is_safe_public_key(raw):
        raise InvalidRequest(
            "public_key is not a usable Ed25519 key (small order or non-canonical)", field="public_key"
        )
    return encoded, fingerprint(raw)


def public_key_object(key_fingerprint: str, encoded: str) -> Ed25519PublicKey | None:
    """The loaded key of a stored record; ``None`` if the record does not match its fingerprint."""
    try:
        raw = base64.b64decode(encoded, validate=True)
        if len(raw) != 32 or not hmac.compare_digest(fingerprint(raw).encode(), key_fingerprint.encode()):
            return None
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return None


def verify_ed25519(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` (exactly 64 bytes) signs ``message`` under ``public_key``."""
    if len(signature) != 64:
        return False
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def request_target(environ: Mapping[str, Any]) -> bytes | None:
    """The path and query the client sent, as bytes; ``None`` if it cannot be known.

    WSGI strings are bytes decoded as latin-1, so encoding them back gives the
    wire bytes. An app mounted under a prefix (``SCRIPT_NAME``) sees the full
    path the client sent; if a proxy stripped the prefix before the app (so
    the raw target lacks it), the prefix is put back.
    """
    script = environ.get("SCRIPT_NAME", "")
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    try:
        if raw:
            path = raw.partition("?")[0]
            if not path.startswith("/"):
                # Absolute form (``http://host/path``) from a client talking to a proxy.
                scheme, sep, rest = path.partition("://")
                if not sep or not scheme.isalpha():
                    return None
                path = "/" + rest.partition("/")[2]
            wire = path.encode("latin-1")
            if script:
                prefix = quote(script.encode("latin-1"), safe=PATH_SAFE).encode("ascii")
                if not (wire == prefix or wire.startswith(prefix + b"/")):
                    wire = prefix + wire
        else:
            wire = quote((script + environ.get("PATH_INFO", "")).encode("latin-1"), safe=PATH_SAFE).encode("ascii")
        query = environ.get("QUERY_STRING", "")
        if query:
            wire += b"?" + query.encode("latin-1")
    except UnicodeError:  # not a real WSGI string
        return None
    return wire or b"/"


def _refuse(reason: str, *args: Any) -> Unauthorized:
    # The reason goes to the log for operators (clock skew is the usual one);
    # the caller only ever sees the generic 401.
    logger.info("signed request refused: " + reason, *args)
    return Unauthorized()


class SignatureVerifier:
    """Verifies ``<P>-Signature`` requests against the signing keys in storage.

    ``clock`` returns the current Unix time; tests may replace it.
    """

    def __init__(
        self,
        *,
        header_prefix: str = "X-Grid",
        tolerance: int = 30,
        versions: Iterable[str] = KNOWN_VERSIONS,
        replay: str = "all",
        make_cache: MakeCache = BoundedCache,
    ) -> None:
        env = "HTTP_" + header_prefix.upper().replace("-", "_")
        self.signature_env = env + "_SIGNATURE"
        self.timestamp_env = env + "_TIMESTAMP"
        self.fingerprint_env = env + "_FINGERPRINT"
        self.version_env = env + "_SIGNATURE_VERSION"
        #: WSGI environ names whose presence marks a signed request.
        self.environ_names = (self.signature_env, self.timestamp_env, self.fingerprint_env, self.version_env)
        self.tolerance = tolerance
        self.versions = frozenset(versions)
        #: Methods whose signatures may be used again inside the window (none under "all").
        self.replay_safe: frozenset[str] = SAFE_METHODS if replay == "unsafe" else frozenset()
        #: A signature is remembered for longer than it can be fresh: a
        #: timestamp is accepted over a span of 2 x tolerance (+1 s of rounding).
        self.replay_ttl = float(2 * tolerance + 2)
        self.clock: Callable[[], float] = time.time
        #: (fingerprint, stored public key) -> the loaded key: keyed by both, so a changed record never
        #: meets a stale entry. Kept: a signed v2 request costs 2,732,720 instructions with it and
        #: 2,757,639 without (callgrind, signed_v2, no usage counting): -24,919, 0.9%.
        self.key_objects: BoundedCache[tuple[str, str], Ed25519PublicKey | None] = make_cache(
            "signing_keys", MAX_KEY_OBJECTS
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, make_cache: MakeCache = BoundedCache) -> SignatureVerifier:
        """Build from ``GRIDAUTH_SIGNATURE_*``; a bad value is a :class:`ConfigurationError`."""
        prefix = config.get(c.SIGNATURE_HEADER_PREFIX, "X-Grid")
        if not isinstance(prefix, str) or len(prefix) > 64 or not HEADER_PREFIX_RE.fullmatch(prefix):
            raise ConfigurationError(
                "GRIDAUTH_SIGNATURE_HEADER_PREFIX must be a header-name prefix such as 'X-Grid'"
                " (letters and digits in dash-separated words, at most 64 characters)"
            )
        tolerance = config.get(c.SIGNATURE_TOLERANCE, 30)
        if isinstance(tolerance, bool) or not isinstance(tolerance, int) or not 1 <= tolerance <= MAX_TOLERANCE:
            raise ConfigurationError(f"GRIDAUTH_SIGNATURE_TOLERANCE must be whole seconds from 1 to {MAX_TOLERANCE}")
        versions = config.get(c.SIGNATURE_VERSIONS, KNOWN_VERSIONS)
        if isinstance(versions, str | bytes) or not isinstance(versions, Iterable):
            raise ConfigurationError("GRIDAUTH_SIGNATURE_VERSIONS must be a list such as ('1', '2')")
        names = [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in versions]
        if not names or any(v not in KNOWN_VERSIONS for v in names):
            raise ConfigurationError("GRIDAUTH_SIGNATURE_VERSIONS must be a non-empty list of '1' and/or '2'")
        replay = config.get(c.SIGNATURE_REPLAY, "all")
        if replay not in REPLAY_MODES:
            raise ConfigurationError("GRIDAUTH_SIGNATURE_REPLAY must be 'all' or 'unsafe'")
        return cls(header_prefix=prefix, tolerance=tolerance, versions=names, replay=replay, make_cache=make_cache)

    def verify(self, request: Request, *, storage: Storage, expand: Expander) -> Principal:
        """The signing key's principal, or 401 (413 for an oversized body)."""
        # The hook passes flask.request, a proxy: unwrap it once rather than on every attribute.
        unwrap = getattr(request, "_get_current_object", None)
        if unwrap is not None:
            request = unwrap()
        environ = request.environ
        signature_b64 = environ.get(self.signature_env)
        timestamp = environ.get(self.timestamp_env)
        key_fingerprint = environ.get(self.fingerprint_env)
        version = environ.get(self.version_env, "1")
        if signature_b64 is None or timestamp is None or key_fingerprint is None:
            raise _refuse("missing header")
        if version not in self.versions:
            raise _refuse("signature version not accepted")
        if not TIMESTAMP_RE.fullmatch(timestamp):
            raise _refuse("malformed timestamp")
        # Whole seconds on both sides, so the window is symmetric: exactly ``tolerance``
        # seconds either way pass, one more does not.
        skew = math.floor(self.clock()) - int(timestamp)
        if abs(skew) > self.tolerance:
            raise _refuse(
                "timestamp %+.0f s from the server clock (tolerance %d s): check the client's clock",
                -skew,
                self.tolerance,
            )
        signature = _decode_signature(signature_b64)
        if signature is None:
            raise _refuse("malformed signature")
        if not FINGERPRINT_RE.fullmatch(key_fingerprint):
            raise _refuse("malformed fingerprint")
        method = environ.get("REQUEST_METHOD", "GET").upper()
        target = request_target(environ)
        if target is None or not method.isascii():
            raise _refuse("unusable request target")
        host = ""
        if version == "2":
            host = environ.get("HTTP_HOST", "").lower()
            if not host or not host.isascii():
                raise _refuse("missing or non-ASCII Host header")
        body = _read_body(request)

        record = storage.find(key_fingerprint)
        if record is None or record.type != "signing" or record.public_key is None:
            raise _refuse("unknown fingerprint")
        key_objects = self.key_objects
        public_key = key_objects.get((record.lookup, record.public_key), _UNLOADED)
        if public_key is _UNLOADED:
            public_key = key_objects.put(
                (record.lookup, record.public_key), public_key_object(record.lookup, record.public_key)
            )
        message = signed_message(version, timestamp, method, host, target, body)
        if public_key is None or not verify_ed25519(public_key, signature, message):
            raise _refuse("bad signature for key %s", record.id)
        now = utcnow()
        check_record(record, now)  # after the signature: only the key's holder learns it is revoked
        if method not in self.replay_safe:
            self._check_storage_start(storage, int(timestamp), record.id)
        if method not in self.replay_safe and not storage.claim_once(
            hashlib.sha256(signature).hexdigest(), self.replay_ttl
        ):
            # Only the key's holder can make a valid signature, so saying why is no oracle,
            # and a client that sent one request twice learns it is not clock skew.
            logger.info("signed request refused: replayed signature for key %s", record.id)
            raise Unauthorized(REPLAYED)
        touch_if_due(storage, record, now)
        return principal_for(record, "signature", expand)

    @staticmethod
    def _check_storage_start(storage: Storage, timestamp: int, key_id: str) -> None:
        """401 for a timestamp not later than the storage server's last start: its replay cache may be gone."""
        started = storage.started_at()
        if started is not None and timestamp <= started:
            logger.info("signed request refused: timestamp not later than the storage's last start, key %s", key_id)
            raise Unauthorized(SIGNED_BEFORE_RESTART)


def _decode_signature(value: str) -> bytes | None:
    """64 bytes from strict, canonical standard base64, else ``None``."""
    # 64 bytes are 88 characters ending in "==", and the last data character
    # carries four zero bits: anything else is a second spelling or not 64 bytes.
    if len(value) != SIGNATURE_B64_LENGTH or not value.endswith("==") or value[85] not in "AQgw":
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        return None


def _read_body(request: Request) -> bytes:
    """The body, still readable by the view, or 413 above the limit before anything hashes it."""
    configured = request.max_content_length
    limit = DEFAULT_MAX_BODY if configured is None else configured
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge()
    if length is None:
        # A streamed (chunked) body: werkzeug stops quietly at a maximum, so allow
        # one byte more to tell "exactly the limit" from "more than the limit".
        request.max_content_length = limit + 1
    try:
        # werkzeug's public API, cached on the request, so the view reads the same bytes.
        body = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise PayloadTooLarge() from None
    finally:
        if length is None:
            request.max_content_length = configured
    if len(body) > limit:
        raise PayloadTooLarge()
    return body
