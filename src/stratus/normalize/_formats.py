"""Structured output: a JSON Schema checked for what constrained decoding can enforce, so
that an answer always parses and validates; what it cannot enforce is a 400 naming it."""

from __future__ import annotations

import json
from typing import Any

from llama_cpp.llama_grammar import json_schema_to_gbnf

from stratus.engines import OutputFormat
from stratus.errors import InvalidRequest

# JSON Schema keywords a grammar cannot enforce (or this converter does not)
UNSUPPORTED = ("not", "if", "then", "else", "patternProperties", "dependentRequired",
               "dependentSchemas", "uniqueItems", "multipleOf", "contains", "minContains",
               "maxContains", "propertyNames", "unevaluatedProperties", "unevaluatedItems",
               "minProperties", "maxProperties", "minimum", "maximum", "exclusiveMinimum",
               "exclusiveMaximum")
MAX_SCHEMA_BYTES = 64 * 1024


def output_format(kind: str, schema: Any, path: str, name: str | None = None,
                  strict: bool | None = None, enforced_here: bool = True) -> OutputFormat:
    """``json_object``, or ``json_schema`` with ``schema`` (at ``path`` in the body).
    ``enforced_here``: a local engine's grammar enforces it (else an upstream does, and
    judges the schema itself)."""
    if kind == "json_object":
        return OutputFormat(type="json_object")
    if kind != "json_schema":
        raise InvalidRequest(f"{path}.type must be json_object or json_schema (got {kind!r})")
    if not isinstance(schema, dict):
        raise InvalidRequest(f"{path}.schema must be a JSON Schema (an object)")
    text = json.dumps(schema)
    if len(text) > MAX_SCHEMA_BYTES:
        raise InvalidRequest(f"{path}.schema is larger than {MAX_SCHEMA_BYTES // 1024} KB")
    if not enforced_here:
        return OutputFormat(type="json_schema", json_schema=schema, name=name, strict=strict)
    _check(schema, f"{path}.schema")
    try:
        json_schema_to_gbnf(text)
    except Exception as exc:  # the converter's own refusal (an unsupported $ref, ...)
        raise InvalidRequest(f"{path}.schema cannot be enforced: {exc}") from None
    return OutputFormat(type="json_schema", json_schema=schema, name=name, strict=strict)


def _check(node: Any, path: str) -> None:
    if isinstance(node, list):
        for i, item in enumerate(node):
            _check(item, f"{path}[{i}]")
        return
    if not isinstance(node, dict):
        return
    for key in UNSUPPORTED:
        if key in node:
            raise InvalidRequest(f"{path}: the JSON Schema keyword {key!r} is not supported in "
                                 "structured output: remove it (and check the value after)")
    ref = node.get("$ref")
    if isinstance(ref, str) and not ref.startswith("#"):
        raise InvalidRequest(f"{path}.$ref: only references inside the schema (#/...) are "
                             f"supported (got {ref!r})")
    for key, value in node.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            for name, sub in value.items():
                _check(sub, f"{path}.{key}.{name}")
        elif key not in ("enum", "const", "default", "examples"):
            _check(value, f"{path}.{key}")
