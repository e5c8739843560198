"""Records: the core types every stage shares -- a PubMed citation, its sections, ingest events.

The parsers (``ingest``) produce these, the store keeps them, retrieval cites
them. Kept apart from the parsers so that nothing downstream imports a parser.
"""

from __future__ import annotations

import json
import re
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

from .citation import Author, Citation, citation_to_dict
from .errors import IngestError

# Limits: what one PubMed record plausibly holds, in one place. Beyond them a record is refused
# in one line (a Bad event with skip_bad), never truncated: it is not a PubMed record.
MAX_PMID_DIGITS = 12  # PubMed PMIDs have 8 digits; 12 keeps every PMID far inside SQLite's INTEGER
MAX_VERSION = 999  # PMID versions in PubMed are single digits
MAX_TITLE_CHARS = 10_000  # real titles: a few hundred characters
MAX_ABSTRACT_CHARS = 100_000  # real abstracts are a few thousand characters; beyond this is not an abstract
MAX_LABEL_CHARS = 500  # "BACKGROUND", "METHODS AND FINDINGS", ...
MAX_JOURNAL_CHARS = 1_000  # the longest journal titles are about 250 characters
MAX_DOI_CHARS = 1_000  # DOIs are unbounded by spec; real ones are under 200
MAX_MESH_TERM_CHARS = 500  # the longest MeSH descriptor is about 100 characters
MAX_MESH_TERMS = 1_000  # real records have a few dozen
MAX_AUTHORS = 10_000  # consortium papers list a few thousand; investigators (tens of thousands) are not authors
MAX_NAME_CHARS = 1_000  # a person's name part, a collective name, a publication type
MAX_AFFILIATION_CHARS = 5_000  # NEJM's shared affiliation paragraph is about 1,100 characters
MAX_SHORT_CHARS = 200  # volume, issue, pages, dates, language, PMC ID, ISO abbreviation
MAX_LIST_ITEMS = 500  # publication types, keywords
MAX_KEYWORD_CHARS = 500

FIELD_CAPS = {
    "title": MAX_TITLE_CHARS,
    "abstract": MAX_ABSTRACT_CHARS,
    "section label": MAX_LABEL_CHARS,
    "journal": MAX_JOURNAL_CHARS,
    "DOI": MAX_DOI_CHARS,
    "MeSH term": MAX_MESH_TERM_CHARS,
}


@dataclass(frozen=True)
class Section:
    """One labelled part of an abstract (``label`` is None for unstructured abstracts)."""

    label: str | None
    text: str


@dataclass(frozen=True)
class Record:
    """One PubMed citation, reduced to what retrieval and citation need."""

    pmid: str
    sections: tuple[Section, ...]
    title: str | None = None
    journal: str | None = None
    year: int | None = None
    mesh: tuple[str, ...] = ()
    doi: str | None = None
    version: int = 1
    citation: Citation = Citation()  # authors, issue, pages, study types (``qa.citation``); empty when unknown

    SEPARATOR = "\n"

    @property
    def abstract(self) -> str:
        """The whole abstract; chunk and hit offsets index into this string."""
        return self.SEPARATOR.join(s.text for s in self.sections)

    @property
    def section_spans(self) -> list[tuple[str | None, int, int]]:
        """``(label, start, end)`` of each section inside ``abstract``."""
        spans, pos = [], 0
        for s in self.sections:
            spans.append((s.label, pos, pos + len(s.text)))
            pos += len(s.text) + len(self.SEPARATOR)
        return spans

    @property
    def url(self) -> str:
        return pubmed_url(self.pmid)


@dataclass(frozen=True)
class Deletion:
    """PMIDs that a PubMed update file withdraws (``<DeleteCitation>``)."""

    pmids: tuple[str, ...]


@dataclass(frozen=True)
class Skipped:
    """A citation that was read but cannot be indexed, and why."""

    pmid: str | None
    reason: str


@dataclass(frozen=True)
class Bad:
    """A record (or the rest of a file) that could not be read, with ``skip_bad``: the one-line reason."""

    message: str


Event = Union[Record, Deletion, Skipped, Bad]


