"""Configuration: built-in defaults, then a TOML file, then ``STRATUS_*`` variables, then flags.

A TOML file looks like::

    [server]
    port = 8000
    result_ttl = 3600

    [[models]]
    slug = "echo"
    aliases = ["claude-3-haiku"]
    engine = "echo"
    [models.options]
    delay_ms = 0

Unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

# Claude 3 Haiku's list price, USD per million tokens.
DEFAULT_PRICE_INPUT = 0.25
DEFAULT_PRICE_OUTPUT = 1.25


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Capabilities(_Strict):
    vision: bool = False
    tools: bool = False


class Sampling(_Strict):
    """How a model samples whatever a request leaves out (current SDKs send no temperature).
    ``top_k`` 0: the whole vocabulary; ``repeat_penalty`` 1: none."""

    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    top_k: int = Field(default=40, ge=0)
    min_p: float = Field(default=0.0, ge=0, le=1)
    repeat_penalty: float = Field(default=1.0, gt=0, le=10)


class ModelConfig(_Strict):
    slug: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    aliases: tuple[str, ...] = ()
    engine: str = "echo"  # one of stratus.engines._registry.ENGINES
    weights: str | None = None  # llamacpp: "package:NAME" or a path to a GGUF file
    context_length: int = Field(default=8192, gt=0)
    max_output_tokens: int = Field(default=4096, gt=0)
    default_max_tokens: int = Field(default=1024, gt=0)
    batch_slots: int = Field(default=8, gt=0)
    max_queue: int = Field(default=1000, gt=0)  # QUEUED jobs past which submits get 429
    execution_timeout: float = Field(default=600.0, gt=0)
    price_input: float = Field(default=DEFAULT_PRICE_INPUT, ge=0)
    price_output: float = Field(default=DEFAULT_PRICE_OUTPUT, ge=0)
    # input tokens read from the prompt cache (None: priced as any input token)
    price_cached_input: float | None = Field(default=None, ge=0)
    sampling: Sampling = Sampling()
    capabilities: Capabilities = Capabilities()
    description: str = ""
    options: dict[str, Any] = Field(default_factory=dict)
    # eager: loaded when a worker starts; on_demand: when a job for it is claimed (default:
    # eager for the first model, on_demand for the others)
    load: Literal["eager", "on_demand"] | None = None
    idle_unload: float = Field(default=900.0, ge=0)  # on_demand: unloaded idle this long (0: never)

    def cost_usd(self, input_tokens: int, output_tokens: int, cached_input: int = 0) -> float:
        """What a request of that many tokens costs at this model's prices; ``cached_input``
        of the input tokens were read from the prompt cache."""
        cached_price = self.price_input if self.price_cached_input is None \
            else self.price_cached_input
        return round(((input_tokens - cached_input) * self.price_input
                      + cached_input * cached_price + output_tokens * self.price_output)
                     / 1_000_000, 10)

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, engine: str) -> str:
        from stratus.engines._registry import ENGINES

        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}: one of {', '.join(sorted(ENGINES))}")
        return engine

    @field_validator("options")
    @classmethod
    def _engine_options(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from stratus.engines._registry import engine_options

        if "engine" in info.data:  # else the engine itself was refused
            engine_options(info.data["engine"], options)
        return options

    @model_validator(mode="after")
    def _limits(self) -> ModelConfig:
        if self.default_max_tokens > self.max_output_tokens:
            raise ValueError("default_max_tokens must not exceed max_output_tokens")
        if self.engine == "llamacpp" and not self.weights:
            raise ValueError("a llamacpp model needs weights: \"package:NAME\" or a GGUF path")
        return self


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Path(".stratus")
    result_ttl: float = Field(default=3600.0, gt=0)
    idempotency_ttl: float = Field(default=24 * 3600.0, gt=0)
    sync_timeout: float = Field(default=300.0, gt=0)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    lease_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=3, gt=0)
    shutdown_grace: float = Field(default=30.0, ge=0)
    sweep_interval: float = Field(default=5.0, gt=0)
    ping_interval: float = Field(default=10.0, gt=0)  # SSE ping while a stream waits
    history_ttl: float = Field(default=30 * 86400.0, gt=0)  # request history is kept this long
    metrics_auth: bool = False  # GET /metrics only with an admin key


class WebhookConfig(_Strict):
    allow_private: bool = False  # allow URLs resolving to loopback, private, link-local
    timeout: float = Field(default=10.0, gt=0)  # seconds per delivery attempt
    initial_backoff: float = Field(default=5.0, gt=0)  # seconds before the first retry
    max_backoff: float = Field(default=600.0, gt=0)
    retry_window: float = Field(default=3600.0, gt=0)  # give up this long after the job ended


class ImagesConfig(_Strict):
    """Image URLs in requests to vision models are fetched at admission (see
    ``stratus.normalize._fetch``)."""

    allow_private: bool = False  # allow URLs resolving to loopback, private, link-local
    fetch_timeout: float = Field(default=10.0, gt=0, le=120)  # seconds per image, in all


class BatchesConfig(_Strict):
    """Message Batches (``/v1/messages/batches``)."""

    max_requests: int = Field(default=100_000, gt=0)  # requests in one batch
    max_body_bytes: int = Field(default=256 * 1024 * 1024, gt=0)  # a batch's request body
    expire_after: float = Field(default=24 * 3600.0, gt=0)  # then requests not run expire
    retention: float = Field(default=29 * 86400.0, gt=0)  # a batch and its results are kept


class PolicyRule(_Strict):
    """Words (case-insensitive, whole words) and regular expressions that block a request."""

    name: str = Field(min_length=1)
    on: tuple[Literal["input", "output"], ...] = ("input", "output")
    words: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _compiles(self) -> PolicyRule:
        if not self.words and not self.patterns:
            raise ValueError(f"policy rule {self.name!r} has neither words nor patterns")
        for pattern in self.patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"policy rule {self.name!r}: pattern {pattern!r} is not a valid "
                    f"regular expression ({exc})") from None
        return self


class PolicyConfig(_Strict):
    rules: tuple[PolicyRule, ...] = ()


class DatabaseConfig(_Strict):
    """Where jobs and accounts live: ``sqlite:///PATH`` or ``postgresql://…``. None:
    ``sqlite:///<data_dir>/stratus.db``."""

    url: str | None = Field(default=None, pattern=r"^(sqlite:///.+|postgres(ql)?://)")
    pool_size: int = Field(default=10, gt=0, le=1000)  # PostgreSQL connections per process
    connect_timeout: float = Field(default=3.0, gt=0, le=60)  # then 503: the database is down


