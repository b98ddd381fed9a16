"""Tools: the tools a request offers, its ``tool_choice``, and the ``tool_use`` /
``tool_result`` blocks of its history, checked and reduced to engine terms."""

from __future__ import annotations

import re

from stratus.engines import (
    ImagePart,
    TextPart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
    ToolUsePart,
)
from stratus.engines.llamacpp import call_grammar
from stratus.errors import InvalidRequest
from stratus.models import ModelSpec
from stratus.normalize._images import image_part
from stratus.protocol.messages import MessagesRequest, TextBlock, ToolResultBlock, ToolUseBlock

MAX_TOOLS = 128
NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # as Anthropic's and OpenAI's APIs have them
CHOICES = ("auto", "any", "tool", "none")


def _unsupported(spec: ModelSpec, what: str) -> InvalidRequest:
    return InvalidRequest(f"model {spec.slug!r} does not support tools: remove {what}, or "
                          "pick a model with tools in GET /v1/models")


def tools_of(body: MessagesRequest,
             spec: ModelSpec) -> tuple[tuple[ToolSpec, ...], ToolChoice | None]:
    if not body.tools and not body.tool_choice:
        return (), None
    if not spec.config.capabilities.tools:
        raise _unsupported(spec, "tools and tool_choice")
    tools = tuple(ToolSpec(name=t.name, description=t.description,
                           input_schema=t.input_schema) for t in body.tools or ())
    if len(tools) > MAX_TOOLS:
        raise InvalidRequest(f"tools may hold at most {MAX_TOOLS} tools (got {len(tools)})")
    names = [t.name for t in tools]
    for i, tool in enumerate(tools):
        if not NAME.fullmatch(tool.name):
            raise InvalidRequest(f"tools[{i}].name must be 1 to 64 letters, digits, _ or - "
                                 f"(got {tool.name[:80]!r})")
        if tool.name in names[:i]:
            raise InvalidRequest(f"tools[{i}].name {tool.name!r} is used twice: tool names "
                                 "must be unique")
        if tool.input_schema.get("type") != "object":
            raise InvalidRequest(f'tools[{i}].input_schema must be a JSON Schema with "type": '
                                 '"object"')
    choice = _choice(body.tool_choice, names)
    if not spec.remote:  # a local grammar will keep calls to them
        try:
            call_grammar(tools, choice)
        except Exception as exc:
            raise InvalidRequest(f"tools: an input_schema cannot be enforced on model "
                                 f"{spec.slug!r}: {exc}") from None
    return tools, choice


def _choice(raw: dict[str, object] | None, names: list[str]) -> ToolChoice | None:
    if raw is None:
        return None
    if not names:
        raise InvalidRequest("tool_choice was sent without tools: add tools or remove it")
    kind = raw.get("type")
    if kind not in CHOICES:
        raise InvalidRequest(f"tool_choice.type must be one of {', '.join(CHOICES)} "
                             f"(got {kind!r})")
    unknown = set(raw) - {"type", "name", "disable_parallel_tool_use"}
    if unknown:
        raise InvalidRequest(f"tool_choice: unknown field {sorted(unknown)[0]!r}")
    name = raw.get("name")
    if kind == "tool" and name not in names:
        raise InvalidRequest(f"tool_choice.name must name one of the tools ({', '.join(names)})"
                             f" when tool_choice.type is 'tool' (got {name!r})")
    if kind != "tool" and name is not None:
        raise InvalidRequest("tool_choice.name is only for tool_choice.type 'tool'")
    parallel = raw.get("disable_parallel_tool_use", False)
    if not isinstance(parallel, bool):
        raise InvalidRequest("tool_choice.disable_parallel_tool_use must be true or false")
    return ToolChoice(type=kind, name=name if isinstance(name, str) else None,  # type: ignore[arg-type]
                      disable_parallel_tool_use=parallel)


def tool_part(block: ToolUseBlock | ToolResultBlock, role: str, path: str,
              spec: ModelSpec) -> ToolUsePart | ToolResultPart:
    if not spec.config.capabilities.tools:
        raise _unsupported(spec, f"the {block.type} block at {path}")
    if isinstance(block, ToolUseBlock):
        if role != "assistant":
            raise InvalidRequest(f"{path}: tool_use blocks belong in assistant turns")
        return ToolUsePart(id=block.id, name=block.name, input=block.input)
    if role != "user":
        raise InvalidRequest(f"{path}: tool_result blocks belong in user turns")
    content: tuple[TextPart | ImagePart, ...]
    if block.content is None:
        content = ()
    elif isinstance(block.content, str):
        content = (TextPart(text=block.content),)
    else:
        content = tuple(TextPart(text=b.text) if isinstance(b, TextBlock)
                        else image_part(b, f"{path}.content[{k}]")
                        for k, b in enumerate(block.content))
    return ToolResultPart(tool_use_id=block.tool_use_id, content=content,
                          is_error=bool(block.is_error))
