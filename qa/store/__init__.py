"""Store: the on-disk index, and the only package that touches FAISS and SQL.

- ``layout``: what lives where in an index folder
- ``directory``: ``IndexStore`` -- the live snapshot, the build lock, atomic publishing
- ``snapshot``: reading one snapshot (``Passages`` in SQLite, ``Snapshot`` adds vectors and BM25)
- ``writer``: ``SnapshotWriter`` -- staging, the change plan, writing and committing
- ``vectors``: FAISS (the only module that imports it)
- ``lexical``: BM25 over SQLite FTS5 with biomedical terms
- ``compact``: compressed abstracts and 3-bit sentence codes (under 1 KB a passage)
- ``manifest``: what a snapshot holds and how it was made
- ``durable``: fsync of files and folders, and the crash tests' one hook (``fault_point``)
- ``verify``: ``qa verify`` -- every check of an index, end to end
"""

from .compact import sentence_spans
from .directory import IndexStore, describe, read_records
from .durable import exclusive_lock, fault_point, fsync_dir, fsync_file
from .layout import IndexLayout, encoder_dir_name
from .manifest import FORMAT_VERSION, Manifest, file_facts
from .snapshot import Consistency, Passages, Snapshot, StoredChunk
from .vectors import DEFAULT_NPROBE, INDEX_TYPES, IVF_THRESHOLD, VectorIndex, resolve_index_type, set_threads
from .verify import VerifyReport, verify_index
from .writer import Plan, SnapshotWriter, record_hash, text_hash

__all__ = [
    "IndexStore",
    "IndexLayout",
    "Snapshot",
    "Passages",
    "StoredChunk",
    "Consistency",
    "SnapshotWriter",
    "Plan",
    "Manifest",
    "FORMAT_VERSION",
    "VectorIndex",
    "INDEX_TYPES",
    "IVF_THRESHOLD",
    "DEFAULT_NPROBE",
    "resolve_index_type",
    "set_threads",
    "record_hash",
    "text_hash",
    "sentence_spans",
    "fault_point",
    "exclusive_lock",
    "fsync_file",
    "fsync_dir",
    "verify_index",
    "VerifyReport",
    "file_facts",
    "encoder_dir_name",
    "describe",
    "read_records",
]
