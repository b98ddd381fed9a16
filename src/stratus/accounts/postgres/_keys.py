"""Accounts and API keys: statements on one PostgreSQL connection, in its transaction."""

from __future__ import annotations

import uuid
from typing import Any

from stratus._postgres import Connection
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
_KEYS = f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN accounts a ON a.id = k.account_id"
_ACCOUNT_COLUMNS = "id, name, balance, reserved, webhook_url, webhook_secret, created_at"


def account_of(row: dict[str, Any]) -> Account:
    return Account(id=row["id"], name=row["name"], balance=row["balance"],
                   reserved=row["reserved"], webhook_url=row["webhook_url"],
                   webhook_secret=row["webhook_secret"], created_at=row["created_at"])


def _key_of(row: dict[str, Any]) -> ApiKey:
    options = KeyOptions(
        admin=row["admin"],
        models=tuple(row["models"]) if row["models"] is not None else None,
        requests_per_minute=row["requests_per_minute"],
        tokens_per_minute=row["tokens_per_minute"],
    )
    return ApiKey(id=row["id"], account_id=row["account_id"],
                  account_name=row["account_name"], prefix=row["prefix"], name=row["name"],
                  created_at=row["created_at"], revoked_at=row["revoked_at"], options=options)


async def fetch_account(conn: Connection, *, name: str | None = None,
                        account_id: str | None = None, lock: bool = False) -> Account:
    """The account by name or id; ``lock``: hold its row until the transaction ends."""
    column, value = ("name", name) if name is not None else ("id", account_id)
    cur = await conn.execute(
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE {column} = %s"
        + (" FOR UPDATE" if lock else ""), (value,))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no account {value!r}: accounts are created with their first key")
    return account_of(row)


async def list_accounts(conn: Connection) -> list[Account]:
    cur = await conn.execute(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts ORDER BY created_at, id")
    return [account_of(row) for row in await cur.fetchall()]


async def authenticate(conn: Connection, secret: str) -> Caller:
    digest = hash_secret(secret)
    cur = await conn.execute(  # the key and its account in one statement
        f"SELECT k.hash, {_KEY_COLUMNS}, a.balance, a.reserved, a.webhook_url, "
        "a.webhook_secret, a.created_at AS account_created_at FROM api_keys k "
        "JOIN accounts a ON a.id = k.account_id WHERE k.hash = %s", (digest,))
    row = await cur.fetchone()
    if row is None or not same_hash(row["hash"], digest):
        raise AuthenticationFailed("invalid API key: check the key you sent")
    if row["revoked_at"] is not None:
        raise AuthenticationFailed("this API key has been revoked: create a new one")
    account = Account(id=row["account_id"], name=row["account_name"], balance=row["balance"],
                      reserved=row["reserved"], webhook_url=row["webhook_url"],
                      webhook_secret=row["webhook_secret"],
                      created_at=row["account_created_at"])
    return Caller(account=account, key=_key_of(row))


async def _account_id(conn: Connection, name: str) -> str | None:
    cur = await conn.execute("SELECT id FROM accounts WHERE name = %s", (name,))
    row = await cur.fetchone()
    return None if row is None else row["id"]


async def create_key(conn: Connection, account: str, name: str, secret: str | None,
                     options: KeyOptions, credits: int | None) -> tuple[ApiKey, str]:
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
    account_id = await _account_id(conn, account)
    created = False
    if account_id is None:
        # a second node creating the same account at once: the name is taken by the first
        cur = await conn.execute(
            "INSERT INTO accounts (id, name, created_at, balance, reserved, webhook_secret) "
            "VALUES (%s, %s, stratus_now(), %s, 0, %s) ON CONFLICT (name) DO NOTHING "
            "RETURNING id",
            ("acct_" + uuid.uuid4().hex[:16], account, credits, new_webhook_secret()))
        row = await cur.fetchone()
        if row is not None:
            account_id, created = row["id"], True
            await conn.execute(
                "INSERT INTO credit_ledger (account_id, kind, amount, balance_after, note, "
                "created_at) VALUES (%s, 'set', %s, %s, 'account created', stratus_now())",
                (account_id, credits, credits))
        else:
            account_id = await _account_id(conn, account)
            assert account_id is not None
    if not created and credits is not None:
        raise InvalidRequest(f"account {account!r} already exists: change its credits "
                             "with `stratus credits add` or `stratus credits set`")
    key_id = "key_" + uuid.uuid4().hex[:16]
    cur = await conn.execute(
        "INSERT INTO api_keys (id, account_id, hash, prefix, name, created_at, admin, "
        "models, requests_per_minute, tokens_per_minute) "
        "VALUES (%s, %s, %s, %s, %s, stratus_now(), %s, %s::text[], %s, %s) "
        "ON CONFLICT (hash) DO NOTHING RETURNING created_at",
        (key_id, account_id, hash_secret(secret), display_prefix(secret), name, options.admin,
         list(options.models) if options.models is not None else None,
         options.requests_per_minute, options.tokens_per_minute))
    row = await cur.fetchone()
    if row is None:
        raise InvalidRequest("that API key already exists")
    key = ApiKey(id=key_id, account_id=account_id, account_name=account,
                 prefix=display_prefix(secret), name=name, created_at=row["created_at"],
                 options=options)
    return key, secret


async def list_keys(conn: Connection) -> list[ApiKey]:
    cur = await conn.execute(f"{_KEYS} ORDER BY k.created_at, k.id")
    return [_key_of(row) for row in await cur.fetchall()]


async def revoke_key(conn: Connection, key_id: str) -> ApiKey:
    await conn.execute(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, stratus_now()) WHERE id = %s",
        (key_id,))
    cur = await conn.execute(f"{_KEYS} WHERE k.id = %s", (key_id,))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no API key with id {key_id!r}: see `stratus keys list`")
    return _key_of(row)


async def has_keys(conn: Connection) -> bool:
    cur = await conn.execute("SELECT EXISTS (SELECT 1 FROM api_keys) AS found")
    row = await cur.fetchone()
    return bool(row and row["found"])


async def set_webhook(conn: Connection, account_id: str, url: str | None) -> Account:
    await conn.execute("UPDATE accounts SET webhook_url = %s WHERE id = %s", (url, account_id))
    return await fetch_account(conn, account_id=account_id)
