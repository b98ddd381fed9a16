"""The ``TokenStream`` protocol: a running job's text deltas, from its worker to the routes
that stream them to clients, and what a reader is told."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

START = "0"  # the offset of a position that has read nothing yet
START_WAIT = 1.0  # seconds a reader waits for a job's first attempt before it is told ABSENT


@dataclass(frozen=True, slots=True)
class Position:
    """How far a reader got in a job's stream: the attempt it follows (``None`` before it
    read from one) and an offset in that attempt's deltas, meaningful only to the stream
    that handed it out."""

    attempt: str | None = None
    offset: str = START

    @property
    def has_read(self) -> bool:
        """The reader at this position has read some of ``attempt``'s deltas."""
        return self.attempt is not None and self.offset != START


class State(enum.StrEnum):
    """What a reader is told along with the deltas of a read."""

    LIVE = "live"  # the attempt is running: more deltas may come
    ENDED = "ended"  # the attempt's stream is closed: its last delta has been read
    RESTARTED = "restarted"  # a newer attempt replaced the one the reader had read from
    ABSENT = "absent"  # nothing live: not started, expired, or the stream is unreachable


@dataclass(frozen=True, slots=True)
class Read:
    texts: tuple[str, ...]  # the deltas past the position, in order
    position: Position  # where the next read goes on
    state: State


class TokenStream(Protocol):
    """One stream per job attempt; an attempt is named by its claim's lease token, so two
    runs of one job never share a stream.

    Writers never raise and never wait long: a stream may lose text, and a reader that
    cannot trust it (:attr:`State.ABSENT`) completes from the job's stored result.
    """

    async def start(self, job_id: str, attempt: str) -> None:
        """``attempt`` starts from nothing and becomes the one readers of the job follow."""
        ...

    async def publish(self, job_id: str, attempt: str, text: str) -> None:
        """Append a delta to the attempt's stream (dropped once it ended or was replaced)."""
        ...

    async def end(self, job_id: str, attempt: str) -> None:
        """Close the attempt's stream: readers see :attr:`State.ENDED` after its last delta."""
        ...

    async def read(self, job_id: str, position: Position, timeout: float) -> Read:
        """The deltas of the job's current attempt past ``position``, and where to read on.

        Returns as soon as there is text, the end or a change of attempt to report, else
        after ``timeout`` seconds (:attr:`State.LIVE` with no text; 0: no waiting). A position
        that has read nothing follows whichever attempt is current; one that has read from
        an attempt that was replaced gets :attr:`State.RESTARTED` and no text. With no
        attempt started, it waits ``START_WAIT`` seconds at most before
        :attr:`State.ABSENT`. Never raises for a stream that cannot be reached: that is
        :attr:`State.ABSENT` too."""
        ...

    async def close(self) -> None:
        """Release the stream's connections."""
        ...
