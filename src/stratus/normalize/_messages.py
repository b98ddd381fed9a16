"""A Messages request checked against a model and turned into a ``GenerationRequest``."""

from __future__ import annotations

from dataclasses import dataclass

from stratus.engines import (
    ChatMessage,
    GenerationRequest,
    OutputFormat,
    Part,
    TextPart,
)
from stratus.errors import InvalidRequest
from stratus.models import ModelSpec
from stratus.normalize._fetch import ImageFetcher
from stratus.normalize._formats import output_format
from stratus.normalize._images import image_part
from stratus.normalize._tools import tool_part, tools_of
from stratus.protocol.messages import (
    ContentSource,
    DocumentBlock,
    Message,
    MessagesRequest,
    TextBlock,
    TextSource,
    ToolResultBlock,
    ToolUseBlock,
)

MAX_STOP_SEQUENCES = 16
MAX_IMAGES = 100  # per request, as Anthropic's API
MAX_TOP_K = 1_000_000  # more than any vocabulary: the same as no top_k


@dataclass(frozen=True, slots=True)
class Checked:
    """A request checked against its model, not yet counted. ``max_tokens_given``: the
    client set ``max_tokens`` (else it may shrink to what the context leaves)."""

    request: GenerationRequest
    stream: bool
    max_tokens_given: bool


@dataclass(frozen=True, slots=True)
class Normalized:
    request: GenerationRequest
    input_tokens: int
    stream: bool


def counting_request(body: MessagesRequest, spec: ModelSpec) -> GenerationRequest:
    """What ``POST /v1/messages/count_tokens`` counts: the prompt, no output limits."""
    tools, _ = tools_of(body, spec)
    request = GenerationRequest(messages=_messages(body, spec), system=_system(body),
                                max_tokens=1, tools=tools)
    _check_length(request, spec)
    return request


def _check_length(request: GenerationRequest, spec: ModelSpec) -> None:
    """Refuse a prompt whose text alone is too long for the context, before rendering and
    tokenizing it: the engine knows how many characters a token covers at most."""
    chars = len(request.system or "") + sum(len(m.rendered) for m in request.messages)
    least = spec.engine.min_tokens(chars)
    context = spec.config.context_length
    if least > context:
        raise InvalidRequest(
            f"the prompt is {chars} characters, at least {least} tokens, which does not fit "
            f"model {spec.slug!r}'s context of {context} tokens: shorten it")


def check(body: MessagesRequest, spec: ModelSpec) -> Checked:
    """Everything about the request that needs no tokenizer (CPU only: run off the event
    loop for a large body)."""
    messages = _messages(body, spec)
    images = sum(len(m.images()) for m in messages)
    if images and not spec.config.capabilities.vision:
        raise InvalidRequest(
            f"model {spec.slug!r} cannot take images: send text only, or pick a model "
            "with vision in GET /v1/models"
        )
    if images > MAX_IMAGES:
        raise InvalidRequest(f"a request may hold at most {MAX_IMAGES} images (this one has "
                             f"{images}): send fewer")
    tools, tool_choice = tools_of(body, spec)
    response_format = _check_options(body, spec)
    calling = bool(tools) and (tool_choice is None or tool_choice.type != "none")
    if calling and response_format is not None and not spec.remote:
        raise InvalidRequest(f"model {spec.slug!r} cannot both call tools and answer in a "
                             "set format: send tools or a response format, not both")
    _check_sampling(body)
    limit = spec.config.max_output_tokens
    if body.max_tokens is not None:
        if body.max_tokens < 1:
            raise InvalidRequest(f"max_tokens must be at least 1 (got {body.max_tokens})")
        if body.max_tokens > limit:
            raise InvalidRequest(
                f"max_tokens {body.max_tokens} is above model {spec.slug!r}'s limit of "
                f"{limit}: lower it"
            )
    request = GenerationRequest(
        messages=messages,
        system=_system(body),
        max_tokens=body.max_tokens or spec.config.default_max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        stop_sequences=tuple(body.stop_sequences or ()),
        tools=tools,
        tool_choice=tool_choice,
        response_format=response_format,
    )
    _check_length(request, spec)
    return Checked(request=request, stream=bool(body.stream),
                   max_tokens_given=body.max_tokens is not None)


async def fit(checked: Checked, spec: ModelSpec,
              images: ImageFetcher | None = None) -> Normalized:
    """The checked request with its image URLs fetched (by ``images``), counted and fitted
    to the model's context: ``max_tokens`` the client left out shrinks to what the context
    leaves; one it set must fit (else 400)."""
    request = checked.request
    if images is not None:
        request = await images.resolve(request)
    input_tokens = await spec.engine.count_tokens(request)
    context = spec.config.context_length
    if input_tokens + request.max_tokens > context:
        room = context - input_tokens
        if room < 1:
            raise InvalidRequest(
                f"the prompt is {input_tokens} tokens, which does not fit model "
                f"{spec.slug!r}'s context of {context} tokens: shorten it"
            )
        if checked.max_tokens_given:
            raise InvalidRequest(
                f"the prompt is {input_tokens} tokens and max_tokens is {request.max_tokens}: "
                f"together they exceed model {spec.slug!r}'s context of {context} tokens; "
                f"set max_tokens to at most {room} or shorten the prompt"
            )
        request = request.model_copy(update={"max_tokens": room})
    return Normalized(request=request, input_tokens=input_tokens, stream=checked.stream)


