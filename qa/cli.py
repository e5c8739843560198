"""The ``qa`` command: a thin layer over the same API other programs import.

Each command parses its options, calls one library function and hands the
result to ``present``. Errors the user can fix are one ``Error:`` line on
stderr with exit status 1; usage errors one line with status 2.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from . import __version__
from .errors import QAError


class _OneLineErrors(TyperGroup):
    """Usage errors as one ``Error:`` line (naming the command's --help), not click's boxed block."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        from typer._click import exceptions as click_errors

        code: Any = 0
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click_errors.NoArgsIsHelpError as exc:
            print(exc.format_message())
        except click_errors.UsageError as exc:
            where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            _error(f"{exc.format_message()}{where}")
            code = 2
        except click_errors.ClickException as exc:
            _error(exc.format_message())
            code = exc.exit_code
        except click_errors.Abort:
            code = 130
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="qa",
    cls=_OneLineErrors,
    help=(
        "Ask questions of a collection of PubMed abstracts and get back the passages that answer them, "
        "each cited by PMID.\n\n"
        "Start with `qa build --sample` (a bundled sample), `qa build FILE...` (PubMed XML, MEDLINE/.nbib or "
        'JSONL) or `qa build --pubmed QUERY`, then `qa ask "..."` or `qa chat`.'
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _error(message: str) -> None:
    from rich.text import Text

    from .present import stderr

    stderr().print(Text(f"Error: {message}", style="bold red"), soft_wrap=True)


def _show_version(value: bool) -> None:
    if value:
        print(f"pubmed-qa {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Ask questions of a collection of PubMed abstracts; every answer cited by PMID."""


# ------------------------------------------------------------------ options

IndexOption = Annotated[
    Path,
    typer.Option("--index", envvar="QA_INDEX", metavar="DIR", show_default=False,
                 help="Index directory (default ./index, or $QA_INDEX)."),
]  # fmt: skip
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of formatted text.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Show library warnings and loading messages.")]
ModelOption = Annotated[
    Optional[str],
    typer.Option("--model", metavar="NAME", show_default=False,
                 help="sentence-transformers model name or local folder (default: all-MiniLM-L6-v2, bundled)."),
]  # fmt: skip
PubmedOption = Annotated[
    Optional[str],
    typer.Option("--pubmed", metavar="QUERY", show_default=False,
                 help="Fetch the records of this PubMed search (E-utilities) and index them."),
]  # fmt: skip
PmidsOption = Annotated[
    Optional[Path],
    typer.Option("--pmids", metavar="FILE", show_default=False,
                 help="Fetch exactly these PMIDs: one per line, or the CSV the PubMed website exports."),
]  # fmt: skip
MaxOption = Annotated[
    Optional[int],
    typer.Option("--max", min=1, metavar="N", show_default=False, help="At most this many records of the search."),
]
ApiKeyOption = Annotated[
    Optional[str],
    typer.Option("--api-key", envvar="NCBI_API_KEY", metavar="KEY", show_default=False,
                 help="NCBI API key ($NCBI_API_KEY): 10 requests/s instead of 3."),
]  # fmt: skip
EmailOption = Annotated[
    Optional[str],
    typer.Option("--email", envvar="NCBI_EMAIL", metavar="ADDRESS", show_default=False,
                 help="Your e-mail, sent to NCBI as they ask ($NCBI_EMAIL)."),
]  # fmt: skip
EutilsOption = Annotated[
    Optional[str],
    typer.Option("--eutils-url", envvar="QA_EUTILS_URL", metavar="URL", show_default=False,
                 help="E-utilities base URL ($QA_EUTILS_URL; default NCBI's .../entrez/eutils/)."),
]  # fmt: skip
KOption = Annotated[
    int, typer.Option("-k", "--top", min=1, max=1000, metavar="N", help="Number of passages to show (1-1000).")
]
ModeOption = Annotated[
    str,
    typer.Option("--mode", metavar="MODE",
                 help="Ranking: hybrid (lexical + dense, the default: it measures best), dense (meaning) or lexical."),
]  # fmt: skip
YearFromOption = Annotated[
    Optional[int], typer.Option("--year-from", metavar="YEAR", help="Only records published in or after this year.")
]
YearToOption = Annotated[
    Optional[int], typer.Option("--year-to", metavar="YEAR", help="Only records published in or before this year.")
]
MeshOption = Annotated[
    Optional[list[str]],
    typer.Option("--mesh", metavar="TERM", show_default=False,
                 help="Only records with this MeSH descriptor (repeat to require several)."),
]  # fmt: skip
JournalOption = Annotated[
    Optional[str],
    typer.Option("--journal", metavar="TEXT", help="Only records whose journal name contains this text."),
]


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the errors a user can fix into one line on stderr and exit code 1."""
    try:
        yield
    except QAError as exc:
        _error(str(exc))
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        from .present import note

        note("Interrupted; the index was left as it was.", "yellow")
        raise typer.Exit(130) from None


def _prepare(verbose: bool) -> None:
    from .embed import quiet_third_party

    quiet_third_party(verbose)


def _pubmed_source(api_key: str | None, email: str | None, eutils_url: str | None) -> Any:
    from .build import PubmedSource

    return PubmedSource(eutils_url=eutils_url, api_key=api_key, email=email)


def _filters(year_from: int | None, year_to: int | None, mesh: list[str] | None, journal: str | None) -> Any:
    from .query import Filters

    if year_from is not None and year_to is not None and year_from > year_to:
        raise QAError(f"--year-from {year_from} is after --year-to {year_to}")
    return Filters(year_from=year_from, year_to=year_to, mesh=tuple(mesh or ()), journal=journal or None)


# -------------------------------------------------------------------- build


@app.command()
def build(
    sources: Annotated[
        Optional[list[str]],
        typer.Argument(metavar="[SOURCE]...", show_default=False,
                       help="PubMed XML (efetch or baseline, .gz ok), MEDLINE/.nbib text, JSONL files, or folders."),
    ] = None,  # fmt: skip
    index: IndexOption = Path("index"),
    sample: Annotated[
        bool, typer.Option("--sample", help="Index the bundled sample: 300 PubMedQA abstracts and PMID 25589616.")
    ] = False,
    pubmed: PubmedOption = None,
    pmids: PmidsOption = None,
    max_records: MaxOption = None,
    api_key: ApiKeyOption = None,
    email: EmailOption = None,
    eutils_url: EutilsOption = None,
    model: ModelOption = None,
    full: Annotated[
        bool, typer.Option("--full", help="Rebuild from SOURCES alone instead of updating the existing index.")
    ] = False,
    skip_bad: Annotated[
        bool,
        typer.Option("--skip-bad", help="Index the good records and list the bad ones instead of stopping."),
    ] = False,
    chunk_tokens: Annotated[
        Optional[int],
        typer.Option(min=16, max=512, metavar="N", show_default=False,
                     help="Largest passage in model tokens, title and section label included "
                          "[default: 128, or the index's]."),
    ] = None,  # fmt: skip
    overlap: Annotated[
        Optional[int],
        typer.Option(min=0, max=10, metavar="N", show_default=False,
                     help="Sentences repeated between neighbouring passages [default: 1, or the index's]."),
    ] = None,  # fmt: skip
    backend: Annotated[
        Optional[str],
        typer.Option(metavar="NAME", show_default=False,
                     help="Encoder: onnx-int8 (int8 ONNX export, ~2-3x faster on CPU) or torch (any --device) "
                          "[default: the index's, else onnx-int8]."),
    ] = None,  # fmt: skip
    index_type: Annotated[
        str,
        typer.Option("--index-type", metavar="TYPE",
                     help="Vector index: auto (exact below 100,000 passages, IVF with 8-bit codes above), "
                          "flat or ivf-sq8."),
    ] = "auto",  # fmt: skip
    device: Annotated[
        Optional[str], typer.Option(metavar="DEVICE", help="Torch device for embedding: cpu, cuda, cuda:1, mps.")
    ] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, metavar="N", help="Passages per encoder batch.")] = None,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Build an index from PubMed records, or update it: only new or changed records are embedded.

    Records already indexed and unchanged are kept as they are; PMIDs that a
    source withdraws (DeleteCitation in PubMed update files) are removed;
    --full rebuilds from SOURCES alone. The new index replaces the old one only
    when it is complete: a failed or interrupted build leaves the previous
    index untouched.
    """
    _prepare(verbose)
    from .build import BuildOptions, build_index, fetch_for_index
    from .present import emit, progress_bars, render_report

    with _user_errors(), progress_bars() as progress:
        files = list(sources or [])
        if sample:
            from .data import sample_path

            files.append(str(sample_path()))
        remembered = None
        if pubmed is not None or pmids is not None:
            from .pubmed import read_pmid_file

            fetched, remembered = fetch_for_index(
                index,
                _pubmed_source(api_key, email, eutils_url),
                query=pubmed,
                pmids=read_pmid_file(pmids) if pmids is not None else None,
                limit=max_records,
                progress=progress,
            )
            files.append(str(fetched))
        if not files:
            raise QAError("give files to index, or --sample, --pubmed QUERY or --pmids FILE")
        options = BuildOptions(
            full=full, skip_bad=skip_bad, model=model, backend=backend, index_type=index_type,
            chunk_tokens=chunk_tokens, overlap_sentences=overlap, device=device, batch_size=batch_size,
            pubmed=remembered,
        )  # fmt: skip
        report = build_index(files, index, options, progress=progress)
    emit(report, as_json, render_report)


@app.command()
def fetch(
    query: Annotated[
        Optional[str],
        typer.Argument(metavar="[QUERY]", show_default=False, help="A PubMed search, as typed on the PubMed website."),
    ] = None,
    output: Annotated[
        Path, typer.Option("-o", "--output", metavar="FILE", help="Where to save the records (.xml or .xml.gz).")
    ] = Path("pubmed.xml.gz"),
    pmids: PmidsOption = None,
    max_records: MaxOption = None,
    api_key: ApiKeyOption = None,
    email: EmailOption = None,
    eutils_url: EutilsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Save the PubMed XML of a search (or of a PMID list) to a file, without indexing it.

    An interrupted fetch continues from its last complete batch when run again.
    """
    from .present import emit, progress_bars, render_fetch
    from .pubmed import fetch_records, read_pmid_file

    with _user_errors():
        if (query is None) == (pmids is None):
            raise QAError("give a PubMed QUERY or --pmids FILE (one of them)")
        ids = read_pmid_file(pmids) if pmids is not None else None
        with progress_bars() as progress, _pubmed_source(api_key, email, eutils_url).client() as client:
            report = fetch_records(
                client, output, query=query, pmids=ids, limit=max_records,
                progress=lambda done, total: progress("fetch", done, total),
            )  # fmt: skip
    emit(report, as_json, render_fetch)


@app.command()
def update(
    index: IndexOption = Path("index"),
    api_key: ApiKeyOption = None,
    email: EmailOption = None,
    eutils_url: EutilsOption = None,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Re-run the PubMed search an index was built from and add the records not indexed yet."""
    _prepare(verbose)
    from .build import update_from_pubmed
    from .present import emit, progress_bars, render_report

    with _user_errors(), progress_bars() as progress:
        report = update_from_pubmed(index, _pubmed_source(api_key, email, eutils_url), progress=progress)
    emit(report, as_json, render_report)


@app.command()
def remove(
    pmids: Annotated[list[str], typer.Argument(metavar="PMID...", help="PMIDs to delete from the index.")],
    index: IndexOption = Path("index"),
    as_json: JsonOption = False,
) -> None:
    """Delete records from the index by PMID (atomically, nothing is re-embedded)."""
    from .build import remove_records
    from .present import emit, render_report

    with _user_errors():
        report = remove_records(pmids, index)
    emit(report, as_json, render_report)


# ---------------------------------------------------------------- ask, chat


@app.command()
def ask(
    question: Annotated[str, typer.Argument(metavar="QUESTION", help="The question, in plain English.")],
    k: KOption = 5,
    index: IndexOption = Path("index"),
    model: ModelOption = None,
    mode: ModeOption = "hybrid",
    year_from: YearFromOption = None,
    year_to: YearToOption = None,
    mesh: MeshOption = None,
    journal: JournalOption = None,
    all_passages: Annotated[
        bool, typer.Option("--all-passages", help="Allow several passages from one abstract (default: best per PMID).")
    ] = False,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Answer one question: a cited answer, then ranked passages with PMID and PubMed link."""
    _prepare(verbose)
    from .present import print_json_line, render_response, stdout
    from .query import check_mode, check_question
    from .retrieve import Retriever

    with _user_errors():
        check_question(question)
        filters = _filters(year_from, year_to, mesh, journal)
        checked_mode = check_mode(mode)
        with Retriever(index, model=model) as retriever:
            response = retriever.ask(question, k, mode=checked_mode, filters=filters, all_passages=all_passages)
    if as_json:
        print_json_line(response.to_dict())
    else:
        render_response(stdout(), response)


@app.command()
def chat(
    k: KOption = 5,
    index: IndexOption = Path("index"),
    model: ModelOption = None,
    mode: ModeOption = "hybrid",
    year_from: YearFromOption = None,
    year_to: YearToOption = None,
    mesh: MeshOption = None,
    journal: JournalOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per answer (the `qa ask --json` shape); for scripts.")
    ] = False,
    verbose: VerboseOption = False,
) -> None:
    """A conversation: ask question after question; the index and model are loaded once.

    When standard input is not a terminal, questions are read one per line
    (commands such as /new and /filter work there too).
    """
    _prepare(verbose)
    from .conversation import Conversation
    from .present import note, print_json_line, render_response, stdout
    from .query import check_mode
    from .retrieve import Retriever

    interactive = sys.stdin.isatty() and not as_json
    with _user_errors():
        filters = _filters(year_from, year_to, mesh, journal)
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
        for line in _prompt_lines() if interactive else _piped_lines():
            try:
                if not handle(line):
                    break
            except KeyboardInterrupt:
                note("(cancelled)")
    except KeyboardInterrupt:
        pass
    finally:
        retriever.close()


def _piped_lines() -> Iterator[str]:
    """Questions from a pipe, one per line; undecodable bytes are replaced instead of ending the chat."""
    stream = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else None
    if stream is None:
        yield from sys.stdin
        return
    for raw in stream:
        yield raw.decode("utf-8", errors="replace")


def _prompt_lines() -> Iterator[str]:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    state_home = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "pubmed-qa"
    try:
        state_home.mkdir(parents=True, exist_ok=True)
        history: Any = FileHistory(str(state_home / "chat_history"))
    except OSError:
        history = InMemoryHistory()
    session: Any = PromptSession(history=history)
    while True:
        try:
            yield session.prompt("qa> ")
        except KeyboardInterrupt:
            continue  # Ctrl-C clears the line, as in a shell
        except EOFError:
            return


# ------------------------------------------------------- eval, info, verify


@app.command(name="eval")
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
    index: IndexOption = Path("index"),
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Measure retrieval on judged questions: Recall@1/5/10, MRR@10, nDCG@10, one hit per PMID."""
    _prepare(verbose)
    from .evaluate import evaluate, load_qrels, load_queries
    from .present import emit, progress_bars, render_eval
    from .query import MODES, check_mode
    from .retrieve import Retriever

    results: dict[str, dict[str, float | int]] = {}
    with _user_errors():
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


@app.command()
def info(index: IndexOption = Path("index"), as_json: JsonOption = False) -> None:
    """Show what an index holds: records, passages, model, chunking, when it was built."""
    from .present import emit, render_info
    from .store import describe

    with _user_errors():
        facts = describe(index)
    emit(facts, as_json, render_info)


@app.command()
def verify(index: IndexOption = Path("index"), as_json: JsonOption = False) -> None:
    """Check an index: file checksums, every vector against its passage row, lexical rows, the model."""
    from .present import emit, render_verify
    from .verify import verify_index

    with _user_errors():
        report = verify_index(index)
    emit(report, as_json, render_verify)
    if not report.ok:
        raise typer.Exit(1)


def main() -> None:
    app(prog_name="qa")


if __name__ == "__main__":
    main()
