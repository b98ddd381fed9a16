"""Signatures checked by the Standard Webhooks reference library."""

from __future__ import annotations

import json
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from stratus.accounts._secrets import new_webhook_secret
from stratus.webhooks import webhook_id
from stratus.webhooks._signing import headers


def test_reference_library_verifies_our_signature() -> None:
    secret = new_webhook_secret()
    body = json.dumps({"request_id": "r1", "status": "COMPLETED"}).encode()
    sent = headers(secret, webhook_id("r1"), int(time.time()), body)
    assert Webhook(secret).verify(body, sent) == {"request_id": "r1", "status": "COMPLETED"}
    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(body, sent)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", sent)


def test_webhook_id_is_stable_per_request() -> None:
    assert webhook_id("r1") == webhook_id("r1") != webhook_id("r2")
    assert webhook_id("r1").startswith("msg_")
