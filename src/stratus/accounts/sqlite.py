"""Accounts and keys on SQLite."""

from __future__ import annotations

import sqlite3
import time
import uuid

from stratus._sqlite import SqliteDB
from stratus.accounts._keys import display_prefix, hash_secret, new_secret, same_hash
from stratus.accounts._types import Account, ApiKey
from stratus.errors import AuthenticationFailed, InvalidRequest, NotFound

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
"""

_KEY_COLUMNS = (
    "k.id, k.account_id, a.name AS account_name, k.prefix, k.name, k.created_at, k.revoked_at"
)


def _key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(**{name: row[name] for name in row.keys()})  # noqa: SIM118


class SqliteAccounts:
    def __init__(self, db: SqliteDB) -> None:
        self._db = db
        db.script(SCHEMA)

    async def authenticate(self, secret: str) -> Account:
        return await self._db.read(self._authenticate, secret)

    @staticmethod
    def _authenticate(conn: sqlite3.Connection, secret: str) -> Account:
        digest = hash_secret(secret)
        row = conn.execute(
            "SELECT k.hash, k.revoked_at, a.id, a.name FROM api_keys k "
            "JOIN accounts a ON a.id = k.account_id WHERE k.hash = ?",
            (digest,),
        ).fetchone()
        if row is None or not same_hash(row["hash"], digest):
            raise AuthenticationFailed("invalid API key: check the key you sent")
        if row["revoked_at"] is not None:
            raise AuthenticationFailed("this API key has been revoked: create a new one")
        return Account(id=row["id"], name=row["name"])

    async def create_key(self, account: str = "default", name: str = "",
                         secret: str | None = None) -> tuple[ApiKey, str]:
        return await self._db.write(self._create_key, account, name, secret, time.time())

    @staticmethod
    def _create_key(conn: sqlite3.Connection, account: str, name: str, secret: str | None,
                    now: float) -> tuple[ApiKey, str]:
        if not account:
            raise InvalidRequest("account name must not be empty")
        secret = secret or new_secret()
        if len(secret) < 16:
            raise InvalidRequest("an API key must be at least 16 characters long")
        row = conn.execute("SELECT id FROM accounts WHERE name = ?", (account,)).fetchone()
        account_id = row["id"] if row else "acct_" + uuid.uuid4().hex[:16]
        if row is None:
            conn.execute("INSERT INTO accounts VALUES (?, ?, ?)", (account_id, account, now))
        key_id = "key_" + uuid.uuid4().hex[:16]
        try:
            conn.execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (key_id, account_id, hash_secret(secret), display_prefix(secret), name, now),
            )
        except sqlite3.IntegrityError:
            raise InvalidRequest("that API key already exists") from None
        key = ApiKey(id=key_id, account_id=account_id, account_name=account,
                     prefix=display_prefix(secret), name=name, created_at=now)
        return key, secret

    async def list_keys(self) -> list[ApiKey]:
        return await self._db.read(self._list_keys)

    @staticmethod
    def _list_keys(conn: sqlite3.Connection) -> list[ApiKey]:
        rows = conn.execute(
            f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN accounts a ON a.id = k.account_id "
            "ORDER BY k.created_at"
        ).fetchall()
        return [_key(row) for row in rows]

    async def revoke_key(self, key_id: str) -> ApiKey:
        return await self._db.write(self._revoke_key, key_id, time.time())

    @staticmethod
    def _revoke_key(conn: sqlite3.Connection, key_id: str, now: float) -> ApiKey:
        conn.execute(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
            (now, key_id),
        )
        row = conn.execute(
            f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN accounts a ON a.id = k.account_id "
            "WHERE k.id = ?",
            (key_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no API key with id {key_id!r}: see `stratus keys list`")
        return _key(row)

    async def has_keys(self) -> bool:
        return await self._db.read(
            lambda conn: conn.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone() is not None
        )
