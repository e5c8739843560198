"""``qa serve``'s app on a real socket for the tests: uvicorn in a thread on a free 127.0.0.1 port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from qa.serve.api import create_app, listening_socket, server_config
from qa.serve.service import Service


@dataclass
class Live:
    url: str
    service: Service
    index: Path

    def client(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)


@contextmanager
def live_server(index: Path, *, header_timeout: float = 10.0, **guard: float) -> Iterator[Live]:
    """``qa serve``'s own settings (``server_config``), with shorter bounds where a test asks for them."""
    sock = listening_socket("127.0.0.1", 0)
    service = Service(index)
    server = uvicorn.Server(server_config(create_app(service, **guard), header_timeout=header_timeout))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    host, port = sock.getsockname()[:2]
    try:
        yield Live(f"http://{host}:{port}", service, index)
    finally:
        server.should_exit = True
        thread.join(10)
        service.close()
        sock.close()
