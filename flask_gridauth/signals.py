"""Blinker signals for key events and failed authentications.

Receivers get the app as sender and keyword arguments that never include a
secret: ``key`` (a :class:`~flask_gridauth.records.KeyRecord`), or for a
failure ``kind``, ``reason`` and ``remote_addr``.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: A key was created: ``key``.
key_created = _signals.signal("gridauth.key-created")
#: A key was revoked: ``key``.
key_revoked = _signals.signal("gridauth.key-revoked")
#: A key was rotated: ``key`` (the new one) and ``old_key``.
key_rotated = _signals.signal("gridauth.key-rotated")
#: An authentication failed: ``kind``, ``reason``, ``remote_addr``.
authentication_failed = _signals.signal("gridauth.authentication-failed")
#: A key was reported leaked: ``key`` (the record after any revocation), ``url`` and ``source``
#: (where it was found, when known), ``via`` (``"secret_scanning"`` or ``"revoke_leaked"``) and
#: ``action`` (``"revoke"`` or ``"notify"``).
key_leaked = _signals.signal("gridauth.key-leaked")
#: A key was disabled (reversibly): ``key``.
key_disabled = _signals.signal("gridauth.key-disabled")
#: A disabled key was enabled again: ``key``.
key_enabled = _signals.signal("gridauth.key-enabled")
#: A canary key was used: ``key``, ``remote_addr``, ``user_agent``. The request got a generic 401.
canary_used = _signals.signal("gridauth.canary-used")
#: A request was made with a key that expires within ``GRIDAUTH_EXPIRY_WARNING``: ``key``.
#: Sent once per key and process.
key_expiring = _signals.signal("gridauth.key-expiring")
