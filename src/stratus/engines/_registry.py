"""Every engine, in one place: its name, the typed options a model may give it (checked when
the configuration loads), and how to build it (its module is imported only then)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stratus.engines._options import (
    AnthropicOptions,
    EchoOptions,
    EngineOptions,
    LlamaCppOptions,
    OpenAIOptions,
)
from stratus.engines._types import Engine

if TYPE_CHECKING:
    from stratus.config import ModelConfig


@dataclass(frozen=True, slots=True)
class Host:
    """What the engines of one process share: where models are cached, and one compute lock
    (local engines decode one at a time: two compute loops on the same cores crawl)."""

    data_dir: Path
    compute_lock: threading.Lock = field(default_factory=threading.Lock)


Build = Callable[["ModelConfig", Any, Host], Engine]


def _echo(model: ModelConfig, options: Any, host: Host) -> Engine:
    from stratus.engines.echo import EchoEngine

    return EchoEngine(options, slots=model.batch_slots)


def _llamacpp(model: ModelConfig, options: Any, host: Host) -> Engine:
    from stratus.engines.llamacpp import LlamaCppEngine

    return LlamaCppEngine(model, options, host.data_dir, host.compute_lock)


def _openai(model: ModelConfig, options: Any, host: Host) -> Engine:
    from stratus.engines.remote import OpenAIEngine

    return OpenAIEngine(model, options)


def _anthropic(model: ModelConfig, options: Any, host: Host) -> Engine:
    from stratus.engines.remote import AnthropicEngine

    return AnthropicEngine(model, options)


@dataclass(frozen=True, slots=True)
class EngineKind:
    """``remote``: the model runs at an upstream, whose defaults apply to what a request
    leaves out of sampling (the model's ``sampling`` does not)."""

    options: type[EngineOptions]
    build: Build
    remote: bool = False


ENGINES: dict[str, EngineKind] = {
    "echo": EngineKind(EchoOptions, _echo),
    "llamacpp": EngineKind(LlamaCppOptions, _llamacpp),
    "openai": EngineKind(OpenAIOptions, _openai, remote=True),
    "anthropic": EngineKind(AnthropicOptions, _anthropic, remote=True),
}


def engine_options(engine: str, options: dict[str, Any]) -> EngineOptions:
    """The typed options of ``engine``; a ValueError that names what is wrong."""
    kind = ENGINES.get(engine)
    if kind is None:
        raise ValueError(f"unknown engine {engine!r}: one of {', '.join(sorted(ENGINES))}")
    known = ", ".join(kind.options.model_fields)
    try:
        return kind.options.model_validate(options)
    except Exception as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'options'}: "
            + ("unknown option" if err["type"] == "extra_forbidden" else err["msg"])
            for err in getattr(exc, "errors", lambda: [])()) or str(exc)
        raise ValueError(f"{engine} options: {problems} (its options: {known})") from None


def build_engine(model: ModelConfig, host: Host) -> Engine:
    kind = ENGINES[model.engine]
    return kind.build(model, engine_options(model.engine, model.options), host)
