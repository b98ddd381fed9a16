"""An OpenAI chat completion request as the Messages request it means: system and developer
turns become the system prompt, an assistant's ``tool_calls`` ``tool_use`` blocks, ``tool``
turns ``tool_result`` blocks of a user turn, ``tools`` and ``tool_choice`` Anthropic's."""

from __future__ import annotations

import json
from typing import Any

from stratus.errors import InvalidRequest
from stratus.protocol.messages import MessagesRequest
from stratus.protocol.openai import ChatCompletionRequest, ChatMessage, TextPart


def messages_request(body: ChatCompletionRequest) -> MessagesRequest:
    """The Messages request ``body`` means (sampling that Anthropic's has no field for —
    temperature above 1, seed, penalties — is applied after checking)."""
    system = [m for m in body.messages if m.role in ("system", "developer")]
    stop = [body.stop] if isinstance(body.stop, str) else body.stop
    choice = None
    if body.tool_choice is not None or (body.parallel_tool_calls is False and body.tools):
        choice = _tool_choice(body.tool_choice, body.parallel_tool_calls)
    fields = {
        "messages": [_turn(m, i) for i, m in enumerate(body.messages)
                     if m.role not in ("system", "developer")],
        "system": "\n\n".join(_text(m) for m in system) or None,
        "max_tokens": body.max_completion_tokens or body.max_tokens,
        "top_p": body.top_p,
        "stop_sequences": stop,
        "tools": [{"name": t.function.name, "description": t.function.description,
                   "input_schema": t.function.parameters or {"type": "object",
                                                             "properties": {}}}
                  for t in body.tools] if body.tools else None,
        "tool_choice": choice,
    }
    return MessagesRequest.model_validate({k: v for k, v in fields.items() if v is not None})


def _turn(message: ChatMessage, index: int) -> dict[str, Any]:
    if message.role == "tool":
        if not message.tool_call_id:
            raise InvalidRequest(f"messages[{index}]: a tool message needs tool_call_id: the "
                                 "id of the call it answers")
        return {"role": "user", "content": [{"type": "tool_result",
                                             "tool_use_id": message.tool_call_id,
                                             "content": _text(message)}]}
    content: list[dict[str, Any]] = []
    if isinstance(message.content, str):
        if message.content or not message.tool_calls:
            content.append({"type": "text", "text": message.content})
    elif message.content is not None:
        content += [p.model_dump(exclude_none=True) for p in message.content]
    for j, call in enumerate(message.tool_calls or ()):
        if message.role != "assistant":
            raise InvalidRequest(f"messages[{index}].tool_calls: only an assistant makes "
                                 "tool calls")
        content.append({"type": "tool_use", "id": call.id, "name": call.function.name,
                        "input": _arguments(call.function.arguments, index, j)})
    if not content:
        content = [{"type": "text", "text": ""}]
    return {"role": message.role, "content": content}


def _arguments(arguments: str, index: int, j: int) -> dict[str, Any]:
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequest(f"messages[{index}].tool_calls[{j}].function.arguments must be "
                             "a JSON object, as text")
    return value


def _tool_choice(choice: str | dict[str, Any] | None,
                 parallel: bool | None) -> dict[str, Any]:
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") if choice.get("type") == "function" \
            else None
        if not isinstance(name, str):
            raise InvalidRequest('tool_choice must be "auto", "required", "none" or '
                                 '{"type": "function", "function": {"name": ...}}')
        out: dict[str, Any] = {"type": "tool", "name": name}
    else:
        out = {"type": {"required": "any", "none": "none"}.get(choice or "auto", "auto")}
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _text(message: ChatMessage) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return "".join(p.text for p in message.content if isinstance(p, TextPart))
