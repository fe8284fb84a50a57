"""The FastAPI gateway: REST commands and queries, live WebSocket feeds, Open311 GeoReport v2."""

from gateway.app import create_app

__all__ = ["create_app"]
