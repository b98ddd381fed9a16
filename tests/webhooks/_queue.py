"""Webhooks queued on real SQLite accounts, the way a finished request queues them."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from stratus.accounts import Opening, SqliteAccounts
from stratus.accounts._types import DeliveryAttempt, RequestEntry
from stratus.store import JobRecord, Metrics, Status
from stratus.webhooks import Dispatcher
from tests.webhooks._receivers import WAIT


class Queue:
    """Webhooks queued the way a finished request queues them."""

    def __init__(self, accounts: SqliteAccounts) -> None:
        self.accounts = accounts
        self.account_ids: dict[str, str] = {}
        self.owner: dict[str, str] = {}  # request id → account id
        self.dispatcher: Dispatcher | None = None  # woken when a webhook is queued

    async def add(self, url: str, account: str = "acme", ended: float | None = None) -> str:
        if account not in self.account_ids:
            key, _ = await self.accounts.create_key(account)
            self.account_ids[account] = key.account_id
        account_id = self.account_ids[account]
        rid = uuid.uuid4().hex
        await self.accounts.open_request(Opening(
            request_id=rid, account_id=account_id, key_id="key_x", model="echo", slug="echo",
            reserve=0, reserve_note="test", webhook_url=url))
        at = time.time() if ended is None else ended
        await self.accounts.close_request(JobRecord(
            id=rid, account_id=account_id, model="echo", requested_model="echo",
            status=Status.COMPLETED, request={}, created_at=at - 1, attempts=1,
            started_at=at - 0.5, completed_at=at, metrics=Metrics(cost=0.0)),
            json.dumps({"request_id": rid, "status": "COMPLETED"}))
        self.owner[rid] = account_id
        if self.dispatcher is not None:
            self.dispatcher.wake()
        return rid

    async def entry(self, rid: str) -> RequestEntry:
        entry = await self.accounts.request(self.owner[rid], rid)
        assert entry is not None
        return entry

    async def settled(self, rid: str, *states: str) -> list[DeliveryAttempt]:
        """The delivery log once the webhook is in one of ``states``."""
        deadline = time.monotonic() + WAIT
        while (entry := await self.entry(rid)).webhook_status not in states:
            assert time.monotonic() < deadline, (
                f"webhook of {rid} is {entry.webhook_status}, not {states}: "
                f"{await self.accounts.deliveries(rid)}")
            await asyncio.sleep(0.05)
        return await self.accounts.deliveries(rid)
