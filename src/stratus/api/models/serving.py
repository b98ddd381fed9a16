"""The models a key may use, as cards both official SDKs parse: one per name (each alias is
a model id too)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from stratus.accounts import Caller
from stratus.errors import NotFound
from stratus.models import ModelSpec
from stratus.protocol.models import ModelCard, ModelList, ModelState
from stratus.runtime import Runtime, may_use

STARTED = int(time.time())  # a model's "created": when this server began serving it


def _card(name: str, spec: ModelSpec, state: dict[str, Any]) -> ModelCard:
    cfg = spec.config
    return ModelCard(
        id=name,
        created=STARTED,
        display_name=name if name == cfg.slug else f"{name} ({cfg.slug})",
        created_at=datetime.fromtimestamp(STARTED, UTC).isoformat().replace("+00:00", "Z"),
        slug=cfg.slug,
        aliases=list(cfg.aliases),
        engine=cfg.engine,
        description=cfg.description,
        capabilities=cfg.capabilities.model_dump(),
        context_length=cfg.context_length,
        max_output_tokens=cfg.max_output_tokens,
        default_max_tokens=cfg.default_max_tokens,
        pricing={"currency": "USD", "input_per_million": cfg.price_input,
                 "output_per_million": cfg.price_output,
                 "cached_input_per_million": cfg.price_input
                 if cfg.price_cached_input is None else cfg.price_cached_input},
        # a remote model samples as its upstream does by default
        sampling={} if spec.remote else cfg.sampling.model_dump(),
        status=ModelState.model_validate(state),
    )


async def model_list(runtime: Runtime, caller: Caller) -> dict[str, Any]:
    """Every name of every model this caller's key may use: its slug, then its aliases."""
    states = await runtime.model_states()
    cards = [_card(name, spec, states[spec.slug]) for spec in runtime.models
             if may_use(caller.key, spec.config) for name in (spec.slug, *spec.config.aliases)]
    return ModelList(data=cards, first_id=cards[0].id if cards else None,
                     last_id=cards[-1].id if cards else None).model_dump()


async def model_card(runtime: Runtime, caller: Caller, name: str) -> dict[str, Any]:
    spec = runtime.models.resolve(name)
    if not may_use(caller.key, spec.config):
        raise NotFound(f"unknown model {name!r}: this API key may not use it "
                       "(GET /v1/models lists those it may)")
    return _card(name, spec, (await runtime.model_states())[spec.slug]).model_dump()
