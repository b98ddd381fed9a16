"""Accounts and API keys (embedded: SQLite)."""

from stratus.accounts._types import Account, Accounts, ApiKey
from stratus.accounts.sqlite import SqliteAccounts

__all__ = ["Account", "Accounts", "ApiKey", "SqliteAccounts"]
