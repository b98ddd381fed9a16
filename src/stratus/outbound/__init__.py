"""Requests Stratus makes to addresses its clients chose (webhook URLs, image URLs): where
they may go, resolved once and checked, and sent to the checked address."""

from stratus.outbound._address import (
    Resolver,
    Target,
    Unresolved,
    check_url,
    is_private,
    resolve_target,
)
from stratus.outbound._transport import make_client, pinned_request, post

__all__ = ["Resolver", "Target", "Unresolved", "check_url", "is_private", "make_client",
           "pinned_request", "post", "resolve_target"]
