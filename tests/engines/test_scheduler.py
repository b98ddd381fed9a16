"""The llama.cpp engine's scheduler, driven by a fake decoder: its batching rules, prompt
reuse and endings, without a model."""

from __future__ import annotations

import pytest

from stratus.engines import Finished, TextDelta
from stratus.engines.llamacpp._scheduler import Entry, Scheduler, Sequence

END = 0


class FakeBackend:
    """A KV cache of token lists per slot; each sequence samples from its own script
    (``seq.options``: the tokens to produce, in order)."""

    def __init__(self, slots: int) -> None:
        self.kv: list[list[int]] = [[] for _ in range(slots)]
        self.batches: list[list[Entry]] = []
        self.fail_next = False
        self.keeps_prefixes = True
        self.copies: list[tuple[int, int, int]] = []
        self.started: list[Sequence] = []
        self.stopped: list[Sequence] = []

    def decode(self, entries: list[Entry]) -> None:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("decode failed")
        for entry in entries:  # every token lands right after the slot's last one
            assert entry.pos == len(self.kv[entry.slot]), (entry, self.kv[entry.slot])
            self.kv[entry.slot].append(entry.token)
        self.batches.append(entries)

    def sample(self, seq: Sequence, index: int) -> int:
        assert self.batches[-1][index].logits
        return seq.options.pop(0)

    def is_end(self, token: int) -> bool:
        return token == END

    def piece(self, token: int) -> bytes:
        return f"t{token} ".encode()

    def keep(self, slot: int, n: int) -> bool:
        if n and not self.keeps_prefixes:
            return False
        del self.kv[slot][n:]
        return True

    def copy(self, src: int, dst: int, n: int) -> None:
        self.copies.append((src, dst, n))
        self.kv[dst] = self.kv[src][:n]

    def start(self, seq: Sequence) -> None:
        self.started.append(seq)

    def stop(self, seq: Sequence) -> None:
        self.stopped.append(seq)


def make(slots: int = 2, chunk: int = 4, capacity: int = 64) -> tuple[Scheduler, FakeBackend]:
    backend = FakeBackend(slots)
    return Scheduler(backend, slots=slots, chunk=chunk, capacity=capacity), backend


def seq(prompt: list[int], script: list[int], max_tokens: int = 100,
        stops: tuple[str, ...] = ()) -> Sequence:
    return Sequence(tokens=prompt, max_tokens=max_tokens, stops=stops, options=list(script))


def run(scheduler: Scheduler, limit: int = 100) -> int:
    steps = 0
    while not scheduler.idle:
        scheduler.step()
        steps += 1
        assert steps < limit
    return steps


def text(s: Sequence) -> str:
    return "".join(e.text for e in s.outbox if isinstance(e, TextDelta))


def ending(s: Sequence) -> Finished:
    (finished,) = [e for e in s.outbox if isinstance(e, Finished)]
    return finished


def test_no_more_sequences_than_slots_run_at_once() -> None:
    scheduler, backend = make(slots=2)
    seqs = [seq([i, i + 1], [5, END]) for i in (1, 11, 21)]
    for s in seqs:
        scheduler.add(s)
    scheduler.step()
    assert len(scheduler.active) == 2 and len(scheduler.waiting) == 1
    assert {e.slot for e in backend.batches[0]} == {0, 1}
    run(scheduler)
    assert all(ending(s).stop_reason == "end_turn" for s in seqs)
    assert max(len({e.slot for e in b}) for b in backend.batches) <= 2


def test_a_step_decodes_at_most_a_chunk_of_prompt() -> None:
    scheduler, backend = make(slots=2, chunk=4)
    long = seq(list(range(1, 11)), [7, END])
    scheduler.add(long)
    run(scheduler)
    prompt_steps = [b for b in backend.batches if any(not e.logits or e.pos < 10 for e in b)]
    assert [len(b) for b in prompt_steps[:3]] == [4, 4, 2]
    assert [e.logits for e in prompt_steps[2]] == [False, True]  # logits only at the end
    assert text(long) == "t7 "


def test_running_sequences_decode_beside_a_new_prompt() -> None:
    scheduler, backend = make(slots=2, chunk=4)
    first = seq([1, 2], [5, 6, 7, END])
    scheduler.add(first)
    scheduler.step()  # its prompt
    scheduler.add(seq(list(range(20, 30)), [8, END]))
    scheduler.step()
    batch = backend.batches[-1]
    assert batch[0] == Entry(5, 2, first.slot, True)  # the running one's next token first
    assert len(batch) == 1 + 4  # then a chunk of the new prompt


def test_a_cancelled_sequence_leaves_at_the_next_step() -> None:
    scheduler, backend = make(slots=1)
    gone = seq([1, 2], [5, 5, 5, 5, 5], max_tokens=5)
    waiting = seq([3, 4], [6, END])
    scheduler.add(gone)
    scheduler.add(waiting)
    scheduler.step()
    scheduler.step()
    gone.cancelled = True
    scheduler.step()
    assert gone not in scheduler.active and gone in backend.stopped
    assert all(e.slot == waiting.slot for e in backend.batches[-1])
    run(scheduler)
    assert ending(waiting).stop_reason == "end_turn"
    assert not any(isinstance(e, Finished) for e in gone.outbox)


def test_a_failed_decode_fails_only_that_steps_sequences() -> None:
    scheduler, backend = make(slots=2)
    failing = seq([1, 2], [5, END])
    scheduler.add(failing)
    backend.fail_next = True
    touched = scheduler.step()
    assert touched == [failing] and isinstance(failing.outbox[-1], RuntimeError)
    assert scheduler.idle and scheduler.free == [0, 1]
    assert backend.kv[failing.slot] == []  # nothing of a failed step is kept
    after = seq([1, 2], [6, END])
    scheduler.add(after)
    run(scheduler)
    assert ending(after).stop_reason == "end_turn" and after.cached == 0


