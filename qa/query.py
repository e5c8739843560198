"""Query: what a question goes in with and comes back as -- modes, filters, hits, the cited answer.

Every stage after the store speaks in these types, and every check of a
question's inputs (empty question, k, mode) happens here once, so the API,
the CLI and chat refuse bad input with the same words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .citation import Citation, citation_to_dict, type_names
from .errors import QAError
from .records import pubmed_url, valid_unicode

Mode = Literal["dense", "lexical", "hybrid"]
MODES: tuple[str, ...] = ("dense", "lexical", "hybrid")
DEFAULT_MODE: Mode = "hybrid"
MAX_QUESTION_CHARS = 2000


def check_mode(mode: str) -> Mode:
    if mode not in MODES:
        raise QAError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode  # type: ignore[return-value]


def check_question(question: str | None) -> str:
    """The question with its white space folded, cut to ``MAX_QUESTION_CHARS``; an empty one is refused."""
    text = " ".join(valid_unicode(question or "").split())
    if not text:
        raise QAError("the question is empty")
    return text[:MAX_QUESTION_CHARS]


MAX_CHAT_K = 1000  # `/k N` in a conversation
MAX_PAGE_K = 50  # one HTTP or MCP request: a page of results, not a dump of the index


def check_k(k: int, most: int | None = None) -> int:
    """Passages to return: at least 1, and at most ``most`` where a surface bounds it (None: the library)."""
    if k < 1 or (most is not None and k > most):
        raise QAError("k must be at least 1" if most is None else f"k must be between 1 and {most}")
    return k


@dataclass(frozen=True)
class Filters:
    """Restrict retrieval to some records; applied inside the search so k results still come back."""

    year_from: int | None = None
    year_to: int | None = None
    mesh: tuple[str, ...] = ()  # every term must be a MeSH descriptor of the record (case-insensitive)
    journal: str | None = None  # case-insensitive substring of the journal name
    types: tuple[str, ...] = ()  # study types, any of them: keys ("rct") or PubMed names, held as PubMed names

    def __post_init__(self) -> None:
        types = (self.types,) if isinstance(self.types, str) else self.types
        if not all(isinstance(t, str) for t in types):
            raise QAError("Filters(types=...) takes study types: rct, meta-analysis, ... or PubMed names")
        keys = [part for t in types for part in valid_unicode(t)[:MAX_QUESTION_CHARS].split(",")]
        try:
            object.__setattr__(self, "types", type_names(keys))
        except ValueError as exc:
            raise QAError(str(exc)) from None
        if self.journal is not None:
            object.__setattr__(self, "journal", valid_unicode(str(self.journal))[:MAX_QUESTION_CHARS])
        for name in ("year_from", "year_to"):
            year = getattr(self, name)
            if year is not None and not (isinstance(year, int) and 0 <= year <= 9999):
                raise QAError(f"{name} must be a year from 0 to 9999, not {str(year)[:20]!r}")
        # A bare string would be read as a tuple of letters and silently match nothing.
        if isinstance(self.mesh, str):
            object.__setattr__(self, "mesh", (self.mesh,) if self.mesh.strip() else ())
        elif not isinstance(self.mesh, tuple):
            if not all(isinstance(m, str) for m in self.mesh):
                raise QAError("Filters(mesh=...) takes a MeSH descriptor or a list of them")
            object.__setattr__(self, "mesh", tuple(self.mesh))
        object.__setattr__(self, "mesh", tuple(valid_unicode(m)[:MAX_QUESTION_CHARS] for m in self.mesh))
        if self.year_from is not None and self.year_to is not None and self.year_from > self.year_to:
            raise QAError(f"year_from {self.year_from} is after year_to {self.year_to}")

    def __bool__(self) -> bool:
        return bool(self.year_from or self.year_to or self.mesh or self.journal or self.types)

    def describe(self) -> str:
        parts = []
        if self.year_from or self.year_to:
            parts.append(f"year {self.year_from or ''}-{self.year_to or ''}")
        parts += [f"MeSH {m!r}" for m in self.mesh]
        if self.journal:
            parts.append(f"journal ~ {self.journal!r}")
        if self.types:
            parts.append("type " + " or ".join(repr(t) for t in self.types))
        return ", ".join(parts) or "none"


@dataclass(frozen=True)
class Hit:
    """One ranked passage with everything needed to cite it."""

    rank: int
    pmid: str
    title: str | None
    journal: str | None
    year: int | None
    section: str | None
    text: str
    score: float
    doi: str | None = None
    start: int = 0  # offsets of ``text`` inside the record's abstract
    end: int = 0
    highlight: tuple[int, int] | None = None  # best-matching sentence, offsets into ``text``
    sentences: tuple[tuple[int, int, float], ...] = field(default=(), repr=False)  # (start, end, cosine) in ``text``
    cosine: float | None = None  # of the question and this passage
    relevance: float | None = None  # the relevance model's probability that this record answers the question
    relevance_label: str | None = None  # "strong" (an answer) or "weak" (less related); see qa.ask.relevance
    signals: tuple[float, ...] = field(default=(), repr=False)  # what the relevance was judged on (FEATURES order)
    citation: Citation = field(default=Citation(), repr=False)  # authors, issue, pages, publication types

    @property
    def url(self) -> str:
        return pubmed_url(self.pmid)

    @property
    def study_type(self) -> str | None:
        """Short: "RCT", "Meta-analysis", "Review", ... (``qa.citation.STUDY_TYPES``); None if PubMed gives none."""
        return self.citation.study_type

    @property
    def best_sentence(self) -> str | None:
        return self.text[self.highlight[0] : self.highlight[1]] if self.highlight else None

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape of ``qa ask --json`` (keys are only ever added)."""
        return {
            "rank": self.rank,
            "pmid": self.pmid,
            "title": self.title,
            "journal": self.journal,
            "year": self.year,
            "section": self.section,
            "text": self.text,
            "score": round(self.score, 4),
            "url": self.url,
            "doi": self.doi,
            "best_sentence": self.best_sentence,
            "relevance": round(self.relevance, 4) if self.relevance is not None else None,
            "relevance_label": self.relevance_label,
            "study_type": self.study_type,
            "authors": [a.short for a in self.citation.authors],
            "citation": citation_to_dict(self.citation, compact=False),
        }


