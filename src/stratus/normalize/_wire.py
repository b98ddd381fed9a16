"""Raw request bytes to a validated wire model, or an ``InvalidRequest`` naming the field."""

from __future__ import annotations

import json
import math
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from stratus.errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)

_TYPE_WORDS = {
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "missing": "is required",
}


MAX_DEPTH = 64  # nesting of objects and lists in a request body
MAX_VALUES = 200_000  # values in a request body (bounds the memory and time of parsing it)
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json(raw: bytes, max_values: int = MAX_VALUES) -> Any:
    """The body as JSON, checked so that everything after can encode it again: no lone
    UTF-16 surrogates in any string, no NaN or Infinity (which Python's parser reads), no
    nesting deeper than ``MAX_DEPTH``, at most ``max_values`` values."""
    if not raw.strip():
        raise InvalidRequest("request body is empty: send a JSON object")
    if raw.count(b",") + raw.count(b":") > max_values:  # an upper bound on the values
        raise InvalidRequest(
            f"request body holds too many values (more than {max_values} commas and colons): "
            "send a smaller request")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidRequest("request body is not UTF-8 text: send a JSON object") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError:  # an integer past Python's digit limit
        raise InvalidRequest(
            "request body has a number with too many digits: send numbers of ordinary size"
        ) from None
    except RecursionError:
        raise InvalidRequest(
            f"request body is nested too deeply: at most {MAX_DEPTH} levels of objects and "
            "lists") from None
    problem = _first_problem(data)
    if problem is not None:
        node, reason = problem
        raise InvalidRequest(reason.format(where=_path_to(data, node) or "request body"))
    return data


def _first_problem(data: Any) -> tuple[Any, str] | None:
    """The first value that cannot be taken, and what is wrong with it (``{where}`` to be
    filled in with its path). Walks the body once, building nothing per value."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        kind = type(node)
        if kind is str:
            if not node.isascii() and _SURROGATE.search(node):
                return node, ("{where} contains an unpaired UTF-16 surrogate (a lone "
                              "\\ud800-\\udfff escape): send valid Unicode text")
        elif kind is float:
            if not math.isfinite(node):
                return node, ("{where} must be a finite number: NaN and Infinity are not "
                              "JSON numbers")
        elif kind is list or kind is dict:
            if depth >= MAX_DEPTH:
                return node, ("request body is nested too deeply at {where}: at most "
                              f"{MAX_DEPTH} levels of objects and lists")
            if kind is dict:
                for name in node:
                    if not name.isascii() and _SURROGATE.search(name):
                        return node, ("a field name in {where} contains an unpaired UTF-16 "
                                      "surrogate: send valid Unicode text")
                stack.extend((value, depth + 1) for value in node.values())
            else:
                stack.extend((value, depth + 1) for value in node)
    return None


def _path_to(data: Any, target: Any) -> str | None:
    """Where ``target`` (found by identity) is in ``data``, as a client would write it."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        if isinstance(node, dict):
            stack.extend((value, f"{path}.{name}" if path else name)
                         for name, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, f"{path}[{i}]") for i, value in enumerate(node))
    return None


def parse_body(raw: bytes, model: type[M], max_values: int = MAX_VALUES) -> tuple[Any, M]:
    """The JSON of ``raw`` and it validated as ``model``."""
    data = parse_json(raw, max_values)
    return data, parse_model(data, model)


def parse_model(data: Any, model: type[M]) -> M:
    if not isinstance(data, dict):
        raise InvalidRequest(
            f"request body must be a JSON object, not {_json_kind(data)}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe_errors(exc, data, model)) from None


def describe_errors(exc: ValidationError, data: Any, model: type[BaseModel]) -> str:
    """One line per offending field, with the path as a client would write it."""
    by_path: dict[str, list[str]] = {}
    for err in exc.errors():
        located = _locate(err["loc"], data)
        if located is None:
            continue  # the error of a union branch the value does not take
        path, value = located
        text = _describe(err, path, value, model)
        texts = by_path.setdefault(path, [])
        if text not in texts:
            texts.append(text)
    parts = []
    for path, texts in by_path.items():
        merged = texts[0] + "".join(
            " or " + t.removeprefix("must be ") for t in texts[1:]
        )
        parts.append(merged if merged.startswith("unknown field") else f"{path} {merged}")
    return "; ".join(parts) or "request body is invalid"


def _locate(loc: tuple[Any, ...], data: Any) -> tuple[str, Any] | None:
    """Walk ``loc`` through the input, skipping union-branch markers pydantic puts in it."""
    path = ""
    node = data
    tag_seen: Any = None
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if (isinstance(node, dict) and not last and part == node.get("type")
                and tag_seen is not node):
            tag_seen = node
            continue  # the tag of a tagged union: not part of the client's path
        if isinstance(part, int) and isinstance(node, list):
            path += f"[{part}]"
            node = node[part] if part < len(node) else None
        elif isinstance(node, dict) and part in node:
            path += f".{part}" if path else str(part)
            node = node[part]
        elif last and isinstance(node, dict | None):
            path += f".{part}" if path else str(part)
            node = None
        elif _other_branch(part, node):
            return None
    return path, node


def _other_branch(part: Any, node: Any) -> bool:
    """Is ``part`` the marker of a ``str | list`` union branch that ``node`` did not take?"""
    if part == "str":
        return isinstance(node, list | dict)
    return isinstance(part, str) and part.startswith("list[") and isinstance(node, str)


def _describe(err: Any, path: str, value: Any, model: type[BaseModel]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        field = path.rsplit(".", 1)[-1]
        if "." not in path and "[" not in path:
            allowed = ", ".join(sorted(model.model_fields))
            return f"unknown field {field!r}: allowed fields are {allowed}"
        return "is not a known field here: remove it"
    if kind in _TYPE_WORDS:
        word = _TYPE_WORDS[kind]
        if kind != "missing":
            word += f" (got {_json_kind(value)})"
        return word
    if kind == "union_tag_invalid":
        expected = err.get("ctx", {}).get("expected_tags", "")
        return f"has an unknown type {err['ctx'].get('tag')!r}: use one of {expected}"
    if kind == "union_tag_not_found":
        return "needs a 'type' field"
    return err["msg"][0].lower() + err["msg"][1:]


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"
