"""Accounts: API keys, credits, request history and webhook deliveries (embedded: SQLite;
scale-out: PostgreSQL)."""

from stratus.accounts._types import (
    MAX_USD,
    NANO,
    Account,
    Accounts,
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
    to_nano,
    to_usd,
)
from stratus.accounts.postgres import PostgresAccounts
from stratus.accounts.sqlite import SqliteAccounts

__all__ = [
    "MAX_USD",
    "NANO",
    "Account",
    "Accounts",
    "ApiKey",
    "Caller",
    "Delivery",
    "DeliveryAttempt",
    "HistoryQuery",
    "KeyOptions",
    "LedgerLine",
    "Opening",
    "PostgresAccounts",
    "RequestEntry",
    "SqliteAccounts",
    "UsageRow",
    "to_nano",
    "to_usd",
]