@dataclass(frozen=True)
class AnswerSentence:
    text: str
    pmid: str
    section: str | None
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "pmid": self.pmid, "section": self.section, "score": round(self.score, 4)}


@dataclass(frozen=True)
class Answer:
    """``text`` is the sentences in order, each followed by ``[PMID]``; empty when nothing answers."""

    sentences: tuple[AnswerSentence, ...] = ()
    verdict: str | None = None  # yes/no questions: "yes", "no", "mixed" or "unclear"; None for other questions
    verdict_pmids: tuple[str, ...] = ()  # the records the verdict was read from, best first

    @property
    def text(self) -> str:
        return " ".join(f"{s.text} [{s.pmid}]" for s in self.sentences)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "sentences": [s.to_dict() for s in self.sentences], "verdict": self.verdict,
                "verdict_pmids": list(self.verdict_pmids)}  # fmt: skip


@dataclass(frozen=True)
class Response:
    """One answered question: the cited answer block and the ranked passages behind it."""

    question: str
    hits: list[Hit]
    answer: Answer = field(default_factory=Answer)
    mode: str = "hybrid"
    query: str | None = None  # what was searched, when a follow-up was expanded with earlier context
    filters: Filters = field(default_factory=Filters)
    note: str | None = None  # why no hits, why uncertain or no bottom line, or how a follow-up was read

    def to_dict(self) -> dict[str, Any]:
        """The ``qa ask --json`` object: ``question``, ``query``, ``mode``, ``answer``, ``hits``, ``note``."""
        return {
            "question": self.question,
            "query": self.query or self.question,
            "mode": self.mode,
            "answer": self.answer.to_dict(),
            "hits": [h.to_dict() for h in self.hits],
            "note": self.note,
        }


__all__ = [
    "Mode",
    "MODES",
    "DEFAULT_MODE",
    "MAX_QUESTION_CHARS",
    "check_mode",
    "check_question",
    "check_k",
    "MAX_CHAT_K",
    "MAX_PAGE_K",
    "Filters",
    "Hit",
    "AnswerSentence",
    "Answer",
    "Response",
]
