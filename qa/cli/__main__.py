"""``python -m qa.cli``: the ``qa`` command."""

from .commands import main

main()
