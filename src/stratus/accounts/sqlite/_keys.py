"""Accounts and API keys: transactions on one SQLite connection."""

from __future__ import annotations

import json
import sqlite3
import uuid

from stratus.accounts._secrets import (
    display_prefix,
    hash_secret,
    new_secret,
    new_webhook_secret,
    same_hash,
)
from stratus.accounts._types import Account, ApiKey, Caller, KeyOptions
from stratus.errors import AuthenticationFailed, InvalidRequest, NotFound

_KEY_COLUMNS = (
    "k.id, k.account_id, a.name AS account_name, k.prefix, k.name, k.created_at, "
    "k.revoked_at, k.admin, k.models, k.requests_per_minute, k.tokens_per_minute"
)
_ACCOUNT_COLUMNS = "id, name, balance, reserved, webhook_url, webhook_secret, created_at"


def account_of(row: sqlite3.Row) -> Account:
    return Account(id=row["id"], name=row["name"], balance=row["balance"],
                   reserved=row["reserved"], webhook_url=row["webhook_url"],
                   webhook_secret=row["webhook_secret"], created_at=row["created_at"])


def _key_of(row: sqlite3.Row) -> ApiKey:
    options = KeyOptions(
        admin=bool(row["admin"]),
        models=tuple(json.loads(row["models"])) if row["models"] else None,
        requests_per_minute=row["requests_per_minute"],
        tokens_per_minute=row["tokens_per_minute"],
    )
    return ApiKey(id=row["id"], account_id=row["account_id"],
                  account_name=row["account_name"], prefix=row["prefix"], name=row["name"],
                  created_at=row["created_at"], revoked_at=row["revoked_at"], options=options)


def fetch_account(conn: sqlite3.Connection, *, name: str | None = None,
                  account_id: str | None = None) -> Account:
    column, value = ("name", name) if name is not None else ("id", account_id)
    row = conn.execute(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE {column} = ?",
                       (value,)).fetchone()
    if row is None:
        raise NotFound(f"no account {value!r}: accounts are created with their first key")
    return account_of(row)


def list_accounts(conn: sqlite3.Connection) -> list[Account]:
    rows = conn.execute(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts ORDER BY created_at")
    return [account_of(row) for row in rows]


def authenticate(conn: sqlite3.Connection, secret: str) -> Caller:
    digest = hash_secret(secret)
    row = conn.execute(
        f"SELECT k.hash, {_KEY_COLUMNS} FROM api_keys k "
        "JOIN accounts a ON a.id = k.account_id WHERE k.hash = ?",
        (digest,),
    ).fetchone()
    if row is None or not same_hash(row["hash"], digest):
        raise AuthenticationFailed("invalid API key: check the key you sent")
    if row["revoked_at"] is not None:
        raise AuthenticationFailed("this API key has been revoked: create a new one")
    return Caller(account=fetch_account(conn, account_id=row["account_id"]), key=_key_of(row))


def create_key(conn: sqlite3.Connection, account: str, name: str, secret: str | None,
               options: KeyOptions, credits: int | None, now: float) -> tuple[ApiKey, str]:
    if not account:
        raise InvalidRequest("account name must not be empty")
    secret = secret or new_secret()
    if len(secret) < 16:
        raise InvalidRequest("an API key must be at least 16 characters long")
    for limit in (options.requests_per_minute, options.tokens_per_minute):
        if limit is not None and limit < 1:
            raise InvalidRequest("rate limits must be at least 1 per minute (or unset)")
    if credits is not None and credits < 0:
        raise InvalidRequest("credits must not be negative")
    row = conn.execute("SELECT id FROM accounts WHERE name = ?", (account,)).fetchone()
    if row is None:
        account_id = "acct_" + uuid.uuid4().hex[:16]
        conn.execute(
            "INSERT INTO accounts (id, name, created_at, balance, reserved, webhook_secret) "
            "VALUES (?, ?, ?, ?, 0, ?)",
            (account_id, account, now, credits, new_webhook_secret()))
        conn.execute(
            "INSERT INTO credit_ledger (account_id, kind, amount, balance_after, note, "
            "created_at) VALUES (?, 'set', ?, ?, 'account created', ?)",
            (account_id, credits, credits, now))
    else:
        account_id = row["id"]
        if credits is not None:
            raise InvalidRequest(f"account {account!r} already exists: change its credits "
                                 "with `stratus credits add` or `stratus credits set`")
    key_id = "key_" + uuid.uuid4().hex[:16]
    models = json.dumps(list(options.models)) if options.models is not None else None
    try:
        conn.execute(
            "INSERT INTO api_keys (id, account_id, hash, prefix, name, created_at, admin, "
            "models, requests_per_minute, tokens_per_minute) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key_id, account_id, hash_secret(secret), display_prefix(secret), name, now,
             int(options.admin), models, options.requests_per_minute,
             options.tokens_per_minute),
        )
    except sqlite3.IntegrityError:
        raise InvalidRequest("that API key already exists") from None
    key = ApiKey(id=key_id, account_id=account_id, account_name=account,
                 prefix=display_prefix(secret), name=name, created_at=now, options=options)
    return key, secret


def list_keys(conn: sqlite3.Connection) -> list[ApiKey]:
    rows = conn.execute(
        f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN accounts a ON a.id = k.account_id "
        "ORDER BY k.created_at"
    ).fetchall()
    return [_key_of(row) for row in rows]


def revoke_key(conn: sqlite3.Connection, key_id: str, now: float) -> ApiKey:
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
    return _key_of(row)


def set_webhook(conn: sqlite3.Connection, account_id: str, url: str | None) -> Account:
    conn.execute("UPDATE accounts SET webhook_url = ? WHERE id = ?", (url, account_id))
    return fetch_account(conn, account_id=account_id)
