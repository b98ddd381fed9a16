"""Build the engine a model's configuration names."""

from __future__ import annotations

from stratus.config import ModelConfig
from stratus.engines._types import Engine


def build_engine(model: ModelConfig) -> Engine:
    if model.engine == "echo":
        from stratus.engines.echo import EchoEngine

        return EchoEngine(model.options)
    raise ValueError(f"model {model.slug!r}: unknown engine {model.engine!r}")
