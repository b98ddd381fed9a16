"""Structured output: schemas checked for what constrained decoding can enforce."""

from __future__ import annotations

import pytest

from stratus.engines import OutputFormat
from stratus.errors import InvalidRequest
from stratus.normalize import output_format

PERSON = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 20},
    "age": {"type": "integer"},
    "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3}},
    "required": ["name", "age"], "additionalProperties": False}


def test_a_schema_that_can_be_enforced_is_taken() -> None:
    fmt = output_format("json_schema", PERSON, "response_format.json_schema", name="person",
                        strict=True)
    assert fmt == OutputFormat(type="json_schema", json_schema=PERSON, name="person",
                               strict=True)
    assert output_format("json_object", None, "x") == OutputFormat(type="json_object")


@pytest.mark.parametrize(("schema", "needle"), [
    ({"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}}},
     "format.schema.properties.age: the JSON Schema keyword 'minimum' is not supported"),
    ({"type": "object", "not": {"required": ["x"]}}, "keyword 'not' is not supported"),
    ({"type": "array", "items": {"type": "string"}, "uniqueItems": True},
     "keyword 'uniqueItems'"),
    ({"$ref": "https://example.com/schema.json"}, "only references inside the schema"),
    ("not a schema", "must be a JSON Schema"),
])
def test_what_cannot_be_enforced_is_named(schema: object, needle: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        output_format("json_schema", schema, "format")
    assert needle in refused.value.message


def test_a_keyword_inside_an_enum_value_is_data_not_schema() -> None:
    schema = {"type": "object", "properties": {"op": {"enum": [{"not": 1}, "minimum"]}}}
    assert output_format("json_schema", schema, "f").json_schema == schema


def test_an_upstream_that_enforces_the_schema_judges_it_itself() -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}}}
    fmt = output_format("json_schema", schema, "f", enforced_here=False)
    assert fmt.json_schema == schema
