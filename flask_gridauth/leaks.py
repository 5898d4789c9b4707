"""Leaked keys revoke themselves: ``POST /secret-scanning`` and ``POST /api-keys/revoke-leaked``.

Both routes are public and take raw keys found where they must not be. A
string that is not one of our keys (wrong shape or checksum) never reaches
storage; one that is, and exists, is revoked (or, for secret scanning with
``GRIDAUTH_SECRET_SCANNING_ACTION = "notify"``, only reported), logged by id
and prefix, and announced with the :data:`~flask_gridauth.signals.key_leaked`
signal. No raw key, and no hash of one, ever reaches a log line.

The public route answers the same ``202`` whatever existed, so it tells a
caller nothing about which keys were real; every call counts against the
failed-authentication limit of the caller's address.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from flask import Blueprint, Response, current_app, has_app_context, jsonify, request
from flask.blueprints import BlueprintSetupState

from . import signals
from .audit import Actor
from .errors import InvalidRequest, NotFound, PayloadTooLarge, Unauthorized
from .extension import GridAuthState, get_state
from .keys import check_key, hash_key
from .openapi import describe
from .records import KeyRecord
from .scopes import public
from .secret_scanning import KEY_ID_HEADER, MAX_ALERT_BYTES, SIGNATURE_HEADER, Action, SecretScanning
from .strict_json import loads_strict

logger = logging.getLogger("flask_gridauth")

Via = Literal["secret_scanning", "revoke_leaked"]

#: Most keys one ``POST /api-keys/revoke-leaked`` may name.
MAX_REVOKE_KEYS = 100
#: Largest ``revoke-leaked`` body read: 100 keys with room to spare.
MAX_REVOKE_BODY = 64 * 1024
#: Longest string taken from an alert's fields (``token``, ``type``, ``url``, ``source``).
MAX_TOKEN = 4096
MAX_TYPE = 200
MAX_URL = 2048
MAX_SOURCE = 200
#: ``app.extensions`` key of an app's :class:`~flask_gridauth.secret_scanning.SecretScanning` (or ``None``).
EXTENSION_KEY = "gridauth.secret_scanning"


@dataclass(frozen=True, slots=True)
class Finding:
    """What secret scanning is told about one token: its hash, its type and the label."""

    token_hash: str
    token_type: str
    true_positive: bool

    def to_dict(self) -> dict[str, str]:
        """GitHub's answer format for one token."""
        return {
            "token_hash": self.token_hash,
            "token_type": self.token_type,
            "label": "true_positive" if self.true_positive else "false_positive",
        }


# -- the service -------------------------------------------------------------


def find_key(state: GridAuthState, token: str) -> KeyRecord | None:
    """The stored API key ``token`` is, or ``None``; a malformed token or a bad checksum costs no look-up."""
    if not token.isascii() or not check_key(token, state.key_pattern):
        return None
    digest = hash_key(token)
    record = state.storage.find(digest)
    if record is None or record.type != "api_key" or not hmac.compare_digest(record.lookup.encode(), digest.encode()):
        return None
    return record


def report_leak(
    state: GridAuthState,
    record: KeyRecord,
    *,
    via: Via,
    action: Action,
    url: str | None = None,
    source: str | None = None,
) -> KeyRecord:
    """Revoke (``action="revoke"``) or only report a key found leaked; returns the record after it.

    A canary key is never revoked, whatever ``action`` says: it exists to be
    stolen, it authorises nothing, and its next use must still raise the alarm.
    """
    if record.canary:
        action = "notify"
    actor = _ACTORS[via]
    url, source = scrub(url), scrub(source)
    if action == "revoke" and record.revoked_at is None:
        record = state.keys.revoke(record.id, by=actor)
    _audit_leak(state, record, actor, via=via, action=action, url=url, source=source)
    logger.warning(
        "leaked key reported: id=%s prefix=%s owner=%s via=%s action=%s canary=%s url=%r source=%r",
        record.id,
        record.prefix,
        record.owner,
        via,
        action,
        record.canary,
        url,
        source,
    )
    sender = current_app._get_current_object() if has_app_context() else None  # type: ignore[attr-defined]
    signals.key_leaked.send(sender, key=record, url=url, source=source, via=via, action=action)
    return record


#: Who acts in the audit log: nobody signs in to these routes, so the route's caller is named.
_ACTORS: dict[Via, Actor] = {
    "secret_scanning": Actor(kind="github", id="secret_scanning", owner=None),
    "revoke_leaked": Actor(kind="anonymous", id="revoke_leaked", owner=None),
}
#: What a reported URL or source may hold that no log line or audit event may: something shaped
#: like an API key (any prefix) or a JWT, and long hex runs (hashes; a commit SHA is shortened to the
#: 12 digits git needs to name it).
_KEY_LIKE = re.compile(r"[A-Za-z0-9]+_(?:live|test)_[0-9a-fA-F]{20,}")
_JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)?")
_LONG_HEX = re.compile(r"[0-9a-fA-F]{40,}")


