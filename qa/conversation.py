"""Conversation: follow-up questions understood in the context of the previous turn (``qa chat``).

A follow-up such as "and what about its side effects?" carries too little to
search on its own, so the previous question of the same topic is searched
with it. ``new_topic()`` forgets the context. The rule is deliberately
simple and visible: every response says which query was actually searched.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field, replace

from .errors import QAError
from .query import DEFAULT_MODE, Filters, Mode, Response, check_mode
from .retrieve import Retriever
from .store.lexical import STOPWORDS

CHAT_HELP = """Type a question and press Enter. A follow-up ("and its side effects?") is searched
together with the previous question; /new starts a fresh topic. Commands:
  /new                 start a new topic
  /k N                 show N passages per answer (now {k})
  /mode M              hybrid, dense or lexical (now {mode})
  /filter ...          e.g. /filter year>=2010 year<=2015 mesh="Breast Neoplasms" journal=lancet
  /filter off          remove filters (now: {filters})
  /all                 toggle several passages per abstract (now {all})
  /reload              switch to a newer build of the index
  /help                this text
  /quit                leave (or Ctrl-D)"""
MAX_K = 1000

_OPENERS = re.compile(
    r"^(and|but|also|so|then|what about|how about|what of|and what|and how|same for|what else|any|why|how come)\b",
    re.IGNORECASE,
)
_REFERRING = frozenset("it its it's they them their theirs this that these those such he she his her there".split())
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9+\-]*")


def is_follow_up(question: str) -> bool:
    """True when a question leans on the previous one (opens with "and", "what about", refers back, or is tiny)."""
    words = [w.lower() for w in _WORD.findall(question)]
    if not words:
        return False
    content = [w for w in words if w not in STOPWORDS and w not in _REFERRING]
    if _OPENERS.match(question.strip()):
        return True
    if any(w in _REFERRING for w in words) and len(content) <= 4:
        return True
    return len(content) <= 2  # "side effects?", "in children?"


def parse_filters(text: str, current: Filters | None = None) -> Filters:
    """Parse ``year>=2010 year<=2015 mesh="Breast Neoplasms" journal=lancet`` (or ``off``) into Filters."""
    text = text.strip()
    if text in ("off", "none", "clear"):
        return Filters()
    filters = current or Filters()
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise QAError(f"cannot read filter {text!r} ({exc})") from None
    for token in tokens:
        m = re.fullmatch(r"(year|mesh|journal)\s*(>=|<=|=)\s*(.+)", token, re.IGNORECASE)
        if not m:
            raise QAError(f"cannot read filter {token!r}; use year>=Y, year<=Y, year=Y, mesh=TERM, journal=TEXT or off")
        key, op, value = m.group(1).lower(), m.group(2), m.group(3).strip()
        if key == "year":
            if not (value.isascii() and value.isdigit() and len(value) <= 4):
                raise QAError(f"year must be a number, not {value!r}")
            year = int(value)
            if op in (">=", "="):
                filters = replace(filters, year_from=year)
            if op in ("<=", "="):
                filters = replace(filters, year_to=year)
        elif op != "=":
            raise QAError(f"{key} takes '=', not {op!r}")
        elif key == "mesh":
            filters = replace(filters, mesh=(*filters.mesh, value))
        else:
            filters = replace(filters, journal=value)
    return filters


@dataclass
class Conversation:
    """Questions in a row against one Retriever, with the settings ``qa chat`` can change."""

    retriever: Retriever
    k: int = 5
    mode: Mode = DEFAULT_MODE
    filters: Filters = field(default_factory=Filters)
    all_passages: bool = False
    topic: list[str] = field(default_factory=list)  # standalone questions so far; the last one anchors follow-ups

    def query_for(self, question: str) -> str | None:
        """The expanded query for a follow-up, or None when the question stands alone."""
        if self.topic and is_follow_up(question):
            return f"{self.topic[-1]} {question}"
        return None

    def ask(self, question: str) -> Response:
        question = " ".join(question.split())
        query = self.query_for(question)
        response = self.retriever.ask(
            question, self.k, mode=self.mode, filters=self.filters, all_passages=self.all_passages, query=query
        )
        if query is None:  # a standalone question becomes the anchor for the follow-ups after it
            self.topic.append(question)
        return response

    def new_topic(self) -> None:
        self.topic.clear()

    def set_mode(self, mode: str) -> None:
        self.mode = check_mode(mode)

    def command(self, line: str) -> str | None:
        """Run a chat command such as ``/k 3``; returns what to tell the user, or None to quit."""
        cmd, _, arg = line.strip().partition(" ")
        arg = arg.strip()
        if cmd in ("/quit", "/exit", "/q"):
            return None
        if cmd == "/help":
            state = "on" if self.all_passages else "off"
            return CHAT_HELP.format(k=self.k, mode=self.mode, filters=self.filters.describe(), all=state)
        if cmd == "/new":
            self.new_topic()
            return "New topic."
        if cmd == "/k":
            if not (arg.isascii() and arg.isdigit() and 1 <= int(arg) <= MAX_K):
                raise QAError(f"Usage: /k N  (N between 1 and {MAX_K})")
            self.k = int(arg)
            return f"Showing {self.k} passages per answer."
        if cmd == "/mode":
            self.set_mode(arg)
            return f"Mode: {self.mode}."
        if cmd == "/filter":
            if arg:
                self.filters = parse_filters(arg, self.filters)
            return f"Filters: {self.filters.describe()}."
        if cmd == "/all":
            self.all_passages = not self.all_passages
            return f"Several passages per abstract: {'on' if self.all_passages else 'off'}."
        if cmd == "/reload":
            return "Switched to the newest build." if self.retriever.reload() else "Already on the newest build."
        raise QAError(f"Unknown command {cmd}; type /help")


__all__ = ["Conversation", "is_follow_up", "parse_filters", "CHAT_HELP", "DEFAULT_MODE"]
