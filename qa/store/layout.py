"""Layout: the one place that knows what lives where inside an index folder.

::

    CURRENT                     name of the live snapshot (replaced atomically)
    snap-<time>-<id>/           manifest.json, vectors.faiss, passages.sqlite
    .build-<id>/                a build in progress; never read, removed by the next build
    .lock                       held by the one build allowed at a time
    models/<name>-onnx-int8/    the int8 ONNX encoder (model.onnx, tokenizer.json, encoder.json)
    fetch/pubmed-<key>.xml.gz   records fetched from PubMed for a build (resumable)
    shards/                     qa build --engine ray: its shards, unless --shards puts them elsewhere
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..embed.onnx import ENCODER_FILES, EXPORT_PREFIX, MODEL_FILE, SETTINGS_FILE, TOKENIZER_FILE, encoder_dir_name
from ..errors import IndexStoreError

_SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,200}")
MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
PASSAGES = "passages.sqlite"
CURRENT = "CURRENT"
LOCK = ".lock"
SNAPSHOT_PREFIX = "snap-"
BUILD_PREFIX = ".build-"
MODELS = "models"
FETCH = "fetch"
SHARDS = "shards"
# The encoder folder's own files are named by the backend that makes them (``qa.embed.onnx``).
ENCODER_MODEL, ENCODER_SETTINGS, ENCODER_TOKENIZER = MODEL_FILE, SETTINGS_FILE, TOKENIZER_FILE


@dataclass(frozen=True)
class IndexLayout:
    """Paths inside one index folder; creates nothing."""

    root: Path

    @property
    def current(self) -> Path:
        return self.root / CURRENT

    @property
    def lock(self) -> Path:
        return self.root / LOCK

    def snapshot(self, name: str) -> Path:
        return self.root / name

    @staticmethod
    def is_snapshot_name(name: str) -> bool:
        """A name ``new_snapshot`` could have made (letters, digits, "-", "_", "."): never a path, a NUL byte
        or a control character, whatever ``CURRENT`` holds."""
        return name.startswith(SNAPSHOT_PREFIX) and _SNAPSHOT_NAME.fullmatch(name) is not None

    def new_snapshot(self) -> Path:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        return self.root / f"{SNAPSHOT_PREFIX}{stamp}-{uuid.uuid4().hex[:6]}"

    def new_build(self) -> Path:
        return self.root / f"{BUILD_PREFIX}{uuid.uuid4().hex[:12]}"

    def new_pointer(self) -> Path:
        return self.root / f".{CURRENT}.{uuid.uuid4().hex[:8]}"

    def leftovers(self, live: str | None) -> list[Path]:
        """What crashes leave behind: unfinished builds, snapshots no longer live, half-written pointers,
        and interrupted encoder exports."""
        found = [
            child
            for child in self.root.iterdir()
            if (child.is_dir() and not child.is_symlink() and child.name.startswith(BUILD_PREFIX))
            or (child.is_dir() and child.name.startswith(SNAPSHOT_PREFIX) and child.name != live)
            or (child.is_file() and child.name.startswith(f".{CURRENT}."))
        ]
        models = self.root / MODELS
        if models.is_dir() and not models.is_symlink():
            found += [child for child in models.iterdir() if child.is_dir() and child.name.startswith(EXPORT_PREFIX)]
        return found

    # -- beside the snapshots --------------------------------------------

    def encoder_dir_for(self, model: str | None) -> Path:
        """Where a build keeps (or exports) the int8 encoder of ``model``."""
        return self.root / MODELS / encoder_dir_name(model)

    @staticmethod
    def encoder_reference(encoder_dir: Path) -> str:
        """What the manifest records for an encoder folder: ``models/<name>``."""
        return f"{MODELS}/{encoder_dir.name}"

    def encoder_dir_from(self, reference: str) -> Path:
        """The encoder folder a manifest names, refused unless it is ``models/<name>`` inside this index."""
        parts = reference.split("/")
        if len(parts) != 2 or parts[0] != MODELS or not _SAFE_NAME.fullmatch(parts[1]):
            raise IndexStoreError(
                f"{self.root}: the manifest names an encoder outside models/; rebuild with qa build --full"
            )
        return self.confined(self.root / MODELS / parts[1])

    def confined(self, path: Path) -> Path:
        """``path`` if, with every symlink followed, it stays inside the index folder; otherwise refused."""
        try:
            inside = path.resolve().is_relative_to(self.root.resolve())
        except (OSError, RuntimeError):
            inside = False
        if not inside:
            raise IndexStoreError(f"{path.name}: leads outside the index folder {self.root}; refused")
        return path

    def fetch_file(self, key: str) -> Path:
        return self.root / FETCH / f"pubmed-{key}.xml.gz"

    @property
    def shards(self) -> Path:
        """Where a distributed build keeps its shards by default (see ``qa.build.shards``)."""
        return self.root / SHARDS


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


__all__ = [
    "IndexLayout",
    "encoder_dir_name",
    "MANIFEST",
    "VECTORS",
    "PASSAGES",
    "CURRENT",
    "LOCK",
    "ENCODER_MODEL",
    "ENCODER_SETTINGS",
    "ENCODER_TOKENIZER",
    "ENCODER_FILES",
]
