"""Manifest: what a snapshot holds and how it was made; the first thing every reader checks."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import IndexStoreError
from .vectors import DEFAULT_NPROBE

FORMAT_VERSION = 4  # 2: FTS5 lexical table; 3: content hashes for incremental builds; 4: sentence vectors


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
    index_type: str = "flat"  # "flat" (exact inner product) or "ivf-sq8"
    nprobe: int = DEFAULT_NPROBE  # ivf-sq8: inverted lists searched per question
    backend: str = "torch"  # how vectors were made: "torch" or "onnx-int8"
    pubmed: dict[str, Any] | None = None  # the PubMed search this index follows (`qa update`)
    encoder: str | None = None  # onnx-int8: the exported encoder's folder, relative to the index
    encoder_sha256: str | None = None  # onnx-int8: checksum of the encoder's model file
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"bytes", "sha256"}
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_file(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexStoreError(f"{path}: unreadable manifest ({exc})") from None
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            found = data.get("format_version") if isinstance(data, dict) else None
            raise IndexStoreError(
                f"{path}: index format {found!r} is not supported by this version (expected {FORMAT_VERSION}); "
                "rebuild the index with qa build --full"
            )
        known = {f for f in cls.__dataclass_fields__}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise IndexStoreError(f"{path}: incomplete manifest ({exc})") from None


def file_facts(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


__all__ = ["Manifest", "FORMAT_VERSION", "file_facts"]
