"""``flask gridauth owner-limit``: show, set or clear one owner's override of ``GRIDAUTH_RATELIMIT_OWNER``."""

from __future__ import annotations

import re

import click
from flask import current_app
from flask.cli import with_appcontext

from . import config as c
from .cli_common import clean_errors
from .errors import InvalidRequest
from .extension import get_state
from .owner_limits import OVERRIDE_TTL


def _default() -> str:
    value = current_app.config.get(c.RATELIMIT_OWNER)
    return f"GRIDAUTH_RATELIMIT_OWNER ({value})" if value else "GRIDAUTH_RATELIMIT_OWNER (none: no owner-wide limit)"


@click.command("owner-limit")
@click.argument("owner")
@click.argument("limits", nargs=-1)
@click.option("--clear", is_flag=True, help="Remove the override: GRIDAUTH_RATELIMIT_OWNER applies again.")
@with_appcontext
def owner_limit(owner: str, limits: tuple[str, ...], clear: bool) -> None:
    """Show, set (e.g. 100/minute 1000/day) or --clear OWNER's own owner-wide rate limit."""

    @clean_errors
    def run() -> None:
        keys = get_state().keys
        if clear and limits:
            raise click.UsageError("give limits or --clear, not both")
        # Several limits: as arguments, or joined as GRIDAUTH_RATELIMIT_OWNER joins them.
        items = [part.strip() for text in limits for part in re.split(r"[;,|]", text) if part.strip()]
        try:
            if clear:
                keys.clear_owner_limit(owner)
                click.echo(f"Cleared the override of {owner}: {_default()} applies.")
            elif items:
                limit = keys.set_owner_limit(owner, ";".join(items))
                click.echo(f"{owner}: {limit} (instead of {_default()}).")
            else:
                current = keys.get_owner_limit(owner)
                click.echo(f"{owner}: {current} (override)" if current else f"{owner}: no override; {_default()}")
                return
        except InvalidRequest as exc:  # the message names the field: owner or limit
            raise click.ClickException(exc.message) from None
        click.echo(f"Other processes apply the change within {OVERRIDE_TTL:g} s.")
        if not current_app.config.get(c.RATELIMIT_ENABLED):
            click.echo("Note: GRIDAUTH_RATELIMIT_ENABLED is off, so no rate limit applies in this app.")

    run()