class RedisConfig(_Strict):
    """Redis, for what may be lost: wake-up hints, live token streams, rate-limit buckets.
    None: kept in the process."""

    url: str | None = Field(default=None, pattern=r"^(redis|rediss|unix)://")
    api_nodes: int = Field(default=1, gt=0)  # while Redis is down each keeps 1/N of a limit


def _default_models() -> tuple[ModelConfig, ...]:
    return (
        ModelConfig(
            slug="qwen2.5-coder-1.5b-instruct",
            aliases=("claude-3-haiku",),
            engine="llamacpp",
            weights="package:qwen2.5-coder-1.5b-instruct",
            context_length=4096,
            max_output_tokens=2048,
            default_max_tokens=1024,
            batch_slots=8,
            # the authors' generation settings
            sampling=Sampling(temperature=0.7, top_p=0.8, top_k=20, repeat_penalty=1.05),
            capabilities=Capabilities(tools=True),  # its template renders tools
            description="Qwen2.5 Coder 1.5B Instruct (Apache-2.0), served by llama.cpp.",
        ),
        ModelConfig(
            slug="gemma-3-270m",
            engine="llamacpp",
            weights="package:gemma-3-270m",
            context_length=2048,
            max_output_tokens=1024,
            default_max_tokens=256,
            batch_slots=8,
            sampling=Sampling(temperature=1.0, top_p=0.95, top_k=64),  # the authors' settings
            description="Gemma 3 270M, a small base model (Gemma Terms of Use).",
            options={"chat_format": "gemma"},
        ),
    )


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def _bytes(value: object) -> object:
    """``2GB``, ``1.5 GiB``, ``800MB`` or a number of bytes."""
    if not isinstance(value, str):
        return value
    found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", value)
    unit = found.group(2).lower() if found else ""
    if found is None or unit not in _UNITS:
        raise ValueError(f"{value!r} is not a size: write bytes, or a number with a unit "
                         "(KB, MB, GB, KiB, MiB, GiB)")
    return int(float(found.group(1)) * _UNITS[unit])


