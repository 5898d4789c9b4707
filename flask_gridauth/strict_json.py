"""JSON bodies read strictly: the one reader of every body the web layer parses.

The standard library's ``json`` accepts a field twice (the last one wins) and
``NaN``/``Infinity``; a proxy or another parser in front of the app may read
such a body differently from us, so both are refused here.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn


def _reject_constant(name: str) -> NoReturn:
    raise ValueError("NaN and Infinity are not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two values for one field would let a proxy and this app read different bodies.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate field")
        result[key] = value
    return result


def loads_strict(data: bytes | str) -> Any:
    """The parsed JSON; ``ValueError`` for invalid JSON, a field given twice or NaN/Infinity.

    ``RecursionError`` (a body nested too deep) passes through, for the caller to
    refuse with the same 422.
    """
    return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
