"""Build the engine a model's configuration names."""

from __future__ import annotations

import threading
from pathlib import Path

from stratus.config import ModelConfig
from stratus.engines._types import Engine


def build_engine(model: ModelConfig, data_dir: Path, compute_lock: threading.Lock) -> Engine:
    """``compute_lock`` is shared by every engine of the process: one decode at a time."""
    if model.engine == "echo":
        from stratus.engines.echo import EchoEngine

        return EchoEngine(model.options)
    if model.engine == "llamacpp":
        from stratus.engines.llamacpp import LlamaCppEngine

        return LlamaCppEngine(model, data_dir, compute_lock)
    raise ValueError(f"model {model.slug!r}: unknown engine {model.engine!r}")
