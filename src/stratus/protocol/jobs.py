"""Responses of the Segmind queue surface (DESIGN §2)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

JobStatus = Literal["QUEUED", "PROCESSING", "COMPLETED", "FAILED"]


class SubmitResponse(BaseModel):
    request_id: str
    status: JobStatus
    status_url: str
    response_url: str
    cancel_url: str
    queue_position: int | None = None


class StatusResponse(BaseModel):
    request_id: str
    status: JobStatus
    queue_position: int | None = None
    created_at: str
    started_at: str | None = None
    completed_at: str | None = None
    error: str | None = None
    error_type: str | None = None


class Metrics(BaseModel):
    queue_ms: float
    inference_ms: float
    ttft_ms: float | None = None
    input_tokens: int
    cached_input_tokens: int = 0
    output_tokens: int
    output_tokens_per_s: float | None
    cost: float


class ResultResponse(BaseModel):
    request_id: str
    status: Literal["COMPLETED"]
    output: str
    metrics: Metrics


class TimeoutResponse(BaseModel):
    """The 504 of a sync request whose job is still running."""

    error: str
    type: str = "timeout"
    request_id: str
    status: JobStatus
    status_url: str
    response_url: str


class ModelState(BaseModel):
    """``ready``, or ``cooldown``: its upstream kept failing, its requests wait QUEUED and a
    probe asks again at ``next_probe_at`` (epoch seconds)."""

    state: Literal["ready", "cooldown"]
    reason: str | None = None
    next_probe_at: float | None = None


class ModelCard(BaseModel):
    slug: str
    aliases: list[str]
    engine: str
    description: str
    capabilities: dict[str, bool]
    context_length: int
    max_output_tokens: int
    default_max_tokens: int
    pricing: dict[str, Any]
    sampling: dict[str, Any]  # the defaults for what a request leaves out
    status: ModelState


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
