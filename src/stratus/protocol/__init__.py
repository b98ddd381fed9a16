"""Wire models (pydantic) of the HTTP surfaces."""
