"""``flask gridauth ...``: the key operations of the blueprint, from the shell.

The commands run as the operator (every owner's keys, every scope) and call
the same :class:`~flask_gridauth.management.KeyManager` as the blueprint. A
bad argument, an unknown key or a storage outage ends the command with a
one-line ``Error: ...`` and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

from datetime import timedelta
from typing import ParamSpec, TypeVar

import click
from flask import current_app
from flask.cli import AppGroup

from . import config as c
from .cli_audit import audit
from .cli_common import clean_errors as _clean_errors
from .cli_common import echo_keys, echo_table, every_key, parse_duration, when
from .cli_keygen import keygen
from .cli_owner_limit import owner_limit
from .errors import StorageError
from .extension import get_state
from .records import KeyRecord, utcnow
from .responses import UNMATCHED_ATTR

P = ParamSpec("P")
R = TypeVar("R")

gridauth_cli = AppGroup("gridauth", help="Manage flask_gridauth keys and tokens.")


def _describe(record: KeyRecord) -> str:
    expires = when(record.expires_at) if record.expires_at else "never"
    return (
        f"{record.id}  name={record.name!r}  scopes={','.join(record.scopes)}  owner={record.owner}"
        f"  environment={record.environment}  expires={expires}"
    )


# -- keys --------------------------------------------------------------------


@gridauth_cli.command("create-key")
@click.option("--name", help="What the key is for (1-200 characters).")
@click.option("--scopes", help="Comma-separated scopes, e.g. read,write.")
@click.option("--owner", help="Owner of the key (default: GRIDAUTH_TOKEN_OWNER).")
@click.option("--expires", help="Lifetime: 3600, 15m, 12h, 30d, 2w (default: never).")
@click.option("--environment", default="live", show_default=True, help="live or test.")
@click.option("--rate-limit", help="Per-key limit such as 100/minute.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the raw key (for scripts).")
@_clean_errors
def create_key(
    name: str | None,
    scopes: str | None,
    owner: str | None,
    expires: str | None,
    environment: str,
    rate_limit: str | None,
    quiet: bool,
) -> None:
    """Create an API key and print its raw key, once."""
    if not name:
        raise click.ClickException("--name is required")
    if not scopes:
        raise click.ClickException("--scopes is required, e.g. --scopes read,write")
    scope_list = [s.strip() for s in scopes.split(",") if s.strip()]
    expires_in = parse_duration(expires, "--expires") if expires is not None else None
    record, raw_key = get_state().keys.create(
        name=name,
        scopes=scope_list,
        owner=owner if owner is not None else current_app.config[c.TOKEN_OWNER],
        environment=environment,
        expires_in=expires_in,
        rate_limit=rate_limit,
    )
    if quiet:
        click.echo(raw_key)
        return
    click.echo(f"Created {_describe(record)}")
    click.echo(f"API key (save it now — it is shown only once): {raw_key}")


@gridauth_cli.command("list-keys")
@click.option("--owner", help="Only this owner's keys (default: every owner's).")
@_clean_errors
def list_keys(owner: str | None) -> None:
    """List keys, newest first, without secrets."""
    columns = ("ID", "NAME", "TYPE", "PREFIX", "SCOPES", "ENV", "OWNER", "STATUS", "CREATED", "EXPIRES", "LAST USED")
    echo_keys(list(every_key(get_state().keys, owner)), columns, empty="No keys.")


@gridauth_cli.command("revoke")
@click.argument("key_id")
@_clean_errors
def revoke(key_id: str) -> None:
    """Revoke a key at once (every process sharing the storage sees it)."""
    record = get_state().keys.revoke(key_id)
    click.echo(f"Revoked {record.id} ({record.name!r}) at {when(record.revoked_at)}")


@gridauth_cli.command("expiring")
@click.option("--within", default="7d", show_default=True, help="How far ahead to look: 3600, 12h, 7d, 2w.")
@click.option("--owner", help="Only this owner's keys (default: every owner's).")
@_clean_errors
def expiring(within: str, owner: str | None) -> None:
    """Keys still usable that expire within --within, soonest first."""
    seconds = parse_duration(within, "--within")
    now = utcnow()
    horizon = now + timedelta(seconds=seconds)
    found = [
        r
        for r in every_key(get_state().keys, owner)
        if r.revoked_at is None and r.expires_at is not None and now < r.expires_at <= horizon
    ]
    found.sort(key=lambda r: r.expires_at or now)
    columns = ("ID", "NAME", "PREFIX", "OWNER", "STATUS", "EXPIRES")
    echo_keys(found, columns, empty=f"No key expires within {within}.", now=now)


@gridauth_cli.command("disable")
@click.argument("key_id")
@_clean_errors
def disable(key_id: str) -> None:
    """Switch a key off until `enable` (unlike revoke, reversible)."""
    record = get_state().keys.disable(key_id)
    click.echo(f"Disabled {record.id} ({record.name!r}) at {when(record.disabled_at)}")


@gridauth_cli.command("enable")
@click.argument("key_id")
@_clean_errors
def enable(key_id: str) -> None:
    """Switch a disabled key back on."""
    record = get_state().keys.enable(key_id)
    click.echo(f"Enabled {record.id} ({record.name!r})")


@gridauth_cli.command("rotate")
@click.argument("key_id")
@click.option("--grace", default="0", show_default=True, help="How long the old key keeps working: 0, 90s, 1h, 1d.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the new raw key (for scripts).")
@_clean_errors
def rotate(key_id: str, grace: str, quiet: bool) -> None:
    """Give a key a new secret and print it, once; the old one lasts --grace."""
    seconds = parse_duration(grace, "--grace")
    record, raw_key = get_state().keys.rotate(key_id, grace_period=seconds)
    if quiet:
        click.echo(raw_key)
        return
    click.echo(f"Rotated {key_id} -> {_describe(record)}")
    click.echo(f"The old key stops working in {seconds} s.")
    click.echo(f"API key (save it now — it is shown only once): {raw_key}")


# -- audit -------------------------------------------------------------------


def _access(requirement: tuple[tuple[str, ...], tuple[str, ...], frozenset[str] | None] | None) -> str:
    if requirement is None:
        return "public"
    required_all, required_any, kinds = requirement
    parts = []
    if required_all:
        parts.append("scopes: " + ", ".join(required_all))
    if required_any:
        parts.append("any of: " + ", ".join(required_any))
    access = "; ".join(parts) or "authenticated (no scope)"
    if kinds is not None:
        access += "; kinds: " + ", ".join(sorted(kinds))
    return access


@gridauth_cli.command("routes")
@_clean_errors
def routes() -> None:
    """Every URL rule, its methods, and ``public`` or the scopes it needs."""
    state = get_state()
    rows: list[tuple[str, str, str, str]] = []
    for rule in sorted(current_app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        if getattr(current_app.view_functions.get(rule.endpoint), UNMATCHED_ATTR, False):
            continue  # a blueprint's fallback for unknown paths: it only answers 404/405
        # Methods with the same requirement share a row (GET and HEAD usually do).
        by_access: dict[str, list[str]] = {}
        for method in sorted((rule.methods or set()) - {"OPTIONS"}):
            by_access.setdefault(_access(state.requirement(rule.endpoint, method)), []).append(method)
        for access, methods in by_access.items():
            rows.append((rule.rule, ",".join(methods), access, rule.endpoint))
    if not state.enabled:
        click.echo("AUTHENTICATION IS DISABLED: every route below is open to anyone.")
    echo_table(("RULE", "METHODS", "ACCESS", "ENDPOINT"), rows)
    click.echo("OPTIONS preflights that Flask answers itself need no credential; a view serving OPTIONS is private.")


# -- the bootstrap token -----------------------------------------------------


@gridauth_cli.command("migrate")
@click.option("--sql", "print_sql", is_flag=True, help="Print the SQL instead of applying it.")
@_clean_errors
def migrate(print_sql: bool) -> None:
    """Create or upgrade the storage's tables (PostgreSQL), or print their SQL."""
    storage = get_state().storage
    if print_sql:
        sql = storage.migration_sql()
        if sql is None:
            raise click.ClickException(f"{type(storage).__name__} has no migrations: it sets itself up on first use")
        click.echo(sql, nl=False)
        return
    applied = storage.migrate()
    if applied:
        click.echo("Applied schema versions: " + ", ".join(map(str, applied)))
    else:
        click.echo("The storage schema is up to date.")


