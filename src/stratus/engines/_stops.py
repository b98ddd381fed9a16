"""Stop sequences over a token stream: never emit text that a stop sequence might begin with."""

from __future__ import annotations


class StopMatcher:
    """Feed decoded pieces; get back the text that is safe to emit.

    Text that could be the start of a stop sequence is held back until the next piece shows
    whether it is one. When a stop sequence completes, :attr:`matched` is set and everything
    from the start of the match on is dropped.
    """

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._pending = ""
        self.matched: str | None = None

    def feed(self, piece: str) -> str:
        if self.matched is not None:
            return ""
        buf = self._pending + piece
        best: tuple[int, str] | None = None
        for stop in self._stops:
            at = buf.find(stop)
            if at != -1 and (best is None or at < best[0]):
                best = (at, stop)
        if best is not None:
            self.matched = best[1]
            self._pending = ""
            return buf[: best[0]]
        hold = self._held_suffix(buf)
        self._pending = buf[len(buf) - hold:] if hold else ""
        return buf[: len(buf) - hold]

    def flush(self) -> str:
        """Text still held back when generation ends without a match."""
        out, self._pending = self._pending, ""
        return out if self.matched is None else ""

    def _held_suffix(self, buf: str) -> int:
        """Length of the longest suffix of ``buf`` that is a proper prefix of a stop sequence."""
        longest = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(buf)), longest, -1):
                if buf.endswith(stop[:n]):
                    longest = n
                    break
        return longest
