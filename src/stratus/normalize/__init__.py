"""Client requests checked for meaning and reduced to what an engine runs."""

from stratus.normalize._fetch import ImageFetcher
from stratus.normalize._formats import output_format
from stratus.normalize._messages import (
    Checked,
    Normalized,
    check,
    counting_request,
    fit,
)
from stratus.normalize._openai import messages_request
from stratus.normalize._wire import parse_body, parse_json, parse_model

__all__ = ["Checked", "ImageFetcher", "Normalized", "check", "counting_request", "fit",
           "messages_request", "output_format", "parse_body", "parse_json", "parse_model"]
