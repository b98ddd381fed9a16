"""What the engine thread decides, apart from llama.cpp: which request runs in which slot,
which tokens each step decodes, and how each sequence ends.

The scheduler owns ``slots`` sequence slots of one KV cache. Each :meth:`Scheduler.step`
admits waiting requests into free slots, packs the next token of every running sequence and
up to ``chunk`` prompt tokens into one batch, has the :class:`Backend` decode it, samples
each sequence whose logits the batch produced, and ends the sequences that are done.

**Prompt reuse.** A slot keeps the tokens whose KV is still in the cache after its request
ends. A new request goes to the free slot whose kept tokens share the longest prefix with its
prompt, and only the rest of its prompt is decoded; a prefix that is live in a running slot
is copied from there instead when it is longer. A prefix that a running request is still
decoding (two requests with one system prompt arriving together) is waited for, then copied:
it is decoded once. At least the last prompt token is always
decoded (its logits give the first sample), so a kept prefix as long as the prompt, or
longer, is cut back to one token less than the prompt.
"""

from __future__ import annotations

import codecs
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from stratus.engines._stops import StopMatcher
from stratus.engines._types import EngineEvent, Finished, StopReason, TextDelta


@dataclass(frozen=True, slots=True)
class Entry:
    """One token of a batch: at ``pos`` of ``slot``; ``logits``: sample after it."""

    token: int
    pos: int
    slot: int
    logits: bool


class Backend(Protocol):
    def decode(self, entries: list[Entry]) -> None:
        """Decode one batch into the KV cache; raises if it failed."""
        ...

    def sample(self, seq: Sequence, index: int) -> int:
        """The next token of ``seq``, from the logits at ``index`` of the last batch."""
        ...

    def is_end(self, token: int) -> bool:
        """An end-of-generation token."""
        ...

    def piece(self, token: int) -> bytes: ...

    def keep(self, slot: int, n: int) -> bool:
        """Drop the slot's KV from position ``n`` on; False if the cache cannot keep a
        prefix (then the caller drops it all)."""
        ...

    def copy(self, src: int, dst: int, n: int) -> None:
        """Share the KV of positions ``[0, n)`` of slot ``src`` with slot ``dst``."""
        ...

    def start(self, seq: Sequence) -> None:
        """Prepare ``seq`` to be sampled (its sampler)."""
        ...

    def stop(self, seq: Sequence) -> None:
        """Free what :meth:`start` made."""
        ...


