"""The OpenAPI document served at ``/openapi.json``.

The routes read their bodies as bytes and validate them with the wire models themselves (so
that errors take each surface's shape), which FastAPI cannot see. This module describes each
operation from a table: its request body (the pydantic model the route validates with), its
success responses, the error statuses it can answer with in its surface's shape, its query and
header parameters, and its security. Schemas are the models' pydantic JSON schemas, all under
``components/schemas``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from stratus.protocol import batches, jobs, models, responses
from stratus.protocol.accounts import AddCredits, CreateKey, SetCredits, WebhookSetting
from stratus.protocol.batches import CreateBatch
from stratus.protocol.messages import (
    AnthropicMessagesRequest,
    CountTokensRequest,
    MessagesRequest,
)
from stratus.protocol.openai import ChatCompletionRequest

JSON = "application/json"
SSE = "text/event-stream"
JSONL = "application/x-jsonl"
REF = "#/components/schemas/{model}"

Schema = type[BaseModel] | tuple[type[BaseModel], ...]  # a tuple: any one of them

STATUS_TEXT = {
    200: "OK",
    201: "created",
    202: "the request has not ended yet",
    400: "invalid request: the message names the field and says why",
    401: "missing, invalid or revoked API key",
    403: "the key may not use this model or route",
    404: "unknown model, route or request (also expired, or another account's)",
    406: "insufficient credits",
    409: "the request has already ended",
    413: "request body over the size limit",
    422: "the request FAILED, or an Idempotency-Key was reused with another body",
    429: "rate limited or queue full (see Retry-After)",
    500: "internal error",
    502: "the engine or its upstream failed",
    503: "shutting down or not ready",
    504: "the sync wait ended before the request did (it goes on)",
}

SUBMIT_ERRORS = (400, 401, 403, 404, 406, 413, 422, 429, 500, 503)
SYNC_ERRORS = (*SUBMIT_ERRORS, 502, 504)
READ_ERRORS = (401, 404, 500)
ADMIN_ERRORS = (401, 403, 500)
ADMIN_BODY_ERRORS = (*ADMIN_ERRORS, 400, 404, 413)


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


WEBHOOK = _query("webhook", "POST the request's status here when it ends (http or https)",
                 {"type": "string", "format": "uri", "maxLength": 2048})
IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
               "description": "same key and body within 24 h: the same request_id; same key, "
                              "other body: 422",
               "schema": {"type": "string", "minLength": 1, "maxLength": 255}}
WAIT = _query("wait", "hold the request up to this many seconds until the status changes",
              {"type": "number", "minimum": 0, "maximum": 60})
HISTORY = [
    _query("status", "only requests in this status",
           {"type": "string", "enum": ["QUEUED", "PROCESSING", "COMPLETED", "FAILED"]}),
    _query("model", "only requests for this model (as requested, or its slug)",
           {"type": "string"}),
    _query("since", "created at or after (ISO 8601 or Unix seconds)", {"type": "string"}),
    _query("until", "created before (ISO 8601 or Unix seconds)", {"type": "string"}),
    _query("limit", "page size", {"type": "integer", "minimum": 1, "maximum": 100}),
    _query("after_id", "the last_id of the previous page", {"type": "string"}),
]
USAGE = (_query("days", "today and the days before it, in UTC days",
                {"type": "integer", "minimum": 1, "maximum": 366}),)
LEDGER = (
    _query("limit", "page size", {"type": "integer", "minimum": 1, "maximum": 100}),
    _query("after_id", "the last_id of the previous page",
           {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}),
)
BATCH_PAGE = (
    _query("limit", "page size", {"type": "integer", "minimum": 1, "maximum": 1000}),
    _query("after_id", "the page of older batches after this one (last_id)",
           {"type": "string"}),
    _query("before_id", "the page of newer batches before this one (first_id)",
           {"type": "string"}),
)
PATH_PARAMS = {
    "model": ("the model's slug or alias", "claude-3-haiku"),
    "request_id": ("the request_id a submit answered with", None),
    "key_id": ("the key's id (key_...)", None),
    "name": ("the account's name", None),
    "batch_id": ("the batch's id (msgbatch_...)", None),
}

HELLO = {"role": "user", "content": "Hello"}

# What the server checks beyond the wire models' types (``stratus.normalize``, the surfaces'
# serving modules), stated on the body schemas for clients to see.
UNIT = {"minimum": 0, "maximum": 1}
SAMPLING = {"messages": {"minItems": 1}, "max_tokens": {"minimum": 1}, "temperature": UNIT,
            "top_p": UNIT, "top_k": {"minimum": 0}}
REFINEMENTS: dict[type[BaseModel], dict[str, dict[str, Any]]] = {
    MessagesRequest: SAMPLING,
    AnthropicMessagesRequest: SAMPLING,
    CountTokensRequest: {"messages": {"minItems": 1}},
    ChatCompletionRequest: {
        "messages": {"minItems": 1}, "max_tokens": {"minimum": 1},
        "max_completion_tokens": {"minimum": 1}, "temperature": {"minimum": 0, "maximum": 2},
        "top_p": UNIT, "n": {"minimum": 1, "maximum": 1}},
}


@dataclass(frozen=True)
class Stream:
    """Server-sent events, described under ``components/schemas`` as ``name``: ``events`` by
    ``event:`` name (None: unnamed, which a client reads as ``message``), each with its
    ``data:`` JSON; ``literals``: ``data:`` that is not JSON."""

    name: str
    events: tuple[tuple[str | None, Schema], ...]
    literals: tuple[str, ...] = ()


ANTHROPIC_EVENTS = (
    ("message_start", responses.MessageStart),
    ("content_block_start", responses.ContentBlockStart),
    ("content_block_delta", responses.ContentBlockDelta),
    ("content_block_stop", responses.ContentBlockStop),
    ("message_delta", responses.MessageDelta),
    ("message_stop", responses.MessageStop),
    ("ping", responses.Ping),
    ("error", responses.AnthropicError),
)
MESSAGE_STREAM = Stream("MessageEvent", ANTHROPIC_EVENTS)
WATCH_STREAM = Stream("WatchEvent", (("status", jobs.StatusResponse), *ANTHROPIC_EVENTS))
CHAT_STREAM = Stream("ChatCompletionEvent",
                     ((None, (responses.ChatCompletionChunk, responses.OpenAIError)),),
                     literals=("[DONE]",))

HEADERS = {
    "RequestId": {"description": "the request's id (a job's request_id)", "required": True,
                  "schema": {"type": "string"}},
    "RetryAfter": {"description": "seconds until a retry may succeed", "required": True,
                   "schema": {"type": "string"}},
}


@dataclass(frozen=True)
class Operation:
    """What the document says about one route."""

    ok: dict[int, Schema | None]  # success statuses; None: no JSON body
    errors: tuple[int, ...] = ()  # statuses answered in the surface's error shape
    body: type[BaseModel] | None = None
    example: dict[str, Any] | None = None
    stream: Stream | None = None  # the events a 200 may stream instead of JSON
    shape: type[BaseModel] = responses.SegmindError
    special: dict[int, Schema] = field(default_factory=dict)  # error statuses of other shapes
    parameters: tuple[dict[str, Any], ...] = ()
    lines: type[BaseModel] | None = None  # a 200 of JSON Lines, each line one of these
    public: bool = False  # no key needed
    summary: str = ""


SEGMIND_SYNC = Operation(
    summary="Run a request and wait for its answer", body=MessagesRequest,
    example={"instruction": "You are a helpful assistant.", "messages": [HELLO]},
    ok={200: responses.AnthropicMessage}, stream=MESSAGE_STREAM, errors=SYNC_ERRORS,
    special={504: (jobs.TimeoutResponse, responses.SegmindError)},
    parameters=(WEBHOOK, IDEMPOTENCY))
SEGMIND_SUBMIT = Operation(
    summary="Queue a request", body=MessagesRequest, example={"messages": [HELLO]},
    ok={200: jobs.SubmitResponse}, errors=SUBMIT_ERRORS, parameters=(WEBHOOK, IDEMPOTENCY))
ANTHROPIC_SHAPE = responses.AnthropicError

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/health"): Operation(summary="Liveness", ok={200: responses.Health},
                                  errors=(500,), public=True),
    ("GET", "/ready"): Operation(summary="Readiness", ok={200: responses.Readiness},
                                 special={503: responses.Readiness}, errors=(500,),
                                 public=True),
    ("POST", "/v1/{model}"): SEGMIND_SYNC,
    ("POST", "/v2/{model}"): SEGMIND_SUBMIT,
    ("GET", "/v2/requests/{request_id}/status"): Operation(
        summary="A request's status", ok={200: jobs.StatusResponse},
        special={422: jobs.StatusResponse}, errors=(400, *READ_ERRORS), parameters=(WAIT,)),
    ("GET", "/v2/requests/{request_id}"): Operation(
        summary="A request's result", ok={200: jobs.ResultResponse, 202: jobs.StatusResponse},
        special={422: jobs.StatusResponse}, errors=READ_ERRORS),
    ("GET", "/v2/requests/{request_id}/stream"): Operation(
        summary="Follow a request as server-sent events", ok={200: None}, stream=WATCH_STREAM,
        errors=READ_ERRORS),
    ("POST", "/v2/requests/{request_id}/cancel"): Operation(
        summary="Cancel a queued or running request", ok={200: jobs.StatusResponse},
        errors=(409, *READ_ERRORS)),
    ("GET", "/v1/models"): Operation(summary="The models this key may use",
                                     ok={200: models.ModelList}, errors=(401, 500)),
    ("GET", "/v1/models/{model_id}"): Operation(
        summary="One model, by its slug or an alias", ok={200: models.ModelCard},
        errors=(401, 404, 500)),
    ("GET", "/v1/account"): Operation(summary="This key's account",
                                      ok={200: responses.AccountInfo}, errors=(401, 500)),
    ("PUT", "/v1/account/webhook"): Operation(
        summary="Set or clear the account's default webhook", body=WebhookSetting,
        example={"url": None}, ok={200: responses.WebhookInfo}, errors=(400, 401, 413, 500)),
    ("GET", "/v1/requests"): Operation(
        summary="This account's request history", ok={200: responses.HistoryPage},
        errors=(400, 401, 500), parameters=tuple(HISTORY)),
    ("GET", "/v1/requests/{request_id}"): Operation(
        summary="One request of the history", ok={200: responses.HistoryEntry},
        errors=READ_ERRORS),
    ("GET", "/v1/requests/{request_id}/webhook"): Operation(
        summary="A request's webhook deliveries", ok={200: responses.WebhookLog},
        errors=READ_ERRORS),
    ("GET", "/v1/requests/{request_id}/content"): Operation(
        summary="A request's input and output, while its result is kept",
        ok={200: responses.RequestContent}, errors=READ_ERRORS),
    ("GET", "/v1/usage"): Operation(
        summary="This account's requests, tokens and spend per day and model",
        ok={200: responses.UsageReport}, errors=(400, 401, 500), parameters=USAGE),
    ("GET", "/v1/admin/keys"): Operation(summary="Every key", ok={200: responses.KeyList},
                                         errors=ADMIN_ERRORS),
    ("POST", "/v1/admin/keys"): Operation(
        summary="Create a key (and its account)", body=CreateKey,
        example={"account": "team-a", "name": "laptop", "credits": 25},
        ok={201: responses.CreatedKey}, errors=(*ADMIN_ERRORS, 400, 413)),
    ("POST", "/v1/admin/keys/{key_id}/revoke"): Operation(
        summary="Revoke a key", ok={200: responses.KeyInfo}, errors=(*ADMIN_ERRORS, 404)),
    ("GET", "/v1/admin/accounts"): Operation(
        summary="Every account", ok={200: responses.AdminAccountList}, errors=ADMIN_ERRORS),
    ("GET", "/v1/admin/accounts/{name}"): Operation(
        summary="One account", ok={200: responses.AdminAccount}, errors=(*ADMIN_ERRORS, 404)),
    ("POST", "/v1/admin/accounts/{name}/credits"): Operation(
        summary="Add (or take) credits", body=AddCredits,
        example={"amount": 10, "note": "invoice 42"}, ok={200: responses.AdminAccount},
        errors=ADMIN_BODY_ERRORS),
    ("PUT", "/v1/admin/accounts/{name}/credits"): Operation(
        summary="Set the balance (null: unlimited)", body=SetCredits,
        example={"balance": 25}, ok={200: responses.AdminAccount}, errors=ADMIN_BODY_ERRORS),
    ("GET", "/v1/admin/accounts/{name}/ledger"): Operation(
        summary="An account's credits ledger, newest first", ok={200: responses.LedgerPage},
        errors=(*ADMIN_ERRORS, 400, 404), parameters=LEDGER),
    ("POST", "/v1/messages"): Operation(
        summary="Anthropic Messages", body=AnthropicMessagesRequest,
        example={"model": "claude-3-haiku", "max_tokens": 64, "messages": [HELLO]},
        ok={200: responses.AnthropicMessage}, stream=MESSAGE_STREAM, errors=SYNC_ERRORS,
        shape=ANTHROPIC_SHAPE, parameters=(WEBHOOK, IDEMPOTENCY)),
    ("POST", "/v1/messages/count_tokens"): Operation(
        summary="Count a request's input tokens", body=CountTokensRequest,
        example={"model": "claude-3-haiku", "messages": [HELLO]},
        ok={200: responses.TokenCount}, errors=(400, 401, 403, 404, 413, 429, 500),
        shape=ANTHROPIC_SHAPE),
    ("POST", "/v1/messages/batches"): Operation(
        summary="Create a Message Batch (its requests run behind interactive traffic)",
        body=CreateBatch,
        example={"requests": [{"custom_id": "first", "params": {
            "model": "claude-3-haiku", "max_tokens": 64, "messages": [HELLO]}}]},
        ok={200: batches.MessageBatch}, errors=(400, 401, 406, 413, 429, 500, 503),
        shape=ANTHROPIC_SHAPE),
    ("GET", "/v1/messages/batches"): Operation(
        summary="This account's batches, newest first", ok={200: batches.MessageBatchList},
        errors=(400, 401, 500), shape=ANTHROPIC_SHAPE, parameters=BATCH_PAGE),
    ("GET", "/v1/messages/batches/{batch_id}"): Operation(
        summary="A batch: its processing_status and request_counts",
        ok={200: batches.MessageBatch}, errors=READ_ERRORS, shape=ANTHROPIC_SHAPE),
    ("POST", "/v1/messages/batches/{batch_id}/cancel"): Operation(
        summary="Cancel a batch: requests not yet ended end canceled",
        ok={200: batches.MessageBatch}, errors=READ_ERRORS, shape=ANTHROPIC_SHAPE),
    ("DELETE", "/v1/messages/batches/{batch_id}"): Operation(
        summary="Delete an ended batch and its results", ok={200: batches.DeletedBatch},
        errors=(400, *READ_ERRORS), shape=ANTHROPIC_SHAPE),
    ("GET", "/v1/messages/batches/{batch_id}/results"): Operation(
        summary="An ended batch's results, one JSON line per request (application/x-jsonl)",
        ok={200: None}, lines=batches.BatchResult, errors=(400, *READ_ERRORS),
        shape=ANTHROPIC_SHAPE),
    ("POST", "/v1/chat/completions"): Operation(
        summary="OpenAI chat completions", body=ChatCompletionRequest,
        example={"model": "claude-3-haiku", "messages": [HELLO]},
        ok={200: responses.ChatCompletion}, stream=CHAT_STREAM, errors=SYNC_ERRORS,
        shape=responses.OpenAIError, parameters=(WEBHOOK, IDEMPOTENCY)),
}


def _models() -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    """Every model the document names: bodies as validated, responses as serialized."""
    seen: dict[type[BaseModel], JsonSchemaMode] = {}
    for op in OPERATIONS.values():
        if op.body is not None:
            seen[op.body] = "validation"
        schemas = [*op.ok.values(), *op.special.values(), op.shape, op.lines]
        if op.stream is not None:
            schemas += [schema for _, schema in op.stream.events]
        for schema in schemas:
            for model in _members(schema):
                seen.setdefault(model, "serialization")
    return list(seen.items())


def _members(schema: Schema | None) -> tuple[type[BaseModel], ...]:
    if schema is None:
        return ()
    return schema if isinstance(schema, tuple) else (schema,)


class _Components:
    def __init__(self) -> None:
        refs, defs = models_json_schema(_models(), ref_template=REF)
        self.refs = refs
        self.schemas: dict[str, Any] = defs.get("$defs", {})
        for model, fields in REFINEMENTS.items():
            properties = self.schemas[self.name(model, "validation")]["properties"]
            for name, constraints in fields.items():
                _refine(properties[name], constraints)
        segmind = self.schemas[self.name(MessagesRequest, "validation")]
        segmind["anyOf"] = [{"required": ["messages"]}, {"required": ["prompt"]}]

    def name(self, model: type[BaseModel], mode: JsonSchemaMode) -> str:
        return str(self.refs[(model, mode)]["$ref"]).rsplit("/", 1)[1]

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(self.refs[(model, mode)])

    def schema(self, schema: Schema) -> dict[str, Any]:
        refs = [self.ref(m, "serialization") for m in _members(schema)]
        return refs[0] if len(refs) == 1 else {"anyOf": refs}

    def stream(self, stream: Stream) -> dict[str, Any]:
        if stream.name not in self.schemas:
            self.schemas[stream.name] = _events(stream, self)
        return {"$ref": REF.format(model=stream.name)}


def _refine(schema: dict[str, Any], constraints: dict[str, Any]) -> None:
    """Add ``constraints`` to the schema of a field, or to its non-null branch."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") not in (None, "null"):
            branch.update(constraints)


