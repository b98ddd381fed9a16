from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from stratus.errors import AuthenticationFailed, InvalidRequest, NotFound

pytestmark = pytest.mark.anyio


async def test_keys_authenticate_to_their_account(accounts) -> None:
    assert not await accounts.has_keys()
    _key_a, secret_a = await accounts.create_key("alpha", "ci")
    _key_b, secret_b = await accounts.create_key("beta")
    _, secret_a2 = await accounts.create_key("alpha")
    assert await accounts.has_keys()
    assert secret_a.startswith("sk-stratus-") and secret_a != secret_a2
    a = (await accounts.authenticate(secret_a)).account
    assert a.name == "alpha" and a == (await accounts.authenticate(secret_a2)).account
    assert (await accounts.authenticate(secret_b)).account.id != a.id
    assert [k.account_name for k in await accounts.list_keys()] == ["alpha", "beta", "alpha"]


async def test_keys_are_stored_hashed(accounts, tmp_path: Path) -> None:
    _, secret = await accounts.create_key("alpha")
    raw = (tmp_path / "a.db").read_bytes() + (tmp_path / "a.db-wal").read_bytes()
    assert secret.encode() not in raw
    with sqlite3.connect(tmp_path / "a.db") as db:
        stored = db.execute("SELECT hash, prefix FROM api_keys").fetchone()
    assert secret not in stored and stored[1].endswith("…")


async def test_unknown_and_revoked_keys(accounts) -> None:
    with pytest.raises(AuthenticationFailed, match="invalid API key"):
        await accounts.authenticate("sk-stratus-nope")
    key, secret = await accounts.create_key("alpha")
    revoked = await accounts.revoke_key(key.id)
    assert revoked.revoked_at is not None
    with pytest.raises(AuthenticationFailed, match="revoked"):
        await accounts.authenticate(secret)
    with pytest.raises(NotFound):
        await accounts.revoke_key("key_nope")


async def test_chosen_key_value(accounts) -> None:
    _, secret = await accounts.create_key("default", secret="sk-my-own-key-123456")
    assert secret == "sk-my-own-key-123456"
    assert (await accounts.authenticate(secret)).account.name == "default"
    with pytest.raises(InvalidRequest, match="already exists"):
        await accounts.create_key("other", secret="sk-my-own-key-123456")
    with pytest.raises(InvalidRequest, match="at least 16"):
        await accounts.create_key("other", secret="short")
