"""Bodies of the account, history and admin routes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)
    credits: float | None = Field(default=None, ge=0)  # a new account's balance, USD


class AddCredits(_Body):
    """``POST /v1/admin/accounts/{name}/credits``: add (negative: take) USD."""

    amount: float
    note: str = Field(default="", max_length=500)


class SetCredits(_Body):
    """``PUT /v1/admin/accounts/{name}/credits``: the balance in USD (null: unlimited)."""

    balance: float | None = Field(ge=0)
    note: str = Field(default="", max_length=500)
