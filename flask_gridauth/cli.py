"""``flask gridauth ...``. PLACEHOLDER until the key-management issue lands."""

from __future__ import annotations

import click
from flask.cli import AppGroup

gridauth_cli = AppGroup("gridauth", help="Manage flask_gridauth keys and tokens.")


@gridauth_cli.command("routes")
def routes() -> None:
    """List routes."""
    click.echo("not yet")
