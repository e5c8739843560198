"""Vectors: the FAISS side of an index, and the only module that imports faiss.

A ``VectorIndex`` maps passage ids to unit vectors and answers inner-product
(cosine) searches. Two kinds: ``flat`` (exact, ``IndexIDMap2(IndexFlatIP)``)
and ``ivf-sq8`` (inverted lists with 8-bit codes, memory-mapped when read;
chosen from ``IVF_THRESHOLD`` passages on). Both can remove ids and give
vectors back, which incremental builds need; FAISS's HNSW cannot remove.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IndexStoreError

INDEX_TYPES = ("auto", "flat", "ivf-sq8")
IVF_THRESHOLD = 100_000  # passages; below it exact search is fast enough and needs no training
DEFAULT_NPROBE = 32


def resolve_index_type(requested: str, n_vectors: int) -> str:
    """The vector index for ``n_vectors``: exact below the threshold, IVF with 8-bit codes above it."""
    if requested not in INDEX_TYPES:
        raise IndexStoreError(f"unknown index type {requested!r}; choose one of {', '.join(INDEX_TYPES)}")
    if requested != "auto":
        return requested
    return "flat" if n_vectors < IVF_THRESHOLD else "ivf-sq8"


def set_threads(n: int) -> None:
    """FAISS's OpenMP threads, process-wide: one question runs ~4x faster on one thread than on two (measured)."""
    import faiss

    faiss.omp_set_num_threads(n)


class VectorIndex:
    """Passage vectors by id, searched by inner product."""

    def __init__(self, index: Any, nprobe: int = DEFAULT_NPROBE) -> None:
        self._index = index
        self.nprobe = nprobe

    # -- making and reading ------------------------------------------------

    @classmethod
    def empty(cls, dimension: int) -> VectorIndex:
        import faiss

        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)))

    @classmethod
    def read(cls, path: Path, *, mmap: bool = False, nprobe: int = DEFAULT_NPROBE) -> VectorIndex:
        """Read a written index; ``mmap`` leaves IVF lists on disk for the OS to page in."""
        import faiss

        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        try:
            return cls(faiss.read_index(str(path), flags), nprobe)
        except RuntimeError as exc:
            raise IndexStoreError(
                f"{path}: unreadable FAISS index ({str(exc).splitlines()[-1][:120]}); rebuild with qa build"
            ) from None

    def write(self, path: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(path))

    # -- facts -------------------------------------------------------------

    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    @property
    def dimension(self) -> int:
        return int(self._index.d)

    @property
    def kind(self) -> str:
        import faiss

        return "ivf-sq8" if isinstance(self._index, faiss.IndexIVF) else "flat"

    def ids(self) -> np.ndarray:
        """Every id stored, flat (IDMap2) or IVF."""
        import faiss

        index = self._index
        if isinstance(index, faiss.IndexIVF):
            lists = index.invlists
            parts = [
                faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                for i in range(index.nlist)
                if lists.list_size(i)
            ]
            return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return faiss.vector_to_array(index.id_map)

    # -- changing ----------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: Sequence[int]) -> None:
        if len(ids):
            self._index.remove_ids(np.asarray(ids, dtype=np.int64))

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors of ``ids`` (to reuse, or to score exactly)."""
        return self._index.reconstruct_batch(np.asarray(ids, dtype=np.int64))

    def converted(self, kind: str) -> VectorIndex:
        """This index as ``kind``, keeping every id (IVF: trained on a sample of the vectors)."""
        import faiss

        if self.kind == kind:
            return self
        ids = self.ids()
        if kind != "flat" and len(ids) == 0:
            return self  # nothing to train on; an empty index stays flat
        dimension = self.dimension
        if kind == "flat":
            out = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        else:
            n = len(ids)
            # about 4 x sqrt(n) lists, but at least 39 training points per list (FAISS's minimum)
            nlist = int(max(1, min(65536, 4 * math.sqrt(max(n, 1)), n // 39)))
            quantizer = faiss.IndexFlatIP(dimension)
            out = faiss.IndexIVFScalarQuantizer(
                quantizer, dimension, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
            )
            sample = np.random.default_rng(0).choice(ids, size=min(n, 64 * nlist), replace=False) if n else ids
            out.train(self.vectors(np.sort(sample)))
            out.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct and remove by id
        for i in range(0, len(ids), 50_000):
            block = ids[i : i + 50_000]
            out.add_with_ids(self.vectors(block), block)
        return VectorIndex(out, self.nprobe)

    # -- searching ---------------------------------------------------------

    def search(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """``(id, cosine)`` of the ``n`` nearest vectors, optionally only among ``allowed`` ids."""
        import faiss

        selector = None
        if allowed is not None:
            if len(allowed) == 0:
                return []
            selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
            n = max(1, min(n, len(allowed)))
        else:
            n = max(1, min(n, self.count))
        if self.kind == "ivf-sq8":
            params: Any = faiss.SearchParametersIVF(nprobe=self.nprobe, sel=selector)
        else:
            params = faiss.SearchParameters(sel=selector) if selector is not None else None
        x = np.ascontiguousarray(np.asarray(query, dtype=np.float32).reshape(1, -1))
        scores, ids = self._index.search(x, n, params=params) if params is not None else self._index.search(x, n)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def scores(self, query: np.ndarray, ids: Sequence[int]) -> np.ndarray:
        """Exact cosine of the query with the given ids' vectors."""
        if not len(ids):
            return np.zeros(0, dtype=np.float32)
        return self.vectors(ids) @ np.asarray(query, dtype=np.float32).reshape(-1)


__all__ = ["VectorIndex", "INDEX_TYPES", "IVF_THRESHOLD", "DEFAULT_NPROBE", "resolve_index_type", "set_threads"]
