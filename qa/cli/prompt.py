"""Prompt: what ``qa chat`` reads -- a prompt with history at a terminal, lines from a pipe otherwise."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def chat_lines(interactive: bool) -> Iterator[str]:
    """What ``qa chat`` reads: a prompt with history at a terminal, else lines from the pipe."""
    return _prompt_lines() if interactive else _piped_lines()


def _piped_lines() -> Iterator[str]:
    """Questions from a pipe, one per line; undecodable bytes are replaced instead of ending the chat."""
    stream = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else None
    if stream is None:
        yield from sys.stdin
        return
    for raw in stream:
        yield raw.decode("utf-8", errors="replace")


def _prompt_lines() -> Iterator[str]:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    state_home = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "pubmed-qa"
    try:
        state_home.mkdir(parents=True, exist_ok=True)
        history: Any = FileHistory(str(state_home / "chat_history"))
    except OSError:
        history = InMemoryHistory()
    session: Any = PromptSession(history=history)
    while True:
        try:
            yield session.prompt("qa> ")
        except KeyboardInterrupt:
            continue  # Ctrl-C clears the line, as in a shell
        except EOFError:
            return


__all__ = ["chat_lines"]