def scrub(text: str | None) -> str | None:
    """``text`` (a leak's URL or source) with key-shaped and JWT-shaped runs replaced, long hex shortened."""
    if text is None:
        return None
    text = _KEY_LIKE.sub("[redacted]", text)
    text = _JWT_LIKE.sub("[redacted]", text)
    return _LONG_HEX.sub(lambda m: m.group(0)[:12], text)


def _audit_leak(
    state: GridAuthState,
    record: KeyRecord,
    actor: Actor,
    *,
    via: Via,
    action: Action,
    url: str | None,
    source: str | None,
) -> None:
    """Record ``key.leaked`` with where the key was found; a URL the audit log refuses is left out, not fatal."""
    details: dict[str, Any] = {"via": via, "action": action, "prefix": record.prefix, "canary": record.canary}
    where = {"url": url, "source": source}
    try:
        state.audit.record(
            "key.leaked", target_id=record.id, owner=record.owner, by=actor, details={**details, **where}
        )
    except ValueError:
        # The URL or source held something shaped like a key, a hash or a JWT: never stored.
        logger.warning("key.leaked audit event for id=%s recorded without its url and source", record.id)
        state.audit.record("key.leaked", target_id=record.id, owner=record.owner, by=actor, details=details)


def token_hash(token: str) -> str:
    """The hex SHA-256 of a reported token, as secret scanning expects it back."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# -- request bodies ----------------------------------------------------------


def _read_body(limit: int) -> bytes:
    """The raw body, at most ``limit`` bytes (and never more than ``MAX_CONTENT_LENGTH``), else 413."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge()
    configured = request.max_content_length
    if request.content_length is None and (configured is None or configured > limit):
        # A streamed body has no length to check first: stop reading one byte past the limit.
        request.max_content_length = limit + 1
    try:
        data = request.get_data(cache=True)
    finally:
        request.max_content_length = configured
    if len(data) > limit:
        raise PayloadTooLarge()
    return data