def normalize_pmid(value: object) -> str | None:
    """A PMID as PubMed writes it (ASCII digits, no leading zeros), or None if it is not one.

    At most ``MAX_PMID_DIGITS`` digits, so every PMID fits the store's SQLite INTEGER.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):  # compared as a number: str() of a huge int is itself an error
        return str(value) if 0 < value < 10**MAX_PMID_DIGITS else None
    text = str(value).strip().lstrip("0")
    if not text or len(text) > MAX_PMID_DIGITS or not text.isascii() or not text.isdigit():
        return None
    return text


def parse_version(value: object, where: str) -> int:
    """A PMID's version (XML ``Version``, JSONL ``"version"``): 1 when absent, else 1 to ``MAX_VERSION``."""
    if value is None or value == "":
        return 1
    number = normalize_pmid(value)
    if number is None or len(number) > len(str(MAX_VERSION)) or int(number) > MAX_VERSION:
        raise IngestError(f"{where}: PMID version must be a number from 1 to {MAX_VERSION} (got {preview(value)})")
    return int(number)


def pubmed_url(pmid: str) -> str:
    return f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/"


_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")  # C0/C1 controls that are not whitespace
_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON may escape lone surrogates ("\ud800"); UTF-8 cannot hold them


def valid_unicode(text: str) -> str:
    """``text`` with lone surrogates (undecodable bytes on a command line, "\\ud800" in JSON) as U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def clean_text(text: str) -> str:
    """Collapse the line wrapping and indentation that XML and MEDLINE add, and make the text safe to store.

    Control characters are dropped (whitespace ones collapse to a space) and lone surrogates become
    U+FFFD, so every stored string encodes as UTF-8; the text is otherwise kept exactly.
    """
    text = valid_unicode(_CONTROL.sub("", text))
    return " ".join(text.split())


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def too_long(where: str, pmid: str, field: str, size: int, cap: int | None = None) -> IngestError:
    """The one-line refusal of a field over ``cap`` characters (by default its cap in ``FIELD_CAPS``)."""
    limit = FIELD_CAPS[field] if cap is None else cap
    what = f"; not a PubMed {field}" if cap is None else ""
    return IngestError(f"{where}: PMID {pmid} has {_article(field)} {field} of {size:,} characters "
                       f"(more than {limit:,}){what}")  # fmt: skip


def field_text(value: object, field: str, where: str, pmid: str, cap: int | None = None) -> str | None:
    """One text field cleaned for storage (None if empty), refused beyond ``cap`` characters (by default
    its cap in ``FIELD_CAPS``), and refused unless it is text: a JSON list or object is not an abstract.

    The cap is checked on the raw text, before cleaning, so a huge value is never split into words.
    """
    if value is None:
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise IngestError(f"{where}: PMID {pmid}: {field} must be text (got {preview(value)})")
    text = str(value)
    if len(text) > (FIELD_CAPS[field] if cap is None else cap):
        raise too_long(where, pmid, field, len(text), cap)
    return clean_text(text) or None


def mesh_terms(values: Sequence[object], where: str, pmid: str) -> tuple[str, ...]:
    """MeSH terms cleaned for storage, empty ones dropped; too many, or one too long, is refused."""
    if len(values) > MAX_MESH_TERMS:
        raise IngestError(f"{where}: PMID {pmid} has {len(values):,} MeSH terms (more than {MAX_MESH_TERMS:,})")
    return tuple(t for t in (field_text(v, "MeSH term", where, pmid) for v in values if v) if t)


def checked(record: Record, where: str) -> Record:
    """Refuse a record whose sections together exceed ``MAX_ABSTRACT_CHARS`` (each field was capped on reading)."""
    size = sum(len(s.text) for s in record.sections)
    if size > MAX_ABSTRACT_CHARS:
        raise too_long(where, record.pmid, "abstract", size)
    return record


MAX_JSON_DEPTH = 32  # the deepest real shape (a JSONL record's citation authors) is 4

# A JSON string, written as an unrolled loop, or an unterminated one to the end of the text: the plain alternation
# ``"(?:[^"\\]|\\.)*"`` took 7 s over one 50 MB abstract, and either form without the end-of-text branch
# rescanned an unterminated string of escaped quotes from every quote (17 s for 80 KB); this takes 0.02 s on both.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_json(text: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` for files from disk: nesting deeper than ``max_depth`` and NaN/Infinity are refused
    (ValueError) before they build anything -- a 100,000-deep array would end in RecursionError."""
    depth = deepest = 0
    for bracket in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > max_depth:
                raise ValueError(f"JSON nested deeper than {max_depth} levels")
    return json.loads(text, parse_constant=_no_constant)


