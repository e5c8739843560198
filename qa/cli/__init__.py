"""The ``qa`` command line, over the same API other programs import.

- ``app``: the Typer app, its one-line errors and plain help
- ``commands``: one function per command (``qa build``, ``ask``, ``chat``, ...)
- ``literature``: the commands that reach PubMed or write references (``fetch``, ``related``, ``update``, ``cite``)
- ``options``: the option declarations commands share
- ``present``: how results look in a terminal and as JSON
- ``prompt``: what ``qa chat`` reads
"""

from .app import app
from .commands import main

__all__ = ["app", "main"]
