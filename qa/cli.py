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
        list[str],
        typer.Argument(
            help="PubMed XML (efetch or baseline, .gz ok), MEDLINE/.nbib text, JSONL files, or folders of them.",
            show_default=False,
        ),
    ],
    index: IndexOption = Path("index"),
    model: ModelOption = None,
    chunk_tokens: Annotated[
        int, typer.Option(min=16, max=512, help="Largest passage in model tokens, title and section label included.")
    ] = 128,
    overlap: Annotated[int, typer.Option(min=0, max=10, help="Sentences repeated between neighbouring passages.")] = 1,
    device: Annotated[Optional[str], typer.Option(help="Torch device for embedding: cpu, cuda, cuda:1, mps.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Passages per encoder batch.")] = None,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Build (or rebuild) an index from PubMed records.

    The new index replaces the old one only when it is complete: a failed or
    interrupted build leaves the previous index untouched.
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
                label = {"read": "Reading records", "embed": "Embedding"}.get(stage, stage)
                if stage == "embed":
                    label = "Embedding records"
                tasks[stage] = progress.add_task(label, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        with progress:
            report = build_index(
                sources,
                index,
                model=model,
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


# ----------------------------------------------------------------------- ask


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in plain English.", show_default=False)],
    k: KOption = 5,
    index: IndexOption = Path("index"),
    model: ModelOption = None,
    all_passages: Annotated[
        bool, typer.Option("--all-passages", help="Allow several passages from one abstract (default: best per PMID).")
    ] = False,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Answer one question with ranked passages, each with its PMID and PubMed link."""
    _prepare(verbose)
    from .present import hits_to_json, render_hits
    from .retrieve import Retriever

    with _user_errors():
        if not question.strip():
            raise QAError("the question is empty")
        with Retriever(index, model=model) as retriever:
            hits = retriever.search(question, k=k, all_passages=all_passages)
    if as_json:
        print(json.dumps(hits_to_json(question, hits), ensure_ascii=False))
    else:
        render_hits(_stdout(), question, hits)


# ---------------------------------------------------------------------- chat

CHAT_HELP = """Type a question and press Enter. Commands:
  /k N      show N passages per answer (now {k})
  /all      toggle several passages per abstract (now {all})
  /help     this text
  /quit     leave (or Ctrl-D)"""


@app.command()
def chat(
    k: KOption = 5,
    index: IndexOption = Path("index"),
    model: ModelOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per answer (the `qa ask --json` shape); for scripts.")
    ] = False,
    verbose: VerboseOption = False,
) -> None:
    """Ask question after question; the index and model are loaded once.

    When standard input is not a terminal, questions are read one per line.
    """
    _prepare(verbose)
    from .present import hits_to_json, render_hits
    from .retrieve import Retriever

    out, err = _stdout(), _stderr()
    interactive = sys.stdin.isatty() and not as_json
    with _user_errors():
        if interactive:
            err.print(Text("Loading index and model...", style="dim"))
        retriever = Retriever(index, model=model)
        if interactive:
            retriever.warm_up()
    state = {"k": k, "all": False}
    if interactive:
        m = retriever.manifest
        err.print(
            Text(
                f"{m.records:,} abstracts, {m.chunks:,} passages. Type /help for commands, Ctrl-D to quit.", style="dim"
            )
        )

    def handle(line: str) -> bool:
        """Answer or run one line; False means quit."""
        line = line.strip()
        if not line:
            return True
        if line.startswith("/"):
            cmd, _, arg = line.partition(" ")
            if cmd in ("/quit", "/exit", "/q"):
                return False
            if cmd == "/help":
                err.print(Text(CHAT_HELP.format(k=state["k"], all="on" if state["all"] else "off")))
            elif cmd == "/k":
                if arg.strip().isdigit() and 1 <= int(arg) <= 1000:
                    state["k"] = int(arg)
                    err.print(Text(f"Showing {state['k']} passages per answer.", style="dim"))
                else:
                    err.print(Text("Usage: /k N  (N between 1 and 1000)", style="yellow"))
            elif cmd == "/all":
                state["all"] = not state["all"]
                err.print(Text(f"Several passages per abstract: {'on' if state['all'] else 'off'}.", style="dim"))
            else:
                err.print(Text(f"Unknown command {cmd}; type /help.", style="yellow"))
            return True
        try:
            hits = retriever.search(line, k=int(state["k"]), all_passages=bool(state["all"]))
        except QAError as exc:
            err.print(Text(f"Error: {exc}", style="red"), soft_wrap=True)
            return True
        if as_json:
            print(json.dumps(hits_to_json(line, hits), ensure_ascii=False), flush=True)
        else:
            render_hits(out, line, hits)
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
                    err.print(Text("(cancelled)", style="dim"))
        else:
            for line in sys.stdin:
                if not handle(line):
                    break
    except KeyboardInterrupt:
        pass
    finally:
        retriever.close()


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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
