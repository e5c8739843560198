"""Build options and settings: what a build was asked for, what it reports, and what it runs with.

``BuildOptions`` travel unchanged from the CLI or a script to every engine; ``resolve_settings``
applies the index's own settings and the package defaults to them, and refuses a mix that needs
``--full``. Both engines (local and shards) use it, so they embed with the same model and chunking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..embed import DEFAULT_BACKEND, ChunkSettings, Embedder, check_same_model
from ..errors import QAError
from ..store import IndexStore, Manifest

ProgressCallback = Callable[[str, int, "int | None"], None]
"""Called as ``progress(stage, done, total)``; stages are "fetch", "prepare" (the one-time encoder
export), "read", "embed" and, with Ray, "make" (shards made) and "shards" (records indexed from them)."""


@dataclass(frozen=True)
class BuildOptions:
    """How to build; None means "what the index was built with, else the default".

    ``workers`` (local engine) is 1 by default: chunking runs in the build's own process, safe in any
    script. More chunk in that many worker processes while the encoder runs; they are started with
    "spawn", so the script needs the usual ``if __name__ == "__main__":`` guard. None picks by the number
    of records to embed and of CPUs (``chunk_pool.auto_workers``), as ``qa build`` does. The index is the
    same either way. (The Ray engine's workers are ``RayOptions.workers``: Ray actors, one encoder each.)
    """

    full: bool = False  # rebuild from the given sources alone
    skip_bad: bool = False  # index the good records and list the bad ones instead of stopping
    model: str | None = None
    backend: str | None = None
    index_type: str = "auto"
    chunk_tokens: int | None = None
    overlap_sentences: int | None = None
    device: str | None = None
    batch_size: int | None = None
    pubmed: dict[str, Any] | None = None  # the PubMed search to remember for `qa update`
    workers: int | None = 1  # processes that chunk; see above
    precision: str | None = None  # torch backend: "fp16" or "fp32" (None: fp16 on CUDA, else fp32)


@dataclass
class BuildReport:
    """What a build did, for the summary line and for scripts (``--json``)."""

    index: str
    sources: list[str]
    full: bool = False
    records_read: int = 0
    replaced: int = 0  # PMIDs seen more than once in this build's input (the last one kept)
    skipped: dict[str, int] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)  # with skip_bad: what could not be read, one line each
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0  # removed from the index, or withdrawn before ever being indexed
    cancelled: int = 0  # of those, records read earlier in this same build
    not_found: list[str] = field(default_factory=list)  # asked to delete, but not in the index
    records_indexed: int = 0  # records in the index afterwards
    chunks: int = 0  # passages in the index afterwards
    chunks_embedded: int = 0
    chunks_reused: int = 0
    sentences_embedded: int = 0  # sentence vectors for the answer block (reused when their text is unchanged)
    warnings: list[str] = field(default_factory=list)  # e.g. PMIDs PubMed did not return (--allow-partial)
    seconds: float = 0.0
    embed_seconds: float = 0.0  # encoding passages
    sentence_seconds: float = 0.0  # encoding sentences
    shards: int = 0  # made from shards (qa index from-shards, --engine ray): the shards read
    shards_made: int = 0  # --engine ray: shards made by this run (the others were complete already)
    workers: int = 0  # --engine ray: Ray workers that made them; embed times above are summed over them
    chunks_from_shards: int = 0  # passages (with their vectors) taken from shards into the index

    @property
    def noop(self) -> bool:
        return not (self.added or self.updated or self.deleted - self.cancelled)

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "sources": self.sources,
            "full": self.full,
            "noop": self.noop,
            "records_read": self.records_read,
            "replaced": self.replaced,
            "skipped": dict(self.skipped),
            "bad": list(self.bad),
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "not_found": self.not_found,
            "warnings": list(self.warnings),
            "records_indexed": self.records_indexed,
            "chunks": self.chunks,
            "chunks_embedded": self.chunks_embedded,
            "chunks_reused": self.chunks_reused,
            "sentences_embedded": self.sentences_embedded,
            "seconds": round(self.seconds, 2),
            "embed_seconds": round(self.embed_seconds, 2),
            "sentence_seconds": round(self.sentence_seconds, 2),
            "chunks_per_second": round(self.chunks_per_second, 1),
            "shards": self.shards,
            "shards_made": self.shards_made,
            "workers": self.workers,
            "chunks_from_shards": self.chunks_from_shards,
        }



def no_progress(stage: str, done: int, total: int | None) -> None:
    pass


@dataclass(frozen=True)
class BuildSettings:
    """What a build runs with, after the index's own settings and the defaults are applied."""

    chunking: ChunkSettings
    model: str | None
    backend: str


def build_settings(index: str | Path, options: BuildOptions) -> BuildSettings:
    """The settings a build of ``index`` with ``options`` would use (for engines that embed elsewhere)."""
    store = IndexStore(index)
    built = store.manifest() if store.exists() and not options.full else None
    return resolve_settings(built, store.path, options, None)


def resolve_settings(
    built: Manifest | None, where: Path, options: BuildOptions, embedder: Embedder | None
) -> BuildSettings:
    """What was asked, else what the index was built with, else the defaults; a mismatch needs --full."""
    defaults = ChunkSettings()
    backend = embedder.backend if embedder is not None else options.backend
    chunking = ChunkSettings(
        _first(options.chunk_tokens, built.chunking.get("chunk_tokens") if built else None, defaults.chunk_tokens),
        _first(
            options.overlap_sentences,
            built.chunking.get("overlap_sentences") if built else None,
            defaults.overlap_sentences,
        ),
    )
    if built is None:
        return BuildSettings(chunking, options.model, backend or DEFAULT_BACKEND)
    check_same_model(
        built.model,
        embedder.name if embedder is not None else options.model,
        where,
        hint="add --full to rebuild it with the new model",
    )
    if backend is not None and backend != built.backend:
        raise QAError(
            f"index {where} was built with the {built.backend} backend, not {backend}; "
            "add --full to rebuild it with the new backend"
        )
    if (chunking.chunk_tokens, chunking.overlap_sentences) != (
        built.chunking.get("chunk_tokens"),
        built.chunking.get("overlap_sentences"),
    ):
        raise QAError(
            f"index {where} was built with chunk_tokens={built.chunking.get('chunk_tokens')}, "
            f"overlap={built.chunking.get('overlap_sentences')}; add --full to rebuild it with new chunking"
        )
    return BuildSettings(chunking, built.model, built.backend)


def _first(*values: Any) -> Any:
    return next(v for v in values if v is not None)


__all__ = ["BuildOptions", "BuildReport", "BuildSettings", "ProgressCallback", "build_settings", "resolve_settings",
           "no_progress"]
