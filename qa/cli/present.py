"""Present: how hits, build reports and index facts look in a terminal and in JSON.

Abstract text is always passed to rich as ``Text``, never as markup, so a
passage containing ``[i]`` or ``[/b]`` prints literally, and control
characters in it (an ``ESC[2J`` that would clear the screen, an OSC title
sequence, bidi overrides) are shown escaped, never sent to the terminal. JSON
keeps every text exactly as stored.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from ..query import Answer, Hit, Response

if TYPE_CHECKING:
    from ..build.options import BuildReport
    from ..ingest.fetch import FetchReport
    from ..store.verify import VerifyReport


# C0 and C1 control characters (tab and newline excepted), DEL, and bidirectional overrides.
_ESCAPES = {
    c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    for c in [*range(0x00, 0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
    if c not in (0x09, 0x0A)
}


def shown(text: str) -> str:
    """``text`` safe for a terminal: control characters escaped (``\\x1b``), everything else as is."""
    return text.translate(_ESCAPES)


class _Shown(Text):
    """Rich ``Text`` whose strings are passed through ``shown``: all terminal output is built from it."""

    def __init__(self, text: str = "", *args: Any, **kwargs: Any) -> None:
        super().__init__(shown(text), *args, **kwargs)

    def append(self, text: Any, style: Any = None) -> _Shown:
        super().append(shown(text) if isinstance(text, str) else text, style)
        return self


def _section_name(section: str | None) -> str:
    return section.title() if section else "Abstract"


def _print_indented(console: Console, text: Text, indent: int = 3) -> None:
    """Wrap to the terminal with a hanging indent and no trailing padding."""
    for line in text.wrap(console, max(20, console.width - indent)):
        line.rstrip()
        console.print(_Shown(" " * indent) + line, soft_wrap=True)


def render_hits(console: Console, hits: Sequence[Hit]) -> None:
    """The ranked passages; those the relevance model calls weak come after a "Less related" line, dimmed,
    so that they never read like the passages that answer."""
    if not hits:
        console.print(_Shown("No passages found.", style="yellow"))
        return
    weak_shown = False
    for hit in sorted(hits, key=lambda h: h.relevance_label == "weak"):  # stable: ranks stay in order
        weak = hit.relevance_label == "weak"
        if weak and not weak_shown:
            weak_shown = True
            console.print(_Shown("Less related (the collection's closest, not judged to answer the question)",
                                 style="bold dim"))  # fmt: skip
            console.print()
        _render_hit(console, hit, dim=weak)


def _render_hit(console: Console, hit: Hit, *, dim: bool) -> None:
    head = _Shown()
    head.append(f"{hit.rank}. ", style="dim" if dim else "bold")
    head.append(f"PMID {hit.pmid}", style="cyan" if dim else "bold cyan")
    facts = [f for f in (hit.citation.journal_iso or hit.journal, str(hit.year) if hit.year else None) if f]
    if facts:
        head.append("  " + " · ".join(facts), style="dim")
    if hit.study_type:
        head.append(f"  [{hit.study_type}]", style="green" if not dim else "dim")
    relevance = f"  relevance {hit.relevance:.2f}" if hit.relevance is not None else ""
    head.append(f"  score {hit.score:.3f}{relevance}", style="dim")
    console.print(head)
    title = _Shown(hit.title or "(no title in the record)", style="bold" if hit.title and not dim else "dim italic")
    _print_indented(console, title)
    authors = hit.citation.author_line()
    if authors:
        _print_indented(console, _Shown(authors, style="dim"))
    body = _Shown(style="dim" if dim else "")
    body.append(f"[{_section_name(hit.section)}] ", style="magenta")
    if hit.highlight and not dim:
        s, e = hit.highlight
        body.append(hit.text[:s])
        body.append(hit.text[s:e], style="bold yellow")
        body.append(hit.text[e:])
    else:
        body.append(hit.text)
    _print_indented(console, body)
    _print_indented(console, _Shown(hit.url, style="blue underline"))
    console.print()


VERDICT_LINES = {
    "yes": "Yes, in this collection:",
    "no": "No, in this collection:",
    "mixed": "Mixed: the records that answer disagree, or are uncertain:",
    "unclear": "No clear yes or no: read the findings below before relying on them.",
}


def verdict_line(verdict: str) -> str:
    """The first line of a yes/no question's answer block."""
    return VERDICT_LINES.get(verdict, verdict)


