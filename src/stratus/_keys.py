"""Every Redis key name Stratus uses, in one place. Redis holds only what may be lost."""

from __future__ import annotations

PREFIX = "stratus:"


def rate_limit(key_id: str) -> str:
    """A hash of one API key's buckets: ``<dimension>:level`` and ``<dimension>:at``."""
    return f"{PREFIX}ratelimit:{key_id}"


# Pub/sub channels of the wake-up hints (stratus.store._hints).
JOBS_CHANNEL = f"{PREFIX}jobs-changed"  # data: the ids of jobs whose state changed
ENDED_CHANNEL = f"{PREFIX}jobs-ended"  # data: the ids of jobs that ended
WORK_CHANNEL = f"{PREFIX}work"  # a job may have become claimable
WEBHOOKS_CHANNEL = f"{PREFIX}webhooks"  # a webhook delivery is due


def token_stream(job_id: str, attempt: str) -> str:
    """A Redis Stream of one attempt's text deltas (``attempt``: its lease token)."""
    return f"{PREFIX}tokens:{job_id}:{attempt}"


def token_attempt(job_id: str) -> str:
    """The lease token of the job's latest attempt: which stream its readers follow."""
    return f"{PREFIX}tokens:{job_id}:current"
