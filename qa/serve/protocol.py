"""The HTTP/1.1 connection: uvicorn's h11 protocol with the bounds a production server has and uvicorn lacks.

- **Headers must arrive in time.** A connection that has not finished a request's headers within
  ``header_timeout`` seconds of opening (or of its last response) is answered 408 and closed: without
  this, 200 idle sockets, or one header byte a second, held the server (measured: an idle socket was
  still open after 75 s).
- **Connections are capped** at ``max_connections``; one more is answered at once with the API's own
  JSON 503 and ``Retry-After``, instead of uvicorn's plain-text one.

Requests in flight and slow bodies are bounded in the ASGI guard (``api._Guard``), where the answer can
be the API's JSON error.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT = 10.0  # seconds to send a request's headers
MAX_CONNECTIONS = 1000  # open connections, idle ones included


def _raw_json(status: int, reason: str, message: str, extra: str = "") -> bytes:
    body = json.dumps({"status": status, "message": message}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"{extra}connection: close\r\n\r\n")  # fmt: skip
    return head.encode("latin-1") + body


BUSY = _raw_json(503, "Service Unavailable", "the server has too many open connections; try again shortly",
                 "retry-after: 1\r\n")  # fmt: skip
TOO_SLOW = _raw_json(408, "Request Timeout", "the request's headers did not arrive in time")


class BoundedH11(H11Protocol):
    """One HTTP/1.1 connection, with a header deadline and a connection cap (see the module's docstring)."""

    header_timeout = HEADER_TIMEOUT
    max_connections = MAX_CONNECTIONS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        if len(self.connections) > self.max_connections:
            transport.write(BUSY)
            transport.close()
            return
        self._arm()

    def _arm(self) -> None:
        """Start the header deadline for the next request on this connection."""
        if self._deadline is not None:
            self._deadline.cancel()
        waiting_after = self.cycle  # the request before (None on a new connection)
        self._deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow, waiting_after)

    def _headers_too_slow(self, waiting_after: Any) -> None:
        if self.cycle is waiting_after and not self.transport.is_closing():  # no request started since
            self.transport.write(TOO_SLOW)
            self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()  # type: ignore[union-attr]
        super().connection_lost(exc)


def bounded_protocol(header_timeout: float = HEADER_TIMEOUT, max_connections: int = MAX_CONNECTIONS) -> type:
    """The protocol class for ``uvicorn.Config(http=...)``, with these bounds."""
    return type("BoundedH11", (BoundedH11,), {"header_timeout": header_timeout, "max_connections": max_connections})


__all__ = ["BoundedH11", "bounded_protocol", "HEADER_TIMEOUT", "MAX_CONNECTIONS"]
