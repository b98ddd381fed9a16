"""The runtime's admission, in process: the work on a request's body runs off the event loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from stratus.accounts import Caller
from stratus.config import Config
from stratus.engines import ChatMessage, GenerationRequest, TextPart
from stratus.normalize import Normalized
from stratus.runtime import Runtime

pytestmark = pytest.mark.anyio


async def test_a_request_is_prepared_off_the_event_loop(tmp_path: Path) -> None:
    config = Config.model_validate({"server": {"data_dir": str(tmp_path)},
                                    "models": [{"slug": "echo"}]})
    runtime = Runtime.embedded(config)
    await runtime.start()
    try:
        key, _ = await runtime.accounts.create_key("prep")
        caller = Caller(account=await runtime.accounts.account("prep"), key=key)
        released = threading.Event()
        seen: dict[str, object] = {}

        def prepare() -> Normalized:
            seen["thread"] = threading.current_thread() is threading.main_thread()
            # the event loop must be free to run while a body is worked on
            seen["loop_ran"] = released.wait(timeout=10)
            request = GenerationRequest(messages=(ChatMessage(
                role="user", parts=(TextPart(text="hi"),)),), max_tokens=4)
            return Normalized(request=request, input_tokens=1, stream=False)

        submit = asyncio.create_task(runtime.submit(
            caller, runtime.models.resolve("echo"), "echo", prepare, request_id="r1",
            idempotency_key=None, body={}))
        await asyncio.sleep(0.05)
        released.set()  # only possible if prepare is not holding the loop
        admission, _ = await asyncio.wait_for(submit, 10)
        assert seen == {"thread": False, "loop_ran": True}
        assert admission.record.id == "r1"
    finally:
        await runtime.stop()
