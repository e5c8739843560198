"""Citation: what a reference needs beyond the abstract -- authors, journal issue, pages, dates, study types.

Plain data with no imports from the rest of the package (``records`` holds a ``Citation``; the field caps
and the checked reading of the JSON shape live in ``records`` with every other cap). Read at ingest from
PubMed XML (``AuthorList``, ``JournalIssue``, ``Pagination``, ``PublicationTypeList``,
...), MEDLINE (``AU``/``FAU``, ``VI``, ``IP``, ``PG``, ``PT``, ...) and JSONL (``"citation"``: the shape of
``citation_to_dict``), stored with the record, and written out as references by ``qa.export``. Every field
is optional: the shared PubMedQA corpus has no titles or authors, by design, and keeps working.

Study types are PubMed's own publication-type names; ``STUDY_TYPES`` maps each filter key (``--type rct``)
to the names it matches and the short label a hit shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Author:
    """One author in PubMed's order: a person (``last``, ``fore``, ``initials``) or a group (``collective``)."""

    last: str | None = None
    fore: str | None = None
    initials: str | None = None
    collective: str | None = None
    affiliation: str | None = None  # kept for the first and the last author only

    @property
    def short(self) -> str:
        """As PubMed lists it: "O'Byrne PM", or the group's name."""
        if self.collective:
            return self.collective
        return " ".join(p for p in (self.last, self.initials) if p)


@dataclass(frozen=True)
class Citation:
    """The reference fields of a record; ``Record.title``, ``journal``, ``year`` and ``doi`` hold the rest."""

    authors: tuple[Author, ...] = ()
    journal_iso: str | None = None  # "N Engl J Med"
    volume: str | None = None
    issue: str | None = None
    pages: str | None = None  # MedlinePgn ("1865-1876"), else an ELocationID that is not a DOI ("e0123")
    pub_date: str | None = None  # as given: "2018 May 17", or a MedlineDate ("1998 Dec-1999 Jan")
    month: int | None = None
    day: int | None = None
    electronic_date: str | None = None  # YYYY-MM-DD (ArticleDate), when PubMed has one
    publication_types: tuple[str, ...] = ()  # PubMed's names: "Randomized Controlled Trial", ...
    pmcid: str | None = None
    language: str | None = None  # PubMed's three-letter code: "eng"
    keywords: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self == Citation()

    @property
    def study_type(self) -> str | None:
        return study_type(self.publication_types)

    def author_line(self, most: int = 3) -> str | None:
        """ "O'Byrne PM, FitzGerald JM, Bateman ED, et al." -- what a hit shows."""
        if not self.authors:
            return None
        names = [a.short for a in self.authors[:most]]
        return ", ".join(names) + (", et al." if len(self.authors) > most else "")


# filter key -> (short label, PubMed publication-type names it matches). Order: the most specific design first,
# so a record that is both a "Randomized Controlled Trial" and a "Multicenter Study" shows as an RCT.
STUDY_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "meta-analysis": ("Meta-analysis", ("Meta-Analysis",)),
    "systematic-review": ("Systematic review", ("Systematic Review",)),
    "rct": ("RCT", ("Randomized Controlled Trial",)),
    "clinical-trial": ("Clinical trial", ("Clinical Trial", "Clinical Trial, Phase I", "Clinical Trial, Phase II",
                                          "Clinical Trial, Phase III", "Clinical Trial, Phase IV",
                                          "Controlled Clinical Trial", "Pragmatic Clinical Trial")),  # fmt: skip
    "guideline": ("Guideline", ("Practice Guideline", "Guideline", "Consensus Development Conference")),
    "observational": ("Observational study", ("Observational Study",)),
    "comparative": ("Comparative study", ("Comparative Study",)),
    "case-report": ("Case report", ("Case Reports",)),
    "review": ("Review", ("Review",)),
    "editorial": ("Editorial", ("Editorial",)),
    "letter": ("Letter", ("Letter",)),
    "comment": ("Comment", ("Comment",)),
}


def study_type(publication_types: Iterable[str]) -> str | None:
    """The short label of the most specific design among PubMed's publication types, or None."""
    held = {t.casefold() for t in publication_types}
    for label, names in STUDY_TYPES.values():
        if any(n.casefold() in held for n in names):
            return label
    return None


def type_names(keys: Sequence[str]) -> tuple[str, ...]:
    """PubMed names for ``--type`` keys ("rct", "meta-analysis") or PubMed names themselves; one line if unknown."""
    out: list[str] = []
    by_name = {n.casefold(): n for _, names in STUDY_TYPES.values() for n in names}
    for key in keys:
        k = key.strip().casefold()
        if not k:
            continue
        if k in STUDY_TYPES:
            out.extend(STUDY_TYPES[k][1])
        elif k in by_name:
            out.append(by_name[k])
        else:
            raise ValueError(f"unknown study type {key!r}; use one of {', '.join(STUDY_TYPES)} or a PubMed name")
    return tuple(dict.fromkeys(out))


def citation_to_dict(citation: Citation, *, compact: bool = True) -> dict:
    """Plain JSON, lossless: ``citation_from_dict(citation_to_dict(c)) == c``. ``compact`` (what is stored and
    what JSONL holds) leaves empty fields out; otherwise every key is there (the stable shape of the JSON
    output, as in ``qa.serve.models.CitationOut``)."""
    out = {}
    for key, value in asdict(citation).items():
        if key == "authors":
            value = [{k: v for k, v in a.items() if v is not None or not compact} for a in value]
        if isinstance(value, tuple):
            value = list(value)
        if not compact or value not in (None, []):
            out[key] = value
    return out


MONTH_NAMES = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
MONTHS = {m.casefold(): i for i, m in enumerate(MONTH_NAMES, start=1)}


def month_number(text: str | None) -> int | None:
    """ "May", "05" or "5" -> 5; anything else None."""
    if not text:
        return None
    t = text.strip().casefold()[:3]
    if t in MONTHS:
        return MONTHS[t]
    return int(t) if t.isdigit() and 1 <= int(t) <= 12 else None


def day_number(text: str | None) -> int | None:
    """ "17" or "07" -> the day of the month; anything else None."""
    t = (text or "").strip()
    return int(t) if t.isdigit() and 1 <= int(t) <= 31 else None


__all__ = [
    "Author",
    "Citation",
    "STUDY_TYPES",
    "study_type",
    "type_names",
    "citation_to_dict",
    "month_number",
    "day_number",
    "MONTH_NAMES",
]
