"""The HTTP JSON API and the browser chat page (``qa serve``): FastAPI over one ``Service``.

Every error is a JSON ``{"status", "message"}`` with a status that says whose fault it is (400 bad
input, 404 unknown PMID, 413 too large, 422 malformed, 503 the index cannot be used); a stack trace
only ever reaches the server's log. A guard in front of the app refuses oversized bodies before
they are read and, on a loopback address, requests whose Host is not loopback (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import socket
from pathlib import Path
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..errors import IndexStoreError, ModelError, QAError
from .models import AskIn, AskOut, ErrorOut, HealthOut, InfoOut, RecordOut, SearchIn, SearchOut, filters_of
from .protocol import HEADER_TIMEOUT
from .service import NotFound, Service

log = logging.getLogger("qa.serve")

MAX_BODY_BYTES = 64 * 1024  # a question, filters and a follow-up context fit in a few KB
MAX_IN_FLIGHT = 64  # requests answered at once; more get a JSON 503 with Retry-After (2 cores answer ~20/s)
BODY_TIMEOUT = 30.0  # seconds for a request's body, once its headers are in
PAGE = Path(__file__).parent / "page"
PAGE_FILES = {"app.js": "text/javascript", "style.css": "text/css"}
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        b"form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    ),
]

CITE_MEDIA_TYPES = {"text": "text/plain; charset=utf-8", "ris": "application/x-research-info-systems",
                    "bibtex": "application/x-bibtex", "csl-json": "application/vnd.citationstyles.csl+json",
                    "nbib": "application/nbib"}  # fmt: skip
FAVICON = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
           b'fill="#0b5cad"/><text x="8" y="12" font-size="10" text-anchor="middle" fill="#fff">Q</text></svg>')
CITE_SUFFIXES = {"text": "txt", "ris": "ris", "bibtex": "bib", "csl-json": "json", "nbib": "nbib"}

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "The request cannot be answered as given (say, year_from > year_to)."},
    413: {"model": ErrorOut, "description": f"The body is over {MAX_BODY_BYTES:,} bytes."},
    422: {"model": ErrorOut, "description": "The body does not match the schema."},
    503: {"model": ErrorOut, "description": "The index or its model cannot be used."},
}


def _error(status: int, message: str, *, close: bool = False) -> JSONResponse:
    """The JSON error; ``close`` when the rest of the request's body will not be read (408, 413): the server
    then closes the connection at once, where it would otherwise wait out its keep-alive (5 s) first."""
    headers = {"connection": "close"} if close else None
    return JSONResponse({"status": status, "message": message}, status_code=status, headers=headers)


def _too_large() -> JSONResponse:
    return _error(413, f"the request body is over {MAX_BODY_BYTES:,} bytes", close=True)


class _Guard:
    """Host check, requests in flight, body size and time, and security headers, before FastAPI sees a request."""

    def __init__(self, app: ASGIApp, *, loopback_only: bool, max_in_flight: int = MAX_IN_FLIGHT,
                 body_timeout: float = BODY_TIMEOUT) -> None:  # fmt: skip
        self.app = app
        self.loopback_only = loopback_only
        self.max_in_flight, self.body_timeout = max_in_flight, body_timeout
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        refusal = self._refusal(headers)
        if refusal is None and self.in_flight >= self.max_in_flight:
            refusal = _error(503, f"the server is answering {self.max_in_flight} requests already; try again shortly")
            refusal.headers["Retry-After"] = "1"
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self._guarded(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        received, refused = 0, False

        async def limited() -> Message:
            """Counts a body that comes without Content-Length (chunked), and times it: past the size or the
            time limit, the client gets the JSON error and the app sees a hang-up."""
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout)
            except asyncio.TimeoutError:
                refused = True
                await _error(408, f"the request's body did not arrive within {self.body_timeout:g} s", close=True)(
                    scope, receive, send)  # fmt: skip
                return {"type": "http.disconnect"}
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                refused = True
                await _too_large()(scope, receive, send)
                return {"type": "http.disconnect"}
            return message

        async def with_headers(message: Message) -> None:
            if refused:
                return  # the 413 has been sent; whatever the app says after the hang-up is dropped
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, limited, with_headers)

    def _refusal(self, headers: dict[bytes, bytes]) -> JSONResponse | None:
        if self.loopback_only:
            name = host_name(headers.get(b"host", b"").decode("latin-1"))
            if name is None or name not in LOOPBACK_HOSTS:
                return _error(400, "this server answers only requests addressed to 127.0.0.1 or localhost")
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return _too_large()
        return None


_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?")


def host_name(header: str) -> str | None:
    """The host of a ``Host`` header (RFC 9110: host [":" port]), lower-cased and without one trailing dot;
    None for anything else -- userinfo ("127.0.0.1:80@evil.com"), a path, spaces, two hosts, a bad port."""
    match = _HOST.fullmatch(header.strip())
    if match is None or (match.group(2) is not None and int(match.group(2)) > 65535):
        return None
    name = match.group(1).lower()
    return name[:-1] if name.endswith(".") and not name.endswith("..") else name


def _validation_message(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "the request does not match the schema"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "the body is not valid JSON"
    if first.get("loc") == ("body",) and first.get("type") in ("model_attributes_type", "dict_type"):
        return "the body must be a JSON object (Content-Type: application/json)"
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"[:500]


def create_app(service: Service, *, loopback_only: bool = True, max_in_flight: int = MAX_IN_FLIGHT,
               body_timeout: float = BODY_TIMEOUT) -> ASGIApp:  # fmt: skip
    """The ASGI app: the JSON API, its OpenAPI document and the chat page at ``/``."""
    return _Guard(_api(service), loopback_only=loopback_only, max_in_flight=max_in_flight, body_timeout=body_timeout)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document ``/openapi.json`` serves, without loading an index (no route is called)."""
    return _api(cast(Service, None)).openapi()


