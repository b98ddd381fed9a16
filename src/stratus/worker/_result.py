"""The Anthropic message and the metrics a finished generation is stored as."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from stratus.config import ModelConfig
from stratus.engines import Finished, ToolCall
from stratus.store import Message, Metrics


def message_id(job_id: str) -> str:
    """A job's message id: the same whether the message is streamed or stored."""
    return "msg_" + uuid.uuid5(uuid.NAMESPACE_URL, job_id).hex[:24]


def message_body(job_id: str, text: str, finished: Finished, model: str,
                 calls: Sequence[ToolCall] = ()) -> Message:
    """The stored message: its text, then the tools it called (a reply that only calls
    tools has no text block)."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text or not calls \
        else []
    content += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.input}
                for c in calls]
    return Message(id=message_id(job_id), model=model, content=tuple(content),
                   stop_reason=finished.stop_reason, stop_sequence=finished.stop_sequence,
                   input_tokens=finished.input_tokens, output_tokens=finished.output_tokens,
                   cached_input_tokens=finished.cached_input_tokens)


def metrics(model: ModelConfig, input_tokens: int, output_tokens: int, queue_s: float,
            inference_s: float, first_token_s: float, cached_input: int = 0,
            cold_start_ms: float | None = None) -> Metrics:
    """``ttft_ms``: from the start of inference to the first text (queue time excluded);
    ``cached_input``: input tokens read from the prompt cache; ``cold_start_ms``: the load
    of the model this job waited for (in its queue time)."""
    return Metrics(
        queue_ms=round(queue_s * 1000, 3),
        inference_ms=round(inference_s * 1000, 3),
        ttft_ms=round(first_token_s * 1000, 3),
        input_tokens=input_tokens,
        cached_input_tokens=cached_input,
        output_tokens=output_tokens,
        output_tokens_per_s=round(output_tokens / inference_s, 3) if inference_s > 0 else None,
        cost=model.cost_usd(input_tokens, output_tokens, cached_input),
        cold_start_ms=None if cold_start_ms is None else round(cold_start_ms, 3),
    )
