"""MCP over stdio, with every line checked before the SDK sees it: the client gets a reply to every request.

The SDK's stdio transport hands each line to its JSON-RPC parser and, for a line it cannot use, sends
nothing back, so the client waits forever (measured: a lone surrogate, ``"jsonrpc": "1.0"``,
``"params": "x"`` and a batch all went unanswered). Here each line is read with a length cap, parsed,
and checked as a JSON-RPC 2.0 message; one that cannot be used is answered at once with a JSON-RPC
error (its ``id`` when it has one), and a usable one reaches the SDK re-serialised, with lone surrogates
as U+FFFD. ``tools/call`` arguments are checked as strictly as the HTTP API checks its bodies (JSON
types as written: ``"5"`` and ``true`` are not a ``k``; no unknown arguments). When the client goes away
(stdin closed, stdout a broken pipe) the server ends quietly.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from typing import IO, Any

from ..records import valid_unicode

MAX_LINE_BYTES = 1024 * 1024  # one JSON-RPC message; the largest real request (a question and filters) is ~3 KB
_SKIP = 64 * 1024

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602

# tools/call: each tool's arguments and the JSON types they take (as the tool schemas publish them).
_TEXT, _INT, _OBJECT, _LIST = (str,), (int,), (dict,), (list,)
TOOL_ARGUMENTS: dict[str, dict[str, tuple[type, ...]]] = {
    "search_abstracts": {"question": _TEXT, "k": _INT, "filters": _OBJECT + (type(None),)},
    "ask": {"question": _TEXT, "previous": _TEXT + (type(None),), "k": _INT},
    "get_record": {"pmid": _TEXT},
    "cite": {"pmids": _LIST, "style": _TEXT, "format": _TEXT},
}
REQUIRED = {"search_abstracts": {"question"}, "ask": {"question"}, "get_record": {"pmid"}, "cite": {"pmids"}}


class Replies:
    """Whole lines to stdout under one lock: the SDK's answers and this guard's errors never interleave."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.gone = False

    def write(self, text: str) -> int:
        with self.lock:
            if self.gone:
                return len(text)
            try:
                self.out.write(text.encode("utf-8", "replace"))
            except (BrokenPipeError, OSError, ValueError):
                self.gone = True  # the client went away: nothing more to say to it
        return len(text)

    def flush(self) -> None:
        with self.lock:
            if not self.gone:
                try:
                    self.out.flush()
                except (BrokenPipeError, OSError, ValueError):
                    self.gone = True

    def error(self, request_id: Any, code: int, message: str) -> None:
        reply = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message[:500]}}
        self.write(json.dumps(reply) + "\n")
        self.flush()


