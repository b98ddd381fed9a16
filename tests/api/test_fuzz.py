"""Property-based fuzz of the whole HTTP API against its own OpenAPI document.

Requests are generated from ``/openapi.json`` (bodies, path and query parameters, headers),
both valid and invalid ones, and sent to a real ``stratus serve`` on echo models. Every
answer must be a non-5xx whose status, content type, headers and body the document
describes. ``STRATUS_FUZZ_EXAMPLES`` sets the examples per operation (``make fuzz`` runs
many more than the test command does).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import checks
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode
from schemathesis.schemas import BaseSchema

from stratus.api._openapi import OPERATIONS
from tests._server import ServerProcess
from tests.conftest import new_key

EXAMPLES = int(os.environ.get("STRATUS_FUZZ_EXAMPLES", "40"))

# Echo models only; short sync waits so a slow answer is a quick 504, not a long wait.
# Webhook URLs the fuzz sends are checked as in production (public addresses only).
FUZZ_CONFIG = """
[server]
sync_timeout = 2
ping_interval = 0.5
max_body_bytes = 262144

[webhooks]
allow_private = false

[[policy.rules]]
name = "fuzz-words"
words = ["forbidden"]

[[models]]
slug = "echo"
aliases = ["claude-3-haiku"]
batch_slots = 16

[[models]]
slug = "echo-vision"
batch_slots = 4
[models.capabilities]
vision = true
"""
SERVED_MODELS = ["echo", "claude-3-haiku", "echo-vision"]

CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_headers_conformance,
          checks.response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("fuzz"), FUZZ_CONFIG).start()
    yield proc
    proc.kill()


@pytest.fixture(scope="module")
def fuzz_key(fuzz_server: ServerProcess) -> str:
    """An admin key of its own account: the fuzz changes credits and revokes keys of other
    accounts, never the key it runs with."""
    with fuzz_server.client() as admin:
        return new_key(admin, "fuzzer", admin=True)


@pytest.fixture(scope="module")
def known(fuzz_server: ServerProcess, fuzz_key: str) -> dict[str, list[str]]:
    """Values the server knows, by parameter name. A generated model name, request id, key
    id or account name is (almost) never one the server knows: its 404 comes before the
    route's own work, which would then never be fuzzed."""
    with fuzz_server.client(fuzz_key) as client:
        ids = []
        for text in ("hello there", "forbidden words"):  # COMPLETED; FAILED by the policy
            submitted = client.post("/v2/echo", json={"messages": [
                {"role": "user", "content": text}]})
            assert submitted.status_code == 200, submitted.text
            ids.append(submitted.json()["request_id"])
        victim = client.post("/v1/admin/keys", json={"account": "fuzz-victim", "credits": 5})
        assert victim.status_code == 201, victim.text
    return {
        "model": SERVED_MODELS,
        "request_id": ids,
        "after_id": ids,
        "key_id": [victim.json()["key"]["id"]],
        "name": ["fuzz-victim"],
        # Webhook URLs that never leave this machine, whatever network it has: one private
        # (refused), one whose name cannot resolve (refused).
        "webhook": ["http://127.0.0.1:9/hook", "https://stratus-fuzz.invalid/hook"],
    }


def narrowed(document: dict[str, Any], known: dict[str, list[str]]) -> dict[str, Any]:
    """The document as served, with each path or query parameter named in ``known`` and each
    body's ``model`` field narrowed to the known values. Valid requests use them; invalid
    requests still send anything else."""
    schemas = document["components"]["schemas"]
    for item in document["paths"].values():
        for operation in item.values():
            for param in operation.get("parameters", []):
                if param["name"] in known and param["in"] in ("path", "query"):
                    param["schema"] = {"type": "string", "enum": known[param["name"]]}
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                properties = schemas[body["schema"]["$ref"].rsplit("/", 1)[1]]["properties"]
                if "model" in properties:
                    properties["model"] = {"type": "string", "enum": known["model"]}
    return document


@pytest.fixture(scope="module")
def api_schema(fuzz_server: ServerProcess, fuzz_key: str,
               known: dict[str, list[str]]) -> BaseSchema:
    response = httpx.get(f"{fuzz_server.url}/openapi.json", timeout=10)
    assert response.status_code == 200, response.text
    config = SchemathesisConfig.from_dict({
        "base-url": fuzz_server.url,
        "headers": {"x-api-key": fuzz_key},
        "request-timeout": 30,
    })
    return schemathesis.openapi.from_dict(narrowed(response.json(), known), config=config)


def server_errors(server: ServerProcess) -> str:
    """The tracebacks of the server log, for a failure's report."""
    found = re.findall(r"Traceback \(most recent call last\):\n(?:[ \t].*\n)+.*\n",
                       server.log())
    return "server log:\n" + "\n".join(found[-3:]) if found else "no traceback in the log"


def fuzz(strategy: st.SearchStrategy[schemathesis.Case], examples: int, server: ServerProcess,
         key: str) -> None:
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck),
              phases=[Phase.explicit, Phase.generate, Phase.shrink])
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        try:
            case.call_and_validate(headers={"x-api-key": key}, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # a check's failures come as a group
            exc.add_note(server_errors(server))
            raise

    run()


def test_the_document_describes_every_route(api_schema: BaseSchema) -> None:
    """Every route is in the table the document and this fuzz are built from."""
    served = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert served - set(OPERATIONS) == set(), "routes missing from stratus.api._openapi"
    assert set(OPERATIONS) - served == set(), "described operations that are not routes"


def test_the_document_describes_bodies_auth_and_error_shapes(fuzz_server: ServerProcess) -> None:
    served = httpx.get(f"{fuzz_server.url}/openapi.json", timeout=10)  # no key needed
    assert served.status_code == 200, served.text
    document = served.json()
    schemas = document["components"]["schemas"]
    assert document["components"]["securitySchemes"] == {
        "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "x-api-key"},
        "BearerAuth": {"type": "http", "scheme": "bearer"},
    }
    for (method, path), described in OPERATIONS.items():
        operation = document["paths"][path][method.lower()]
        if described.body is not None:
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref == f"#/components/schemas/{described.body.__name__}"
            assert schemas[described.body.__name__]["additionalProperties"] is False
        else:
            assert "requestBody" not in operation
        error = operation["responses"]["500"]["content"]["application/json"]["schema"]
        shape = ("AnthropicError" if path.startswith("/v1/messages") else
                 "OpenAIError" if path == "/v1/chat/completions" else "SegmindError")
        assert error == {"$ref": f"#/components/schemas/{shape}"}, (method, path)
        assert operation["security"] == ([] if path in ("/health", "/ready") else
                                         [{"ApiKeyAuth": []}, {"BearerAuth": []}])


@pytest.mark.timeout(120 + 2 * EXAMPLES)
@pytest.mark.parametrize("method,path", sorted(OPERATIONS), ids=lambda v: v)
def test_every_answer_is_documented_and_none_is_a_server_error(
        method: str, path: str, api_schema: BaseSchema, fuzz_server: ServerProcess,
        fuzz_key: str) -> None:
    operation = api_schema[path][method]
    for documented in operation.get_strategies_from_examples():
        fuzz(documented, 3, fuzz_server, fuzz_key)
    modes = [GenerationMode.POSITIVE]
    if any(True for _ in operation.iter_parameters()) or len(operation.body):
        modes.append(GenerationMode.NEGATIVE)  # an operation without inputs has no invalid ones
    for mode in modes:
        fuzz(operation.as_strategy(mode), EXAMPLES, fuzz_server, fuzz_key)