_SHORT = reprlib.Repr()


def preview(value: object) -> str:
    """A short repr for error messages: a 5,000-digit PMID must not make a 5,000-character line."""
    if isinstance(value, int) and value.bit_length() > 10_000:  # repr() itself refuses past 4,300 digits
        return f"an integer of {value.bit_length():,} bits"
    return _SHORT.repr(value)


def parse_year(text: str | None) -> int | None:
    """The first plausible publication year in ``text`` ("2015", "1998 Dec-1999 Jan")."""
    if not text:
        return None
    m = re.search(r"\b(1[6-9]\d\d|2\d\d\d)\b", text)
    return int(m.group(1)) if m else None


def _section(obj: dict, where: str, pmid: str) -> Section | None:
    text = field_text(obj.get("text") or "", "abstract", where, pmid)
    if not text:
        return None
    return Section(field_text(obj["label"], "section label", where, pmid) if obj.get("label") else None, text)


def _record_from_dict(obj: dict, where: str) -> Event:
    pmid = normalize_pmid(obj.get("pmid", ""))
    if pmid is None:
        raise IngestError(
            f'{where}: missing or non-numeric "pmid" ({preview(obj.get("pmid"))}; '
            f"a PMID is 1 to {MAX_PMID_DIGITS} digits)"
        )
    sections: tuple[Section, ...]
    if obj.get("sections"):
        try:
            sections = tuple(s for s in (_section(raw, where, pmid) for raw in obj["sections"]) if s)
        except (TypeError, KeyError, AttributeError):
            raise IngestError(f'{where}: "sections" must be a list of {{"label", "text"}} objects') from None
    else:
        abstract = obj.get("abstract")
        if abstract is not None and not isinstance(abstract, str):
            raise IngestError(f'{where}: "abstract" must be a string')
        text = field_text(abstract, "abstract", where, pmid)
        sections = (Section(None, text),) if text else ()
    if not sections:
        return Skipped(pmid, "no abstract")
    mesh = obj.get("mesh") or ()
    if isinstance(mesh, str):
        mesh = mesh.split(";")
    if not isinstance(mesh, (list, tuple)):
        raise IngestError(f'{where}: "mesh" must be a list of strings')
    return checked(
        Record(
            pmid=pmid,
            title=field_text(obj["title"], "title", where, pmid) if obj.get("title") else None,
            sections=sections,
            journal=field_text(obj["journal"], "journal", where, pmid) if obj.get("journal") else None,
            year=parse_year(str(obj.get("year") or "")),
            mesh=mesh_terms(mesh, where, pmid),
            doi=field_text(obj["doi"], "DOI", where, pmid) if obj.get("doi") else None,
            version=parse_version(obj.get("version"), where),
            citation=citation_from_dict(obj.get("citation"), where, pmid),
        ),
        where,
    )


def text_list(values: object, cap: int, name: str, where: str, pmid: str) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise IngestError(f"{where}: PMID {pmid}: {name} must be a list of strings")
    if len(values) > MAX_LIST_ITEMS:
        raise IngestError(f"{where}: PMID {pmid} has {len(values):,} {name} (more than {MAX_LIST_ITEMS:,})")
    return tuple(dict.fromkeys(t for t in (field_text(v, name, where, pmid, cap) for v in values) if t))


