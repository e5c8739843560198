"""Service: one loaded index shared by the HTTP API, the MCP server and the browser page.

Requests arrive on many threads at once. Each one uses a single Retriever from start to end; a
rebuild published meanwhile is picked up by the next request, and the retriever it replaces is
closed when its last request finishes, so no request ever reads a closed snapshot.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..ask.conversation import Conversation
from ..ask.retrieve import Retriever
from ..citation import citation_to_dict
from ..errors import QAError
from ..export import DEFAULT_STYLE, check_style, export
from ..query import DEFAULT_MODE, MAX_PAGE_K, Filters, check_k, check_mode, check_question
from ..records import Record, normalize_pmid, record_to_dict
from ..store import IndexStore

log = logging.getLogger("qa.serve")

MAX_PREVIOUS_PMIDS = 50
RELOAD_CHECK_SECONDS = 1.0  # how often a request looks for a newer build (one small file read)


class NotFound(QAError):
    """The thing asked for (a PMID) is not in the index."""


@dataclass(frozen=True)
class Previous:
    """The earlier turn a follow-up continues: its question and, ideally, the PMIDs that answered it."""

    question: str
    pmids: tuple[str, ...] = ()


class Service:
    """Answers questions against the newest build of one index, from any number of threads."""

    def __init__(
        self, index: str | Path = "index", *, model: str | None = None, device: str | None = None,
        second_opinion: bool = True,
    ) -> None:  # fmt: skip
        """``second_opinion``: as ``Retriever``'s (e5 for weak answers and yes/no conclusions); False trades them
        for throughput (``bench/serve.py``: about 13 against 55 yes/no requests a second on 2 cores)."""
        self.store = IndexStore(index)
        # One encoder thread per request: concurrent requests, not one request's threads, fill the cores.
        self._current = Retriever(index, model=model, device=device, encoder_threads=1, second_opinion=second_opinion)
        self._current.warm_up()
        self._lock = threading.Lock()
        self._users: dict[int, int] = {}
        self._checked = time.monotonic()
        self.reload_error: str | None = None

    # -- one retriever per request, reloaded when a build publishes a new snapshot

    @contextlib.contextmanager
    def retriever(self) -> Iterator[Retriever]:
        with self._lock:
            self._maybe_reload()
            current = self._current
            self._users[id(current)] = self._users.get(id(current), 0) + 1
        try:
            yield current
        finally:
            with self._lock:
                left = self._users.pop(id(current)) - 1
                if left:
                    self._users[id(current)] = left
                elif current is not self._current:
                    current.close()

    def _maybe_reload(self) -> None:
        """Switch to a newer snapshot; a broken or incompatible one is reported, never served."""
        now = time.monotonic()
        if now - self._checked < RELOAD_CHECK_SECONDS:
            return
        self._checked = now
        old = self._current
        try:
            if self.store.current_dir() == old.snapshot.dir:
                return
            fresh = Retriever(self.store.path, embedder=old.embedder, fusion=old.fusion,
                              second_opinion=old.second_opinion or False)  # one e5, one lock
        except QAError as exc:
            if str(exc) != self.reload_error:
                log.warning("still serving %s: %s", old.snapshot.dir.name, exc)
            self.reload_error = str(exc)
            return
        self._current, self.reload_error = fresh, None
        log.info("now serving %s", fresh.snapshot.dir.name)
        if not self._users.get(id(old)):
            old.close()

    def close(self) -> None:
        with self._lock:
            self._current.close()

    # -- what the endpoints and tools call

    def ask(
        self,
        question: str,
        *,
        k: int = 5,
        mode: str = DEFAULT_MODE,
        filters: Filters | None = None,
        previous: Previous | None = None,
    ) -> dict[str, Any]:
        """The ``qa ask --json`` object, plus ``context``: what to send as ``previous`` with a follow-up."""
        question, k, checked_mode = check_question(question), check_k(k, MAX_PAGE_K), check_mode(mode)
        with self.retriever() as retriever:
            talk = Conversation(retriever, k=k, mode=checked_mode, filters=filters or Filters())
            if previous is not None:
                talk.resume(previous.question, _pmids(previous.pmids))
            response = talk.ask(question)
            return {**response.to_dict(), "context": talk.context()}

    def search(
        self, question: str, *, k: int = 5, mode: str = DEFAULT_MODE, filters: Filters | None = None
    ) -> dict[str, Any]:
        question, k, checked_mode = check_question(question), check_k(k, MAX_PAGE_K), check_mode(mode)
        with self.retriever() as retriever:
            hits = retriever.search(question, k, mode=checked_mode, filters=filters)
        return {"question": question, "mode": checked_mode, "hits": [h.to_dict() for h in hits]}

    def _record(self, pmid: str) -> Record:
        normal = normalize_pmid(pmid)
        if normal is None:
            raise NotFound(f"{str(pmid)[:40]!r} is not a PMID")
        with self.retriever() as retriever:
            record = retriever.snapshot.passages.record(normal)
        if record is None:
            raise NotFound(f"PMID {normal} is not in this index")
        return record

    def record(self, pmid: str) -> dict[str, Any]:
        """A stored record as the JSONL shape plus its PubMed link and study type."""
        record = self._record(pmid)
        return {**record_to_dict(record), "url": record.url, "study_type": record.citation.study_type,
                "citation": citation_to_dict(record.citation, compact=False)}  # fmt: skip

    def cite(self, pmids: Sequence[str], *, style: str = DEFAULT_STYLE, fmt: str = "text") -> str:
        """References to stored records (``qa.export``): a style's text, RIS, BibTeX, CSL-JSON or .nbib."""
        check_style(style, fmt)
        if not pmids or len(pmids) > MAX_PAGE_K:
            raise QAError(f"cite takes 1 to {MAX_PAGE_K} PMIDs")
        return export([self._record(p) for p in pmids], fmt, style)

    def info(self) -> dict[str, Any]:
        """The ``qa info --json`` object of the index, plus the snapshot being served; when the index on disk
        cannot be read (damaged while serving), the facts of the snapshot still answering, with the error."""
        with self.retriever() as retriever:
            try:
                facts = self.store.describe()
            except QAError as exc:
                manifest = retriever.manifest
                facts = {"index": str(self.store.path), "snapshot": retriever.snapshot.dir.name,
                         "model": manifest.model, "records": manifest.records, "passages": manifest.chunks}  # fmt: skip
                self.reload_error = self.reload_error or str(exc)
            facts["serving"] = retriever.snapshot.dir.name
            facts["second_opinion"] = retriever.second_opinion is not None  # which readers give the bottom lines
        facts["reload_error"] = self.reload_error
        return facts

    def health(self) -> dict[str, Any]:
        """Ready to answer: "ok", or "degraded" when a newer build could not be loaded (the old one answers)."""
        with self.retriever() as retriever:
            return {"status": "degraded" if self.reload_error else "ok", "snapshot": retriever.snapshot.dir.name,
                    "records": retriever.manifest.records, "reload_error": self.reload_error}  # fmt: skip


def _pmids(values: Sequence[str]) -> tuple[str, ...]:
    if len(values) > MAX_PREVIOUS_PMIDS:
        raise QAError(f"previous.pmids holds at most {MAX_PREVIOUS_PMIDS} PMIDs")
    pmids = tuple(normalize_pmid(v) for v in values)
    bad = [str(v)[:20] for v, p in zip(values, pmids) if p is None]
    if bad:
        raise QAError(f"previous.pmids: {bad[0]!r} is not a PMID")
    return tuple(p for p in pmids if p)


__all__ = ["Service", "Previous", "NotFound"]
