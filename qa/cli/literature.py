"""The ``qa`` commands that reach PubMed or write references: fetch, related, update and cite.

Kept apart from ``commands`` so that each module stays readable; they register on the same app.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import QAError
from . import options as opt
from .app import PlainHelp, app, prepare, user_errors


def pubmed_source(api_key: str | None, email: str | None, eutils_url: str | None, allow_partial: bool) -> Any:
    from ..build.pubmed import PubmedSource

    return PubmedSource(eutils_url=eutils_url, api_key=api_key, email=email, allow_partial=allow_partial)


@app.command(cls=PlainHelp)
def fetch(
    query: Annotated[
        Optional[str],
        typer.Argument(metavar="QUERY", show_default=False, help="A PubMed search, as typed on the PubMed website."),
    ] = None,
    output: Annotated[
        Path, typer.Option("-o", "--output", metavar="FILE", help="Where to save the records (.xml or .xml.gz).")
    ] = Path("pubmed.xml.gz"),
    pmids: opt.PmidsOption = None,
    max_records: opt.MaxOption = None,
    api_key: opt.ApiKeyOption = None,
    email: opt.EmailOption = None,
    eutils_url: opt.EutilsOption = None,
    allow_partial: opt.AllowPartialOption = False,
    as_json: opt.JsonOption = False,
) -> None:
    """Save the PubMed XML of a search (or of a PMID list) to a file, without indexing it.

    An interrupted fetch continues from its last complete batch when run again.
    """
    from ..ingest.fetch import fetch_records, read_pmid_file
    from .present import emit, progress_bars, render_fetch

    with user_errors():
        if (query is None) == (pmids is None):
            raise QAError("give a PubMed QUERY or --pmids FILE (one of them)")
        ids = read_pmid_file(pmids) if pmids is not None else None
        with progress_bars() as progress, pubmed_source(api_key, email, eutils_url, allow_partial).client() as c:
            report = fetch_records(
                c, output, query=query, pmids=ids, limit=max_records, allow_partial=allow_partial,
                progress=lambda done, total: progress("fetch", done, total),
            )  # fmt: skip
    emit(report, as_json, render_fetch)


@app.command(cls=PlainHelp)
def related(
    pmid: Annotated[str, typer.Argument(metavar="PMID", help="The article to follow the literature from.")],
    cited_by: Annotated[
        bool, typer.Option("--cited-by", help="Articles citing it (the default; PubMed's 'Cited by').")
    ] = False,
    similar: Annotated[bool, typer.Option("--similar", help="PubMed's similar articles, most similar first.")] = False,
    max_records: Annotated[
        int, typer.Option("--max", min=1, max=10_000, metavar="N", help="List at most this many.")
    ] = 20,
    index: opt.IndexOption = Path("index"),
    api_key: opt.ApiKeyOption = None,
    email: opt.EmailOption = None,
    eutils_url: opt.EutilsOption = None,
    as_json: opt.JsonOption = False,
) -> None:
    """List the articles citing a PMID, or similar to it (E-utilities elink), marking those already indexed.

    Add them to an index with qa build --cited-by PMID (or --similar PMID).
    """
    from ..build.pubmed import related_articles
    from .present import emit, render_related

    with user_errors():
        if cited_by and similar:
            raise QAError("use --cited-by or --similar, not both")
        source = pubmed_source(api_key, email, eutils_url, False)
        found = related_articles(source, pmid, "similar" if similar else "cited-by", limit=max_records, index=index)
    emit([r.to_dict() for r in found], as_json, render_related)


@app.command(cls=PlainHelp)
def update(
    index: opt.IndexOption = Path("index"),
    api_key: opt.ApiKeyOption = None,
    email: opt.EmailOption = None,
    eutils_url: opt.EutilsOption = None,
    allow_partial: opt.AllowPartialOption = False,
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
) -> None:
    """Re-run the PubMed search an index was built from and add the records not indexed yet."""
    prepare(verbose)
    from ..build.pubmed import update_from_pubmed
    from .present import emit, progress_bars, render_report

    with user_errors(), progress_bars() as progress:
        source = pubmed_source(api_key, email, eutils_url, allow_partial)
        report = update_from_pubmed(index, source, progress=progress)
    emit(report, as_json, render_report)


@app.command(cls=PlainHelp)
def cite(
    pmids: Annotated[list[str], typer.Argument(metavar="PMID...", help="PMIDs of records in the index.")],
    index: opt.IndexOption = Path("index"),
    style: opt.StyleOption = "vancouver",
    fmt: opt.CiteFormatOption = "text",
) -> None:
    """Write references to indexed records: a style (Vancouver, AMA, APA) or a file for reference managers."""
    from ..export import check_style, export
    from ..records import normalize_pmid
    from ..store import read_records

    with user_errors():
        check_style(style, fmt)
        normal = [normalize_pmid(p) for p in pmids]
        bad = [p for p, n in zip(pmids, normal) if n is None]
        if bad:
            raise QAError(f"not a PMID: {bad[0][:40]!r}")
        text = export(read_records(index, [n for n in normal if n]), fmt, style)
    sys.stdout.write(text)