def _events(stream: Stream, parts: _Components) -> dict[str, Any]:
    """The schema of one event, as FastAPI describes server-sent events: an object with the
    ``event`` name and the ``data`` text (JSON, described by ``contentSchema``)."""
    kinds = []
    for name, schema in stream.events:
        data = {"type": "string", "contentMediaType": JSON, "contentSchema": parts.schema(schema)}
        kinds.append({"type": "object", "required": ["event", "data"],
                      "properties": {"event": {"const": name or "message"}, "data": data}})
    for literal in stream.literals:
        kinds.append({"type": "object", "required": ["data"],
                      "properties": {"data": {"const": literal}}})
    return {"anyOf": kinds}


def _headers(status: int, anthropic: bool) -> dict[str, Any]:
    request_id = {"$ref": "#/components/headers/RequestId"}
    headers: dict[str, Any] = {"x-request-id": request_id}
    if anthropic:
        headers["request-id"] = request_id
    if status == 429:
        headers["Retry-After"] = {"$ref": "#/components/headers/RetryAfter"}
    return headers


def _responses(op: Operation, parts: _Components, anthropic: bool) -> dict[str, Any]:
    described: dict[str, Any] = {}

    def add(status: int, content: dict[str, Any]) -> None:
        described[str(status)] = {"description": STATUS_TEXT.get(status, str(status)),
                                  "headers": _headers(status, anthropic), "content": content}

    for status, schema in op.ok.items():
        content = {} if schema is None else {JSON: {"schema": parts.schema(schema)}}
        if op.stream is not None and status == 200:
            content[SSE] = {"itemSchema": parts.stream(op.stream)}
        if op.lines is not None and status == 200:
            content[JSONL] = {"itemSchema": parts.schema(op.lines)}
        add(status, content)
    for status in op.errors:
        add(status, {JSON: {"schema": parts.schema(op.shape)}})
    for status, schema in op.special.items():
        add(status, {JSON: {"schema": parts.schema(schema)}})
    return dict(sorted(described.items()))