def small_number(value: object, top: int, name: str, where: str, pmid: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise IngestError(f"{where}: PMID {pmid}: {name} must be a whole number (got {preview(value)})")
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or len(text) > 4 or not 1 <= int(text) <= top:
        raise IngestError(f"{where}: PMID {pmid}: {name} must be 1 to {top} (got {preview(value)})")
    return int(text)


def checked_authors(authors: Sequence[Author], where: str, pmid: str) -> tuple[Author, ...]:
    """Authors with at least a name, affiliations kept for the first and the last only; too many is refused."""
    if len(authors) > MAX_AUTHORS:
        raise IngestError(f"{where}: PMID {pmid} has {len(authors):,} authors (more than {MAX_AUTHORS:,})")
    named = [a for a in authors if a.last or a.collective]
    return tuple(a if i in (0, len(named) - 1) else Author(a.last, a.fore, a.initials, a.collective)
                 for i, a in enumerate(named))  # fmt: skip


def author_from_dict(obj: object, where: str, pmid: str) -> Author:
    if not isinstance(obj, dict):
        raise IngestError(f'{where}: PMID {pmid}: each of "authors" must be an object')

    def name(key: str, cap: int = MAX_NAME_CHARS) -> str | None:
        return field_text(obj.get(key), f"author {key}", where, pmid, cap)

    return Author(name("last"), name("fore"), name("initials"), name("collective"),
                  name("affiliation", MAX_AFFILIATION_CHARS))  # fmt: skip


def citation_from_dict(obj: object, where: str, pmid: str) -> Citation:
    """The JSONL / stored shape (``citation_to_dict``), every field checked and capped; {} or None is empty."""
    if obj is None:
        return Citation()
    if not isinstance(obj, dict):
        raise IngestError(f'{where}: PMID {pmid}: "citation" must be an object')
    authors = obj.get("authors") or []
    if not isinstance(authors, list):
        raise IngestError(f'{where}: PMID {pmid}: "authors" must be a list')
    if len(authors) > MAX_AUTHORS:
        raise IngestError(f"{where}: PMID {pmid} has {len(authors):,} authors (more than {MAX_AUTHORS:,})")

    def short(key: str) -> str | None:
        return field_text(obj.get(key), key.replace("_", " "), where, pmid, MAX_SHORT_CHARS)

    return Citation(
        authors=checked_authors([author_from_dict(a, where, pmid) for a in authors], where, pmid),
        journal_iso=short("journal_iso"),
        volume=short("volume"),
        issue=short("issue"),
        pages=short("pages"),
        pub_date=short("pub_date"),
        month=small_number(obj.get("month"), 12, "month", where, pmid),
        day=small_number(obj.get("day"), 31, "day", where, pmid),
        electronic_date=short("electronic_date"),
        publication_types=text_list(obj.get("publication_types"), MAX_NAME_CHARS, "publication types", where, pmid),
        pmcid=short("pmcid"),
        language=short("language"),
        keywords=text_list(obj.get("keywords"), MAX_KEYWORD_CHARS, "keywords", where, pmid),
    )


def record_from_dict(obj: dict, where: str = "record") -> Event:
    """Build a Record from the JSONL shape ``{"pmid", "title", "abstract", ...}``, with every field capped."""
    try:
        return _record_from_dict(obj, where)
    except IngestError:
        raise
    except (TypeError, ValueError, OverflowError, AttributeError, KeyError) as exc:
        raise IngestError(f"{where}: unusable record ({type(exc).__name__}: {str(exc)[:100]})") from None


def record_to_dict(record: Record) -> dict:
    """The JSONL shape, lossless: ``record_from_dict(record_to_dict(r)) == r``."""
    return {
        "pmid": record.pmid,
        "version": record.version,
        "title": record.title,
        "abstract": record.abstract,
        "sections": [{"label": s.label, "text": s.text} for s in record.sections],
        "journal": record.journal,
        "year": record.year,
        "mesh": list(record.mesh),
        "doi": record.doi,
        **({"citation": citation_to_dict(record.citation)} if not record.citation.empty else {}),
    }


__all__ = [
    "Record",
    "Section",
    "Deletion",
    "Skipped",
    "Bad",
    "Event",
    "normalize_pmid",
    "load_json",
    "MAX_JSON_DEPTH",
    "parse_version",
    "pubmed_url",
    "clean_text",
    "valid_unicode",
    "parse_year",
    "record_from_dict",
    "record_to_dict",
    "field_text",
    "mesh_terms",
    "checked",
    "too_long",
    "preview",
    "FIELD_CAPS",
    "MAX_PMID_DIGITS",
    "MAX_VERSION",
    "MAX_TITLE_CHARS",
    "MAX_ABSTRACT_CHARS",
    "MAX_LABEL_CHARS",
    "MAX_JOURNAL_CHARS",
    "MAX_DOI_CHARS",
    "MAX_MESH_TERM_CHARS",
    "MAX_MESH_TERMS",
    "MAX_AUTHORS",
    "MAX_NAME_CHARS",
    "MAX_AFFILIATION_CHARS",
    "MAX_SHORT_CHARS",
    "text_list",
    "checked_authors",
    "citation_from_dict",
]
