"""The SQLite backend's tables and the ``PRAGMA user_version`` migrations of a file made by an older version."""

from __future__ import annotations

import sqlite3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gridauth_keys (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    lookup TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    prefix TEXT NOT NULL,
    scopes TEXT NOT NULL,
    environment TEXT NOT NULL,
    owner TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    revoked_at REAL,
    last_used_at REAL,
    metadata TEXT NOT NULL,
    rate_limit TEXT,
    public_key TEXT
);
CREATE INDEX IF NOT EXISTS gridauth_keys_owner ON gridauth_keys (owner, seq);
CREATE TABLE IF NOT EXISTS gridauth_sessions (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS gridauth_sessions_subject ON gridauth_sessions (subject);
CREATE TABLE IF NOT EXISTS gridauth_seen (
    token TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gridauth_audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    target_id TEXT,
    owner TEXT,
    remote_addr TEXT,
    created_at REAL NOT NULL,
    details TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS gridauth_audit_owner ON gridauth_audit (owner, seq);
CREATE INDEX IF NOT EXISTS gridauth_audit_target ON gridauth_audit (target_id, seq);
CREATE INDEX IF NOT EXISTS gridauth_audit_time ON gridauth_audit (created_at);
CREATE TABLE IF NOT EXISTS gridauth_usage (
    key_id TEXT NOT NULL,
    hour INTEGER NOT NULL,
    allowed INTEGER NOT NULL,
    forbidden INTEGER NOT NULL,
    rate_limited INTEGER NOT NULL,
    scopes TEXT NOT NULL,
    PRIMARY KEY (key_id, hour)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS gridauth_usage_hour ON gridauth_usage (hour);
"""

#: Schema changes since 0.1, in order: ``PRAGMA user_version`` counts how many a file has had.
#: A 0.1 file (version 0) gains the columns on first open; append, never edit, an entry.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: disable/enable, address allowlists, quotas (limit, refill, and the counter), canary keys.
    (
        "ALTER TABLE gridauth_keys ADD COLUMN disabled_at REAL",
        "ALTER TABLE gridauth_keys ADD COLUMN allowed_ips TEXT",
        "ALTER TABLE gridauth_keys ADD COLUMN canary INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE gridauth_keys ADD COLUMN quota_limit INTEGER",
        "ALTER TABLE gridauth_keys ADD COLUMN quota_refill_amount INTEGER",
        "ALTER TABLE gridauth_keys ADD COLUMN quota_refill_interval TEXT",
        "ALTER TABLE gridauth_keys ADD COLUMN quota_remaining INTEGER",
        "ALTER TABLE gridauth_keys ADD COLUMN quota_refilled_at REAL",
    ),
    # 2: the rotation mark, claimed once by mark_rotated (atomic rotation).
    ("ALTER TABLE gridauth_keys ADD COLUMN rotated_at REAL",),
    # 3: per-owner overrides of GRIDAUTH_RATELIMIT_OWNER (flask gridauth owner-limit).
    (
        "CREATE TABLE IF NOT EXISTS gridauth_owner_limits ("
        " owner TEXT PRIMARY KEY, rate_limit TEXT NOT NULL, updated_at REAL NOT NULL) WITHOUT ROWID",
    ),
)


def migrate(conn: sqlite3.Connection) -> None:
    """Bring a file made by an older version up to :data:`MIGRATIONS`, once, whoever gets there first."""
    if conn.execute("PRAGMA user_version").fetchone()[0] >= len(MIGRATIONS):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Read again under the write lock: another process may have just migrated the file.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {max(version, len(MIGRATIONS))}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