def _path_parameters(operation: dict[str, Any]) -> list[dict[str, Any]]:
    params = []
    for param in operation.get("parameters", []):
        if param.get("in") != "path":
            continue
        description, example = PATH_PARAMS.get(param["name"], ("", None))
        schema: dict[str, Any] = {"type": "string", "minLength": 1}
        described = {"name": param["name"], "in": "path", "required": True,
                     "description": description, "schema": schema}
        if example is not None:
            described["example"] = example
        params.append(described)
    return params


def _describe(path: str, method: str, operation: dict[str, Any], parts: _Components) -> None:
    op = OPERATIONS.get((method.upper(), path))
    anthropic = path.startswith("/v1/messages")
    if op is None:  # a route without a description: its errors, at least
        op = Operation(ok={200: None}, errors=(400, 401, 403, 404, 500))
    operation["summary"] = op.summary or operation.get("summary", "")
    operation["parameters"] = _path_parameters(operation) + list(op.parameters)
    if not operation["parameters"]:
        del operation["parameters"]
    operation["responses"] = _responses(op, parts, anthropic)
    operation["security"] = [] if op.public else [{"ApiKeyAuth": []}, {"BearerAuth": []}]
    if op.body is not None:
        media: dict[str, Any] = {"schema": parts.ref(op.body, "validation")}
        if op.example is not None:
            media["example"] = op.example
        operation["requestBody"] = {"required": True, "content": {JSON: media}}


def build(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, routes=app.routes,
                      description="Self-hosted serverless LLM API: the Segmind queue surface, "
                                  "Anthropic Messages, OpenAI chat completions, accounts and "
                                  "admin.")
    parts = _Components()
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            _describe(path, method, operation, parts)
    doc["components"] = {
        "schemas": parts.schemas,
        "headers": HEADERS,
        "securitySchemes": {
            "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            "BearerAuth": {"type": "http", "scheme": "bearer"},
        },
    }
    return doc


def install(app: FastAPI) -> None:
    """Serve :func:`build`'s document at ``/openapi.json`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
