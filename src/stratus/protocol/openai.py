"""OpenAI Chat Completions request bodies (``POST /v1/chat/completions``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from stratus.protocol.messages import ImageUrlBlock, MessagesRequest


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TextPart(_Wire):
    type: Literal["text"]
    text: str


Part = Annotated[TextPart | ImageUrlBlock, Field(discriminator="type")]


class ChatMessage(_Wire):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[Part]
    name: str | None = None


class StreamOptions(_Wire):
    include_usage: bool = False


class ChatCompletionRequest(_Wire):
    model: str
    messages: list[ChatMessage]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    n: int | None = None
    seed: int | None = None
    user: str | None = None

    def as_messages_request(self) -> MessagesRequest:
        """System and developer turns become the system prompt; sampling that has no
        Anthropic equivalent (temperature above 1, seed) is applied after checking."""
        system = [m for m in self.messages if m.role in ("system", "developer")]
        turns = [m for m in self.messages if m.role in ("user", "assistant")]
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        body = {
            "messages": [{"role": m.role, "content": m.content if isinstance(m.content, str)
                          else [p.model_dump(exclude_none=True) for p in m.content]}
                         for m in turns],
            "system": "\n\n".join(_text(m) for m in system) or None,
            "max_tokens": self.max_completion_tokens or self.max_tokens,
            "top_p": self.top_p,
            "stop_sequences": stop,
        }
        return MessagesRequest.model_validate({k: v for k, v in body.items() if v is not None})


def _text(message: ChatMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    return "".join(p.text for p in message.content if isinstance(p, TextPart))
