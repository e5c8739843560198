"""The ``qa`` app itself: its one-line usage errors, plain help, ``--version``, and user errors as one line."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from .. import __version__
from ..errors import QAError


def whole_summary(command: Any) -> str:
    """The whole first paragraph of a command's help, for ``qa --help``: click cuts it at 45 columns with
    "..." whatever the terminal's width, which left every summary unfinished."""
    text = command.short_help or (command.help or "").strip().split("\n\n")[0]
    return " ".join(text.split())


class PlainGroup(TyperGroup):
    """A group of subcommands (``qa index``) whose summary in ``qa --help`` is whole."""

    def get_short_help_str(self, limit: int = 45) -> str:
        return whole_summary(self)


class OneLineErrors(TyperGroup):
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
            error_line(f"{exc.format_message()}{where}")
            code = 2
        except click_errors.ClickException as exc:
            error_line(exc.format_message())
            code = exc.exit_code
        except typer.Abort:
            code = 130
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


class PlainHelp(TyperCommand):
    """Usage as people write it (``QUESTION``, ``[SOURCE]...``), without type labels such as ``<list[str]>``."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [re.sub(r"^\{(.+?)\}", r"\1", piece) for piece in super().collect_usage_pieces(ctx)]

    def get_short_help_str(self, limit: int = 45) -> str:
        return whole_summary(self)

    def get_help(self, ctx: Any) -> str:
        for param in self.params:
            if isinstance(param, TyperArgument):
                param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
        return super().get_help(ctx)


app = typer.Typer(
    name="qa",
    cls=OneLineErrors,
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


def error_line(message: str) -> None:
    from .present import note

    note(f"Error: {message}", "bold red")


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


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can fix into one line on stderr and exit code 1."""
    try:
        yield
    except QAError as exc:
        error_line(str(exc))
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        from .present import note

        note("Interrupted; the index was left as it was.", "yellow")
        raise typer.Exit(130) from None


def usage_error(message: str) -> NoReturn:
    """A usage error raised from inside a command: one ``Error:`` line naming its --help, exit status 2."""
    from typer._click import exceptions as click_errors
    from typer._click.globals import get_current_context

    raise click_errors.UsageError(message, ctx=get_current_context(silent=True))


def prepare(verbose: bool) -> None:
    """Quiet third-party logging and loading bars before a command that loads a model (unless --verbose)."""
    from ..embed import quiet_third_party

    quiet_third_party(verbose)


__all__ = ["app", "PlainHelp", "PlainGroup", "user_errors", "error_line", "prepare", "usage_error"]
