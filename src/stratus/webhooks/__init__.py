"""Webhooks: how they are signed, and the sender that retries them (where they may go is
:mod:`stratus.outbound`'s)."""

from stratus.outbound import check_url
from stratus.webhooks._dispatcher import IDLE_CHECK, Dispatcher
from stratus.webhooks._signing import sign, webhook_id

__all__ = ["IDLE_CHECK", "Dispatcher", "check_url", "sign", "webhook_id"]
