"""Pydantic request and response schemas of the gateway, one module per resource."""
