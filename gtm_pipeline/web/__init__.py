"""The Starlette app: OAuth connect and callback, connectors and mapping pages."""
