"""Ed25519 public-key checks that OpenSSL does not make: canonical encoding and prime order.

OpenSSL (through ``cryptography``) accepts any 32 bytes that decode to a curve
point, including the eight small-order points and points with a torsion
component. A small-order public key lets one signature verify for many
messages, so such keys are refused when they are registered. This runs once
per registration, never per request, so plain integer arithmetic is fast enough.

The arithmetic follows RFC 8032, sections 5.1.3 (decoding) and 5.1.4 (point
addition in extended coordinates).
"""

from __future__ import annotations

#: The field prime, 2**255 - 19.
P = 2**255 - 19
#: The order of the prime-order subgroup (RFC 8032's ``L``).
L = 2**252 + 27742317777372353535851937790883648493
#: The curve constant ``d = -121665 / 121666``.
D = -121665 * pow(121666, P - 2, P) % P
#: A square root of -1 modulo P.
SQRT_M1 = pow(2, (P - 1) // 4, P)

Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T)
IDENTITY: Point = (0, 1, 1, 0)


def decode_point(data: bytes) -> Point | None:
    """The point ``data`` encodes, or ``None`` if the encoding is not canonical or not on the curve."""
    if len(data) != 32:
        return None
    value = int.from_bytes(data, "little")
    sign = value >> 255
    y = value & ((1 << 255) - 1)
    if y >= P:  # a second encoding of y - P
        return None
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    vxx = v * x * x % P
    if vxx == (-u) % P:
        x = x * SQRT_M1 % P
    elif vxx != u:
        return None  # no x for this y: not a curve point
    if x == 0 and sign:
        return None  # "negative zero": a second encoding of x = 0
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def add(p1: Point, p2: Point) -> Point:
    """The sum of two points (RFC 8032, 5.1.4)."""
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * D * t1 * t2 % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def multiply(scalar: int, point: Point) -> Point:
    """``scalar`` times ``point``, by double-and-add (public data only: no need for constant time)."""
    result = IDENTITY
    addend = point
    while scalar:
        if scalar & 1:
            result = add(result, addend)
        addend = add(addend, addend)
        scalar >>= 1
    return result


def is_identity(point: Point) -> bool:
    """Whether ``point`` is the neutral element (X = 0, Y = Z)."""
    x, y, z, _ = point
    return x % P == 0 and (y - z) % P == 0


def is_safe_public_key(data: bytes) -> bool:
    """A canonical encoding of a point of prime order ``L``, as every honestly made key is.

    This refuses the identity, the other seven small-order points, points with a
    small-order component (``[L]A`` is not the identity) and every
    non-canonical encoding.
    """
    point = decode_point(data)
    if point is None or is_identity(point):
        return False
    return is_identity(multiply(L, point))
