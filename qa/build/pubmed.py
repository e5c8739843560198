"""PubMed workflows: build from a live search or a PMID list, and ``qa update`` (fetch only what is new).

The fetching itself (E-utilities, resumable batches) is ``qa.ingest``'s; this module decides where a
fetch goes (the index's ``fetch/`` folder), what the index remembers (the search, for ``qa update``),
and hands the fetched file to the local pipeline like any other source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import QAError
from ..store import IndexStore
from .options import BuildReport, ProgressCallback, no_progress
from .pipeline import build_index


@dataclass(frozen=True)
class PubmedSource:
    """Where and how to reach E-utilities (None: the environment's or NCBI's defaults)."""

    eutils_url: str | None = None
    api_key: str | None = None
    email: str | None = None
    allow_partial: bool = False  # index what arrived when PubMed leaves PMIDs out, instead of stopping

    def client(self) -> Any:
        from ..ingest.eutils import EUtils

        return EUtils(self.eutils_url, api_key=self.api_key, email=self.email)


@dataclass(frozen=True)
class Fetched:
    """Records fetched for an index: the file, the search to remember, and what did not arrive."""

    path: Path
    pubmed: dict[str, Any] | None
    warnings: tuple[str, ...] = ()


def fetch_for_index(
    index: str | Path,
    source: PubmedSource,
    *,
    query: str | None = None,
    pmids: list[str] | None = None,
    limit: int | None = None,
    progress: ProgressCallback | None = None,
) -> Fetched:
    """Fetch a search or a PMID list into the index's fetch folder (resumable)."""
    from ..ingest.fetch import fetch_records, query_digest

    if query is not None and pmids is not None:
        raise QAError("use --pubmed or --pmids, not both")
    key = query_digest(json.dumps([query, pmids, limit]))
    out = IndexStore(index).layout.fetch_file(key)
    notify = progress or no_progress
    with source.client() as client:
        report = fetch_records(
            client,
            out,
            query=query if pmids is None else None,
            pmids=pmids,
            limit=limit,
            progress=lambda done, total: notify("fetch", done, total),
            allow_partial=source.allow_partial,
        )
    remembered = {"query": query, "max": limit} if query is not None else None
    return Fetched(out, remembered, tuple(report.warnings))


def update_from_pubmed(
    index: str | Path = "index", source: PubmedSource | None = None, *, progress: ProgressCallback | None = None
) -> BuildReport:
    """Re-run the PubMed search an index was built from; fetch and index only the PMIDs it does not have."""
    source = source or PubmedSource()
    store = IndexStore(index)
    manifest = store.manifest()
    if not manifest.pubmed or not manifest.pubmed.get("query"):
        raise QAError(f"{index} was not built from a PubMed search (qa build --pubmed QUERY); nothing to re-run")
    with source.client() as client:
        found = client.search(
            manifest.pubmed["query"], limit=manifest.pubmed.get("max"), allow_partial=source.allow_partial
        )
    indexed = _indexed_pmids(store)
    new = [p for p in found.pmids if p not in indexed]
    if not new:
        report = BuildReport(index=str(store.path), sources=[], unchanged=len(found.pmids))
        report.records_indexed, report.chunks = manifest.records, manifest.chunks
    else:
        fetched = fetch_for_index(index, source, pmids=new, progress=progress)
        report = build_index([fetched.path], index, progress=progress)
        report.warnings += list(fetched.warnings)
    report.warnings = list(found.warnings) + report.warnings
    return report



def _indexed_pmids(store: IndexStore) -> set[str]:
    """Every PMID of the live snapshot, read from SQLite alone (no vectors, no model)."""
    passages = store.open_passages()
    try:
        return passages.pmids()
    finally:
        passages.close()


@dataclass(frozen=True)
class Related:
    """An article linked to a PMID by PubMed (citing it, or similar to it), and whether the index has it."""

    pmid: str
    title: str | None
    journal: str | None
    year: int | None
    study_type: str | None
    indexed: bool
    note: str | None = None  # why PubMed gave no record to show ("no abstract", "not returned")

    def to_dict(self) -> dict[str, Any]:
        return {"pmid": self.pmid, "title": self.title, "journal": self.journal, "year": self.year,
                "study_type": self.study_type, "indexed": self.indexed, "note": self.note}  # fmt: skip


def linked_pmids(source: PubmedSource, pmid: str, kind: str, limit: int | None = None) -> list[str]:
    """PMIDs PubMed links to ``pmid`` ("cited-by" or "similar"), in PubMed's order, at most ``limit``."""
    with source.client() as client:
        linked = client.links(pmid, kind)
    return linked[:limit] if limit is not None else linked


def related_articles(
    source: PubmedSource, pmid: str, kind: str, *, limit: int = 20, index: str | Path | None = None
) -> list[Related]:
    """The articles citing ``pmid`` or similar to it, with title, journal and year (efetch), marked when indexed."""
    from ..ingest.eutils import BATCH_SIZE
    from ..ingest.files import read_xml_bytes
    from ..records import Record, Skipped

    indexed = _indexed_pmids(IndexStore(index)) if index is not None and IndexStore(index).exists() else set()
    with source.client() as client:
        linked = client.links(pmid, kind)[:limit]
        found: dict[str, Record | Skipped] = {}
        for start in range(0, len(linked), BATCH_SIZE):
            batch = client.fetch_batch(linked[start : start + BATCH_SIZE])
            for event in read_xml_bytes(batch.body, "efetch answer"):
                if isinstance(event, (Record, Skipped)) and event.pmid:
                    found[event.pmid] = event
    out = []
    for p in linked:
        event = found.get(p)
        if isinstance(event, Record):
            out.append(Related(p, event.title, event.journal, event.year, event.citation.study_type, p in indexed))
        else:
            note = event.reason if isinstance(event, Skipped) else "not returned by efetch"
            out.append(Related(p, None, None, None, None, p in indexed, note))
    return out


__all__ = ["PubmedSource", "Fetched", "Related", "fetch_for_index", "update_from_pubmed", "linked_pmids",
           "related_articles"]  # fmt: skip
