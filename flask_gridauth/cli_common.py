"""What every ``flask gridauth`` command shares: durations, tables, and errors as one ``Error:`` line.

Its own module so the command modules (``cli``, ``cli_audit``) both import it
and neither imports the other.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Sequence
from typing import ParamSpec, TypeVar

import click

from .errors import ConfigurationError, GridAuthError, InvalidRequest, StorageError

P = ParamSpec("P")
R = TypeVar("R")

_DURATION_RE = re.compile(r"([0-9]{1,12})([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: str, option: str) -> int:
    """Seconds from ``3600``, ``90s``, ``15m``, ``12h``, ``30d`` or ``2w``."""
    match = _DURATION_RE.fullmatch(value.strip().lower())
    if match is None:
        raise click.ClickException(f"{option} must be a duration such as 3600, 15m, 12h, 30d or 2w")
    return int(match.group(1)) * _UNITS[match.group(2)]


#: The option that carries each schema field, so an error names what the operator typed.
_OPTIONS = {"expires_in": "--expires", "rate_limit": "--rate-limit", "grace_period": "--grace", "id": "KEY_ID"}


def clean_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the library's errors into one ``Error:`` line and exit status 1.

    The rules are the KeyManager's (one schema for every caller); this only
    names the option an error is about.
    """

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except InvalidRequest as exc:
            option = _OPTIONS.get(exc.field or "", f"--{exc.field}".replace("_", "-")) if exc.field else ""
            raise click.ClickException(exc.message + (f" ({option})" if option else "")) from None
        except GridAuthError as exc:
            raise click.ClickException(exc.message) from None
        except StorageError as exc:
            raise click.ClickException(f"storage unavailable: {exc}") from None
        except ConfigurationError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> Iterator[str]:
    """The lines of a plain text table, each column as wide as its widest cell."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    yield "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    for row in rows:
        yield "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
