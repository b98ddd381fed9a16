"""Accounts on SQLite: keys, credits, request history, webhook deliveries.

Every method is one transaction on the process's single SQLite connection thread, so a
balance check and the reservation that follows it cannot interleave with another request's.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from stratus._sqlite import SqliteDB
from stratus.accounts._types import (
    Account,
    ApiKey,
    Caller,
    Delivery,
    DeliveryAttempt,
    HistoryQuery,
    KeyOptions,
    LedgerLine,
    Opening,
    RequestEntry,
    UsageRow,
)
from stratus.accounts.sqlite import _credits, _keys, _requests, _webhooks
from stratus.accounts.sqlite._schema import SCHEMA, migrate
from stratus.store import JobRecord


class SqliteAccounts:
    def __init__(self, db: SqliteDB, *, history_ttl: float = 30 * 86400.0) -> None:
        self._db = db
        self._history_ttl = history_ttl
        db.script(SCHEMA)
        db.write_now(migrate)

    # -- keys ------------------------------------------------------------------------------
    async def authenticate(self, secret: str) -> Caller:
        return await self._db.read(_keys.authenticate, secret)

    async def create_key(self, account: str = "default", name: str = "",
                         secret: str | None = None, options: KeyOptions | None = None,
                         credits: int | None = None) -> tuple[ApiKey, str]:
        return await self._db.write(_keys.create_key, account, name, secret,
                                    options or KeyOptions(), credits, time.time())

    async def list_keys(self) -> list[ApiKey]:
        return await self._db.read(_keys.list_keys)

    async def revoke_key(self, key_id: str) -> ApiKey:
        return await self._db.write(_keys.revoke_key, key_id, time.time())

    async def has_keys(self) -> bool:
        return await self._db.read(
            lambda conn: conn.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone() is not None)

    # -- accounts and credits --------------------------------------------------------------
    async def account(self, name: str) -> Account:
        return await self._db.read(lambda conn: _keys.fetch_account(conn, name=name))

    async def list_accounts(self) -> list[Account]:
        return await self._db.read(_keys.list_accounts)

    async def add_credits(self, account: str, amount: int, note: str = "") -> Account:
        return await self._db.write(_credits.add, account, amount, note, time.time())

    async def set_credits(self, account: str, balance: int | None, note: str = "") -> Account:
        return await self._db.write(_credits.set_balance, account, balance, note, time.time())

    async def set_webhook(self, account_id: str, url: str | None) -> Account:
        return await self._db.write(_keys.set_webhook, account_id, url)

    async def ledger(self, account_id: str, limit: int,
                     before: int | None = None) -> tuple[list[LedgerLine], bool]:
        return await self._db.read(_credits.lines, account_id, limit, before)

    # -- requests --------------------------------------------------------------------------
    async def open_request(self, opening: Opening) -> None:
        await self._db.write(_requests.open_request, opening, time.time())

    async def discard_request(self, request_id: str) -> None:
        await self._db.write(_requests.discard_request, request_id)

    async def start_request(self, request_id: str, at: float) -> None:
        await self._db.write(_requests.start_request, request_id, at)

    async def close_request(self, record: JobRecord, payload: str) -> bool:
        return await self._db.write(_requests.close_request, record, payload, time.time())

    async def abandon_request(self, request_id: str, error: str) -> bool:
        return await self._db.write(_requests.abandon_request, request_id, error, time.time())

    async def open_requests(self, older_than: float, limit: int,
                            after: str | None = None) -> list[str]:
        return await self._db.read(_requests.open_requests, older_than, limit, after)

    async def request(self, account_id: str, request_id: str) -> RequestEntry | None:
        return await self._db.read(_requests.get, account_id, request_id)

    async def history(self, account_id: str,
                      query: HistoryQuery) -> tuple[list[RequestEntry], bool]:
        return await self._db.read(_requests.history, account_id, query)

    async def usage(self, account_id: str, since: float,
                    until: float | None = None) -> list[UsageRow]:
        return await self._db.read(_requests.usage, account_id, since, until)

    # -- webhooks --------------------------------------------------------------------------
    async def claim_deliveries(self, now: float, limit: int, lease: float, *,
                               per_account: int | None = None,
                               running: Collection[Delivery] = ()) -> list[Delivery]:
        return await self._db.write(_webhooks.claim, now, limit, lease, per_account,
                                    tuple(running))

    async def next_delivery_at(self, *, per_account: int | None = None,
                               running: Collection[Delivery] = ()) -> float | None:
        return await self._db.read(_webhooks.next_at, per_account, tuple(running))

    async def record_delivery(self, delivery: Delivery, attempt: DeliveryAttempt,
                              next_at: float | None, delivered: bool) -> None:
        await self._db.write(_webhooks.record, delivery, attempt, next_at, delivered)

    async def deliveries(self, request_id: str) -> list[DeliveryAttempt]:
        return await self._db.read(_webhooks.attempts, request_id)

    # -- housekeeping ----------------------------------------------------------------------
    async def sweep(self, now: float) -> int:
        return await self._db.write(_requests.sweep, now - self._history_ttl)
