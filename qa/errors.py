"""The one exception type users of the library (and the CLI) need to catch.

Every error that is the user's to fix -- a malformed file, a missing index, a
model mismatch -- is a ``QAError`` whose message is a single readable line.
Anything else escaping the package is a bug.
"""

from __future__ import annotations


class QAError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class IngestError(QAError):
    """A source file could not be read or parsed."""


class IndexStoreError(QAError):
    """The index is missing, unreadable, or incompatible with the request."""


class ModelError(QAError):
    """The embedding model could not be loaded or does not match the index."""


class FetchError(QAError):
    """PubMed's E-utilities could not be reached or answered with an error."""


class ShardError(QAError):
    """A shard of a distributed build is unfinished, damaged or does not fit the others."""


__all__ = ["QAError", "IngestError", "IndexStoreError", "ModelError", "FetchError", "ShardError"]
