"""The options a model entry may give its engine (``[models.options]``), one typed model per
engine: unknown or ill-typed options are refused when the configuration loads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EngineOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EchoOptions(EngineOptions):
    delay_ms: float = Field(default=0.0, ge=0)  # a delay per output token
    load_ms: float = Field(default=0.0, ge=0)  # how long a load takes (a model loaded on demand)
    memory_mb: float = Field(default=0.0, ge=0)  # what it holds loaded, for a memory budget
    fail_load: bool = False  # every load fails (to see a model that cannot load)


class LlamaCppOptions(EngineOptions):
    n_threads: int | None = Field(default=None, gt=0)  # None: the cores
    prefill_chunk: int = Field(default=256, gt=0)  # prompt tokens per step
    chat_format: Literal["auto", "gemma", "template"] = "auto"
    seed: int | None = None  # the default sampling seed (None: random)
    prompt_reuse: bool = True  # keep slots' KV for the prompts that follow


class RemoteOptions(EngineOptions):
    """What every upstream engine takes. The key is read from the environment variable
    ``api_key_env`` names, never written in the file."""

    base_url: str = Field(pattern=r"^https?://[^\s/]+", max_length=2048)
    model: str = Field(min_length=1)  # the model's name at the upstream
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    max_concurrency: int = Field(default=4, gt=0, le=4096)  # requests at the upstream at once
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=300.0, gt=0)  # longest wait for the next chunk
    cooldown_after: int = Field(default=3, gt=0)  # failures in a row that start a cooldown
    cooldown: float = Field(default=5.0, gt=0)  # the first cooldown; it doubles while failing
    max_cooldown: float = Field(default=60.0, gt=0)


class OpenAIOptions(RemoteOptions):
    # estimate: a documented over-estimate; tokenize: POST /tokenize (vLLM, SGLang,
    # llama-server); llama-cpp-python: POST /extras/tokenize/count (its server)
    tokenizer: Literal["estimate", "tokenize", "llama-cpp-python"] = "estimate"


class AnthropicOptions(RemoteOptions):
    base_url: str = Field(default="https://api.anthropic.com", pattern=r"^https?://[^\s/]+",
                          max_length=2048)
    api_key_env: str | None = Field(default="ANTHROPIC_API_KEY",
                                    pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    version: str = "2023-06-01"  # the anthropic-version header
    # estimate, or upstream: POST /v1/messages/count_tokens
    tokenizer: Literal["estimate", "upstream"] = "estimate"
