"""Admission in process: what runs where, what waits for what, and what a request that is
refused or replayed costs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stratus.accounts import Caller, KeyOptions
from stratus.admission import Submission
from stratus.config import Config
from stratus.engines import ChatMessage, GenerationRequest, TextPart
from stratus.errors import RateLimited
from stratus.normalize import Normalized
from stratus.runtime import Runtime

pytestmark = pytest.mark.anyio


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    config = Config.model_validate({"server": {"data_dir": str(tmp_path)},
                                    "models": [{"slug": "echo"}]})
    made = Runtime.embedded(config)
    await made.start()
    yield made
    await made.stop()


async def caller_of(runtime: Runtime, account: str, **options: int) -> Caller:
    key, _ = await runtime.accounts.create_key(account, options=KeyOptions(**options))
    return Caller(account=await runtime.accounts.account(account), key=key)


class Prepare:
    """A ``prepare`` that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> Normalized:
        self.calls += 1
        request = GenerationRequest(messages=(ChatMessage(
            role="user", parts=(TextPart(text="hi there"),)),), max_tokens=4)
        return Normalized(request=request, input_tokens=2, stream=False)


async def submit(runtime: Runtime, caller: Caller, prepare: Prepare, request_id: str,
                 idempotency_key: str | None = None):
    return await runtime.submit(Submission(caller, runtime.models.resolve("echo"), "echo",
                                           prepare, request_id, {"n": 1},
                                           idempotency_key=idempotency_key))


async def test_a_request_is_prepared_off_the_event_loop(runtime: Runtime) -> None:
    caller = await caller_of(runtime, "prep")
    released = threading.Event()
    seen: dict[str, object] = {}

    def prepare() -> Normalized:
        seen["thread"] = threading.current_thread() is threading.main_thread()
        # the event loop must be free to run while a body is worked on
        seen["loop_ran"] = released.wait(timeout=10)
        return Prepare()()

    task = asyncio.create_task(runtime.submit(
        Submission(caller, runtime.models.resolve("echo"), "echo", prepare, "r1", {})))
    await asyncio.sleep(0.05)
    released.set()  # only possible if prepare is not holding the loop
    admission, _ = await asyncio.wait_for(task, 10)
    assert seen == {"thread": False, "loop_ran": True}
    assert admission.record.id == "r1"


async def test_a_key_out_of_requests_never_gets_its_body_worked_on(runtime: Runtime) -> None:
    caller = await caller_of(runtime, "burst", requests_per_minute=1)
    prepare = Prepare()
    results = await asyncio.gather(
        *(submit(runtime, caller, prepare, f"b{i}") for i in range(6)),
        return_exceptions=True)
    assert sum(isinstance(r, RateLimited) for r in results) == 5
    assert prepare.calls == 1  # only the admitted request was worked on


async def test_a_retry_during_the_first_admission_gets_the_same_job(runtime: Runtime) -> None:
    caller = await caller_of(runtime, "retry", requests_per_minute=1)
    prepare = Prepare()
    results = await asyncio.gather(
        *(submit(runtime, caller, prepare, f"r{i}", idempotency_key="same") for i in range(4)))
    assert {admission.record.id for admission, _ in results} == {"r0"}
    assert prepare.calls == 1  # a replay is not worked on again
    assert [admission.limits is None for admission, _ in results].count(False) == 1


async def test_too_many_requests_waiting_for_a_thread_get_503() -> None:
    from stratus._offload import Offload
    from stratus.errors import Unavailable

    offload = Offload(workers=1, max_waiting=2)
    gate = threading.Event()
    held = [asyncio.create_task(offload.run(gate.wait, 10)) for _ in range(3)]
    await asyncio.sleep(0.05)
    with pytest.raises(Unavailable, match="busy"):
        await offload.run(lambda: None)
    gate.set()
    assert await asyncio.gather(*held) == [True] * 3
    assert await offload.run(lambda: 7) == 7  # room again
    offload.close()


async def test_a_small_body_is_worked_on_in_place_a_large_one_on_a_thread() -> None:
    from stratus._offload import INLINE_BYTES, Offload

    offload = Offload()
    here = threading.get_ident()
    assert await offload.run(threading.get_ident, size=INLINE_BYTES) == here
    assert await offload.run(threading.get_ident, size=INLINE_BYTES + 1) != here
    assert await offload.run(threading.get_ident) != here  # size unknown: a thread
    offload.close()
