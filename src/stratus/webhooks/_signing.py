"""Standard Webhooks signatures (https://www.standardwebhooks.com).

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}``; the signature is its
HMAC-SHA256 under the secret's bytes (the base64 after ``whsec_``), sent base64-encoded with
the version prefix: ``webhook-signature: v1,<signature>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

SECRET_PREFIX = "whsec_"


def webhook_id(request_id: str) -> str:
    """The same id on every attempt for a request, so a receiver can drop repeats."""
    return "msg_" + uuid.uuid5(uuid.NAMESPACE_URL, "webhook:" + request_id).hex


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }
