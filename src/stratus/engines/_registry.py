"""Every engine, in one place: its name, the typed options a model may give it (checked when
the configuration loads), and how to build it (its module is imported only then)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stratus.engines._types import Engine

if TYPE_CHECKING:
    from stratus.config import ModelConfig


class EngineOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EchoOptions(EngineOptions):
    delay_ms: float = Field(default=0.0, ge=0)  # a delay per output token


class LlamaCppOptions(EngineOptions):
    n_threads: int | None = Field(default=None, gt=0)  # None: the cores
    prefill_chunk: int = Field(default=256, gt=0)  # prompt tokens per step
    chat_format: Literal["auto", "gemma", "template"] = "auto"
    seed: int | None = None  # the default sampling seed (None: random)
    prompt_reuse: bool = True  # keep slots' KV for the prompts that follow


Build = Callable[["ModelConfig", Any, Path, threading.Lock], Engine]


def _echo(model: ModelConfig, options: Any, data_dir: Path, lock: threading.Lock) -> Engine:
    from stratus.engines.echo import EchoEngine

    return EchoEngine(options)


def _llamacpp(model: ModelConfig, options: Any, data_dir: Path,
              lock: threading.Lock) -> Engine:
    from stratus.engines.llamacpp import LlamaCppEngine

    return LlamaCppEngine(model, options, data_dir, lock)


@dataclass(frozen=True, slots=True)
class EngineKind:
    options: type[EngineOptions]
    build: Build


ENGINES: dict[str, EngineKind] = {
    "echo": EngineKind(EchoOptions, _echo),
    "llamacpp": EngineKind(LlamaCppOptions, _llamacpp),
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


def build_engine(model: ModelConfig, data_dir: Path, compute_lock: threading.Lock) -> Engine:
    """``compute_lock`` is shared by every engine of the process: one decode at a time."""
    kind = ENGINES[model.engine]
    return kind.build(model, engine_options(model.engine, model.options), data_dir,
                      compute_lock)
