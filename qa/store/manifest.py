"""Manifest: what a snapshot holds and how it was made; the first thing every reader checks."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..checksums import file_facts
from ..embed.onnx import MODEL_FILE
from ..embed.registry import BACKENDS, DEFAULT_BACKEND, is_exported
from ..errors import IndexStoreError
from ..records import load_json
from .vectors import DEFAULT_NPROBE

FORMAT_VERSION = 7  # 2: FTS5 lexical table; 3: content hashes for incremental builds; 4: sentence vectors;
# 5: citations (authors, issue, pages, publication types); 6: a contentless FTS5 table (no second copy of the text);
# 7: compressed abstracts and 3-bit sentence codes, one row a record (qa.store.compact), 8 KB pages


@dataclass
class Manifest:
    """Settings and counts of one snapshot, with the size and SHA-256 of its files."""

    model: str
    dimension: int
    max_seq_length: int
    chunking: dict[str, Any]
    records: int
    chunks: int
    built_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    build_seconds: float = 0.0
    sources: list[str] = field(default_factory=list)
    index_type: str = "flat"  # "flat" (exact inner product), "ivf-sq8" or "ivf-pq"
    nprobe: int = DEFAULT_NPROBE  # IVF: inverted lists searched per question
    backend: str = DEFAULT_BACKEND  # how vectors were made: a name in qa.embed.registry
    pubmed: dict[str, Any] | None = None  # the PubMed search this index follows (`qa update`)
    encoder: str | None = None  # onnx-int8: the exported encoder's folder, relative to the index
    encoder_files: dict[str, str] = field(default_factory=dict)  # onnx-int8: every encoder file -> SHA-256
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"bytes", "sha256"}
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_file(cls, path: Path) -> Manifest:
        try:
            data = load_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problem = str(exc)[:120]
            raise IndexStoreError(f"{path}: unreadable manifest ({problem}); rebuild with qa build --full") from None
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            found = data.get("format_version") if isinstance(data, dict) else None
            raise IndexStoreError(
                f"{path}: index format {found!r} is not supported by this version (expected {FORMAT_VERSION}); "
                "rebuild the index with qa build --full"
            )
        known = {f for f in cls.__dataclass_fields__}
        try:
            manifest = cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise IndexStoreError(f"{path}: incomplete manifest ({exc})") from None
        problem = manifest.problem()
        if problem:
            raise IndexStoreError(f"{path}: invalid manifest ({problem}); rebuild with qa build --full")
        return manifest

    def problem(self) -> str | None:
        """The first field with a wrong type or out of range, described; None when every field is sound."""
        for name, check in _CHECKS.items():
            value = getattr(self, name)
            if not check(value):
                return f"{name} is {_preview(value)}"
        if is_exported(self.backend) and (not self.encoder or MODEL_FILE not in self.encoder_files):
            return f"the {self.backend} encoder and its files are not listed"
        return None


def _int(low: int, high: int) -> Any:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _str(limit: int = 4096) -> Any:
    return lambda v: isinstance(v, str) and len(v) <= limit


def _sha(v: Any) -> bool:
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)


def _optional(check: Any) -> Any:
    return lambda v: v is None or check(v)


_COUNT = _int(0, 10**12)
_CHECKS = {
    "model": lambda v: isinstance(v, str) and 0 < len(v) <= 4096,
    "dimension": _int(1, 65_536),
    "max_seq_length": _int(1, 1_000_000),
    "chunking": lambda v: (
        isinstance(v, dict) and _int(1, 1_000_000)(v.get("chunk_tokens")) and _int(0, 1_000)(v.get("overlap_sentences"))
    ),
    "records": _COUNT,
    "chunks": _COUNT,
    "built_at": _str(64),
    "build_seconds": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 10**9,
    "sources": lambda v: isinstance(v, list) and len(v) <= 1_000_000 and all(_str()(s) for s in v),
    "index_type": lambda v: v in ("flat", "ivf-sq8", "ivf-pq"),
    "nprobe": _int(1, 65_536),
    "backend": lambda v: v in BACKENDS,
    "pubmed": lambda v: (
        v is None
        or (isinstance(v, dict) and _optional(_str(100_000))(v.get("query")) and _optional(_COUNT)(v.get("max")))
    ),
    "encoder": _optional(_str(255)),
    "encoder_files": lambda v: isinstance(v, dict) and all(_str(255)(k) and _sha(h) for k, h in v.items()),
    "files": lambda v: (
        isinstance(v, dict)
        and all(
            isinstance(k, str) and isinstance(f, dict) and _COUNT(f.get("bytes")) and _sha(f.get("sha256"))
            for k, f in v.items()
        )
    ),
    "format_version": _int(FORMAT_VERSION, FORMAT_VERSION),
}


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = ["Manifest", "FORMAT_VERSION", "file_facts"]