@gridauth_cli.command("rotate-token")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_clean_errors
def rotate_token(yes: bool) -> None:
    """Replace the bootstrap token in the token file and print the new one, once.

    Running servers keep the old token until they restart; every dashboard
    session signed in with a bootstrap token ends at once.
    """
    from .credentials.token import TokenSettings, rotate_token

    settings = TokenSettings.from_config(current_app.config, get_state().key_prefix)
    settings.check_rotatable()
    if not yes:
        click.confirm(
            f"Replace the bootstrap token in {settings.file}? The old token stops working on restart", abort=True
        )
    token = rotate_token(settings)
    click.echo(f"New bootstrap token written to {settings.file}. Restart running servers to use it.")
    click.echo(settings.banner.replace("{token}", token))
    # After the token is shown (it is shown only once): end the dashboard's token sessions everywhere.
    from .dashboard.auth import TOKEN_SUBJECT

    try:
        ended = get_state().storage.end_sessions(TOKEN_SUBJECT)
    except StorageError as exc:
        raise click.ClickException(
            f"the token was replaced, but its dashboard sessions could not be ended (storage unavailable: {exc});"
            " run rotate-token again once storage is back"
        ) from None
    click.echo(f"Ended {ended} dashboard session(s) signed in with a bootstrap token.")


gridauth_cli.add_command(keygen)
gridauth_cli.add_command(audit)
gridauth_cli.add_command(owner_limit)
