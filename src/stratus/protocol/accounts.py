"""Bodies of the account, history and admin routes."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from stratus.accounts import MAX_USD

MAX_PER_MINUTE = 1_000_000_000_000  # a rate limit, in requests or tokens per minute


def _usd(minimum: int) -> BeforeValidator:
    """A finite number of USD from ``minimum`` to ``MAX_USD``, refused with a message that
    says so (JSON's ``NaN`` and ``Infinity`` included)."""

    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return value  # not a number: the type check says so
        if (isinstance(value, float) and not math.isfinite(value)) \
                or not minimum <= value <= MAX_USD:
            raise PydanticCustomError(
                "usd_amount", "must be a finite number of USD from {minimum} to {maximum}",
                {"minimum": minimum, "maximum": MAX_USD})
        return value

    return BeforeValidator(check)


Usd = Annotated[float, Field(ge=-MAX_USD, le=MAX_USD, allow_inf_nan=False), _usd(-MAX_USD)]
NonNegativeUsd = Annotated[float, Field(ge=0, le=MAX_USD, allow_inf_nan=False), _usd(0)]
PerMinute = Annotated[int, Field(ge=1, le=MAX_PER_MINUTE)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookSetting(_Body):
    """``PUT /v1/account/webhook``: the account's default webhook (null: none)."""

    url: str | None


class CreateKey(_Body):
    """``POST /v1/admin/keys``."""

    account: str = Field(default="default", min_length=1, max_length=200)
    name: str = Field(default="", max_length=200)
    admin: bool = False
    models: list[str] | None = None
    requests_per_minute: PerMinute | None = None
    tokens_per_minute: PerMinute | None = None
    credits: NonNegativeUsd | None = None  # a new account's balance, USD


class AddCredits(_Body):
    """``POST /v1/admin/accounts/{name}/credits``: add (negative: take) USD."""

    amount: Usd
    note: str = Field(default="", max_length=500)


class SetCredits(_Body):
    """``PUT /v1/admin/accounts/{name}/credits``: the balance in USD (null: unlimited)."""

    balance: NonNegativeUsd | None
    note: str = Field(default="", max_length=500)
