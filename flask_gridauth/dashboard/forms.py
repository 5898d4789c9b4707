"""Turn the dashboard's form fields into :class:`~flask_gridauth.KeyManager` arguments.

Only the translation lives here (days to seconds, a text box to a list);
every rule about names, scopes, lifetimes and grants is the KeyManager's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from werkzeug.datastructures import MultiDict

from .. import config as c
from ..errors import ConfigurationError, InvalidRequest
from ..management import MAX_DURATION
from ..scopes import is_valid_scope

DAY = 24 * 3600
#: Longest expiry the form offers, in days (the KeyManager's limit).
MAX_DAYS = MAX_DURATION // DAY
#: Grace periods the rotate form offers, in seconds, with their labels.
GRACE_CHOICES: tuple[tuple[int, str], ...] = (
    (0, "none: the old key stops at once"),
    (3600, "1 hour"),
    (86400, "1 day"),
    (7 * 86400, "7 days"),
    (30 * 86400, "30 days"),
)
_SPLIT = re.compile(r"[\s,]+")
_DIGITS = re.compile(r"[0-9]{1,10}")


def scope_catalog(config: Mapping[str, object]) -> dict[str, str] | None:
    """``GRIDAUTH_SCOPE_CATALOG`` as scope → description, or ``None`` for free text.

    The setting is a list of scope names or a mapping of scope names to short
    descriptions.
    """
    raw = config.get(c.SCOPE_CATALOG)
    if raw is None:
        return None
    if isinstance(raw, Mapping):
        items = list(raw.items())
    elif isinstance(raw, list | tuple):
        items = [(name, "") for name in raw]
    else:
        items = []
    if not items or not all(is_valid_scope(k) and isinstance(v, str) for k, v in items):
        raise ConfigurationError(
            "GRIDAUTH_SCOPE_CATALOG must be a non-empty list of scope names, or a mapping of them to descriptions"
        )
    return {str(k): str(v) for k, v in items}


def form_scopes(form: MultiDict[str, str], catalog: Mapping[str, str] | None) -> list[str]:
    """The scopes chosen: ticked boxes from the catalog, else the words of the text box."""
    if catalog is None:
        return [s for s in _SPLIT.split(form.get("scopes", "")) if s]
    chosen = form.getlist("scopes")
    if any(s not in catalog for s in chosen):
        raise InvalidRequest("scopes must be chosen from the list", field="scopes")
    return chosen


def form_expires_in(form: MultiDict[str, str]) -> int | None:
    """Seconds until expiry from the ``expires_in_days`` field; empty means never."""
    value = form.get("expires_in_days", "").strip()
    if not value:
        return None
    if not _DIGITS.fullmatch(value) or not 1 <= int(value) <= MAX_DAYS:
        raise InvalidRequest(f"expiry must be a whole number of days from 1 to {MAX_DAYS}", field="expires_in_days")
    return int(value) * DAY


def form_grace_period(form: MultiDict[str, str]) -> int:
    """Seconds the old key keeps working after a rotation."""
    value = form.get("grace_period", "0").strip()
    if not _DIGITS.fullmatch(value):
        raise InvalidRequest("grace period must be a whole number of seconds", field="grace_period")
    return int(value)


def form_quota(form: MultiDict[str, str]) -> dict[str, object] | None:
    """The quota the key form asks for (the API's ``quota`` object); an empty limit means none."""
    limit = form.get("quota_limit", "").strip()
    if not limit:
        return None
    if not _DIGITS.fullmatch(limit):
        raise InvalidRequest("the quota limit must be a whole number", field="quota")
    interval = form.get("refill_interval", "").strip()
    if not interval:
        return {"limit": int(limit), "refill": None}
    amount = form.get("refill_amount", "").strip()
    if not _DIGITS.fullmatch(amount):
        raise InvalidRequest("the refill amount must be a whole number", field="quota")
    return {"limit": int(limit), "refill": {"amount": int(amount), "interval": interval}}


def form_allowed_ips(form: MultiDict[str, str]) -> list[str]:
    """The addresses or CIDRs of the allowlist box, one per line or separated by commas; empty: anywhere."""
    return [s for s in _SPLIT.split(form.get("allowed_ips", "")) if s]


def error_field(exc: InvalidRequest) -> str | None:
    """The form field an error belongs to (the API's ``expires_in`` is the form's days field)."""
    return {"expires_in": "expires_in_days", "quota": "quota_limit"}.get(exc.field or "", exc.field)
