"""The servers a benchmark compares, each started on the same GGUF with the same threads and
slots, and asked the same way: a streamed chat, timed at the client (TTFT is the first text
the client reads, whatever the server says)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from _cpp_server import command as cpp_command

KEY = "sk-stratus-bench-key-000001"


@dataclass
class Reply:
    latency: float
    ttft: float
    output_tokens: int
    text: str


@dataclass
class System:
    name: str
    url: str
    headers: dict[str, str]
    path: str

    def body(self, messages: list[dict], system: str | None, max_tokens: int,
             temperature: float) -> dict:
        if self.path == "/v1/messages":
            body = {"model": "gemma-3-270m", "messages": messages, "max_tokens": max_tokens,
                    "temperature": temperature, "stream": True}
            return {**body, "system": system} if system else body
        chat = ([{"role": "system", "content": system}] if system else []) + messages
        return {"messages": chat, "max_tokens": max_tokens, "temperature": temperature,
                "stream": True, "stream_options": {"include_usage": True}}

    retries: int = 0

    async def chat(self, http: httpx.AsyncClient, messages: list[dict], *,
                   system: str | None = None, max_tokens: int = 64,
                   temperature: float = 0.0) -> Reply:
        """One streamed chat; a connection closed before any response (seen now and then
        with both servers) is retried once, and counted in :attr:`retries`."""
        try:
            return await self._chat(http, messages, system, max_tokens, temperature)
        except httpx.RemoteProtocolError:
            self.retries += 1
            return await self._chat(http, messages, system, max_tokens, temperature)

    async def _chat(self, http: httpx.AsyncClient, messages: list[dict], system: str | None,
                    max_tokens: int, temperature: float) -> Reply:
        started = time.perf_counter()
        ttft, pieces, tokens = None, [], 0
        async with http.stream("POST", self.url + self.path, headers=self.headers,
                               json=self.body(messages, system, max_tokens,
                                              temperature)) as response:
            if response.status_code != 200:
                raise RuntimeError(f"{self.name}: {response.status_code} "
                                   f"{(await response.aread())[:300]!r}")
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                data = json.loads(line[6:])
                text, usage = _piece(data)
                if text:
                    ttft = ttft or time.perf_counter() - started
                    pieces.append(text)
                    tokens += 1
                if usage is not None:
                    tokens = usage
        latency = time.perf_counter() - started
        return Reply(latency, ttft or latency, tokens, "".join(pieces))


def _piece(data: dict) -> tuple[str, int | None]:
    """The text of one SSE event and, if it says, the output tokens so far."""
    if data.get("type") == "content_block_delta":
        return data["delta"].get("text", ""), None
    if data.get("type") == "message_delta":
        return "", data["usage"]["output_tokens"]
    if "choices" in data:
        text = data["choices"][0]["delta"].get("content") or "" if data["choices"] else ""
        usage = data.get("usage")
        return text, usage["completion_tokens"] if usage else None
    return "", None


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 300,
               poll: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(poll)
    raise RuntimeError(f"{url} not ready")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def stratus(gguf: Path, port: int, *, slots: int, threads: int,
            context: int = 2048) -> Iterator[System]:
    data = Path(tempfile.mkdtemp(prefix="stratus-bench-"))
    config = data / "config.toml"
    config.write_text(
        "[server]\nsync_timeout = 600\n\n[[models]]\nslug = \"gemma-3-270m\"\n"
        f"engine = \"llamacpp\"\nweights = \"{gguf}\"\ncontext_length = {context}\n"
        f"max_output_tokens = 1024\nbatch_slots = {slots}\n"
        f"[models.options]\nchat_format = \"gemma\"\nn_threads = {threads}\n")
    log = (Path(tempfile.gettempdir()) / "stratus-bench-stratus.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "stratus", "serve", "--config", str(config),
                             "--data-dir", str(data), "--port", str(port), "--log-level",
                             "warning", "--no-access-log"],
                            env={**os.environ, "STRATUS_BOOTSTRAP_KEY": KEY,
                                 "PYTHONFAULTHANDLER": "1"},
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/ready", proc)
        yield System("stratus", url, {"x-api-key": KEY}, "/v1/messages")
    finally:
        stop(proc)


@contextlib.contextmanager
def cpp_server(gguf: Path, port: int, *, slots: int, threads: int,
               context: int = 2048) -> Iterator[System]:
    log = (Path(tempfile.gettempdir()) / "stratus-bench-cpp-server.log").open("w")
    proc = subprocess.Popen([*cpp_command(gguf, port, slots=slots, threads=threads,
                                          context=context),
                             "--no-jinja", "--chat-template", "gemma"],  # the built-in one
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/health", proc)
        yield System("llama-server", url, {}, "/v1/chat/completions")
    finally:
        stop(proc)
