"""``GET /v1/models`` and ``GET /v1/models/{id}``: one shape both official SDKs parse
(OpenAI's ``id`` / ``object`` / ``created`` / ``owned_by``, Anthropic's ``type`` /
``display_name`` / ``created_at``) beside our own fields."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class ModelState(BaseModel):
    """``ready``; ``unloaded`` (an on-demand model: the next request loads it); ``loading``
    (its requests wait QUEUED, until about ``estimated_ready_at`` when a load was timed
    before); or ``cooldown``: its upstream kept failing, or its load failed, its requests
    wait QUEUED and it is tried again at ``next_probe_at`` (epoch seconds)."""

    state: Literal["ready", "unloaded", "loading", "cooldown"]
    reason: str | None = None
    next_probe_at: float | None = None
    estimated_ready_at: float | None = None


class ModelCard(BaseModel):
    id: str  # the name to send: the slug, or one of its aliases
    object: Literal["model"] = "model"
    created: int  # epoch seconds the server started serving it
    owned_by: str = "stratus"
    type: Literal["model"] = "model"
    display_name: str
    created_at: str  # the same moment, RFC 3339
    slug: str  # the model the name stands for
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
    has_more: bool = False
    first_id: str | None
    last_id: str | None
