"""Webhooks: where they may go, how they are signed, and the sender that retries them. Where
a webhook may go is also where an image may be fetched from: ``resolve_target`` and
``pinned_request`` serve both."""

from stratus.webhooks._address import check_url, resolve_target
from stratus.webhooks._dispatcher import IDLE_CHECK, Dispatcher
from stratus.webhooks._signing import sign, webhook_id
from stratus.webhooks._transport import pinned_request

__all__ = ["IDLE_CHECK", "Dispatcher", "check_url", "pinned_request", "resolve_target", "sign",
           "webhook_id"]
