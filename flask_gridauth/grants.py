"""What a caller may give a key: an owner, scopes and quota units.

:class:`~flask_gridauth.management.KeyManager` asks these before it creates,
changes or rotates a key, whoever calls it. ``by`` is the principal asking
(``None``: the operator, e.g. the CLI, who may give anything). The rate-limit
ceilings are the same kind of rule, in :mod:`flask_gridauth.ceilings`.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import Forbidden, InvalidRequest
from .principal import Principal
from .records import Quota, utcnow
from .schema import check_owner
from .storage import Storage


def owner_for(by: Principal | None, requested: object = None) -> str:
    """The owner a call acts for: ``requested`` if ``by`` may act for it, else ``by``'s own.

    The owner rule (:func:`~flask_gridauth.schema.check_owner`) holds for every
    owner named explicitly; only the bootstrap token and the operator name
    another owner than their own (403 otherwise).
    """
    if requested is None or (by is not None and isinstance(requested, str) and requested == by.owner):
        if by is None:
            raise InvalidRequest("owner is required", field="owner")
        return by.owner
    owner = check_owner(requested)
    if by is not None and not by.is_superuser and owner != by.owner:
        raise Forbidden("Cannot act for another owner")
    return owner


def check_scopes_held(by: Principal | None, scopes: Sequence[str]) -> None:
    """403 unless ``by`` holds every scope it would give."""
    if by is None:
        return
    missing = [s for s in scopes if not by.has_scope(s)]
    if missing:
        raise Forbidden("Cannot grant a scope you do not hold: " + ", ".join(missing))


def pay_for_quota(storage: Storage, by: Principal | None, quota: Quota | None) -> None:
    """A caller bound by a quota pays for the quota it gives, from its own balance, atomically; else 403.

    Giving a key ``quota.limit`` units spends as many of the caller's own
    (the storage's atomic :meth:`~flask_gridauth.storage.Storage.spend_quota`,
    so concurrent grants cannot both spend the same units): a grant moves
    units, it never makes them. For the same reason such a caller can give
    no key "no quota" and no refill (a refill makes units every interval,
    for every key given one). Run last, after every other check of the
    change, so a refused change costs nothing; units given are not
    returned when the key is revoked or its quota lowered.
    """
    own_key = by.key if by is not None else None
    if own_key is None or own_key.quota is None:
        return
    if quota is None:
        raise Forbidden("A key bound by a quota cannot give a key no quota")
    if quota.refill_amount:
        raise Forbidden("A key bound by a quota cannot give a key a refill: it would make units")
    use = storage.spend_quota(own_key, quota.limit, utcnow())
    if use is not None and not use.allowed:
        raise Forbidden(f"Cannot grant a quota larger than what is left of your own ({use.remaining})")
    # use is None: the caller's quota was removed meanwhile, and with it the bound.
