"""Every Redis key name Stratus uses, in one place. Redis holds only what may be lost."""

from __future__ import annotations

PREFIX = "stratus:"


def rate_limit(key_id: str) -> str:
    """A hash of one API key's buckets: ``<dimension>:level`` and ``<dimension>:at``."""
    return f"{PREFIX}ratelimit:{key_id}"