@pytest.mark.parametrize(("script", "max_tokens", "stops", "reason", "out", "made"), [
    ([5, 6, END], 10, (), "end_turn", "t5 t6 ", 2),
    ([5, 6, 7, 8], 2, (), "max_tokens", "t5 t6 ", 2),
    ([5, 6, 7, 8], 10, ("t6",), "stop_sequence", "t5 ", 2),  # the stop's token counts
])
def test_each_ending(script, max_tokens, stops, reason, out, made) -> None:
    scheduler, _ = make()
    s = seq([1, 2, 3], script, max_tokens=max_tokens, stops=stops)
    scheduler.add(s)
    run(scheduler)
    finished = ending(s)
    assert finished.stop_reason == reason and text(s) == out
    assert finished.input_tokens == 3
    assert finished.output_tokens == made
    assert finished.stop_sequence == (stops[0] if stops else None)


def test_a_new_prompt_goes_to_the_slot_with_its_longest_kept_prefix() -> None:
    scheduler, backend = make(slots=3)
    for prompt in ([9, 9, 9], [1, 2, 3, 4, 5], [7, 7]):
        scheduler.add(seq(prompt, [END]))
    run(scheduler)
    kept_in = {tuple(scheduler.kept[slot][:2]): slot for slot in range(3)}
    follow_up = seq([1, 2, 3, 4, 6, 6], [8, END])
    scheduler.add(follow_up)
    run(scheduler)
    assert follow_up.slot == kept_in[(1, 2)]
    assert follow_up.cached == 4 and ending(follow_up).cached_input_tokens == 4
    first = [b for b in backend.batches if any(e.slot == follow_up.slot for e in b)][-2]
    assert [e.pos for e in first] == [4, 5]  # only the new suffix was decoded
    assert backend.kv[follow_up.slot][:6] == [1, 2, 3, 4, 6, 6]


@pytest.mark.parametrize("kept", [[1, 2, 3, 4], [1, 2, 3, 4, 5, 6, 7]])
def test_a_kept_prefix_as_long_as_the_prompt_leaves_its_last_token_to_decode(kept) -> None:
    scheduler, backend = make(slots=1)
    scheduler.add(seq(kept, [END]))
    run(scheduler)
    again = seq([1, 2, 3, 4], [5, END])
    scheduler.add(again)
    run(scheduler)
    assert again.cached == 3
    assert backend.batches[-2] == [Entry(4, 3, 0, True)]


def test_a_prefix_live_in_a_running_slot_is_shared() -> None:
    scheduler, backend = make(slots=2, chunk=64)
    system = [1, 2, 3, 4, 5, 6]
    running = seq([*system, 10], [7, 7, 7, 7, END])
    scheduler.add(running)
    scheduler.step()
    other = seq([*system, 11], [8, END])
    scheduler.add(other)
    scheduler.step()
    assert backend.copies == [(running.slot, other.slot, 6)]
    assert other.cached == 6
    run(scheduler)
    assert backend.kv[other.slot][:7] == [*system, 11]


def test_a_cache_that_cannot_keep_a_prefix_prefills_it_all() -> None:
    scheduler, backend = make(slots=1)
    scheduler.add(seq([1, 2, 3], [END]))
    run(scheduler)
    backend.keeps_prefixes = False
    again = seq([1, 2, 3, 4], [5, END])
    scheduler.add(again)
    run(scheduler)
    assert again.cached == 0 and backend.kv[0][:4] == [1, 2, 3, 4]


def test_without_reuse_every_prompt_is_decoded_whole() -> None:
    backend = FakeBackend(1)
    scheduler = Scheduler(backend, slots=1, chunk=64, capacity=64, reuse=False)
    scheduler.add(seq([1, 2, 3], [END]))
    run(scheduler)
    again = seq([1, 2, 3, 4], [5, END])
    scheduler.add(again)
    run(scheduler)
    assert again.cached == 0 and [e.pos for e in backend.batches[-2]] == [0, 1, 2, 3]


def test_two_prompts_with_one_prefix_arriving_together_decode_it_once() -> None:
    scheduler, backend = make(slots=2, chunk=4)
    system = list(range(1, 11))
    first = seq([*system, 20], [7, 7, END])
    second = seq([*system, 30], [8, END])
    scheduler.add(first)
    scheduler.add(second)
    run(scheduler)
    prompt_of_second = [e.pos for b in backend.batches for e in b
                        if e.slot == second.slot and e.pos <= len(system)]
    assert backend.copies == [(first.slot, second.slot, 10)]
    assert prompt_of_second == [10]  # only its own last prompt token
    assert second.cached == 10
    assert backend.kv[second.slot][:11] == [*system, 30]
    assert ending(first).stop_reason == ending(second).stop_reason == "end_turn"


def test_a_wait_for_a_prefix_ends_if_its_owner_is_cancelled() -> None:
    scheduler, backend = make(slots=2, chunk=4)
    system = list(range(1, 11))
    first = seq([*system, 20], [7, END])
    second = seq([*system, 30], [8, END])
    scheduler.add(first)
    scheduler.add(second)
    scheduler.step()
    first.cancelled = True
    run(scheduler)
    assert backend.copies == [] and second.cached == 0
    assert backend.kv[second.slot][:11] == [*system, 30]
    assert ending(second).stop_reason == "end_turn"
