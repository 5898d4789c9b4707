"""Failed-authentication throttling: failures counted per client address, 429 past the limit.

Counted only after a credential failed, so a valid credential is never refused
by this limit, whoever else shares the address (a NAT, an office proxy): only
the failures past the limit get 429 instead of 401. One counter call per
failure, none for a request that authenticates.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import time

from .errors import RateLimited
from .ratelimit_counting import Counting, unavailable
from .ratelimit_items import Limit, Stats

logger = logging.getLogger("flask_gridauth")


@functools.lru_cache(maxsize=4096)
def _ipv6_bucket(address: str) -> str:
    # One IPv6 host usually holds a whole /64: count the network, or an attacker rotates through it.
    try:
        ip = ipaddress.IPv6Address(address.split("%", 1)[0])
    except ValueError:
        return address[:64]
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))


def address_bucket(remote_addr: str | None) -> str:
    """What failed authentications are counted by: the IPv4 address, or the IPv6 /64."""
    if not remote_addr:
        return "unknown"
    if ":" in remote_addr:
        return _ipv6_bucket(remote_addr)
    return remote_addr[:64]


def record_failure(counting: Counting, limits: tuple[Limit, ...], remote_addr: str | None) -> None:
    """Count a failed authentication against the client address; 429 once it is past ``limits``."""
    bucket = address_bucket(remote_addr)
    now = time.time()
    worst: float | None = None
    first = False
    try:
        for limit in limits:
            key = "failed:" + bucket + limit.suffix
            count = counting.counters.incr(key, limit.expiry)
            reset = counting.reset_of(key, limit, count, now)
            if count > limit.amount:
                worst = reset if worst is None else max(worst, reset)
                first = first or count == limit.amount + 1
    except counting.errors as exc:
        raise unavailable(exc) from None
    if worst is None:
        return
    if first:
        logger.warning(
            "failed-authentication limit reached: remote=%s; its failures get 429 until the window ends", bucket
        )
    raise RateLimited(
        "Too many failed authentications from this address",
        headers=Stats(limits[0].amount, 0, worst).headers(now, retry_after=True),
    )
