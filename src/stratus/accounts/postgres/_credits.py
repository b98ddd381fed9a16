"""The credits ledger: grants, settings and charges, each with the balance it left.

Every change to a balance happens in the transaction that writes its ledger line, so the
ledger always explains the balance. Reservations are a running total on the account
(``reserved``), backed by the ``reserved`` column of each open request.

Several nodes share the accounts: a reservation is one conditional ``UPDATE`` (the check and
the hold cannot interleave with another node's), and a change that checks the balance first
(a grant, a charge) locks the account's row before it reads it.
"""

from __future__ import annotations

from stratus._postgres import Connection
from stratus.accounts._rules import check_grant
from stratus.accounts._types import Account, LedgerLine, to_usd
from stratus.accounts.postgres._keys import fetch_account
from stratus.errors import InsufficientCredits, InvalidRequest

_TRIES = 3  # reservations retried when a refusal met credits freed in the meantime


async def ledger(conn: Connection, account_id: str, kind: str, amount: int | None, *,
                 request_id: str | None = None, note: str = "") -> None:
    """A ledger line with the account's balance as this transaction leaves it."""
    await conn.execute(
        "INSERT INTO credit_ledger (account_id, request_id, kind, amount, balance_after, "
        "note, created_at) SELECT id, %s, %s, %s, balance, %s, stratus_now() FROM accounts "
        "WHERE id = %s", (request_id, kind, amount, note, account_id))


async def lines(conn: Connection, account_id: str, limit: int,
                before: int | None) -> tuple[list[LedgerLine], bool]:
    cur = await conn.execute(
        "SELECT seq AS id, account_id, kind, amount, balance_after, note, request_id, "
        "created_at FROM credit_ledger WHERE account_id = %s "
        "AND (%s::BIGINT IS NULL OR seq < %s) ORDER BY seq DESC LIMIT %s",
        (account_id, before, before, limit + 1))
    rows = await cur.fetchall()
    return [LedgerLine(**row) for row in rows[:limit]], len(rows) > limit


async def add(conn: Connection, name: str, amount: int, note: str) -> Account:
    account = await fetch_account(conn, name=name, lock=True)
    check_grant(account, amount)
    await conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s",
                       (amount, account.id))
    await ledger(conn, account.id, "grant", amount, note=note)
    return await fetch_account(conn, account_id=account.id)


async def set_balance(conn: Connection, name: str, balance: int | None, note: str) -> Account:
    account = await fetch_account(conn, name=name)
    if balance is not None and balance < 0:
        raise InvalidRequest("a balance must not be negative")
    await conn.execute("UPDATE accounts SET balance = %s WHERE id = %s", (balance, account.id))
    await ledger(conn, account.id, "set", balance, note=note)
    return await fetch_account(conn, account_id=account.id)


async def _hold(conn: Connection, account_id: str, amount: int) -> bool:
    cur = await conn.execute(
        "UPDATE accounts SET reserved = reserved + %(amount)s WHERE id = %(id)s "
        "AND (balance IS NULL OR balance - reserved >= %(amount)s) RETURNING id",
        {"amount": amount, "id": account_id})
    return await cur.fetchone() is not None


async def reserve(conn: Connection, account_id: str, amount: int, note: str) -> None:
    """Hold ``amount`` for a request, or refuse it if the available credits fall short."""
    for attempt in range(_TRIES):
        if await _hold(conn, account_id, amount):
            return
        account = await fetch_account(conn, account_id=account_id)
        available = account.available
        if (available is not None and available < amount) or attempt == _TRIES - 1:
            available = max(available or 0, 0)
            raise InsufficientCredits(
                f"insufficient credits: this request may cost up to ${to_usd(amount):.6f} "
                f"({note}) but account {account.name!r} has ${to_usd(available):.6f} "
                "available: lower max_tokens, or ask an admin to add credits",
                extra={"credits_available": to_usd(available),
                       "credits_required": to_usd(amount)})


async def release(conn: Connection, account_id: str, reserved: int) -> None:
    """Free a reservation without charging anything."""
    await conn.execute(
        "UPDATE accounts SET reserved = GREATEST(reserved - %s, 0) WHERE id = %s",
        (reserved, account_id))


async def settle(conn: Connection, account_id: str, reserved: int, cost: int,
                 request_id: str) -> int:
    """Free a request's reservation and charge what it cost, never more than it reserved nor
    than the balance holds, with its ledger line: one statement, the account's row locked.
    Returns the charge."""
    cur = await conn.execute(
        "WITH locked AS (SELECT id, balance FROM accounts WHERE id = %(account)s FOR UPDATE), "
        "due AS (SELECT id, LEAST(%(cost)s, %(reserved)s, COALESCE(balance, %(cost)s)) "
        "AS charge FROM locked), "
        "charged AS (UPDATE accounts a SET reserved = GREATEST(a.reserved - %(reserved)s, 0), "
        "balance = a.balance - due.charge FROM due WHERE a.id = due.id "
        "RETURNING a.id, a.balance, due.charge), "
        "line AS (INSERT INTO credit_ledger (account_id, request_id, kind, amount, "
        "balance_after, note, created_at) SELECT id, %(request)s, 'charge', -charge, balance, "
        "'', stratus_now() FROM charged WHERE charge > 0) "
        "SELECT charge FROM charged",
        {"account": account_id, "cost": cost, "reserved": reserved, "request": request_id})
    row = await cur.fetchone()
    return int(row["charge"]) if row else 0
