"""Responses of the Segmind queue surface (DESIGN §2)."""

from __future__ import annotations

from typing import Literal

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
    loading: bool | None = None  # QUEUED while its model loads (a cold start)
    estimated_start: str | None = None  # when the load should end, if known


class Metrics(BaseModel):
    queue_ms: float
    inference_ms: float
    ttft_ms: float | None = None
    input_tokens: int
    cached_input_tokens: int = 0
    output_tokens: int
    output_tokens_per_s: float | None
    cost: float
    cold_start_ms: float | None = None  # the model's load, on the job that waited for it


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
