"""The Model Context Protocol server (``qa mcp``): the index as tools an AI assistant can call.

It speaks MCP over stdio with the official SDK. Every result is structured content that keeps each
passage's PMID, title, year, section, text and PubMed link, so the assistant can cite them. Stdout
belongs to the protocol: nothing else may print there.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from .. import __version__
from ..errors import QAError
from ..query import MAX_PAGE_K, MAX_QUESTION_CHARS
from .models import AskOut, FiltersIn, K, Question, RecordOut, SearchOut, filters_of
from .service import Previous, Service

INSTRUCTIONS = (
    "Searches the user's own collection of PubMed abstracts. Use search_abstracts for passages, ask for a short "
    "extractive answer (every sentence quoted from an abstract and cited by PMID), get_record for a whole abstract, "
    "cite for references in a style or a reference manager's format. "
    "Cite what you use by PMID with its URL; say so when nothing relevant is found rather than answering from memory."
)

PmidArgument = Annotated[str, Field(max_length=40, description="A PubMed ID, such as 25589616.")]


def build_server(service: Service, *, verbose: bool = False) -> MCPServer:
    server = MCPServer(
        "pubmed-qa", version=__version__, instructions=INSTRUCTIONS, log_level="INFO" if verbose else "WARNING"
    )

    @server.tool()
    def search_abstracts(question: Question, k: K = 5, filters: Optional[FiltersIn] = None) -> SearchOut:
        """Find the passages of the indexed PubMed abstracts that best match a question (hybrid BM25 + embeddings).

        Each hit has its PMID, title, authors, journal, year, study type, section, text, the sentence closest to
        the question, its PubMed URL and citation. Filters: year_from, year_to, mesh (all must match), journal
        (part of the name), types (study types, any of them: rct, meta-analysis, systematic-review, review, ...).
        """
        return SearchOut(**_answered(lambda: service.search(question, k=k, filters=filters_of(filters))))

    @server.tool()
    def ask(
        question: Question,
        previous: Annotated[
            Optional[str],
            Field(max_length=MAX_QUESTION_CHARS, description="The earlier question, when this one follows up on it."),
        ] = None,
        k: K = 5,
    ) -> AskOut:
        """Answer a question from the indexed abstracts: cited answer sentences (quoted, never generated) and the
        ranked passages behind them. An empty answer with a note means nothing relevant is indexed."""
        turn = Previous(previous) if previous else None
        return AskOut(**_answered(lambda: service.ask(question, k=k, previous=turn)))

    @server.tool()
    def get_record(pmid: PmidArgument) -> RecordOut:
        """The stored record of one PMID: title, journal, year, DOI, MeSH terms, the abstract by section, and its
        citation (authors, journal abbreviation, volume, issue, pages, publication types) and study type."""
        return RecordOut(**_answered(lambda: service.record(pmid)))

    @server.tool()
    def cite(
        pmids: Annotated[list[PmidArgument], Field(min_length=1, max_length=MAX_PAGE_K, description="PubMed IDs.")],
        style: Literal["vancouver", "ama", "apa"] = "vancouver",
        format: Literal["text", "ris", "bibtex", "csl-json", "nbib"] = "text",
    ) -> str:
        """References to indexed records: numbered text in a style (Vancouver/NLM, AMA, APA), or a file for
        reference managers (RIS, BibTeX, CSL-JSON, PubMed .nbib)."""
        return _answered(lambda: service.cite(pmids, style=style, fmt=format))

    return server


def _answered(call: Any) -> Any:
    """The tool's result, or the refusal as a tool error the assistant can read (bad input, unknown PMID)."""
    try:
        return call()
    except QAError as exc:
        raise ToolError(str(exc)) from None


__all__ = ["build_server"]
