"""Engines whose models run at an upstream: any OpenAI-compatible server, or Anthropic's API."""

from stratus.engines.remote._anthropic import AnthropicEngine
from stratus.engines.remote._base import estimate_tokens
from stratus.engines.remote._openai import OpenAIEngine
from stratus.engines.remote._upstream import UpstreamError

__all__ = ["AnthropicEngine", "OpenAIEngine", "UpstreamError", "estimate_tokens"]
