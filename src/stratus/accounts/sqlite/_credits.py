"""The credits ledger: grants, settings and charges, each with the balance it left.

Every change to a balance is one transaction that also writes its ledger line, so the
ledger always explains the balance. Reservations are a running total on the account
(``reserved``), backed by the ``reserved`` column of each open request.
"""

from __future__ import annotations

import sqlite3

from stratus.accounts._rules import check_grant
from stratus.accounts._types import Account, LedgerLine, to_usd
from stratus.accounts.sqlite._keys import fetch_account
from stratus.errors import InsufficientCredits, InvalidRequest


def ledger(conn: sqlite3.Connection, account_id: str, kind: str, amount: int | None,
           now: float, *, request_id: str | None = None, note: str = "") -> None:
    balance = conn.execute("SELECT balance FROM accounts WHERE id = ?",
                           (account_id,)).fetchone()["balance"]
    conn.execute(
        "INSERT INTO credit_ledger (account_id, request_id, kind, amount, balance_after, "
        "note, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (account_id, request_id, kind, amount, balance, note, now))


def lines(conn: sqlite3.Connection, account_id: str, limit: int,
          before: int | None) -> tuple[list[LedgerLine], bool]:
    rows = conn.execute(
        "SELECT seq AS id, account_id, kind, amount, balance_after, note, request_id, "
        "created_at FROM credit_ledger WHERE account_id = ? AND seq < ? "
        "ORDER BY seq DESC LIMIT ?",
        (account_id, 2**63 - 1 if before is None else before, limit + 1)).fetchall()
    return [LedgerLine(**dict(row)) for row in rows[:limit]], len(rows) > limit


def add(conn: sqlite3.Connection, name: str, amount: int, note: str, now: float) -> Account:
    account = fetch_account(conn, name=name)
    check_grant(account, amount)
    conn.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?",
                 (amount, account.id))
    ledger(conn, account.id, "grant", amount, now, note=note)
    return fetch_account(conn, account_id=account.id)


def set_balance(conn: sqlite3.Connection, name: str, balance: int | None, note: str,
                now: float) -> Account:
    account = fetch_account(conn, name=name)
    if balance is not None and balance < 0:
        raise InvalidRequest("a balance must not be negative")
    conn.execute("UPDATE accounts SET balance = ? WHERE id = ?", (balance, account.id))
    ledger(conn, account.id, "set", balance, now, note=note)
    return fetch_account(conn, account_id=account.id)


def reserve(conn: sqlite3.Connection, account_id: str, amount: int, note: str) -> None:
    """Hold ``amount`` for a request, or refuse it if the available credits fall short."""
    account = fetch_account(conn, account_id=account_id)
    available = account.available
    if available is not None and available < amount:
        raise InsufficientCredits(
            f"insufficient credits: this request may cost up to ${to_usd(amount):.6f} "
            f"({note}) but account {account.name!r} has ${to_usd(max(available, 0)):.6f} "
            "available: lower max_tokens, or ask an admin to add credits",
            extra={"credits_available": to_usd(max(available, 0)),
                   "credits_required": to_usd(amount)})
    conn.execute("UPDATE accounts SET reserved = reserved + ? WHERE id = ?",
                 (amount, account_id))


def release(conn: sqlite3.Connection, account_id: str, reserved: int) -> None:
    """Free a reservation without charging anything."""
    conn.execute("UPDATE accounts SET reserved = MAX(reserved - ?, 0) WHERE id = ?",
                 (reserved, account_id))


def settle(conn: sqlite3.Connection, account_id: str, reserved: int, cost: int,
           request_id: str, now: float) -> int:
    """Free a request's reservation and charge what it cost, never more than it reserved nor
    than the balance holds. Returns the charge."""
    row = conn.execute("SELECT balance FROM accounts WHERE id = ?", (account_id,)).fetchone()
    charge = min(cost, reserved)
    if row["balance"] is not None:
        charge = min(charge, row["balance"])
    release(conn, account_id, reserved)
    conn.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?", (charge, account_id))
    if charge > 0:
        ledger(conn, account_id, "charge", -charge, now, request_id=request_id)
    return charge