def _clean(value: Any) -> Any:
    """The same JSON with every string valid Unicode (a lone surrogate from "\\ud800" becomes U+FFFD)."""
    if isinstance(value, str):
        return valid_unicode(value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {valid_unicode(k): _clean(v) for k, v in value.items()}
    return value


def _argument_problem(name: str, arguments: Any) -> str | None:
    """Why a tool's arguments cannot be used, or None."""
    if name not in TOOL_ARGUMENTS:
        return None  # an unknown tool: the SDK answers that itself
    if not isinstance(arguments, dict):
        return "arguments must be an object"
    allowed = TOOL_ARGUMENTS[name]
    unknown = sorted(set(arguments) - set(allowed))
    if unknown:
        return f"unknown argument {unknown[0]!r} for {name}; it takes {', '.join(allowed)}"
    missing = sorted(REQUIRED[name] - set(arguments))
    if missing:
        return f"missing argument {missing[0]!r} for {name}"
    for key, value in arguments.items():
        kinds = allowed[key]
        if isinstance(value, bool) or not isinstance(value, kinds):
            wanted = {str: "a string", int: "an integer", dict: "an object", list: "a list"}[kinds[0]]
            return f"{key} must be {wanted}, not {json.dumps(value)[:40]}"
    return None  # values in range are the tool's to judge: its refusals come back as tool errors, as before


def check_message(line: bytes) -> tuple[str | None, tuple[Any, int, str] | None]:
    """A line from the client: the text to hand to the SDK, or the error to answer (id, code, message)."""
    try:
        message = json.loads(line.decode("utf-8", "replace"))
    except ValueError:
        return None, (None, PARSE_ERROR, "not JSON")
    except RecursionError:
        return None, (None, PARSE_ERROR, "JSON nested too deep")
    if isinstance(message, list):
        return None, (None, INVALID_REQUEST, "batches are not supported: send one JSON-RPC message per line")
    if not isinstance(message, dict):
        return None, (None, INVALID_REQUEST, "a JSON-RPC message is an object")
    request_id = message.get("id")
    if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
        request_id = None
    if message.get("jsonrpc") != "2.0":
        return None, (request_id, INVALID_REQUEST, 'this server speaks JSON-RPC "2.0" only')
    method = message.get("method")
    if method is None and ("result" in message or "error" in message):
        return json.dumps(_clean(message), ensure_ascii=False), None  # a response to the server's own request
    if not isinstance(method, str):
        return None, (request_id, INVALID_REQUEST, "method must be a string")
    params = message.get("params", {})
    if not isinstance(params, dict):
        return None, (request_id, INVALID_PARAMS, "params must be an object")
    if method == "prompts/get":
        return None, (request_id, INVALID_PARAMS, "this server has no prompts")
    if method == "tools/call":
        problem = _argument_problem(str(params.get("name")), params.get("arguments", {}))
        if problem is not None:
            return None, (request_id, INVALID_PARAMS, problem)
    return json.dumps(_clean(message), ensure_ascii=False), None


class CheckedStdin:
    """What the SDK reads as stdin: one usable JSON-RPC line at a time (``readline``); the rest is answered here."""

    def __init__(self, raw: IO[bytes], replies: Replies, max_line: int = MAX_LINE_BYTES) -> None:
        self.raw, self.replies, self.max_line = raw, replies, max_line

    def readline(self) -> str:
        while True:
            try:
                line = self.raw.readline(self.max_line + 1)
            except (OSError, ValueError):
                return ""  # stdin gone: the end
            if not line:
                return ""
            if len(line) > self.max_line and not line.endswith(b"\n"):
                while line and not line.endswith(b"\n"):  # skip the rest, a bounded piece at a time
                    line = self.raw.readline(_SKIP)
                self.replies.error(None, INVALID_REQUEST, f"a message over {self.max_line:,} bytes; refused")
                continue
            if not line.strip():
                continue
            text, problem = check_message(line)
            if problem is not None:
                self.replies.error(*problem)
                continue
            return text + "\n"

    def close(self) -> None:
        pass


def run(server: Any) -> None:
    """Serve ``server`` (an ``MCPServer``) over this process's stdin and stdout until the client goes away."""
    import anyio
    from mcp.server.stdio import stdio_server

    replies = Replies(sys.stdout.buffer)
    stdin = anyio.wrap_file(CheckedStdin(sys.stdin.buffer, replies))  # type: ignore[arg-type]
    stdout = anyio.wrap_file(replies)  # type: ignore[arg-type]
    lowlevel = server._lowlevel_server  # the SDK's own run_stdio_async does the same, with its own streams

    async def main() -> None:
        async with stdio_server(stdin=stdin, stdout=stdout) as (read_stream, write_stream):
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())

    try:
        anyio.run(main)
    finally:
        _quiet_stdout()


def _quiet_stdout() -> None:
    """Point stdout at the null device, so that the interpreter's last flush cannot end in a BrokenPipeError
    traceback when the client has closed its end."""
    with contextlib.suppress(BrokenPipeError, OSError, ValueError):
        sys.stdout.flush()
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


__all__ = ["run", "check_message", "CheckedStdin", "Replies", "MAX_LINE_BYTES", "TOOL_ARGUMENTS"]
