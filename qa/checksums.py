"""Checksums: the size and SHA-256 of a file, streamed; one copy for the store, the encoder and shards."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def file_facts(path: Path) -> dict[str, Any]:
    """``{"bytes": size, "sha256": hex}`` of a file, read 1 MB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def not_regular(folder: Path, names: Iterable[str] | None = None) -> list[str]:
    """Names in ``folder`` (all of them, or ``names`` where present) that are not regular files: symbolic
    links (never followed: they could point anywhere, at /etc/passwd or a FIFO), folders, devices, FIFOs."""
    entries = [folder / n for n in names] if names is not None else sorted(folder.iterdir())
    return [p.name for p in entries if (p.is_symlink() or p.exists()) and (p.is_symlink() or not p.is_file())]


def file_sha256(path: Path) -> str:
    return str(file_facts(path)["sha256"])


__all__ = ["file_facts", "file_sha256", "not_regular"]
