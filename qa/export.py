"""Export: references to the records behind an answer, in the styles and files reference managers read.

Each format is written by a library that owns it, not by hand:
- text styles (Vancouver/NLM, AMA, APA) by ``citeproc-py`` from the bundled CSL styles (``qa/data/csl/``);
- CSL-JSON is the item citeproc-py renders, as the CSL schema defines it;
- RIS by ``rispy``, BibTeX by ``bibtexparser`` (v2);
- PubMed's .nbib (MEDLINE) through ``MEDLINE_FIELDS``, the same tags the MEDLINE reader takes in
  (``qa.ingest.files``), so a written file reads back into the same record.

Records without authors or a title (the shared PubMedQA corpus) still give a reference: what is known.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from importlib import resources
from typing import Any

from .errors import QAError
from .records import Record

STYLES = {"vancouver": "nlm-citation-sequence.csl", "ama": "american-medical-association.csl", "apa": "apa.csl"}
FORMATS = ("text", "ris", "bibtex", "csl-json", "nbib")
DEFAULT_STYLE = "vancouver"


def check_style(style: str, fmt: str = "text") -> None:
    if style not in STYLES:
        raise QAError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")
    if fmt not in FORMATS:
        raise QAError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


# ---------------------------------------------------------------- CSL-JSON


def _csl_author(author: Any) -> dict[str, str]:
    if author.collective:
        return {"literal": author.collective}
    out = {"family": author.last or ""}
    if author.fore or author.initials:
        out["given"] = author.fore or author.initials
    return out


def csl_item(record: Record) -> dict[str, Any]:
    """The record as a CSL-JSON item (https://citeproc-js.readthedocs.io/en/latest/csl-json/markup.html)."""
    c = record.citation
    item: dict[str, Any] = {"id": record.pmid, "type": "article-journal", "PMID": record.pmid, "URL": record.url}
    if record.title:
        item["title"] = record.title
    if record.journal:
        item["container-title"] = record.journal
    if c.journal_iso:
        item["container-title-short"] = c.journal_iso
    if c.authors:
        item["author"] = [_csl_author(a) for a in c.authors]
    if record.year:
        item["issued"] = {"date-parts": [[record.year] + ([c.month] if c.month else []) + ([c.day] if c.month and c.day
                                                                                          else [])]}  # fmt: skip
    first, last = _first_last_page(c.pages)
    page = f"{first}-{last}" if first and last else c.pages  # "616-7" in full: each style shortens its own way
    for key, value in (("volume", c.volume), ("issue", c.issue), ("page", page), ("DOI", record.doi),
                       ("PMCID", c.pmcid), ("language", c.language)):  # fmt: skip
        if value:
            item[key] = value
    if c.keywords:
        item["keyword"] = ", ".join(c.keywords)
    return item


# ---------------------------------------------------------------- text styles


def _rendering_item(record: Record, style: str) -> dict[str, Any]:
    item = csl_item(record)
    for key in ("PMCID", "language", "keyword"):  # not CSL variables citeproc-py knows; it warns on each
        item.pop(key, None)
    if style != "vancouver" and not record.citation.authors and record.title:
        # With no author, AMA and APA start with the title; citeproc-py then prints it a second time in its
        # own place (it does not suppress a substituted variable), so the title stands in as the author.
        item["author"] = [{"literal": item.pop("title")}]
    if style == "vancouver" and record.citation.pub_date:
        # NLM cites the date as PubMed gives it ("2018 May 17"); citeproc-py drops the spaces between date
        # parts ("2018May17"), so the style gets the date as a literal.
        item["issued"] = {"literal": record.citation.pub_date}
    return item


_NUMBER = re.compile(r"^\s*\d+\.\s*")  # citation-number styles start each entry with "1."; we number ourselves


def render(records: Sequence[Record], style: str = DEFAULT_STYLE) -> list[str]:
    """One plain-text reference per record, in order, in a CSL style (``STYLES``)."""
    from citeproc import Citation, CitationItem, CitationStylesBibliography, CitationStylesStyle, formatter
    from citeproc.source.json import CiteProcJSON

    check_style(style)
    path = resources.files("qa.data").joinpath("csl", STYLES[style])
    out = []
    for record in records:  # one bibliography each: a reference list keeps the caller's order, not the style's
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            source = CiteProcJSON([_rendering_item(record, style)])
            with resources.as_file(path) as csl:
                bibliography = CitationStylesBibliography(CitationStylesStyle(str(csl), validate=False), source,
                                                          formatter.plain)  # fmt: skip
            bibliography.register(Citation([CitationItem(record.pmid)]))
            text = "".join(str(entry) for entry in bibliography.bibliography())
        out.append(" ".join(_NUMBER.sub("", text).split()))
    return out


# ---------------------------------------------------------------- RIS, BibTeX


def _first_last_page(pages: str | None) -> tuple[str | None, str | None]:
    """ "1865-1876" -> 1865, 1876; "616-7" -> 616, 617 (PubMed shortens the last page); "e0123" -> e0123."""
    if not pages:
        return None, None
    first, _, last = pages.partition("-")
    first, last = first.strip(), last.strip()
    if last.isdigit() and first.isdigit() and len(last) < len(first):
        last = first[: len(first) - len(last)] + last
    return first or None, last or None


def ris_entry(record: Record) -> dict[str, Any]:
    c = record.citation
    entry: dict[str, Any] = {"type_of_reference": "JOUR", "accession_number": record.pmid, "urls": [record.url]}
    first, last = _first_last_page(c.pages)
    for key, value in (("title", record.title), ("journal_name", record.journal),
                       ("alternate_title2", c.journal_iso), ("volume", c.volume), ("number", c.issue),
                       ("start_page", first), ("end_page", last), ("doi", record.doi),
                       ("year", str(record.year) if record.year else None), ("language", c.language)):  # fmt: skip
        if value:
            entry[key] = value
    if c.authors:
        entry["authors"] = [a.collective or ", ".join(p for p in (a.last, a.fore or a.initials) if p)
                            for a in c.authors]  # fmt: skip
    if c.keywords:
        entry["keywords"] = list(c.keywords)
    if c.publication_types:
        entry["notes"] = ["Publication type: " + "; ".join(c.publication_types)]
    return entry


def ris(records: Sequence[Record]) -> str:
    import rispy

    class Writer(rispy.RisWriter):
        def set_header(self, count: int) -> str:
            return ""  # rispy numbers entries ("1."); RIS readers do not need it, and some show it

    return rispy.dumps([ris_entry(r) for r in records], implementation=Writer)


def _bibtex_name(author: Any) -> str:
    if author.collective:
        return "{" + author.collective + "}"  # a group's name is one name, not "last, first"
    return ", ".join(p for p in (author.last, author.fore or author.initials) if p)


def bibtex_fields(record: Record) -> dict[str, str]:
    c = record.citation
    first, last = _first_last_page(c.pages)
    fields = {"title": record.title, "journal": record.journal, "year": str(record.year) if record.year else None,
              "volume": c.volume, "number": c.issue, "pages": f"{first}--{last}" if first and last else first,
              "doi": record.doi, "pmid": record.pmid, "pmcid": c.pmcid, "url": record.url,
              "author": " and ".join(_bibtex_name(a) for a in c.authors) or None}  # fmt: skip
    return {k: v for k, v in fields.items() if v}


def bibtex(records: Sequence[Record]) -> str:
    import bibtexparser
    from bibtexparser.model import Entry, Field

    library = bibtexparser.Library()
    for record in records:
        fields = [Field(k, v) for k, v in bibtex_fields(record).items()]  # bibtexparser braces each value
        library.add(Entry("article", f"pmid{record.pmid}", fields))
    return bibtexparser.write_string(library)


# ---------------------------------------------------------------- MEDLINE (.nbib)

# The tags the MEDLINE reader takes in, in the order PubMed writes them.
MEDLINE_FIELDS = ("PMID", "DP", "TI", "AB", "FAU", "AU", "AD", "CN", "LA", "PT", "TA", "JT", "VI", "IP", "PG",
                  "LID", "PMC", "MH", "OT")  # fmt: skip
_WIDTH = 82  # PubMed wraps at about 80 columns; the reader joins continuation lines


def _medline_values(record: Record) -> dict[str, list[str]]:
    c = record.citation
    people = [a for a in c.authors if not a.collective]
    abstract = " ".join(f"{s.label}: {s.text}" if s.label else s.text for s in record.sections)
    values = {
        "PMID": [record.pmid], "DP": [c.pub_date or (str(record.year) if record.year else "")],
        "TI": [record.title or ""], "AB": [abstract],
        "FAU": [", ".join(p for p in (a.last, a.fore) if p) for a in people],
        "AU": [" ".join(p for p in (a.last, a.initials) if p) for a in people],
        "AD": [people[0].affiliation] if people and people[0].affiliation else [],
        "CN": [a.collective for a in c.authors if a.collective], "LA": [c.language or ""],
        "PT": list(c.publication_types), "TA": [c.journal_iso or ""], "JT": [record.journal or ""],
        "VI": [c.volume or ""], "IP": [c.issue or ""], "PG": [c.pages or ""],
        "LID": [f"{record.doi} [doi]"] if record.doi else [], "PMC": [c.pmcid or ""],
        "MH": list(record.mesh), "OT": list(c.keywords),
    }  # fmt: skip
    return {tag: [v for v in vs if v] for tag, vs in values.items()}


def _medline_lines(tag: str, value: str) -> list[str]:
    words, lines, line = value.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > _WIDTH - 6:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return [f"{tag:<4}- {lines[0]}"] + [f"      {rest}" for rest in lines[1:]]


def nbib(records: Sequence[Record]) -> str:
    """PubMed's MEDLINE format (what PubMed's "Cite > Download .nbib" gives), one blank line between records."""
    out = []
    for record in records:
        lines = []
        for tag, values in _medline_values(record).items():
            for value in values:
                lines += _medline_lines(tag, value)
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def export(records: Sequence[Record], fmt: str = "text", style: str = DEFAULT_STYLE) -> str:
    """All records in one format: text (numbered references), ris, bibtex, csl-json or nbib."""
    check_style(style, fmt)
    if fmt == "text":
        return "".join(f"{i}. {text}\n" for i, text in enumerate(render(records, style), start=1))
    if fmt == "ris":
        return ris(records)
    if fmt == "bibtex":
        return bibtex(records)
    if fmt == "csl-json":
        return json.dumps([csl_item(r) for r in records], ensure_ascii=False, indent=2) + "\n"
    return nbib(records)


__all__ = ["STYLES", "FORMATS", "DEFAULT_STYLE", "check_style", "csl_item", "render", "ris", "bibtex", "nbib",
           "export", "MEDLINE_FIELDS"]  # fmt: skip