def _parse_json(data: bytes) -> Any:
    try:
        return loads_strict(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise InvalidRequest("the body is not valid JSON", field="body") from None


def _string(entry: dict[str, Any], name: str, longest: int, *, required: bool) -> str | None:
    value = entry.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or len(value) > longest:
        raise InvalidRequest(f"each alert needs '{name}' as a string of at most {longest} characters", field=name)
    return value


def _alerts(data: bytes, max_tokens: int) -> list[tuple[str, str, str | None, str | None]]:
    """``(token, type, url, source)`` of each alert in GitHub's array, else 413/422."""
    body = _parse_json(data)
    if not isinstance(body, list) or not body:
        raise InvalidRequest("the body must be a non-empty JSON array of alerts", field="body")
    if len(body) > max_tokens:
        raise PayloadTooLarge(f"at most {max_tokens} tokens in one alert")
    alerts = []
    for entry in body:
        if not isinstance(entry, dict):
            raise InvalidRequest("each alert must be a JSON object", field="body")
        token = _string(entry, "token", MAX_TOKEN, required=True)
        kind = _string(entry, "type", MAX_TYPE, required=True)
        url = _string(entry, "url", MAX_URL, required=False)
        source = _string(entry, "source", MAX_SOURCE, required=False)
        assert token is not None and kind is not None  # noqa: S101 - required=True never gives None
        alerts.append((token, kind, url, source))
    return alerts


def _keys_to_revoke(data: bytes) -> list[str]:
    if not data.strip():
        raise InvalidRequest("the body must be a JSON object", field="body")
    body = _parse_json(data)
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object", field="body")
    if set(body) != {"keys"}:
        raise InvalidRequest('the body must be {"keys": [...]} and nothing else', field="keys")
    keys = body["keys"]
    if (
        not isinstance(keys, list)
        or not 1 <= len(keys) <= MAX_REVOKE_KEYS
        or not all(isinstance(k, str) and 1 <= len(k) <= MAX_TOKEN for k in keys)
    ):
        raise InvalidRequest(f"keys must be a list of 1-{MAX_REVOKE_KEYS} strings", field="keys")
    return keys


# -- the routes --------------------------------------------------------------


def secret_scanning_settings() -> SecretScanning | None:
    """The current app's secret-scanning settings, built once; ``None`` when it is off."""
    extensions = current_app.extensions
    if EXTENSION_KEY not in extensions:
        # Two first requests at once may both build; setdefault keeps one cache for the app.
        extensions.setdefault(EXTENSION_KEY, SecretScanning.from_config(current_app.config))
    settings: SecretScanning | None = extensions[EXTENSION_KEY]
    return settings


def _signature_failed(state: GridAuthState) -> NoReturn:
    remote = request.remote_addr
    logger.info("secret-scanning alert refused: bad or missing signature remote=%s", remote)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    signals.authentication_failed.send(app, kind="secret_scanning", reason="bad signature", remote_addr=remote)
    if state.ratelimit is not None:
        state.ratelimit.record_failure(remote)  # 429 instead of the 401 once past the limit
    raise Unauthorized()


@public
def secret_scanning() -> Response:
    """GitHub secret-scanning alerts: verify GitHub's signature, then revoke (or report) every key of ours."""
    settings = secret_scanning_settings()
    if settings is None:
        raise NotFound()
    state = get_state()
    data = _read_body(MAX_ALERT_BYTES)
    try:
        settings.verify(data, request.headers.get(SIGNATURE_HEADER), request.headers.get(KEY_ID_HEADER))
    except Unauthorized:
        _signature_failed(state)
    findings: list[Finding] = []
    for token, kind, url, source in _alerts(data, settings.max_tokens):
        record = find_key(state, token)
        if record is not None:
            report_leak(state, record, via="secret_scanning", action=settings.action, url=url, source=source)
        findings.append(Finding(token_hash(token), kind, record is not None))
    logger.info("secret-scanning alert: %d token(s), %d of ours", len(findings), sum(f.true_positive for f in findings))
    return jsonify([f.to_dict() for f in findings])


@public
def revoke_leaked() -> tuple[dict[str, Any], int]:
    """Anyone who found keys of ours may revoke them; the answer never says which were real."""
    state = get_state()
    if state.ratelimit is not None:
        # Every call counts as a failed authentication of the address: this route is a free
        # oracle-shaped door, and only the limit keeps it from being a key-guessing service.
        state.ratelimit.record_failure(request.remote_addr)  # 429 once past the limit
    keys = _keys_to_revoke(_read_body(MAX_REVOKE_BODY))
    _revoke_all(state, dict.fromkeys(keys))
    return {"object": "revocation_report", "received": len(keys)}, 202


def _revoke_all(state: GridAuthState, keys: Iterable[str]) -> None:
    found = 0
    for key in keys:
        record = find_key(state, key)
        if record is not None:
            found += 1
            report_leak(state, record, via="revoke_leaked", action="revoke")
    logger.info("leaked-key revocation request: remote=%s revoked=%d", request.remote_addr, found)


def _check_settings(setup: BlueprintSetupState) -> None:
    # A wrong GRIDAUTH_SECRET_SCANNING_* setting is a start-up error, not a failure at the first alert.
    SecretScanning.from_config(setup.app.config)


#: The OpenAPI description of the two routes (the document is generated from the URL map).
_DESCRIBE_REVOKE = describe(
    summary="Revoke keys found leaked (public; counted as failed authentications)",
    ok=(202, "RevocationReport", "Received; every existing key among them is revoked."),
    body="RevokeLeaked",
    errors=("413", "422", "429", "503"),
    components={
        "RevokeLeaked": {
            "type": "object",
            "additionalProperties": False,
            "required": ["keys"],
            "properties": {
                "keys": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_REVOKE_KEYS,
                    "items": {"type": "string", "minLength": 1, "maxLength": MAX_TOKEN},
                    "description": "Raw keys found where they must not be.",
                }
            },
        },
        "RevocationReport": {
            "type": "object",
            "required": ["object", "received"],
            "description": "The same whatever existed: it never says which keys were real.",
            "properties": {"object": {"const": "revocation_report"}, "received": {"type": "integer"}},
        },
    },
)
_DESCRIBE_SCANNING = describe(
    summary="GitHub secret-scanning alerts (public, signed by GitHub; on with a keys URL; 404 when off)",
    ok=(200, "SecretScanningResult", "One label per token, in order."),
    body="SecretScanningAlert",
    headers=tuple(
        {"name": name, "in": "header", "required": True, "schema": {"type": "string", "maxLength": 256}}
        for name in ("Github-Public-Key-Identifier", "Github-Public-Key-Signature")
    ),
    errors=("401", "404", "413", "422", "503"),
    components={
        "SecretScanningAlert": {
            "type": "array",
            "minItems": 1,
            "description": "GitHub's secret-scanning partner alert.",
            "items": {
                "type": "object",
                "required": ["token", "type"],
                "properties": {
                    "token": {"type": "string", "maxLength": MAX_TOKEN},
                    "type": {"type": "string", "maxLength": MAX_TYPE},
                    "url": {"type": "string", "maxLength": MAX_URL},
                    "source": {"type": "string", "maxLength": MAX_SOURCE},
                },
            },
        },
        "SecretScanningResult": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["token_hash", "token_type", "label"],
                "properties": {
                    "token_hash": {"type": "string", "description": "Hex SHA-256 of the token."},
                    "token_type": {"type": "string"},
                    "label": {"enum": ["true_positive", "false_positive"]},
                },
            },
        },
    },
)


def register_routes(blueprint: Blueprint) -> None:
    """Add ``POST /secret-scanning`` and ``POST /api-keys/revoke-leaked`` to ``blueprint``."""
    blueprint.add_url_rule("/secret-scanning", view_func=_DESCRIBE_SCANNING(secret_scanning), methods=["POST"])
    blueprint.add_url_rule("/api-keys/revoke-leaked", view_func=_DESCRIBE_REVOKE(revoke_leaked), methods=["POST"])
    blueprint.record_once(_check_settings)
