"""Records: the core types every stage shares -- a PubMed citation, its sections, ingest events.

The parsers (``ingest``) produce these, the store keeps them, retrieval cites
them. Kept apart from the parsers so that nothing downstream imports a parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from .errors import IngestError


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
    """A PMID as PubMed writes it (ASCII digits, no leading zeros), or None if it is not one."""
    text = str(value).strip()
    if not text or not text.isascii() or not text.isdigit() or int(text) == 0:
        return None
    return str(int(text))


def pubmed_url(pmid: str) -> str:
    return f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/"


def clean_text(text: str) -> str:
    """Collapse the line wrapping and indentation that XML and MEDLINE add."""
    return " ".join(text.split())


def parse_year(text: str | None) -> int | None:
    """The first plausible publication year in ``text`` ("2015", "1998 Dec-1999 Jan")."""
    if not text:
        return None
    m = re.search(r"\b(1[6-9]\d\d|2\d\d\d)\b", text)
    return int(m.group(1)) if m else None


def _record_from_dict(obj: dict, where: str) -> Event:
    pmid = normalize_pmid(obj.get("pmid", ""))
    if pmid is None:
        raise IngestError(f'{where}: missing or non-numeric "pmid" ({obj.get("pmid")!r})')
    sections: tuple[Section, ...]
    if obj.get("sections"):
        try:
            sections = tuple(
                Section((str(s["label"]).strip() or None) if s.get("label") else None, clean_text(str(s["text"])))
                for s in obj["sections"]
                if clean_text(str(s.get("text") or ""))
            )
        except (TypeError, KeyError, AttributeError):
            raise IngestError(f'{where}: "sections" must be a list of {{"label", "text"}} objects') from None
    else:
        abstract = obj.get("abstract")
        if abstract is not None and not isinstance(abstract, str):
            raise IngestError(f'{where}: "abstract" must be a string')
        sections = (Section(None, clean_text(abstract)),) if abstract and clean_text(abstract) else ()
    if not sections:
        return Skipped(pmid, "no abstract")
    year = parse_year(str(obj.get("year") or ""))
    mesh = obj.get("mesh") or ()
    if isinstance(mesh, str):
        mesh = [m.strip() for m in mesh.split(";")]
    if not isinstance(mesh, (list, tuple)):
        raise IngestError(f'{where}: "mesh" must be a list of strings')
    title = obj.get("title")
    return Record(
        pmid=pmid,
        title=clean_text(str(title)) or None if title else None,
        sections=sections,
        journal=clean_text(str(obj["journal"])) or None if obj.get("journal") else None,
        year=year,
        mesh=tuple(str(m) for m in mesh if m),
        doi=str(obj["doi"]).strip() or None if obj.get("doi") else None,
        version=int(normalize_pmid(obj.get("version") or 1) or 1),
    )


def record_from_dict(obj: dict, where: str = "record") -> Event:
    """Build a Record from the JSONL shape ``{"pmid", "title", "abstract", ...}``."""
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
    }


__all__ = [
    "Record",
    "Section",
    "Deletion",
    "Skipped",
    "Bad",
    "Event",
    "normalize_pmid",
    "pubmed_url",
    "clean_text",
    "parse_year",
    "record_from_dict",
    "record_to_dict",
]
