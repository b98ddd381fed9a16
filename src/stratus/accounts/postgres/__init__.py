"""Accounts on PostgreSQL: keys, credits, request history, webhook deliveries, shared by every
node of a deployment.

Every method is one transaction on a connection of the process's pool. What must hold across
nodes is done in the database: a reservation is one conditional ``UPDATE``, a request is
settled under its row lock while it is still open, and webhook claims skip the rows another
node is claiming. Times this class fills in come from the database's clock
(``stratus_now()``); those the caller passes (``now``, ``at``) are used as given.
"""

from __future__ import annotations

from collections.abc import Collection

from stratus._postgres import Postgres
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
from stratus.accounts.postgres import _credits, _keys, _requests, _webhooks
from stratus.accounts.postgres._requests import close_request, open_request
from stratus.store import JobRecord

__all__ = ["PostgresAccounts", "close_request", "open_request"]


class PostgresAccounts:
    def __init__(self, pg: Postgres, *, history_ttl: float = 30 * 86400.0) -> None:
        """``pg`` must be open (its migrations applied)."""
        self._pg = pg
        self._history_ttl = history_ttl

    # -- keys ------------------------------------------------------------------------------
    async def authenticate(self, secret: str) -> Caller:
        async with self._pg.connection() as conn:
            return await _keys.authenticate(conn, secret)

    async def create_key(self, account: str = "default", name: str = "",
                         secret: str | None = None, options: KeyOptions | None = None,
                         credits: int | None = None) -> tuple[ApiKey, str]:
        async with self._pg.transaction() as conn:
            return await _keys.create_key(conn, account, name, secret,
                                          options or KeyOptions(), credits)

    async def list_keys(self) -> list[ApiKey]:
        async with self._pg.connection() as conn:
            return await _keys.list_keys(conn)

    async def revoke_key(self, key_id: str) -> ApiKey:
        async with self._pg.transaction() as conn:
            return await _keys.revoke_key(conn, key_id)

    async def has_keys(self) -> bool:
        async with self._pg.connection() as conn:
            return await _keys.has_keys(conn)

    # -- accounts and credits --------------------------------------------------------------
    async def account(self, name: str) -> Account:
        async with self._pg.connection() as conn:
            return await _keys.fetch_account(conn, name=name)

    async def list_accounts(self) -> list[Account]:
        async with self._pg.connection() as conn:
            return await _keys.list_accounts(conn)

    async def add_credits(self, account: str, amount: int, note: str = "") -> Account:
        async with self._pg.transaction() as conn:
            return await _credits.add(conn, account, amount, note)

    async def set_credits(self, account: str, balance: int | None, note: str = "") -> Account:
        async with self._pg.transaction() as conn:
            return await _credits.set_balance(conn, account, balance, note)

    async def set_webhook(self, account_id: str, url: str | None) -> Account:
        async with self._pg.transaction() as conn:
            return await _keys.set_webhook(conn, account_id, url)

    async def ledger(self, account_id: str, limit: int,
                     before: int | None = None) -> tuple[list[LedgerLine], bool]:
        async with self._pg.connection() as conn:
            return await _credits.lines(conn, account_id, limit, before)

    # -- requests --------------------------------------------------------------------------
    async def open_request(self, opening: Opening) -> None:
        async with self._pg.transaction() as conn:
            await open_request(conn, opening)

    async def discard_request(self, request_id: str) -> None:
        async with self._pg.transaction() as conn:
            await _requests.discard_request(conn, request_id)

    async def start_request(self, request_id: str, at: float) -> None:
        async with self._pg.connection() as conn:
            await _requests.start_request(conn, request_id, at)

    async def close_request(self, record: JobRecord, payload: str) -> bool:
        async with self._pg.transaction() as conn:
            return await close_request(conn, record, payload)

    async def abandon_request(self, request_id: str, error: str) -> bool:
        async with self._pg.transaction() as conn:
            return await _requests.abandon_request(conn, request_id, error)

    async def open_requests(self, older_than: float, limit: int,
                            after: str | None = None) -> list[str]:
        async with self._pg.connection() as conn:
            return await _requests.open_requests(conn, older_than, limit, after)

    async def request(self, account_id: str, request_id: str) -> RequestEntry | None:
        async with self._pg.connection() as conn:
            return await _requests.get(conn, account_id, request_id)

    async def history(self, account_id: str,
                      query: HistoryQuery) -> tuple[list[RequestEntry], bool]:
        async with self._pg.connection() as conn:
            return await _requests.history(conn, account_id, query)

    async def usage(self, account_id: str, since: float,
                    until: float | None = None) -> list[UsageRow]:
        async with self._pg.connection() as conn:
            return await _requests.usage(conn, account_id, since, until)

    # -- webhooks --------------------------------------------------------------------------
    async def claim_deliveries(self, now: float, limit: int, lease: float, *,
                               per_account: int | None = None,
                               running: Collection[Delivery] = ()) -> list[Delivery]:
        async with self._pg.transaction() as conn:
            return await _webhooks.claim(conn, now, limit, lease, per_account, tuple(running))

    async def next_delivery_at(self, *, per_account: int | None = None,
                               running: Collection[Delivery] = ()) -> float | None:
        async with self._pg.connection() as conn:
            return await _webhooks.next_at(conn, per_account, tuple(running))

    async def record_delivery(self, delivery: Delivery, attempt: DeliveryAttempt,
                              next_at: float | None, delivered: bool) -> None:
        async with self._pg.transaction() as conn:
            await _webhooks.record(conn, delivery, attempt, next_at, delivered)

    async def deliveries(self, request_id: str) -> list[DeliveryAttempt]:
        async with self._pg.connection() as conn:
            return await _webhooks.attempts(conn, request_id)

    # -- housekeeping ----------------------------------------------------------------------
    async def sweep(self, now: float) -> int:
        async with self._pg.transaction() as conn:
            return await _requests.sweep(conn, now - self._history_ttl)
