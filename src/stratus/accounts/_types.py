"""Accounts, keys, credits, request history and webhook deliveries, and the ``Accounts``
protocol every backend implements.

Money is counted in integer nano-dollars (1e-9 USD) so that charges add up exactly; the API
shows dollars.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Protocol

from stratus.store import JobRecord

NANO = 1_000_000_000  # nano-dollars per dollar
MAX_USD = 1_000_000_000  # the largest balance or amount: its nano-dollars fit an int64


def to_nano(usd: float) -> int:
    return round(usd * NANO)


def to_usd(nano: int) -> float:
    return nano / NANO


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str
    balance: int | None = None  # nano-USD; None: unlimited (spend is still recorded)
    reserved: int = 0  # held for requests that have not ended
    webhook_url: str | None = None
    webhook_secret: str = ""
    created_at: float = 0.0

    @property
    def available(self) -> int | None:
        return None if self.balance is None else self.balance - self.reserved


@dataclass(frozen=True, slots=True)
class KeyOptions:
    """What a key may do: ``models`` (slugs or aliases; None: all), per-minute limits
    (None: unlimited), and whether it may use the admin routes."""

    admin: bool = False
    models: tuple[str, ...] | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    account_id: str
    account_name: str
    prefix: str
    name: str
    created_at: float
    revoked_at: float | None = None
    options: KeyOptions = field(default_factory=KeyOptions)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request comes from: the key it presented and that key's account."""

    account: Account
    key: ApiKey


@dataclass(frozen=True, slots=True)
class Opening:
    """A request being admitted: its history row and its credit reservation."""

    request_id: str
    account_id: str
    key_id: str
    model: str  # as the client asked for it
    slug: str
    reserve: int  # nano-USD held until the request ends
    reserve_note: str  # how the reservation was worked out, for a 406's message
    webhook_url: str | None = None  # None: the account's default, if any
    user_id: str | None = None  # the client's end user (metadata.user_id, OpenAI's user)


@dataclass(frozen=True, slots=True)
class RequestEntry:
    """One request in an account's history."""

    id: str
    account_id: str
    key_id: str
    model: str
    slug: str
    status: str
    created_at: float
    reserved: int
    started_at: float | None = None
    completed_at: float | None = None
    cost: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    error_type: str | None = None
    webhook_url: str | None = None
    webhook_status: str | None = None  # pending | delivered | failed
    user_id: str | None = None  # the client's end user, as it named them


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    status: str | None = None
    model: str | None = None  # as requested, or the slug
    since: float | None = None
    until: float | None = None
    limit: int = 20
    after_id: str | None = None  # the page after this request (newest first)


@dataclass(frozen=True, slots=True)
class UsageRow:
    """An account's requests of one model (its slug) created on one UTC day, summed."""

    day: int  # days since 1970-01-01, UTC
    slug: str
    requests: int
    completed: int
    failed: int
    input_tokens: int
    output_tokens: int
    cost: int  # nano-USD charged


@dataclass(frozen=True, slots=True)
class LedgerLine:
    """One change to an account's balance: a grant, a setting or a charge."""

    id: int  # in the order the lines were written
    account_id: str
    kind: str  # grant | set | charge
    amount: int | None  # nano-USD (negative: taken; None: set to unlimited)
    balance_after: int | None  # None: unlimited
    note: str
    request_id: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class Delivery:
    """A webhook due to be sent: the request it reports and what to send."""

    request_id: str
    account_id: str
    url: str
    secret: str
    payload: str
    attempts: int
    first_at: float  # when the request ended: retries stop a window after this


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    attempt: int
    at: float
    url: str
    status_code: int | None
    error: str | None
    duration_ms: float


