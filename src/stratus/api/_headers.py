"""Response headers that report on a request: its key's rate limits and what it cost.

Rate limits, on the Segmind and OpenAI surfaces (OpenAI's names):
``x-ratelimit-limit-requests``, ``x-ratelimit-remaining-requests``,
``x-ratelimit-reset-requests`` (time until the bucket is full again, as ``1.5s`` /
``2m0s``), and the same for ``-tokens``. On the Anthropic surface (Anthropic's names):
``anthropic-ratelimit-requests-limit``, ``-remaining``, ``-reset`` (an RFC 3339 time), and
the same for ``tokens``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from starlette.requests import Request

from stratus.limits import Bucket, LimitState
from stratus.store import JobRecord

COST_HEADER = "x-request-cost"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s"


def _rfc3339(seconds_from_now: float) -> str:
    at = datetime.fromtimestamp(time.time() + seconds_from_now, UTC)
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def limit_headers(limits: LimitState, *, anthropic: bool) -> dict[str, str]:
    headers: dict[str, str] = {}
    dims: tuple[tuple[str, Bucket | None], ...] = (("requests", limits.requests),
                                                   ("tokens", limits.tokens))
    for dim, bucket in dims:
        if bucket is None:
            continue
        if anthropic:
            prefix = f"anthropic-ratelimit-{dim}-"
            headers[prefix + "limit"] = str(bucket.limit)
            headers[prefix + "remaining"] = str(bucket.remaining)
            headers[prefix + "reset"] = _rfc3339(bucket.reset)
        else:
            headers[f"x-ratelimit-limit-{dim}"] = str(bucket.limit)
            headers[f"x-ratelimit-remaining-{dim}"] = str(bucket.remaining)
            headers[f"x-ratelimit-reset-{dim}"] = _duration(bucket.reset)
    return headers


def ended_headers(request: Request, record: JobRecord) -> dict[str, str]:
    """:func:`cost_headers`, and the job noted for the request's log line."""
    request.state.ended = record
    return cost_headers(record)


def noting_end(request: Request) -> Callable[[JobRecord], None]:
    """What a stream calls with the job once it has ended: noted for the request's log line
    (written when the stream's last byte is sent)."""

    def note(record: JobRecord) -> None:
        request.state.ended = record

    return note


def cost_headers(record: JobRecord) -> dict[str, str]:
    """``x-request-cost``: USD charged for an ended job (``JobRecord.cost``)."""
    if not record.status.is_terminal():
        return {}
    return {COST_HEADER: f"{record.cost:.9f}".rstrip("0").rstrip(".")}
