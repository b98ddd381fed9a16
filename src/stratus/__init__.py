"""Stratus: a self-hosted serverless LLM API.

``import stratus`` is the SDK (it needs only httpx)::

    import stratus

    reply = stratus.chat("claude-3-haiku", messages=[{"role": "user", "content": "Hi"}])
    print(reply.text)

The server lives in the subpackages (``stratus.api``, ``stratus.store``, ...) and runs with
``stratus serve``.
"""

from stratus.client import *  # noqa: F403
from stratus.client import __all__ as _client_all
from stratus.client._module import chat, chat_sync, default_client, stream, submit_chat

__all__ = [*_client_all, "chat", "chat_sync", "default_client", "stream",
           "submit_chat"]
