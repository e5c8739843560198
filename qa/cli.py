"""The ``qa`` command: a thin layer over the same API other programs import."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.text import Text

from .errors import QAError

app = typer.Typer(
    name="qa",
    help=(
        "Ask questions of a collection of PubMed abstracts and get back the passages that answer them, "
        "each cited by PMID.\n\n"
        'Start with `qa build FILE...` (PubMed XML, MEDLINE/.nbib or JSONL), then `qa ask "..."` or `qa chat`.'
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

IndexOption = Annotated[
    Path,
    typer.Option(
        "--index",
        envvar="QA_INDEX",
        help="Index directory (default ./index, or $QA_INDEX).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of formatted text.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Show library warnings and loading messages.")]
ModelOption = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        help="sentence-transformers model name or local folder (default: all-MiniLM-L6-v2, bundled).",
        show_default=False,
    ),
]
PubmedOption = Annotated[
    Optional[str],
    typer.Option("--pubmed", help="Fetch the records of this PubMed search (E-utilities) and index them.",
                 show_default=False),
]  # fmt: skip
PmidsOption = Annotated[
    Optional[Path],
    typer.Option("--pmids", help="Fetch exactly these PMIDs: one per line, or the CSV the PubMed website exports.",
                 show_default=False),
]  # fmt: skip
MaxOption = Annotated[
    Optional[int], typer.Option("--max", min=1, help="At most this many records of the search.", show_default=False)
]
ApiKeyOption = Annotated[
    Optional[str],
    typer.Option("--api-key", envvar="NCBI_API_KEY", help="NCBI API key ($NCBI_API_KEY): 10 requests/s instead of 3.",
                 show_default=False),
]  # fmt: skip
EmailOption = Annotated[
    Optional[str],
    typer.Option("--email", envvar="NCBI_EMAIL", help="Your e-mail, sent to NCBI as they ask ($NCBI_EMAIL).",
                 show_default=False),
]  # fmt: skip
EutilsOption = Annotated[
    Optional[str],
    typer.Option("--eutils-url", envvar="QA_EUTILS_URL",
                 help="E-utilities base URL ($QA_EUTILS_URL; default NCBI's .../entrez/eutils/).", show_default=False),
]  # fmt: skip
KOption = Annotated[int, typer.Option("-k", "--top", min=1, max=1000, help="Number of passages to show.")]


def _stdout() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the errors a user can fix into one line on stderr and exit code 1."""
    try:
        yield
    except QAError as exc:
        _stderr().print(Text(f"Error: {exc}", style="bold red"), soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        _stderr().print(Text("Interrupted; the index was left as it was.", style="yellow"))
        raise typer.Exit(130) from None


def _prepare(verbose: bool) -> None:
    from .embed import quiet_third_party

    quiet_third_party(verbose)


# --------------------------------------------------------------------- build


@app.command()
def build(
    sources: Annotated[
        Optional[list[str]],
        typer.Argument(
            help="PubMed XML (efetch or baseline, .gz ok), MEDLINE/.nbib text, JSONL files, or folders of them.",
            show_default=False,
        ),
    ] = None,
    index: IndexOption = Path("index"),
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
        typer.Option(
            "--skip-bad", help="Index the good records and list the bad ones instead of stopping at the first."
        ),
    ] = False,
    chunk_tokens: Annotated[
        Optional[int],
        typer.Option(
            min=16,
            max=512,
            help="Largest passage in model tokens, title and section label included [default: 128, or the index's].",
            show_default=False,
        ),
    ] = None,
    overlap: Annotated[
        Optional[int],
        typer.Option(
            min=0,
            max=10,
            help="Sentences repeated between neighbouring passages [default: 1, or the index's].",
            show_default=False,
        ),
    ] = None,
    backend: Annotated[
        Optional[str],
        typer.Option(
            help="Encoder: onnx-int8 (int8 ONNX export, ~3x faster on CPU) or torch (any --device) "
            "[default: the index's, else torch].",
            show_default=False,
        ),
    ] = None,
    index_type: Annotated[
        str,
        typer.Option(
            "--index-type",
            help="Vector index: auto (exact below 100,000 passages, IVF with 8-bit codes above), flat or ivf-sq8.",
        ),
    ] = "auto",
    device: Annotated[Optional[str], typer.Option(help="Torch device for embedding: cpu, cuda, cuda:1, mps.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Passages per encoder batch.")] = None,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Build an index from PubMed records, or update it: only new or changed records are embedded.

    Records already indexed and unchanged are kept as they are; PMIDs that a
    source withdraws (<DeleteCitation>) are removed; `--full` rebuilds from
    SOURCES alone. The new index replaces the old one only when it is
    complete: a failed or interrupted build leaves the previous index untouched.
    """
    _prepare(verbose)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from .build import build_index
    from .present import render_report

    err = _stderr()
    with _user_errors():
        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
            disable=not err.is_terminal,
        )
        tasks: dict[str, int] = {}

        def on_progress(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                label = {"read": "Reading records", "fetch": "Fetching records"}.get(stage, stage)
                if stage == "embed":
                    label = "Embedding records"
                tasks[stage] = progress.add_task(label, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        with progress:
            files = list(sources or [])
            remembered = None
            if pubmed is not None or pmids is not None:
                fetched, remembered = _fetch_for_index(
                    index, pubmed, pmids, max_records, api_key, email, eutils_url, on_progress
                )
                files.append(str(fetched))
            if not files:
                raise QAError("give files to index, or --pubmed QUERY, or --pmids FILE")
            report = build_index(
                files,
                index,
                pubmed=remembered,
                skip_bad=skip_bad,
                full=full,
                model=model,
                backend=backend,
                index_type=index_type,
                chunk_tokens=chunk_tokens,
                overlap_sentences=overlap,
                device=device,
                batch_size=batch_size,
                progress=on_progress,
            )
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        render_report(_stdout(), report)


def _client(api_key: str | None, email: str | None, eutils_url: str | None):  # type: ignore[no-untyped-def]
    from .pubmed import EUtils

    return EUtils(eutils_url, api_key=api_key, email=email)


def _fetch_for_index(
    index: Path,
    query: str | None,
    pmids_file: Path | None,
    limit: int | None,
    api_key: str | None,
    email: str | None,
    eutils_url: str | None,
    on_progress,  # type: ignore[no-untyped-def]
    only: list[str] | None = None,
) -> tuple[Path, dict | None]:
    """Fetch a search or PMID list into the index's fetch folder (resumable) and return the file."""
    from .pubmed import fetch_records, query_digest, read_pmid_file

    if query is not None and pmids_file is not None:
        raise QAError("use --pubmed or --pmids, not both")
    ids = only if only is not None else (read_pmid_file(pmids_file) if pmids_file is not None else None)
    key = query_digest(json.dumps([query, ids, limit]))
    out = Path(index) / "fetch" / f"pubmed-{key}.xml.gz"
    with _client(api_key, email, eutils_url) as client:
        fetch_records(
            client,
            out,
            query=query if ids is None else None,
            pmids=ids,
            limit=limit,
            progress=lambda done, total: on_progress("fetch", done, total),
        )
    remembered = {"query": query, "max": limit} if query is not None else None
    return out, remembered


@app.command()
def fetch(
    query: Annotated[
        Optional[str], typer.Argument(help="A PubMed search, as typed on the PubMed website.", show_default=False)
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to save the records (.xml or .xml.gz).")] = Path(
        "pubmed.xml.gz"
    ),
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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .pubmed import fetch_records, read_pmid_file

    err = _stderr()
    with _user_errors():
        if (query is None) == (pmids is None):
            raise QAError("give a PubMed QUERY or --pmids FILE (one of them)")
        ids = read_pmid_file(pmids) if pmids is not None else None
        with Progress(
            TextColumn("Fetching records"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=err, transient=True, disable=not err.is_terminal,
        ) as progress, _client(api_key, email, eutils_url) as client:  # fmt: skip
            task = progress.add_task("fetch", total=None)
            report = fetch_records(
                client, output, query=query, pmids=ids, limit=max_records,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )  # fmt: skip
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        resumed = f", {report.batches_resumed} resumed from an earlier run" if report.batches_resumed else ""
        _stdout().print(
            Text(
                f"Saved {report.records:,} records to {report.output} "
                f"({report.wanted:,} of {report.count:,} matching; {report.batches} batches{resumed}; "
                f"{report.requests} requests in {report.seconds:.1f} s)"
            ),
            soft_wrap=True,
        )


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
    from .build import BuildReport, build_index
    from .present import render_report
    from .store import IndexStore

    with _user_errors():
        store = IndexStore(index)
        manifest = store.manifest()
        if not manifest.pubmed or not manifest.pubmed.get("query"):
            raise QAError(f"{index} was not built from a PubMed search (qa build --pubmed QUERY); nothing to re-run")
        query, limit = manifest.pubmed["query"], manifest.pubmed.get("max")
        with _client(api_key, email, eutils_url) as client:
            found = client.search(query, limit=limit)
        snapshot = store.open()
        try:
            indexed = snapshot.pmids()
        finally:
            snapshot.close()
        new = [p for p in found.pmids if p not in indexed]
        if not new:
            report = BuildReport(index=str(store.path), sources=[], unchanged=len(found.pmids))
            report.records_indexed, report.chunks = manifest.records, manifest.chunks
        else:
            fetched, _ = _fetch_for_index(
                index, None, None, None, api_key, email, eutils_url, lambda *a: None, only=new
            )
            report = build_index([fetched], index)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        render_report(_stdout(), report)


@app.command()
def remove(
    pmids: Annotated[list[str], typer.Argument(help="PMIDs to delete from the index.", show_default=False)],
    index: IndexOption = Path("index"),
    as_json: JsonOption = False,
) -> None:
    """Delete records from the index by PMID (atomically, nothing is re-embedded)."""
    from .build import remove_records
    from .present import render_report

    with _user_errors():
        report = remove_records(pmids, index)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        render_report(_stdout(), report)


# ----------------------------------------------------------------------- ask

ModeOption = Annotated[
    str,
    typer.Option(
        "--mode",
        help="Ranking: hybrid (lexical + dense, the default: it measures best), dense (meaning) or lexical (BM25).",
    ),
]
YearFromOption = Annotated[
    Optional[int], typer.Option("--year-from", help="Only records published in or after this year.")
]
YearToOption = Annotated[
    Optional[int], typer.Option("--year-to", help="Only records published in or before this year.")
]
MeshOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--mesh", help="Only records with this MeSH descriptor (repeat to require several).", show_default=False
    ),
]
JournalOption = Annotated[
    Optional[str], typer.Option("--journal", help="Only records whose journal name contains this text.")
]


def _filters(year_from: int | None, year_to: int | None, mesh: list[str] | None, journal: str | None):  # type: ignore[no-untyped-def]
    from .store import Filters

    if year_from is not None and year_to is not None and year_from > year_to:
        raise QAError(f"--year-from {year_from} is after --year-to {year_to}")
    return Filters(year_from=year_from, year_to=year_to, mesh=tuple(mesh or ()), journal=journal or None)


def _check_mode(mode: str) -> str:
    from .retrieve import MODES

    if mode not in MODES:
        raise QAError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in plain English.", show_default=False)],
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
    from .present import render_response
    from .retrieve import Retriever

    with _user_errors():
        if not question.strip():
            raise QAError("the question is empty")
        filters = _filters(year_from, year_to, mesh, journal)
        _check_mode(mode)
        with Retriever(index, model=model) as retriever:
            response = retriever.ask(question, k, mode=mode, filters=filters, all_passages=all_passages)  # type: ignore[arg-type]
    if as_json:
        print(json.dumps(response.to_dict(), ensure_ascii=False))
    else:
        if not response.hits:
            _stderr().print(Text(f"No record matches the filters ({filters.describe()}).", style="yellow"))
        render_response(_stdout(), response)


# ---------------------------------------------------------------------- chat

CHAT_HELP = """Type a question and press Enter. A follow-up ("and its side effects?") is searched
together with the previous question; /new starts a fresh topic. Commands:
  /new                 start a new topic
  /k N                 show N passages per answer (now {k})
  /mode M              hybrid, dense or lexical (now {mode})
  /filter ...          e.g. /filter year>=2010 year<=2015 mesh="Breast Neoplasms" journal=lancet
  /filter off          remove filters (now: {filters})
  /all                 toggle several passages per abstract (now {all})
  /reload              switch to a newer build of the index
  /help                this text
  /quit                leave (or Ctrl-D)"""


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
    from .conversation import Conversation, parse_filters
    from .present import render_response
    from .retrieve import Retriever

    out, err = _stdout(), _stderr()
    interactive = sys.stdin.isatty() and not as_json
    with _user_errors():
        filters = _filters(year_from, year_to, mesh, journal)
        _check_mode(mode)
        if interactive:
            err.print(Text("Loading index and model...", style="dim"))
        retriever = Retriever(index, model=model)
        if interactive:
            retriever.warm_up()
    talk = Conversation(retriever, k=k, mode=mode, filters=filters)  # type: ignore[arg-type]
    if interactive:
        m = retriever.manifest
        err.print(
            Text(
                f"{m.records:,} abstracts, {m.chunks:,} passages. Type /help for commands, Ctrl-D to quit.", style="dim"
            )
        )

    def note(message: str, style: str = "dim") -> None:
        err.print(Text(message, style=style), soft_wrap=True)

    def command(line: str) -> bool:
        cmd, _, arg = line.partition(" ")
        arg = arg.strip()
        if cmd in ("/quit", "/exit", "/q"):
            return False
        if cmd == "/help":
            note(
                CHAT_HELP.format(
                    k=talk.k, mode=talk.mode, filters=talk.filters.describe(), all="on" if talk.all_passages else "off"
                ),
                style="",
            )
        elif cmd == "/new":
            talk.new_topic()
            note("New topic.")
        elif cmd == "/k":
            if arg.isdigit() and 1 <= int(arg) <= 1000:
                talk.k = int(arg)
                note(f"Showing {talk.k} passages per answer.")
            else:
                note("Usage: /k N  (N between 1 and 1000)", "yellow")
        elif cmd == "/mode":
            talk.set_mode(arg)
            note(f"Mode: {talk.mode}.")
        elif cmd == "/filter":
            if not arg:
                note(f"Filters: {talk.filters.describe()}.")
            else:
                talk.filters = parse_filters(arg, talk.filters)
                note(f"Filters: {talk.filters.describe()}.")
        elif cmd == "/all":
            talk.all_passages = not talk.all_passages
            note(f"Several passages per abstract: {'on' if talk.all_passages else 'off'}.")
        elif cmd == "/reload":
            note("Switched to the newest build." if retriever.reload() else "Already on the newest build.")
        else:
            note(f"Unknown command {cmd}; type /help.", "yellow")
        return True

    def handle(line: str) -> bool:
        """Answer or run one line; False means quit."""
        line = line.strip()
        if not line:
            return True
        try:
            if line.startswith("/"):
                return command(line)
            response = talk.ask(line)
        except QAError as exc:
            note(f"Error: {exc}", "red")
            return True
        if as_json:
            print(json.dumps(response.to_dict(), ensure_ascii=False), flush=True)
        else:
            render_response(out, response)
        return True

    try:
        if interactive:
            session = _prompt_session()
            while True:
                try:
                    line = session.prompt("qa> ")
                except KeyboardInterrupt:
                    continue  # Ctrl-C clears the line, as in a shell
                except EOFError:
                    break
                try:
                    if not handle(line):
                        break
                except KeyboardInterrupt:
                    note("(cancelled)")
        else:
            for line in sys.stdin:
                if not handle(line):
                    break
    except KeyboardInterrupt:
        pass
    finally:
        retriever.close()


# ---------------------------------------------------------------------- eval


@app.command(name="eval")
def evaluate_command(
    queries: Annotated[Path, typer.Argument(help='BEIR queries: one {"_id", "text"} JSON object per line.')],
    qrels: Annotated[Path, typer.Argument(help="BEIR qrels TSV: query-id, corpus-id (the PMID), score; with header.")],
    mode: Annotated[
        Optional[list[str]], typer.Option("--mode", help="Mode to evaluate (repeatable; default: all three).")
    ] = None,
    index: IndexOption = Path("index"),
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Measure retrieval on judged questions: Recall@1/5/10, MRR@10, nDCG@10, one hit per PMID."""
    _prepare(verbose)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .evaluate import evaluate, load_qrels, load_queries
    from .present import render_eval
    from .retrieve import MODES, Retriever

    err = _stderr()
    results: dict[str, dict[str, float | int]] = {}
    with _user_errors():
        modes = [_check_mode(m) for m in (mode or list(MODES))]
        questions, judgements = load_queries(queries), load_qrels(qrels)
        with (
            Retriever(index) as retriever,
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
                disable=not err.is_terminal,
            ) as progress,
        ):
            for m in modes:
                task = progress.add_task(f"Evaluating {m}", total=None)
                metrics = evaluate(
                    retriever,
                    questions,
                    judgements,
                    mode=m,
                    progress=lambda done, total, task=task: progress.update(task, completed=done, total=total),
                )
                results[m] = metrics.to_dict()
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        render_eval(_stdout(), results)


def _prompt_session():  # type: ignore[no-untyped-def]
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    state_home = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "pubmed-qa"
    try:
        state_home.mkdir(parents=True, exist_ok=True)
        history = FileHistory(str(state_home / "chat_history"))
    except OSError:
        history = InMemoryHistory()
    return PromptSession(history=history)


# ---------------------------------------------------------------------- info


@app.command()
def info(index: IndexOption = Path("index"), as_json: JsonOption = False) -> None:
    """Show what an index holds: records, passages, model, chunking, when it was built."""
    from .present import render_info
    from .store import describe

    with _user_errors():
        facts = describe(index)
    if as_json:
        print(json.dumps(facts, indent=2))
    else:
        render_info(_stdout(), facts)


@app.command()
def verify(index: IndexOption = Path("index"), as_json: JsonOption = False) -> None:
    """Check an index: file checksums, every vector against its passage row, lexical rows, the model."""
    from .verify import verify_index

    with _user_errors():
        report = verify_index(index)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        out = _stdout()
        for line in report.passed:
            out.print(Text(f"ok       {line}"), soft_wrap=True)
        for line in report.problems:
            out.print(Text(f"PROBLEM  {line}", style="bold red"), soft_wrap=True)
        verdict = (
            "Index is consistent." if report.ok else f"{len(report.problems)} problem(s): rebuild with qa build --full"
        )
        out.print(Text(verdict, style="bold green" if report.ok else "bold red"))
    if not report.ok:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
