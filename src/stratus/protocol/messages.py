"""Anthropic Messages request bodies, as the Segmind surface accepts them (DESIGN §2).

Wire models only: shapes and types. Meaning (turn order, limits, image contents, what a model
can take) is checked in :mod:`stratus.normalize`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TextBlock(_Wire):
    type: Literal["text"]
    text: str
    cache_control: dict[str, Any] | None = None


class Base64Source(_Wire):
    type: Literal["base64"]
    media_type: str
    data: str


class UrlSource(_Wire):
    type: Literal["url"]
    url: str


class ImageBlock(_Wire):
    type: Literal["image"]
    source: Annotated[Base64Source | UrlSource, Field(discriminator="type")]
    cache_control: dict[str, Any] | None = None


class ImageUrl(_Wire):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImageUrlBlock(_Wire):
    """OpenAI-style image block (what the segmind SDK's ``image_url()`` helper sends)."""

    type: Literal["image_url"]
    image_url: ImageUrl


class ToolUseBlock(_Wire):
    """A tool call the assistant made, in a conversation's history."""

    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]
    cache_control: dict[str, Any] | None = None


ResultBlock = Annotated[TextBlock | ImageBlock, Field(discriminator="type")]


class ToolResultBlock(_Wire):
    """What a tool returned, in a user turn."""

    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[ResultBlock] | None = None
    is_error: bool | None = None
    cache_control: dict[str, Any] | None = None


class TextSource(_Wire):
    type: Literal["text"]
    media_type: str = "text/plain"
    data: str


class ContentSource(_Wire):
    type: Literal["content"]
    content: str | list[TextBlock]


class DocumentBlock(_Wire):
    """A document: plain text (or text blocks) is read as text; a PDF is not taken."""

    type: Literal["document"]
    source: Annotated[TextSource | ContentSource | Base64Source | UrlSource,
                      Field(discriminator="type")]
    title: str | None = None
    context: str | None = None
    citations: dict[str, Any] | None = None
    cache_control: dict[str, Any] | None = None


ContentBlock = Annotated[TextBlock | ImageBlock | ImageUrlBlock | ToolUseBlock | ToolResultBlock
                         | DocumentBlock, Field(discriminator="type")]


class Message(_Wire):
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class Tool(_Wire):
    type: Literal["custom"] | None = None
    name: str
    description: str | None = None
    input_schema: dict[str, Any]
    cache_control: dict[str, Any] | None = None


class _Sampling(_Wire):
    """Fields both surfaces share."""

    system: str | list[TextBlock] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    metadata: dict[str, Any] | None = None
    tools: list[Tool] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    service_tier: Literal["auto", "standard_only"] | None = None
    output_config: dict[str, Any] | None = None
    cache_control: dict[str, Any] | None = None


class MessagesRequest(_Sampling):
    """The body of ``POST /v1/{model}`` and ``POST /v2/{model}``."""

    messages: list[Message] | None = None
    prompt: str | None = None
    instruction: str | None = None
    max_tokens: int | None = None


class AnthropicMessagesRequest(_Sampling):
    """The body of Anthropic's ``POST /v1/messages``: the model is named in the body and
    ``max_tokens`` is required."""

    model: str
    messages: list[Message]
    max_tokens: int

    def as_messages_request(self) -> MessagesRequest:
        return MessagesRequest.model_validate(
            self.model_dump(exclude={"model"}, exclude_none=True))


class CountTokensRequest(_Wire):
    """The body of ``POST /v1/messages/count_tokens``."""

    model: str
    messages: list[Message]
    system: str | list[TextBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    cache_control: dict[str, Any] | None = None

    def as_messages_request(self) -> MessagesRequest:
        return MessagesRequest.model_validate(
            self.model_dump(exclude={"model"}, exclude_none=True))