class Accounts(Protocol):
    """Keys, credits, history and webhook deliveries.

    Credits: :meth:`open_request` reserves a request's worst-case cost or refuses it; the
    request's end (:meth:`close_request`, idempotent) charges its real cost, never more than
    it reserved nor more than the balance, and frees the reservation. A FAILED request is
    never charged.
    """

    # -- keys ------------------------------------------------------------------------------
    async def authenticate(self, secret: str) -> Caller:
        """The key and its account; raises ``AuthenticationFailed``."""
        ...

    async def create_key(self, account: str = "default", name: str = "",
                         secret: str | None = None, options: KeyOptions | None = None,
                         credits: int | None = None) -> tuple[ApiKey, str]:
        """A new key for ``account`` (created if new, with ``credits`` nano-USD, None:
        unlimited); returns it with its secret, shown once."""
        ...

    async def list_keys(self) -> list[ApiKey]: ...

    async def revoke_key(self, key_id: str) -> ApiKey: ...

    async def has_keys(self) -> bool: ...

    # -- accounts and credits --------------------------------------------------------------
    async def account(self, name: str) -> Account:
        """By name; raises ``NotFound``."""
        ...

    async def list_accounts(self) -> list[Account]: ...

    async def add_credits(self, account: str, amount: int, note: str = "") -> Account:
        """Add (or, negative, take) nano-USD; refuses to go below zero or to add to an
        unlimited account."""
        ...

    async def set_credits(self, account: str, balance: int | None, note: str = "") -> Account:
        """Set the balance (None: unlimited)."""
        ...

    async def set_webhook(self, account_id: str, url: str | None) -> Account: ...

    async def ledger(self, account_id: str, limit: int,
                     before: int | None = None) -> tuple[list[LedgerLine], bool]:
        """A page of the account's ledger, newest first (lines written before the line
        ``before``), and whether more follow."""
        ...

    # -- requests --------------------------------------------------------------------------
    async def open_request(self, opening: Opening) -> None:
        """Record the request and reserve its cost; raises ``InsufficientCredits``."""
        ...

    async def discard_request(self, request_id: str) -> None:
        """Forget a request that was never queued, freeing its reservation."""
        ...

    async def start_request(self, request_id: str, at: float) -> None:
        """Mark an open request PROCESSING in the history."""
        ...

    async def close_request(self, record: JobRecord, payload: str) -> bool:
        """Settle an ended job once: charge or release, fill in its history, and queue its
        webhook (``payload``) if it has one. True if a webhook was queued."""
        ...

    async def abandon_request(self, request_id: str, error: str) -> bool:
        """End a request whose job is gone (never queued, or lost): release it all."""
        ...

    async def open_requests(self, older_than: float, limit: int,
                            after: str | None = None) -> list[str]:
        """Ids of requests not yet ended, created before ``older_than``, in the order they
        were made: a page of ``limit``, after the request ``after``."""
        ...

    async def request(self, account_id: str, request_id: str) -> RequestEntry | None: ...

    async def history(self, account_id: str, query: HistoryQuery) -> tuple[list[RequestEntry],
                                                                            bool]:
        """A page of the account's requests, newest first, and whether more follow."""
        ...

    async def usage(self, account_id: str, since: float,
                    until: float | None = None) -> list[UsageRow]:
        """The account's requests created from ``since`` until ``until`` (None: now), summed
        per UTC day and model slug, by day then slug."""
        ...

    # -- webhooks --------------------------------------------------------------------------
    async def claim_deliveries(self, now: float, limit: int, lease: float, *,
                               per_account: int | None = None,
                               running: Collection[Delivery] = ()) -> list[Delivery]:
        """Up to ``limit`` webhooks due now, each held for ``lease`` seconds against a second
        sender. They are taken in turn from each account (every account's oldest due one
        first, then every account's second, …), at most ``per_account`` of an account
        counting those of its deliveries the caller is still ``running``, which are never
        claimed again."""
        ...

    async def next_delivery_at(self, *, per_account: int | None = None,
                               running: Collection[Delivery] = ()) -> float | None:
        """When the next webhook that :meth:`claim_deliveries` could hand out with the same
        ``per_account`` and ``running`` is due (None: none pending)."""
        ...

    async def record_delivery(self, delivery: Delivery, attempt: DeliveryAttempt,
                              next_at: float | None, delivered: bool) -> None:
        """Log an attempt; retry at ``next_at``, or end the delivery (delivered or failed)."""
        ...

    async def deliveries(self, request_id: str) -> list[DeliveryAttempt]: ...

    # -- housekeeping ----------------------------------------------------------------------
    async def sweep(self, now: float) -> int:
        """Drop history past its retention; returns how many requests were dropped."""
        ...

