"""The served models: each configuration with its engine, found by slug or alias."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stratus.config import ModelConfig
from stratus.engines import ENGINES, Engine, Host, build_engine
from stratus.errors import NotFound


@dataclass(frozen=True, slots=True)
class ModelSpec:
    config: ModelConfig
    engine: Engine

    @property
    def slug(self) -> str:
        return self.config.slug

    @property
    def remote(self) -> bool:
        """It runs at an upstream: the upstream's defaults, grammar and checks apply."""
        return ENGINES[self.config.engine].remote

    def state(self) -> dict[str, Any]:
        """``ready``, or ``cooldown`` with why and when its upstream is asked again."""
        health = self.engine.health()
        return {"state": health.state, "reason": health.reason,
                "next_probe_at": None if health.until is None else round(health.until, 3)}


class ModelRegistry:
    def __init__(self, specs: list[ModelSpec]) -> None:
        self._specs = {spec.slug: spec for spec in specs}
        self._names = {name: spec for spec in specs
                       for name in (spec.slug, *spec.config.aliases)}

    @classmethod
    def from_config(cls, models: tuple[ModelConfig, ...], data_dir: Path) -> ModelRegistry:
        host = Host(data_dir)
        return cls([ModelSpec(config=m, engine=build_engine(m, host))
                    for m in models])

    def resolve(self, name: str) -> ModelSpec:
        spec = self._names.get(name)
        if spec is None:
            known = ", ".join(sorted(self._names))
            raise NotFound(f"unknown model {name!r}: available models are {known} "
                           "(GET /v1/models lists them)")
        return spec

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._specs.values())

    async def start(self, generating: Collection[str]) -> None:
        """Load every model: those in ``generating`` (slugs) whole, the others only their
        tokenizers."""
        for spec in self:
            await spec.engine.start(generate=spec.slug in generating)

    def only(self, slugs: Collection[str]) -> ModelRegistry:
        """The models named (slugs or aliases), for a worker that serves just those."""
        return ModelRegistry([self.resolve(name) for name in dict.fromkeys(slugs)])

    async def close(self) -> None:
        for spec in self:
            await spec.engine.close()
