"""What one run of a job came to: the worker's outcome events, one per claim."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Completed:
    result: dict[str, Any]
    metrics: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Failed:
    error: str
    error_type: str


@dataclass(frozen=True, slots=True)
class Lost:
    """The job left this worker's hands (cancelled, or its lease passed to another)."""


@dataclass(frozen=True, slots=True)
class Released:
    """Shutdown stopped the job before it ended: it goes back to the queue."""


Outcome = Completed | Failed | Lost | Released