def render_answer(console: Console, answer: Answer) -> None:
    """The cited answer block: each sentence followed by its [PMID]."""
    if not answer.sentences:
        console.print(
            _Shown("No sentence in the top passages answers this closely; see the passages below.", style="dim")
        )
        console.print()
        return
    console.print(_Shown("Answer", style="bold underline"))
    if answer.verdict:
        _print_indented(console, _Shown(verdict_line(answer.verdict), style="bold"))
    body = _Shown()
    for i, sentence in enumerate(answer.sentences):
        if i:
            body.append(" ")
        body.append(sentence.text)
        body.append(f" [{sentence.pmid}]", style="bold cyan")
    _print_indented(console, body)
    console.print()


def render_response(console: Console, response: Response) -> None:
    if response.query and response.query != response.question:
        console.print(_Shown(f"(searched: {response.query})", style="dim"), soft_wrap=True)
    if response.note:
        alarm = not response.hits or response.note.startswith("Uncertain")
        console.print(_Shown(response.note, style="yellow" if alarm else "dim"), soft_wrap=True)
        if not response.hits:
            return
    if response.hits:
        render_answer(console, response.answer)
    elif response.filters:
        note(f"No record matches the filters ({response.filters.describe()}).", "yellow")
    render_hits(console, response.hits)


def render_eval(console: Console, results: dict[str, dict[str, Any]]) -> None:
    keys = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")
    header = _Shown("mode".ljust(9) + "".join(k.rjust(11) for k in keys) + "queries".rjust(9), style="bold")
    console.print(header)
    for mode, metrics in results.items():
        row = mode.ljust(9) + "".join(f"{metrics[k]:11.4f}" for k in keys) + f"{metrics['queries']:9d}"
        console.print(_Shown(row))


def render_fetch(console: Console, report: FetchReport) -> None:
    resumed = f", {report.batches_resumed} resumed from an earlier run" if report.batches_resumed else ""
    console.print(
        _Shown(
            f"Saved {report.records:,} records to {report.output} "
            f"({report.wanted:,} of {report.count:,} matching; {report.batches} batches{resumed}; "
            f"{report.requests} requests in {report.seconds:.1f} s)"
        ),
        soft_wrap=True,
    )
    _warnings(console, report.warnings)


def _warnings(console: Console, warnings: Sequence[str]) -> None:
    for warning in warnings:
        console.print(_Shown(f"  warning: {warning}", style="yellow"), soft_wrap=True)


def render_verify(console: Console, report: VerifyReport) -> None:
    for line in report.passed:
        console.print(_Shown(f"ok       {line}"), soft_wrap=True)
    for line in report.problems:
        console.print(_Shown(f"PROBLEM  {line}", style="bold red"), soft_wrap=True)
    verdict = (
        "Index is consistent." if report.ok else f"{len(report.problems)} problem(s): rebuild with qa build --full"
    )
    console.print(_Shown(verdict, style="bold green" if report.ok else "bold red"))


def render_report(console: Console, report: BuildReport) -> None:
    lines: list[str] = []
    if report.noop:
        lines.append(f"Index {report.index} is up to date: nothing to add, change or delete")
    else:
        action = "Rebuilt" if report.full else "Updated"
        lines.append(f"{action} {report.index}: {report.records_indexed:,} records, {report.chunks:,} passages")
    if report.sources:
        skipped = sum(report.skipped.values())
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(report.skipped.items()))
        lines.append(f"  read {report.records_read:,} records from {len(report.sources)} file(s)")
        lines.append(f"  skipped {skipped:,}" + (f" ({reasons})" if reasons else ""))
    if report.bad:
        lines.append(f"  {len(report.bad):,} bad records or files left out (--skip-bad):")
        lines += [f"    {b}" for b in report.bad[:20]]
        if len(report.bad) > 20:
            lines.append(f"    ... and {len(report.bad) - 20} more (see --json)")
    if report.replaced:
        lines.append(f"  {report.replaced:,} PMIDs seen more than once (the last record was kept)")
    counts = f"added {report.added:,}, updated {report.updated:,}, unchanged {report.unchanged:,}"
    lines.append(f"  {counts}, deleted {report.deleted:,}")
    if report.not_found:
        shown = ", ".join(report.not_found[:5]) + (" ..." if len(report.not_found) > 5 else "")
        lines.append(f"  {len(report.not_found):,} PMIDs to delete were not in the index ({shown})")
    if report.shards:
        kept = report.shards - report.shards_made
        made = f" ({report.shards_made:,} made by {report.workers} Ray worker(s), {kept:,} complete already)"
        lines.append(
            f"  {report.shards:,} shards{made if report.workers or report.shards_made else ''}: "
            f"{report.chunks_from_shards:,} passages with their vectors indexed from them"
        )
    if report.shards and report.chunks_embedded:
        lines.append(
            f"  the workers embedded {report.chunks_embedded:,} passages in {report.embed_seconds:.1f} s of their "
            f"time ({report.chunks_per_second:.1f} passages/s per worker)"
        )
    elif report.chunks_embedded or report.chunks_reused:
        lines.append(
            f"  embedded {report.chunks_embedded:,} passages in {report.embed_seconds:.1f} s "
            f"({report.chunks_per_second:.1f} passages/s), reused {report.chunks_reused:,}"
        )
    if report.sentences_embedded:
        seconds = report.sentence_seconds
        lines.append(f"  embedded {report.sentences_embedded:,} sentences for answers in {seconds:.1f} s")
    lines.append(f"  {report.seconds:.1f} s in all")
    for i, line in enumerate(lines):
        console.print(_Shown(line, style="bold green" if i == 0 else ""), soft_wrap=True)
    _warnings(console, report.warnings)


