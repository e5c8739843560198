"""Build: every way of turning sources into an index.

- ``options``: ``BuildOptions``, ``BuildReport`` and the settings a build runs with
- ``pipeline``: the local build (``build_index``, ``remove_records``) and ``update_index``, the one update
- ``batches``: the inner loop both engines share -- source checks, the event tally, batch encoding
- ``chunk_pool``: chunking in worker processes while the encoder runs (``--workers``)
- ``pubmed``: building from a live PubMed search, and ``qa update``
- ``shards/``: the distributed engine -- the shard format, the worker, Ray, and assembling an index

Names are imported on first use, so a shard worker that imports ``batches`` does not load the pipeline.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .options import BuildOptions, BuildReport, BuildSettings, ProgressCallback, build_settings
    from .pipeline import build_index, remove_records
    from .pubmed import Fetched, PubmedSource, fetch_for_index, update_from_pubmed
    from .shards.assemble import index_from_shards

_EXPORTS = {
    "BuildOptions": "options",
    "BuildReport": "options",
    "BuildSettings": "options",
    "ProgressCallback": "options",
    "build_settings": "options",
    "build_index": "pipeline",
    "remove_records": "pipeline",
    "PubmedSource": "pubmed",
    "Fetched": "pubmed",
    "fetch_for_index": "pubmed",
    "update_from_pubmed": "pubmed",
    "index_from_shards": "shards.assemble",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


__all__ = [
    "BuildOptions",
    "BuildReport",
    "BuildSettings",
    "ProgressCallback",
    "build_settings",
    "build_index",
    "remove_records",
    "PubmedSource",
    "Fetched",
    "fetch_for_index",
    "update_from_pubmed",
    "index_from_shards",
]
