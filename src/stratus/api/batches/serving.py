"""Anthropic's Message Batches API (``/v1/messages/batches``): requests in, wire bodies out,
no HTTP. A batch's ``processing_status`` and ``request_counts`` are reported as Anthropic
reports them: every request counts as ``processing`` until the whole batch has ended."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from stratus.accounts import Caller
from stratus.api._errors import anthropic_error_body
from stratus.api._outcome import error_of
from stratus.batches import BatchRecord, ResultRow
from stratus.errors import InvalidRequest, NotFound
from stratus.normalize import parse_body
from stratus.protocol.batches import CreateBatch
from stratus.runtime import Runtime
from stratus.store import ErrorType, Status
from stratus.views import iso

RESULTS_PAGE = 1000
VALUES_EACH = 2000  # JSON values a batch's body may hold per request it may hold
MAX_LIMIT = 1000


def batch_body(batch: BatchRecord, base_url: str) -> dict[str, Any]:
    counts = batch.counts
    ended = batch.processing_status == "ended"
    return {
        "id": batch.id, "type": "message_batch",
        "processing_status": batch.processing_status,
        "request_counts": {
            "processing": 0 if ended else batch.total,
            "succeeded": counts.succeeded if ended else 0,
            "errored": counts.errored if ended else 0,
            "canceled": counts.canceled if ended else 0,
            "expired": counts.expired if ended else 0,
        },
        "ended_at": iso(batch.ended_at), "created_at": iso(batch.created_at),
        "expires_at": iso(batch.expires_at), "archived_at": None,
        "cancel_initiated_at": iso(batch.cancel_initiated_at),
        "results_url": (f"{base_url}/v1/messages/batches/{batch.id}/results" if ended
                        else None),
    }


async def create(runtime: Runtime, caller: Caller, raw: bytes, base_url: str) -> dict[str, Any]:
    runtime.check_admitting()
    limit = runtime.config.batches.max_requests
    _, body = await runtime.offload.run(parse_body, raw, CreateBatch, limit * VALUES_EACH,
                                        size=len(raw))
    new = await runtime.batch_admitter.submit(caller, body.requests, len(raw))
    return batch_body(await _batch(runtime, caller, new.id), base_url)


async def _batch(runtime: Runtime, caller: Caller, batch_id: str) -> BatchRecord:
    return _found(runtime, batch_id, await runtime.batches.get(caller.account.id, batch_id))


def _found(runtime: Runtime, batch_id: str, batch: BatchRecord | None) -> BatchRecord:
    """The batch, or the 404 for an unknown one."""
    if batch is None:
        retention = runtime.config.batches.retention
        raise NotFound(f"unknown batch {batch_id!r}: it does not exist, belongs to another "
                       f"account, or was deleted (batches are kept {retention:g} s)")
    return batch


async def retrieve(runtime: Runtime, caller: Caller, batch_id: str,
                   base_url: str) -> dict[str, Any]:
    return batch_body(await _batch(runtime, caller, batch_id), base_url)


async def page(runtime: Runtime, caller: Caller, query: Mapping[str, str],
               base_url: str) -> dict[str, Any]:
    unknown = sorted(set(query) - {"limit", "before_id", "after_id"})
    if unknown:
        raise InvalidRequest(f"unknown query parameter {unknown[0]!r}: use limit, before_id "
                             "or after_id")
    raw = query.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be an integer from 1 to {MAX_LIMIT}, not {raw!r}")
    if "before_id" in query and "after_id" in query:
        raise InvalidRequest("give before_id or after_id, not both")
    batches, more = await runtime.batches.page(
        caller.account.id, int(raw), before_id=query.get("before_id"),
        after_id=query.get("after_id"))
    return {"data": [batch_body(batch, base_url) for batch in batches], "has_more": more,
            "first_id": batches[0].id if batches else None,
            "last_id": batches[-1].id if batches else None}


async def cancel(runtime: Runtime, caller: Caller, batch_id: str,
                 base_url: str) -> dict[str, Any]:
    batch = _found(runtime, batch_id,
                   await runtime.batches.begin_cancel(caller.account.id, batch_id))
    runtime.batch_keeper.wake()
    return batch_body(batch, base_url)


async def delete(runtime: Runtime, caller: Caller, batch_id: str) -> dict[str, Any]:
    batch = await _batch(runtime, caller, batch_id)
    if batch.processing_status != "ended":
        raise InvalidRequest(f"batch {batch_id} is {batch.processing_status}: only an ended "
                             "batch can be deleted; cancel it first")
    await runtime.batches.delete(caller.account.id, batch_id)
    return {"id": batch_id, "type": "message_batch_deleted"}


async def results(runtime: Runtime, caller: Caller, batch_id: str) -> AsyncIterator[bytes]:
    """The results file, checked before the first line is sent: one JSON line a request, in
    the order of the batch."""
    batch = await _batch(runtime, caller, batch_id)
    if batch.processing_status != "ended":
        raise InvalidRequest(f"batch {batch_id} is {batch.processing_status}: its results "
                             "are ready once processing_status is ended")
    return _lines(runtime, batch_id)


async def _lines(runtime: Runtime, batch_id: str) -> AsyncIterator[bytes]:
    after = 0
    while True:
        rows = await runtime.batches.results(batch_id, after, RESULTS_PAGE)
        if rows:
            yield "".join(json.dumps(result_line(row), separators=(",", ":")) + "\n"
                          for row in rows).encode()
            after = rows[-1].seq
        if len(rows) < RESULTS_PAGE:
            return


def result_line(row: ResultRow) -> dict[str, Any]:
    result: dict[str, Any]
    if row.status is Status.COMPLETED and row.result is not None:
        result = {"type": "succeeded", "message": json.loads(row.result)}
    elif row.error_type == ErrorType.CANCELLED:
        result = {"type": "canceled"}
    elif row.error_type == ErrorType.EXPIRED:
        result = {"type": "expired"}
    else:
        error = error_of(row.error_type, row.error or "the request failed")
        result = {"type": "errored", "error": anthropic_error_body(error)}
    return {"custom_id": row.custom_id, "result": result}
