"""The accounts tables, and the columns later versions added to earlier databases."""

from __future__ import annotations

import sqlite3

from stratus.accounts._secrets import new_webhook_secret

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS credit_ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    request_id TEXT,
    kind TEXT NOT NULL,            -- grant | set | charge
    amount INTEGER,                -- nano-USD (negative: taken)
    balance_after INTEGER,         -- NULL: unlimited
    note TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS credit_ledger_account ON credit_ledger (account_id, seq);
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    model TEXT NOT NULL,
    slug TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    reserved INTEGER NOT NULL,
    started_at REAL,
    completed_at REAL,
    cost INTEGER,
    input_tokens INTEGER,
    output_tokens INTEGER,
    latency_ms REAL,
    error TEXT,
    error_type TEXT,
    webhook_url TEXT,
    webhook_status TEXT,
    webhook_payload TEXT,
    webhook_attempts INTEGER NOT NULL DEFAULT 0,
    webhook_next_at REAL,
    user_id TEXT
);
CREATE INDEX IF NOT EXISTS requests_account ON requests (account_id, seq);
CREATE INDEX IF NOT EXISTS requests_open ON requests (completed_at, created_at);
CREATE INDEX IF NOT EXISTS requests_created ON requests (created_at);
CREATE INDEX IF NOT EXISTS requests_webhooks ON requests (webhook_status, webhook_next_at);
CREATE TABLE IF NOT EXISTS webhook_attempts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at REAL NOT NULL,
    url TEXT NOT NULL,
    status_code INTEGER,
    error TEXT,
    duration_ms REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_attempts_request ON webhook_attempts (request_id, seq);
"""

# Columns added after the first release: (table, column, declaration).
_ADDED = (
    ("accounts", "balance", "INTEGER"),
    ("accounts", "reserved", "INTEGER NOT NULL DEFAULT 0"),
    ("accounts", "webhook_url", "TEXT"),
    ("accounts", "webhook_secret", "TEXT"),
    ("api_keys", "admin", "INTEGER NOT NULL DEFAULT 0"),
    ("api_keys", "models", "TEXT"),
    ("api_keys", "requests_per_minute", "INTEGER"),
    ("api_keys", "tokens_per_minute", "INTEGER"),
    ("requests", "user_id", "TEXT"),
)


def migrate(conn: sqlite3.Connection) -> None:
    """Bring an existing database up to this schema (adds what is missing, drops nothing)."""
    for table, column, declaration in _ADDED:
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
    for (account_id,) in conn.execute(
            "SELECT id FROM accounts WHERE webhook_secret IS NULL").fetchall():
        conn.execute("UPDATE accounts SET webhook_secret = ? WHERE id = ?",
                     (new_webhook_secret(), account_id))