def _api(service: Service) -> FastAPI:
    app = FastAPI(
        title="pubmed-qa",
        version=__version__,
        description="Questions over a collection of PubMed abstracts; every answer cited by PMID.",
        docs_url=None,  # Swagger UI loads from a CDN; this server works offline
        redoc_url=None,
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(QAError)
    async def _refused(request: Request, exc: QAError) -> JSONResponse:
        if isinstance(exc, NotFound):
            return _error(404, str(exc))
        if isinstance(exc, (IndexStoreError, ModelError)):
            log.error("%s", exc)
            return _error(503, str(exc))
        return _error(400, str(exc))

    @app.exception_handler(Exception)
    async def _crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request to %s failed", request.url.path)
        return _error(500, "internal error; the server log has the details")

    @app.post("/ask", response_model=AskOut, responses=_ERRORS, summary="Answer a question with cited passages")
    def ask(body: AskIn) -> dict[str, Any]:
        """The `qa ask --json` object; its `context`, sent back as `previous`, makes the next question a follow-up."""
        return service.ask(
            body.question, k=body.k, mode=body.mode, filters=filters_of(body.filters), previous=body.previous_turn()
        )

    @app.post("/search", response_model=SearchOut, responses=_ERRORS, summary="Ranked passages only")
    def search(body: SearchIn) -> dict[str, Any]:
        return service.search(body.question, k=body.k, mode=body.mode, filters=filters_of(body.filters))

    @app.get(
        "/records/{pmid}",
        response_model=RecordOut,
        responses={404: {"model": ErrorOut, "description": "No such PMID in the index."}, 503: _ERRORS[503]},
        summary="One stored record",
    )
    def record(pmid: str) -> dict[str, Any]:
        return service.record(pmid)

    @app.get(
        "/records/{pmid}/cite",
        response_class=Response,
        responses={200: {"description": "The reference, as text or as a file for reference managers.",
                         "content": {t: {} for t in CITE_MEDIA_TYPES.values()}},
                   400: _ERRORS[400], 404: {"model": ErrorOut, "description": "No such PMID in the index."},
                   503: _ERRORS[503]},
        summary="A reference to one stored record: style vancouver|ama|apa, format text|ris|bibtex|csl-json|nbib",
    )  # fmt: skip
    def cite(pmid: str, style: str = "vancouver", format: str = "text") -> Response:
        text = service.cite([pmid], style=style, fmt=format)
        name = f"pmid-{pmid}.{CITE_SUFFIXES[format]}"
        disposition = {} if format == "text" else {"Content-Disposition": f'attachment; filename="{name}"'}
        return Response(text, media_type=CITE_MEDIA_TYPES[format], headers=disposition)

    @app.get("/health", response_model=HealthOut, responses={503: _ERRORS[503]}, summary="Ready to answer")
    def health() -> dict[str, Any]:
        return service.health()

    @app.get("/info", response_model=InfoOut, responses={503: _ERRORS[503]}, summary="What the index holds")
    def info() -> dict[str, Any]:
        return service.info()

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse((PAGE / "index.html").read_text(encoding="utf-8"))

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        if name not in PAGE_FILES:
            raise HTTPException(404, "not found")
        return FileResponse(PAGE / name, media_type=PAGE_FILES[name])

    return app


def is_loopback(host: str) -> bool:
    return host.strip("[]").lower() in {h.strip("[]") for h in LOOPBACK_HOSTS}


def listening_socket(host: str, port: int) -> socket.socket:
    """Bind before the model loads, so a taken port is one clear error and early requests wait in the backlog."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise QAError(f"cannot listen on {host!r}: {getattr(exc, 'strerror', None) or exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        hint = "; choose another with --port" if exc.errno == errno.EADDRINUSE else ""
        raise QAError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None
    return sock


def server_config(app: ASGIApp, *, verbose: bool = False, header_timeout: float = HEADER_TIMEOUT) -> Any:
    """uvicorn's settings for ``qa serve`` (and the tests' live server): the bounded protocol
    (``serve.protocol``), a 5 s keep-alive, no Server header. Requests in flight are capped by the guard,
    with the API's JSON 503, so uvicorn's own plain-text concurrency limit is off."""
    import uvicorn

    from .protocol import bounded_protocol

    return uvicorn.Config(
        app, log_level="info" if verbose else "warning", access_log=verbose, timeout_keep_alive=5,
        server_header=False, http=bounded_protocol(header_timeout),
    )  # fmt: skip


def run_server(app: ASGIApp, sock: socket.socket, *, verbose: bool = False) -> None:
    """Serve until Ctrl-C (uvicorn shuts down gracefully: requests in flight are finished)."""
    import uvicorn

    uvicorn.Server(server_config(app, verbose=verbose)).run(sockets=[sock])


__all__ = ["create_app", "openapi_document", "is_loopback", "listening_socket", "run_server", "server_config",
           "host_name", "MAX_BODY_BYTES", "MAX_IN_FLIGHT", "BODY_TIMEOUT"]  # fmt: skip
