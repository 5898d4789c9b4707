"""The versioned tables of the PostgreSQL storage: the migrations, and applying or printing them.

``gridauth_schema_version`` lists every migration applied. Migrations run in
one transaction under an advisory lock, so processes that start together
apply each one once. To change the layout (a column a new field of
:class:`~flask_gridauth.records.KeyRecord` needs, a new table), append a
migration to :data:`MIGRATIONS`; never edit one that has shipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

#: Any advisory-lock number will do, as long as it is always the same one: taken while migrating.
_MIGRATION_LOCK = 0x6772_6964_6175_7468 & 0x7FFF_FFFF_FFFF_FFFF

#: The migrations, in order: (version, SQL). ``{s}`` is the schema qualifier (``"name".`` or empty).
#: Append new ones (never edit an applied one): a column a field of KeyRecord needs, a new table.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
CREATE TABLE {s}gridauth_keys (
    lookup text PRIMARY KEY,
    id text NOT NULL UNIQUE,
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    version bigint NOT NULL DEFAULT 1,
    name text NOT NULL,
    type text NOT NULL,
    prefix text NOT NULL,
    scopes text[] NOT NULL,
    environment text NOT NULL,
    owner text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz,
    last_used_at timestamptz,
    metadata jsonb NOT NULL,
    rate_limit text,
    public_key text
);
CREATE INDEX gridauth_keys_owner ON {s}gridauth_keys (owner, seq);
CREATE TABLE {s}gridauth_seen (
    token text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX gridauth_seen_expires ON {s}gridauth_seen (expires_at);
""",
    ),
    (
        2,
        """
CREATE TABLE {s}gridauth_sessions (
    id text PRIMARY KEY,
    subject text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX gridauth_sessions_subject ON {s}gridauth_sessions (subject);
""",
    ),
    (
        3,
        # Disable/enable, address allowlists, quotas (limit, refill and the counter), canary keys.
        """
ALTER TABLE {s}gridauth_keys
    ADD COLUMN disabled_at timestamptz,
    ADD COLUMN allowed_ips text[] NOT NULL DEFAULT '{{}}',
    ADD COLUMN canary boolean NOT NULL DEFAULT false,
    ADD COLUMN quota_limit bigint,
    ADD COLUMN quota_refill_amount bigint,
    ADD COLUMN quota_refill_interval text,
    ADD COLUMN quota_remaining bigint,
    ADD COLUMN quota_refilled_at double precision;
""",
    ),
    (
        4,
        # The audit log and hourly usage counts (flask_gridauth.audit, flask_gridauth.usage).
        """
CREATE TABLE {s}gridauth_audit (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    action text NOT NULL,
    actor jsonb NOT NULL,
    target_id text,
    owner text,
    remote_addr text,
    created_at timestamptz NOT NULL,
    details jsonb NOT NULL
);
CREATE INDEX gridauth_audit_owner ON {s}gridauth_audit (owner, seq);
CREATE INDEX gridauth_audit_target ON {s}gridauth_audit (target_id, seq);
CREATE INDEX gridauth_audit_time ON {s}gridauth_audit (created_at);
CREATE TABLE {s}gridauth_usage (
    key_id text NOT NULL,
    hour bigint NOT NULL,
    allowed bigint NOT NULL,
    forbidden bigint NOT NULL,
    rate_limited bigint NOT NULL,
    scopes jsonb NOT NULL,
    PRIMARY KEY (key_id, hour)
);
CREATE INDEX gridauth_usage_hour ON {s}gridauth_usage (hour);
""",
    ),
    (
        5,
        # The rotation mark, claimed once by mark_rotated (atomic rotation).
        """
ALTER TABLE {s}gridauth_keys ADD COLUMN rotated_at timestamptz;
""",
    ),
    (
        6,
        # Per-owner overrides of GRIDAUTH_RATELIMIT_OWNER (flask gridauth owner-limit).
        """
CREATE TABLE {s}gridauth_owner_limits (
    owner text PRIMARY KEY,
    rate_limit text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
""",
    ),
)

_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS {s}gridauth_schema_version"
    " (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());"
)


if [version for version, _ in MIGRATIONS] != list(range(1, len(MIGRATIONS) + 1)):  # pragma: no cover
    raise RuntimeError("PostgreSQL migrations must be numbered 1, 2, 3, ... without gaps or repeats")


def qualifier(schema: str | None) -> str:
    """``"schema".`` to put before a table name, or nothing for the connection's ``search_path``."""
    return f'"{schema}".' if schema else ""


def pending_versions(conn: psycopg.Connection[Any], schema: str | None) -> list[int]:
    """The migrations this database lacks."""
    q = qualifier(schema)
    exists = conn.execute("SELECT to_regclass(%s)", (f"{q}gridauth_schema_version",)).fetchone()
    if exists is None or exists[0] is None:
        return [version for version, _ in MIGRATIONS]
    rows = conn.execute(f"SELECT version FROM {q}gridauth_schema_version").fetchall()  # noqa: S608
    done = {row[0] for row in rows}
    return [version for version, _ in MIGRATIONS if version not in done]


def apply_migrations(conn: psycopg.Connection[Any], schema: str | None) -> tuple[int, ...]:
    """Apply the missing migrations in one transaction under the advisory lock; the versions applied."""
    if not pending_versions(conn, schema):
        return ()
    q = qualifier(schema)
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        if schema:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        conn.execute(_VERSION_TABLE.format(s=q))
        # Read again under the lock: another process may have just applied them.
        todo = pending_versions(conn, schema)
        for version, sql in MIGRATIONS:
            if version in todo:
                conn.execute(sql.format(s=q))
                conn.execute(f"INSERT INTO {q}gridauth_schema_version (version) VALUES (%s)", (version,))  # noqa: S608
                applied.append(version)
    return tuple(applied)


def migration_sql(schema: str | None) -> str:
    """Every migration as one SQL script, for operators who apply them with their own tools."""
    q = qualifier(schema)
    out = ["BEGIN;", *([f'CREATE SCHEMA IF NOT EXISTS "{schema}";'] if schema else []), _VERSION_TABLE.format(s=q)]
    for version, sql in MIGRATIONS:
        out.append(f"-- version {version}")
        out.append(sql.format(s=q).strip())
        out.append(f"INSERT INTO {q}gridauth_schema_version (version) VALUES ({version});")  # noqa: S608
    out.append("COMMIT;")
    return "\n".join(out) + "\n"
