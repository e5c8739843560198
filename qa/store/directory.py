"""Directory: an index folder -- which snapshot is live, one writer at a time, readers at will.

A build writes a complete new snapshot beside the old one and only then points
``CURRENT`` at it, so a crash, Ctrl-C or failed parse at any moment leaves the
previous index exactly as it was. Nothing is pickled: vectors are FAISS's own
format, everything else is SQLite and JSON.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..checksums import not_regular
from ..embed.onnx import ENCODER_FILES, encoder_checksums, encoder_model_file
from ..errors import IndexStoreError
from ..records import Record
from .durable import exclusive_lock, fault_point, fsync_dir, fsync_file
from .layout import MANIFEST, PASSAGES, IndexLayout
from .manifest import Manifest
from .snapshot import Passages, Snapshot
from .vectors import resolve_index_type
from .writer import SnapshotWriter

MAX_POINTER_BYTES = 256  # CURRENT holds one snapshot name


class IndexStore:
    """An index directory on disk; see ``layout`` for what lives in it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.layout = IndexLayout(self.path)

    def _check_folder(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise IndexStoreError(f"{self.path} is a file, not an index folder; give --index a folder")

    def exists(self) -> bool:
        return self.layout.current.is_file()

    def live_name(self) -> str | None:
        """The live snapshot's name as CURRENT gives it, or None when nothing is built yet."""
        self._check_folder()
        pointer = self.layout.current
        if pointer.is_symlink():  # never followed: it could point anywhere, and its target would be shown
            raise IndexStoreError(f"{pointer}: is a symbolic link, not the index's own pointer; refused")
        if not pointer.is_file():
            return None
        raw = b""
        try:
            with open(pointer, "rb") as fh:
                raw = fh.read(MAX_POINTER_BYTES + 1)
            name = raw.decode("utf-8").strip()
        except (OSError, UnicodeDecodeError):
            name = ""
        if len(raw) > MAX_POINTER_BYTES or not self.layout.is_snapshot_name(name):
            raise IndexStoreError(f"{pointer}: corrupt pointer; rebuild with qa build --full")
        return name

    def current_dir(self) -> Path:
        name = self.live_name()
        if name is None:
            if not self.path.exists():
                raise IndexStoreError(f"no index at {self.path}: run `qa build FILE...` first")
            raise IndexStoreError(f"no index built in {self.path} yet: run `qa build FILE...` first")
        snapshot = self.layout.snapshot(name)
        if snapshot.is_symlink():
            raise IndexStoreError(f"{snapshot}: the live snapshot is a symbolic link; refused")
        return self.layout.confined(snapshot)

    def manifest(self) -> Manifest:
        return Manifest.from_file(self.current_dir() / MANIFEST)

    def open(self, *, verify: bool | None = None) -> Snapshot:
        """The live snapshot; retries if a build swaps it between reading CURRENT and opening files.

        ``verify``: hash the snapshot's files against the manifest (None: only when they are small).
        """
        for _ in range(5):
            directory = self.current_dir()
            if directory.is_dir():
                try:
                    return Snapshot(directory, verify=verify)
                except IndexStoreError:
                    if self.current_dir() == directory and directory.is_dir():
                        raise  # not a swap in progress: a real problem with the live snapshot
                except (OSError, sqlite3.Error) as exc:
                    if self.current_dir() == directory and directory.is_dir():
                        raise IndexStoreError(f"{directory}: cannot open ({exc}); run `qa verify`") from None
            time.sleep(0.05)
        raise IndexStoreError(f"{self.path}: live snapshot {self.current_dir().name} is missing; rebuild with qa build")

    def encoder_dir(self, manifest: Manifest, *, check: bool = True) -> Path:
        """The int8 encoder folder an index was built with: inside the index, present, and unchanged.

        Its files are small (about 23 MB), so their SHA-256 is checked on every load: a flipped byte in
        the model would otherwise change every answer silently.
        """
        if not manifest.encoder:
            raise IndexStoreError(f"{self.path}: the manifest names no encoder; rebuild with qa build --full")
        folder = self.layout.encoder_dir_from(manifest.encoder)
        odd = not_regular(folder, ENCODER_FILES) if folder.is_dir() and not folder.is_symlink() else []
        if odd:
            raise IndexStoreError(
                f"the index's encoder {manifest.encoder}: {', '.join(odd)} is not a regular file inside the index "
                "(a symbolic link?); refused: rebuild with qa build --full"
            )
        if not encoder_model_file(folder).is_file() or folder.is_symlink():
            raise IndexStoreError(
                f"the index's encoder {manifest.encoder} is missing; rebuild the index with qa build --full"
            )
        if check:
            expected = manifest.encoder_files  # never empty for an exported backend (Manifest.problem)
            found = encoder_checksums(folder)
            changed = sorted(name for name, digest in expected.items() if found.get(name) != digest)
            if changed:
                raise IndexStoreError(
                    f"the index's encoder {manifest.encoder}: {', '.join(changed)} differ from the files the index "
                    "was built with (changed or damaged); run `qa verify`, then rebuild with qa build --full"
                )
        return folder

    def open_passages(self) -> Passages:
        """The live snapshot's SQLite side alone (no FAISS), for facts and checks."""
        return Passages(self.current_dir() / PASSAGES)

    def lock(self, timeout: float = 0) -> Any:
        """An exclusive lock for writers; a second build fails at once with a clear message."""
        self._check_folder()
        self.path.mkdir(parents=True, exist_ok=True)
        busy = f"another build is running on {self.path} (lock {self.layout.lock} is held); wait for it to finish"
        return exclusive_lock(self.layout.lock, busy, timeout)

    def begin(self, *, dimension: int, base: Snapshot | None = None, index_type: str = "auto") -> SnapshotWriter:
        """Start a new snapshot, empty or from a copy of ``base``; call under ``lock()``."""
        self.path.mkdir(parents=True, exist_ok=True)
        resolve_index_type(index_type, 0)  # reject unknown names before any work
        return SnapshotWriter(self.layout, self.layout.new_build(), dimension, base, index_type)

    def commit(self, writer: SnapshotWriter, manifest: Manifest) -> Path:
        """Finish ``writer``'s snapshot, make it the live one, and remove what it replaced."""
        final = writer.commit(manifest)
        fault_point("swap")
        self.publish(final)
        self.remove_stale()
        return final

    def remove_stale(self) -> None:
        """Delete what earlier builds left behind (call under the lock, before a build starts)."""
        for leftover in self.layout.leftovers(self.live_name()):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)

    def publish(self, snapshot_dir: Path) -> None:
        """Point CURRENT at a finished snapshot: the single atomic step of every build."""
        tmp = self.layout.new_pointer()
        tmp.write_text(snapshot_dir.name + "\n", encoding="utf-8")
        fsync_file(tmp)
        os.replace(tmp, self.layout.current)
        fsync_dir(self.path)

    def describe(self) -> dict[str, Any]:
        """What ``qa info`` shows, read from the manifest and SQLite only (no FAISS, no model)."""
        directory = self.current_dir()
        manifest = Manifest.from_file(directory / MANIFEST)
        passages = self.open_passages()
        try:
            facts = passages.facts()
        finally:
            passages.close()
        size = sum(f.stat().st_size for f in directory.iterdir() if f.is_file())
        return {
            "index": str(self.path.resolve()),
            "snapshot": directory.name,
            **facts,
            "model": manifest.model,
            "dimension": manifest.dimension,
            "max_seq_length": manifest.max_seq_length,
            "chunking": manifest.chunking,
            "index_type": manifest.index_type
            + (f" (nprobe {manifest.nprobe})" if manifest.index_type != "flat" else ""),
            "backend": manifest.backend,
            "built_at": manifest.built_at,
            "build_seconds": manifest.build_seconds,
            "sources": manifest.sources,
            "size_bytes": size,
            "format_version": manifest.format_version,
        }


def read_records(path: str | Path, pmids: Sequence[str]) -> list[Record]:
    """The stored records of ``pmids``, in that order, without loading vectors or the model (``qa cite``)."""
    store = IndexStore(path)
    store.manifest()  # an index of another format is refused in one line, as everywhere
    passages = store.open_passages()
    try:
        found = {p: passages.record(p) for p in dict.fromkeys(pmids)}
    finally:
        passages.close()
    missing = [p for p, r in found.items() if r is None]
    if missing:
        raise IndexStoreError(f"not in the index at {path}: PMID {', '.join(missing[:10])}"
                              + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""))  # fmt: skip
    return [r for r in found.values() if r is not None]


def describe(path: str | Path) -> dict[str, Any]:
    return IndexStore(path).describe()


__all__ = ["IndexStore", "describe"]
