"""What every ``flask gridauth`` command shares: durations, tables of keys, and errors as one ``Error:`` line.

Its own module so the command modules (``cli``, ``cli_audit``, ``cli_owner_limit``)
all import it and none imports another.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import ParamSpec, TypeVar

import click

from .errors import ConfigurationError, GridAuthError, InvalidRequest, StorageError
from .management import KeyManager
from .records import KeyRecord, isoformat

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


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, empty: str | None = None) -> None:
    """Print the table of ``rows``; with ``empty``, print that line instead when there are no rows."""
    if not rows and empty is not None:
        click.echo(empty)
        return
    for line in table(headers, rows):
        click.echo(line)


def when(value: datetime | None) -> str:
    """A time as the commands print it: ISO 8601 UTC, or ``-``."""
    return isoformat(value) or "-"


#: Every column a table of keys can show: its header and how a record (at a time ``now``) fills it.
KEY_COLUMNS: dict[str, Callable[[KeyRecord, datetime | None], str]] = {
    "ID": lambda r, now: r.id,
    "NAME": lambda r, now: r.name,
    "TYPE": lambda r, now: r.type,
    "PREFIX": lambda r, now: r.prefix,
    "SCOPES": lambda r, now: ",".join(r.scopes),
    "ENV": lambda r, now: r.environment,
    "OWNER": lambda r, now: r.owner,
    "STATUS": lambda r, now: r.status(now),
    "CREATED": lambda r, now: when(r.created_at),
    "EXPIRES": lambda r, now: when(r.expires_at),
    "LAST USED": lambda r, now: when(r.last_used_at),
}


def echo_keys(records: Sequence[KeyRecord], columns: Sequence[str], *, empty: str, now: datetime | None = None) -> None:
    """Print ``records`` as a table of ``columns`` (names of :data:`KEY_COLUMNS`), or ``empty`` if there are none."""
    rows = [[KEY_COLUMNS[column](record, now) for column in columns] for record in records]
    echo_table(columns, rows, empty=empty)


def every_key(keys: KeyManager, owner: str | None) -> Iterator[KeyRecord]:
    """Every key (of ``owner``, or of every owner), newest first, read a page of 100 at a time."""
    before: int | None = None
    while True:  # bounded: every page moves ``before`` strictly down
        page = keys.list(owner=owner, limit=100, before_seq=before)
        yield from page
        if len(page) < 100:
            return
        before = page[-1].seq
