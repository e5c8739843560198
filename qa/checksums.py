"""Checksums: the size and SHA-256 of a file, streamed; one copy for the store, the encoder and shards."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def file_facts(path: Path) -> dict[str, Any]:
    """``{"bytes": size, "sha256": hex}`` of a file, read 1 MB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def file_sha256(path: Path) -> str:
    return str(file_facts(path)["sha256"])


__all__ = ["file_facts", "file_sha256"]
