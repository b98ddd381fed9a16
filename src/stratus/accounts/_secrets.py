"""API key material: generation, hashing, comparison. Keys are never stored in clear."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

KEY_PREFIX = "sk-stratus-"


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def display_prefix(secret: str) -> str:
    """What listings show of a key: enough to recognise it, not enough to use it."""
    return secret[: len(KEY_PREFIX) + 4] + "…"


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
