"""``flask gridauth audit``: print the audit log, newest first."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from .activity import ACTIONS, AuditEvent
from .cli_common import clean_errors, echo_table, when
from .extension import get_state


@click.command("audit")
@click.option("--owner", help="Only this owner's events (default: every owner's).")
@click.option("--action", type=click.Choice(ACTIONS), help="Only events of this action.")
@click.option("--target-id", help="Only events about this key id.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True, help="Most events printed.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
@with_appcontext
def audit(owner: str | None, action: str | None, target_id: str | None, limit: int, as_json: bool) -> None:
    """Print audit events, newest first (they never hold a secret)."""

    @clean_errors
    def run() -> None:
        log = get_state().audit
        events: list[AuditEvent] = []
        before: int | None = None
        while len(events) < limit:  # bounded: every page moves ``before`` strictly down
            page = log.list(
                owner=owner, limit=min(100, limit - len(events)), before_seq=before, action=action, target_id=target_id
            )
            events.extend(page)
            if not page:
                break
            before = page[-1].seq
        if as_json:
            for event in events:
                click.echo(json.dumps(event.to_dict(), sort_keys=True))
            return
        rows = [
            (
                when(e.created_at),
                e.action,
                f"{e.actor.kind}:{e.actor.id}",
                e.target_id or "-",
                e.owner or "-",
                e.remote_addr or "-",
                json.dumps(dict(e.details), sort_keys=True) if e.details else "",
            )
            for e in events
        ]
        echo_table(("TIME", "ACTION", "ACTOR", "TARGET", "OWNER", "ADDRESS", "DETAILS"), rows, empty="No audit events.")

    run()
