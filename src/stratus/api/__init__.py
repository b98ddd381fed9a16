"""HTTP: maps requests to runtime calls and errors to responses."""

from stratus.api.app import create_app

__all__ = ["create_app"]
