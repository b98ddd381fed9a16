"""Accounts and API keys, and the ``Accounts`` protocol every backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    account_id: str
    account_name: str
    prefix: str
    name: str
    created_at: float
    revoked_at: float | None = None


class Accounts(Protocol):
    async def authenticate(self, secret: str) -> Account:
        """The key's account; raises ``AuthenticationFailed`` for unknown or revoked keys."""
        ...

    async def create_key(self, account: str = "default", name: str = "",
                         secret: str | None = None) -> tuple[ApiKey, str]:
        """A new key for ``account`` (created if new); returns it with its secret, shown once."""
        ...

    async def list_keys(self) -> list[ApiKey]: ...

    async def revoke_key(self, key_id: str) -> ApiKey:
        """Revoke by key id; raises ``NotFound``."""
        ...

    async def has_keys(self) -> bool: ...