class WorkerConfig(_Strict):
    # the most the models a worker holds loaded may take together (bytes, or "2GB"): an
    # on_demand model is loaded only after the least recently used idle ones are unloaded
    # to make room; None: no limit
    memory_budget: int | None = Field(default=None, gt=0)
    load_retry: float = Field(default=30.0, gt=0)  # seconds before a failed load is tried again

    @field_validator("memory_budget", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        return _bytes(value)


class Config(_Strict):
    server: ServerConfig = ServerConfig()
    worker: WorkerConfig = WorkerConfig()
    webhooks: WebhookConfig = WebhookConfig()
    images: ImagesConfig = ImagesConfig()
    batches: BatchesConfig = BatchesConfig()
    policy: PolicyConfig = PolicyConfig()
    database: DatabaseConfig = DatabaseConfig()
    redis: RedisConfig = RedisConfig()
    models: tuple[ModelConfig, ...] = Field(default_factory=_default_models)

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        if not self.models:
            raise ValueError("at least one model must be configured")
        seen: set[str] = set()
        for model in self.models:
            for name in (model.slug, *model.aliases):
                if name in seen:
                    raise ValueError(f"model name {name!r} is used twice")
                seen.add(name)
        object.__setattr__(self, "models", tuple(  # the first is eager unless it says not
            model if model.load is not None else model.model_copy(
                update={"load": "eager" if i == 0 else "on_demand"})
            for i, model in enumerate(self.models)))
        return self


# STRATUS_* variable -> server key
_ENV_KEYS = {
    "STRATUS_HOST": "host",
    "STRATUS_PORT": "port",
    "STRATUS_DATA_DIR": "data_dir",
    "STRATUS_RESULT_TTL": "result_ttl",
    "STRATUS_SYNC_TIMEOUT": "sync_timeout",
    "STRATUS_MAX_BODY_BYTES": "max_body_bytes",
    "STRATUS_LEASE_SECONDS": "lease_seconds",
    "STRATUS_MAX_ATTEMPTS": "max_attempts",
    "STRATUS_SHUTDOWN_GRACE": "shutdown_grace",
    "STRATUS_HISTORY_TTL": "history_ttl",
}


def load_config(path: Path | None = None, *, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> Config:
    """Build the configuration; ``overrides`` (command-line flags) win over everything."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    server = dict(raw.get("server", {}))
    for var, key in _ENV_KEYS.items():
        if env.get(var):
            server[key] = env[var]
    server.update({k: v for k, v in (overrides or {}).items() if v is not None})
    raw["server"] = server
    for var, section in (("STRATUS_DATABASE_URL", "database"), ("STRATUS_REDIS_URL", "redis")):
        if env.get(var):
            raw[section] = {**raw.get(section, {}), "url": env[var]}
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in exc.errors()
        )
        where = f"config file {path}" if path else "configuration"
        raise ConfigError(f"{where} is invalid: {problems}") from None