def render_related(console: Console, related: list[dict[str, Any]]) -> None:
    """``qa related``: one line per article, those already indexed marked."""
    if not related:
        console.print(_Shown("PubMed lists no such articles.", style="yellow"))
        return
    for i, r in enumerate(related, start=1):
        line = _Shown(f"{i}. ", style="bold")
        line.append(f"PMID {r['pmid']}", style="bold cyan")
        facts = [f for f in (r["journal"], str(r["year"]) if r["year"] else None, r["study_type"]) if f]
        if facts:
            line.append("  " + " · ".join(facts), style="dim")
        if r["indexed"]:
            line.append("  [indexed]", style="green")
        console.print(line, soft_wrap=True)
        title = r["title"] or f"({r['note'] or 'no title'})"
        _print_indented(console, _Shown(title, style="" if r["title"] else "dim"))


def render_info(console: Console, info: dict[str, Any]) -> None:
    width = max(len(k) for k in info) + 2
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        elif key == "size_bytes" and isinstance(value, int):
            key, value = "size", f"{value / 1e6:.1f} MB"
        line = _Shown(key.replace("_", " ").ljust(width), style="bold")
        line.append(str(value))
        console.print(line, soft_wrap=True)


# ------------------------------------------------------------------ plumbing


def stdout() -> Console:
    return Console(highlight=False, soft_wrap=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def emit(result: Any, as_json: bool, render: Callable[[Console, Any], None]) -> None:
    """Print a result: its ``to_dict()`` (or itself) as JSON for scripts, else rendered for people."""
    if as_json:
        data = result.to_dict() if hasattr(result, "to_dict") else result
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        render(stdout(), result)


def print_json_line(data: Any) -> None:
    """One JSON object on one line (``qa ask --json``, and each answer of ``qa chat --json``)."""
    print(json.dumps(data, ensure_ascii=False), flush=True)


def note(message: str, style: str = "dim") -> None:
    """A line for the person at the terminal, on stderr so that stdout stays the result."""
    stderr().print(_Shown(message, style=style), soft_wrap=True)


STAGE_LABELS = {
    "fetch": "Fetching records",
    "prepare": "Preparing the int8 ONNX encoder (once per index, about 20 s)",
    "read": "Reading records",
    "embed": "Embedding records",
    "make": "Making shards on Ray workers",
    "shards": "Indexing records from shards",
}


@contextlib.contextmanager
def progress_bars() -> Iterator[Callable[[str, int, int | None], None]]:
    """A ``progress(stage, done, total)`` callback drawing one bar per stage on stderr (terminals only)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    err = stderr()
    bars = Progress(
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
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int | None) -> None:
        if stage not in tasks:
            if stage == "prepare" and not err.is_terminal:  # a log should still say why nothing happens for a while
                note(STAGE_LABELS[stage] + "...")
            for earlier in tasks.values():  # a stage that has ended stops spinning
                bars.update(earlier, visible=False)
            tasks[stage] = bars.add_task(STAGE_LABELS.get(stage, stage), total=total)
        bars.update(tasks[stage], completed=done, total=total)

    with bars:
        yield update


__all__ = [
    "shown",
    "stdout",
    "stderr",
    "emit",
    "print_json_line",
    "note",
    "progress_bars",
    "render_fetch",
    "render_verify",
    "render_hits",
    "render_answer",
    "render_response",
    "render_eval",
    "render_report",
    "render_info",
]
