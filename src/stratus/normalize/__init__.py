"""Client requests checked for meaning and reduced to what an engine runs."""

from stratus.normalize._messages import Normalized, count_input_tokens, normalize
from stratus.normalize._wire import parse_body, parse_json, parse_model

__all__ = ["Normalized", "count_input_tokens", "normalize", "parse_body", "parse_json",
           "parse_model"]