@dataclass(eq=False)
class Sequence:
    """One request inside the engine thread; ``sink`` is the engine's (where its events go)."""

    tokens: list[int]  # the prompt
    max_tokens: int
    stops: tuple[str, ...] = ()
    sink: Any = None
    options: Any = None  # what the backend samples with
    slot: int = -1
    fed: int = 0  # prompt tokens in the KV cache
    cached: int = 0  # of those, how many were there before it came (reused)
    kv: list[int] = field(default_factory=list)  # the tokens in its slot's KV, in order
    pending: int | None = None  # the last sampled token, to be decoded next step
    generated: int = 0
    matcher: StopMatcher = field(init=False)
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    cancelled: bool = False
    finished: bool = False
    share: tuple[Sequence, int] | None = None  # waits for that many tokens of that one's KV
    state: Any = None  # the backend's (its sampler)
    outbox: list[EngineEvent | BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.matcher = StopMatcher(self.stops)

    def send(self, event: EngineEvent | BaseException) -> None:
        self.outbox.append(event)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class Scheduler:
    def __init__(self, backend: Backend, *, slots: int, chunk: int, capacity: int,
                 reuse: bool = True) -> None:
        """``chunk``: prompt tokens per step at most; ``capacity``: tokens per batch;
        ``reuse``: keep slots' KV for the prompts that follow (off: every prompt is decoded
        whole)."""
        self.backend = backend
        self.reuse = reuse
        self.slots = slots
        self.chunk = chunk
        self.capacity = capacity
        self.waiting: deque[Sequence] = deque()
        self.active: list[Sequence] = []
        self.free: list[int] = list(range(slots))
        self.kept: list[list[int]] = [[] for _ in range(slots)]  # KV tokens of free slots

    def add(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    @property
    def idle(self) -> bool:
        return not self.active and not self.waiting

    # -- one step ----------------------------------------------------------------------------

    def step(self) -> list[Sequence]:
        """Admit, decode one batch, sample; returns the sequences that have events to send
        (ended ones included: they have left their slots)."""
        touched: list[Sequence] = []
        for seq in [s for s in self.active if s.cancelled]:
            self._release(seq)
        while self.waiting and self.free:
            seq = self.waiting.popleft()
            if not seq.cancelled:
                self._admit(seq)
        for seq in self.active:
            if seq.share is not None:
                self._take_share(seq)
        entries, owners = self._batch()
        if not entries:
            return touched
        stepped = list(dict.fromkeys(owners))
        try:
            self.backend.decode(entries)
        except Exception as exc:
            for seq in stepped:  # its KV is unknown now: nothing of its slot is kept
                seq.send(exc)
                seq.kv = []
                self._release(seq)
            return stepped
        for entry, seq in zip(entries, owners, strict=True):
            seq.kv.append(entry.token)
        for index, (entry, seq) in enumerate(zip(entries, owners, strict=True)):
            if entry.logits:
                self._sample(seq, index)
        for seq in stepped:
            if seq.finished:
                self._release(seq)
        return stepped

    def _admit(self, seq: Sequence) -> None:
        """The free slot with the longest kept prefix of the prompt, or a live prefix copied
        from a running slot when that is longer."""
        limit = max(len(seq.tokens) - 1, 0)  # the last prompt token is always decoded
        slot = max(self.free, key=lambda s: (common_prefix(self.kept[s], seq.tokens), -s))
        reuse = min(common_prefix(self.kept[slot], seq.tokens), limit)
        live = max(self.active, default=None,
                   key=lambda a: common_prefix(a.kv, seq.tokens))
        shared = min(common_prefix(live.kv, seq.tokens), limit) if live is not None else 0
        coming = max(self.active, default=None,  # a prefix still being decoded
                     key=lambda a: common_prefix(a.tokens[:limit], seq.tokens))
        later = min(common_prefix(coming.tokens, seq.tokens), limit) if coming else 0
        self.free.remove(slot)
        if not self.reuse:
            self.backend.keep(slot, 0)
            reuse = 0
        elif coming is not None and later > max(reuse, shared):
            self.backend.keep(slot, 0)
            seq.share, reuse = (coming, later), 0
        elif live is not None and shared > reuse:
            self.backend.keep(slot, 0)
            self.backend.copy(live.slot, slot, shared)
            reuse = shared
        elif not self.backend.keep(slot, reuse):
            self.backend.keep(slot, 0)
            reuse = 0
        self.kept[slot] = []
        seq.slot, seq.fed, seq.cached = slot, reuse, reuse
        seq.kv = seq.tokens[:reuse]
        self.backend.start(seq)
        self.active.append(seq)

    def _take_share(self, seq: Sequence) -> None:
        """Copy the awaited prefix once its owner has decoded it (or give up waiting if the
        owner left first)."""
        assert seq.share is not None
        owner, n = seq.share
        if owner not in self.active or owner.cancelled:
            seq.share = None
        elif len(owner.kv) >= n:
            self.backend.copy(owner.slot, seq.slot, n)
            seq.share, seq.fed, seq.cached, seq.kv = None, n, n, seq.tokens[:n]

    def _batch(self) -> tuple[list[Entry], list[Sequence]]:
        entries: list[Entry] = []
        owners: list[Sequence] = []
        for seq in self.active:
            if seq.pending is not None:
                entries.append(Entry(seq.pending, len(seq.kv), seq.slot, True))
                owners.append(seq)
        budget = min(self.capacity - len(entries), self.chunk)
        for seq in self.active:
            left = len(seq.tokens) - seq.fed
            if seq.pending is not None or seq.share or left == 0 or budget <= 0:
                continue
            take = min(left, budget)
            for i in range(seq.fed, seq.fed + take):
                entries.append(Entry(seq.tokens[i], i, seq.slot, i == len(seq.tokens) - 1))
                owners.append(seq)
            seq.fed += take
            budget -= take
        return entries, owners

    def _sample(self, seq: Sequence, index: int) -> None:
        token = self.backend.sample(seq, index)
        reason: StopReason | None = None
        if self.backend.is_end(token):
            reason = "end_turn"
        else:
            seq.generated += 1
            text = seq.decoder.decode(self.backend.piece(token))
            safe = seq.matcher.feed(text) if text else ""
            if safe:
                seq.send(TextDelta(safe, len(seq.tokens), seq.generated))
            if seq.matcher.matched is not None:
                reason = "stop_sequence"
            elif seq.generated >= seq.max_tokens:
                reason = "max_tokens"
        if reason is None:
            seq.pending = token
            return
        if reason != "stop_sequence":
            rest = seq.matcher.feed(seq.decoder.decode(b"", final=True)) + seq.matcher.flush()
            if rest:
                seq.send(TextDelta(rest, len(seq.tokens), seq.generated))
        seq.send(Finished(stop_reason=reason, input_tokens=len(seq.tokens),
                          output_tokens=seq.generated, stop_sequence=seq.matcher.matched,
                          cached_input_tokens=seq.cached))
        seq.pending = None
        seq.finished = True

    def _release(self, seq: Sequence) -> None:
        """The sequence leaves its slot, which keeps the tokens of its KV for the next."""
        self.backend.stop(seq)
        if seq in self.active:
            self.active.remove(seq)
        if not seq.kv:
            self.backend.keep(seq.slot, 0)
        self.kept[seq.slot] = seq.kv
        self.free.append(seq.slot)
        self.free.sort()

    def fail_all(self, error: BaseException) -> list[Sequence]:
        """End every sequence, running or waiting, with ``error`` (the engine stops)."""
        ended = [*self.active, *self.waiting]
        for seq in ended:
            seq.send(error)
        for seq in list(self.active):
            self._release(seq)
        self.waiting.clear()
        return ended
