"""Layout: the one place that knows what lives where inside an index folder.

::

    CURRENT                     name of the live snapshot (replaced atomically)
    snap-<time>-<id>/           manifest.json, vectors.faiss, passages.sqlite
    .build-<id>/                a build in progress; never read, removed by the next build
    .lock                       held by the one build allowed at a time
    models/<name>-onnx-int8/    the int8 ONNX encoder (model.onnx, tokenizer.json, encoder.json)
    fetch/pubmed-<key>.xml.gz   records fetched from PubMed for a build (resumable)
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
PASSAGES = "passages.sqlite"
CURRENT = "CURRENT"
LOCK = ".lock"
SNAPSHOT_PREFIX = "snap-"
BUILD_PREFIX = ".build-"
MODELS = "models"
FETCH = "fetch"
ENCODER_MODEL = "model.onnx"  # inside an encoder folder: the int8 graph
ENCODER_SETTINGS = "encoder.json"  # inside an encoder folder: pooling, max length, checksum
ENCODER_TOKENIZER = "tokenizer.json"


def encoder_dir_name(model: str | None) -> str:
    """Folder name, inside ``models/``, of a model's int8 ONNX export."""
    from ..embed import DEFAULT_MODEL, canonical_model_name

    name = canonical_model_name(model)
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name).name).strip("-") or "model"
    if name != DEFAULT_MODEL:
        base += "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{base}-onnx-int8"


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
        return name.startswith(SNAPSHOT_PREFIX) and "/" not in name and "\\" not in name and name not in (".", "..")

    def new_snapshot(self) -> Path:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        return self.root / f"{SNAPSHOT_PREFIX}{stamp}-{uuid.uuid4().hex[:6]}"

    def new_build(self) -> Path:
        return self.root / f"{BUILD_PREFIX}{uuid.uuid4().hex[:12]}"

    def new_pointer(self) -> Path:
        return self.root / f".{CURRENT}.{uuid.uuid4().hex[:8]}"

    def is_leftover(self, child: Path, live: str | None) -> bool:
        """An unfinished build or a snapshot that is no longer live."""
        return child.is_dir() and (
            child.name.startswith(BUILD_PREFIX) or (child.name.startswith(SNAPSHOT_PREFIX) and child.name != live)
        )

    # -- beside the snapshots --------------------------------------------

    def encoder_dir(self, folder: str) -> Path:
        return self.root / MODELS / folder

    def encoder_dir_for(self, model: str | None) -> Path:
        return self.encoder_dir(encoder_dir_name(model))

    def fetch_file(self, key: str) -> Path:
        return self.root / FETCH / f"pubmed-{key}.xml.gz"


def encoder_model_file(encoder_dir: Path) -> Path:
    return encoder_dir / ENCODER_MODEL


__all__ = [
    "IndexLayout",
    "encoder_dir_name",
    "encoder_model_file",
    "MANIFEST",
    "VECTORS",
    "PASSAGES",
    "CURRENT",
    "LOCK",
    "ENCODER_MODEL",
    "ENCODER_SETTINGS",
    "ENCODER_TOKENIZER",
]
