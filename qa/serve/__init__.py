"""Serving the index to other programs: HTTP API and chat page (``api``), MCP tools (``mcp_server``).

Both are thin adapters over ``Service``; they need the ``serve`` extra (FastAPI, uvicorn, mcp),
which importing this package does not.
"""

from .service import NotFound, Previous, Service

__all__ = ["Service", "Previous", "NotFound"]