def _messages(body: MessagesRequest, spec: ModelSpec) -> tuple[ChatMessage, ...]:
    if body.prompt is not None and body.messages is not None:
        raise InvalidRequest("send either messages or prompt, not both")
    if body.prompt is not None:
        if not body.prompt.strip():
            raise InvalidRequest("prompt must not be empty")
        return (ChatMessage(role="user", parts=(TextPart(text=body.prompt),)),)
    if body.messages is None:
        raise InvalidRequest(
            'messages is required: send [{"role": "user", "content": "..."}]'
        )
    if not body.messages:
        raise InvalidRequest("messages must contain at least one message")
    if body.messages[0].role != "user":
        raise InvalidRequest("messages[0].role must be 'user': a conversation starts with "
                             "the user")
    out: list[ChatMessage] = []
    for i, message in enumerate(body.messages):
        parts = _parts(message, f"messages[{i}].content", spec)
        final_assistant = i == len(body.messages) - 1 and message.role == "assistant"
        if not final_assistant and not any(
            not isinstance(p, TextPart) or p.text.strip() for p in parts
        ):
            raise InvalidRequest(f"messages[{i}].content must not be empty")
        if out and out[-1].role == message.role:  # one turn, as Anthropic's API reads it
            out[-1] = ChatMessage(role=message.role, parts=_joined(out[-1].parts, parts))
        else:
            out.append(ChatMessage(role=message.role, parts=parts))
    return tuple(out)


def _joined(first: tuple[Part, ...], then: tuple[Part, ...]) -> tuple[Part, ...]:
    """Two turns of one role as one: text that meets text is kept apart by a blank line."""
    if first and then and isinstance(first[-1], TextPart) and isinstance(then[0], TextPart):
        return (*first[:-1], TextPart(text=f"{first[-1].text}\n\n{then[0].text}"), *then[1:])
    return (*first, *then)


def _parts(message: Message, path: str, spec: ModelSpec) -> tuple[Part, ...]:
    if isinstance(message.content, str):
        return (TextPart(text=message.content),)
    parts: list[Part] = []
    for j, block in enumerate(message.content):
        if isinstance(block, TextBlock):
            parts.append(TextPart(text=block.text))
        elif isinstance(block, ToolUseBlock | ToolResultBlock):
            parts.append(tool_part(block, message.role, f"{path}[{j}]", spec))
        elif isinstance(block, DocumentBlock):
            parts.append(_document(block, f"{path}[{j}]"))
        else:
            parts.append(image_part(block, f"{path}[{j}]"))
    return tuple(parts)


def _document(block: DocumentBlock, path: str) -> TextPart:
    source = block.source
    if isinstance(source, TextSource):
        text = source.data
    elif isinstance(source, ContentSource):
        text = source.content if isinstance(source.content, str) \
            else "\n\n".join(b.text for b in source.content)
    else:
        raise InvalidRequest(f"{path}: only text documents are read here (a text or content "
                             "source); send a PDF's text as a text source")
    return TextPart(text=f"{block.title}\n\n{text}" if block.title else text)


def _check_options(body: MessagesRequest, spec: ModelSpec) -> OutputFormat | None:
    """Fields Anthropic's API takes that ask for what no model here does: a 400 that says
    so (``thinking`` disabled, any ``service_tier``, ``cache_control`` are fine). The
    structured output ``output_config.format`` asks for, if any."""
    thinking = body.thinking
    if thinking is not None and thinking.get("type") != "disabled":
        if thinking.get("type") == "enabled":
            raise InvalidRequest(f"model {spec.slug!r} has no extended thinking: send "
                                 'thinking {"type": "disabled"} or leave it out')
        raise InvalidRequest('thinking.type must be "enabled" or "disabled"')
    config = body.output_config or {}
    for key in config:
        if key != "format":
            raise InvalidRequest(f"output_config.{key} is not supported: leave it out")
    fmt = config.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise InvalidRequest("output_config.format must be an object: "
                             '{"type": "json_schema", "schema": {...}}')
    return output_format(str(fmt.get("type")), fmt.get("schema"), "output_config.format",
                         enforced_here=not spec.remote)


def _system(body: MessagesRequest) -> str | None:
    if body.instruction is not None and body.system is not None:
        raise InvalidRequest("send either instruction or system, not both")
    if body.instruction is not None:
        return body.instruction or None
    if isinstance(body.system, list):
        return "\n".join(block.text for block in body.system) or None
    return body.system or None


def _check_sampling(body: MessagesRequest) -> None:
    if body.temperature is not None and not 0.0 <= body.temperature <= 1.0:
        raise InvalidRequest(f"temperature must be between 0 and 1 (got {body.temperature})")
    if body.top_p is not None and not 0.0 <= body.top_p <= 1.0:
        raise InvalidRequest(f"top_p must be between 0 and 1 (got {body.top_p})")
    if body.top_k is not None and not 0 <= body.top_k <= MAX_TOP_K:
        raise InvalidRequest(f"top_k must be from 0 to {MAX_TOP_K} (got {body.top_k})")
    stops = body.stop_sequences or []
    if len(stops) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(f"stop_sequences may hold at most {MAX_STOP_SEQUENCES} strings")
    for i, stop in enumerate(stops):
        if not stop:
            raise InvalidRequest(f"stop_sequences[{i}] must not be empty")
