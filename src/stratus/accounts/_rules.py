"""What every accounts backend decides the same way, apart from its SQL dialect."""

from __future__ import annotations

from stratus.accounts._types import MAX_USD, Account, HistoryQuery, to_nano, to_usd
from stratus.errors import InvalidRequest


def check_grant(account: Account, amount: int) -> None:
    """Refuse a change of ``amount`` nano-USD that the account's balance cannot take."""
    name = account.name
    if account.balance is None:
        raise InvalidRequest(
            f"account {name!r} has unlimited credits: give it a balance with "
            "`stratus credits set` (or PUT /v1/admin/accounts/{name}/credits) first")
    if account.balance + amount < 0:
        raise InvalidRequest(
            f"account {name!r} has ${to_usd(account.balance):.6f}: taking "
            f"${to_usd(-amount):.6f} would leave it below zero")
    if account.balance + amount > to_nano(MAX_USD):
        raise InvalidRequest(
            f"account {name!r} has ${to_usd(account.balance):.6f}: adding "
            f"${to_usd(amount):.6f} would take it above the largest balance, ${MAX_USD:,}")


def history_filter(account_id: str, query: HistoryQuery,
                   mark: str) -> tuple[str, list[object]]:
    """The WHERE clause (with ``mark`` as the placeholder) and its arguments for a page of
    an account's history."""
    where, args = ["account_id = ?"], [account_id]
    if query.status is not None:
        where.append("status = ?")
        args.append(query.status)
    if query.model is not None:
        where.append("(model = ? OR slug = ?)")
        args += [query.model, query.model]
    if query.since is not None:
        where.append("created_at >= ?")
        args.append(query.since)
    if query.until is not None:
        where.append("created_at < ?")
        args.append(query.until)
    if query.after_id is not None:
        where.append("seq < COALESCE((SELECT seq FROM requests WHERE id = ? AND "
                     "account_id = ?), -1)")
        args += [query.after_id, account_id]
    return " AND ".join(where).replace("?", mark), args
