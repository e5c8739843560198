"""Vectors: the FAISS side of an index, and the only module that imports faiss.

A ``VectorIndex`` maps passage ids to unit vectors and answers inner-product
(cosine) searches. Three kinds: ``flat`` (exact, ``IndexIDMap2(IndexFlatIP)``),
``ivf-sq8`` (inverted lists with 8-bit codes, 384 bytes a vector, memory-mapped
when read; chosen from ``IVF_THRESHOLD`` passages on) and ``ivf-pq`` (product
quantization, ``PQ_BYTES`` a vector: 100 million passages in about 6.4 GB;
chosen from ``PQ_THRESHOLD`` on). All can remove ids and give vectors back,
which incremental builds need; FAISS's HNSW cannot remove.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IndexStoreError

INDEX_TYPES = ("auto", "flat", "ivf-sq8", "ivf-pq")
IVF_THRESHOLD = 100_000  # passages; below it exact search is fast enough and needs no training
PQ_THRESHOLD = 10_000_000  # from here 8-bit codes (3.8 GB per 10M) give way to 64-byte PQ codes (0.64 GB)
PQ_BYTES = 64  # sub-quantizers of 8 bits: 6 of the 384 dimensions each
DEFAULT_NPROBE = 32
_SIZE_ORDER = {"flat": 0, "ivf-sq8": 1, "ivf-pq": 2}


def resolve_index_type(requested: str, n_vectors: int, current: str | None = None) -> str:
    """The vector index for ``n_vectors``: exact, then IVF with 8-bit codes, then IVF-PQ as the index grows.

    With ``auto``, an index never steps back to a larger kind when it shrinks a little (``current``):
    an explicit type converts it either way.
    """
    if requested not in INDEX_TYPES:
        raise IndexStoreError(f"unknown index type {requested!r}; choose one of {', '.join(INDEX_TYPES)}")
    if requested != "auto":
        return requested
    kind = "flat" if n_vectors < IVF_THRESHOLD else "ivf-sq8" if n_vectors < PQ_THRESHOLD else "ivf-pq"
    if current in _SIZE_ORDER and _SIZE_ORDER[current] > _SIZE_ORDER[kind]:
        return current
    return kind


UNIT_TOLERANCE = 1e-3  # |norm - 1| of a vector as the encoder gives it (float32 rounding is ~1e-7)
_STORED_TOLERANCE = {"flat": 1e-3, "ivf-sq8": 0.05, "ivf-pq": 0.35}  # what each kind's codes give back


def unit_vectors_problem(vectors: np.ndarray, tolerance: float = UNIT_TOLERANCE) -> str | None:
    """Why these cannot be passage vectors (NaN, infinity, zero, not unit length), or None. Every score is a
    cosine by inner product, so a vector x1000 or NaN would rank or refuse questions silently."""
    if not len(vectors):
        return None
    x = np.asarray(vectors, dtype=np.float64)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        return f"{int(bad.sum()):,} vectors hold NaN or infinity"
    off = np.abs(np.linalg.norm(x, axis=1) - 1.0) > tolerance
    if off.any():
        return f"{int(off.sum()):,} vectors are not unit length (norm {float(np.linalg.norm(x[off][0])):.3g}, ...)"
    return None


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
    def trained(
        cls, kind: str, dimension: int, ids: np.ndarray, vectors_of: Callable[[np.ndarray], np.ndarray]
    ) -> VectorIndex:
        """An empty IVF index of ``kind`` for the vectors of ``ids``, trained on the fixed sample of them that
        ``converted`` would take, so vectors can then be added block by block without holding them all.

        ``vectors_of`` is asked once, for the sample's ids in ascending order.
        """
        if kind not in ("ivf-sq8", "ivf-pq"):
            raise IndexStoreError(f"only IVF indexes are trained, not {kind!r}")
        return cls(_trained_ivf(kind, dimension, np.asarray(ids, dtype=np.int64), vectors_of))

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
    def lists(self) -> int:
        """IVF: the number of inverted lists (0 for flat); ``nprobe = lists`` makes a search scan them all."""
        return int(getattr(self._index, "nlist", 0))

    @property
    def code_bytes(self) -> int:
        """Bytes stored per vector: 4 x dimension for flat, 1 x dimension for ivf-sq8, the PQ code size for ivf-pq."""
        return int(getattr(self._index, "code_size", 4 * self.dimension))

    @property
    def kind(self) -> str:
        import faiss

        if isinstance(self._index, faiss.IndexIVFPQ):
            return "ivf-pq"
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
        """Add unit vectors; anything else is refused (``unit_vectors_problem``), wherever it came from. Vectors
        reused from an IVF index come back from its codes, a little off unit length, hence the kind's tolerance."""
        problem = unit_vectors_problem(vectors, max(0.05, _STORED_TOLERANCE.get(self.kind, 0.35)))
        if problem is not None:
            raise IndexStoreError(f"refused to index {problem}; the encoder's output or a shard is damaged")
        if len(ids):
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: Sequence[int]) -> None:
        if len(ids):
            self._index.remove_ids(np.asarray(ids, dtype=np.int64))

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors of ``ids`` (to reuse, or to score exactly)."""
        return self._index.reconstruct_batch(np.asarray(ids, dtype=np.int64))

    def stored_problem(self, batch: int = 65_536) -> str | None:
        """``unit_vectors_problem`` over every stored vector, within what this kind's codes give back."""
        ids = self.ids()
        tolerance = _STORED_TOLERANCE.get(self.kind, 0.35)
        for start in range(0, len(ids), batch):
            problem = unit_vectors_problem(self.vectors(ids[start : start + batch]), tolerance)
            if problem is not None:
                return problem
        return None

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
            out = _trained_ivf(kind, dimension, ids, self.vectors)
        for i in range(0, len(ids), 50_000):
            block = ids[i : i + 50_000]
            out.add_with_ids(self.vectors(block), block)
        return VectorIndex(out, self.nprobe)

    # -- searching ---------------------------------------------------------

    @staticmethod
    def selector(allowed: np.ndarray) -> Any:
        """FAISS's selector of the ``allowed`` ids: made once per filter (``Snapshot.allowed``), since for
        600,000 ids it takes about 30 ms."""
        import faiss

        return faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))

    def search(
        self, query: np.ndarray, n: int, allowed: np.ndarray | None = None, selector: Any = None
    ) -> list[tuple[int, float]]:
        """``(id, cosine)`` of the ``n`` nearest vectors, optionally only among ``allowed`` ids (whose
        ``selector`` may be given, made already)."""
        import faiss

        if allowed is not None:
            if len(allowed) == 0:
                return []
            selector = selector if selector is not None else self.selector(allowed)
            n = max(1, min(n, len(allowed)))
        else:
            n = max(1, min(n, self.count))
        if self.kind != "flat":
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


def _trained_ivf(kind: str, dimension: int, ids: np.ndarray, vectors_of: Callable[[np.ndarray], np.ndarray]) -> Any:
    """An empty IVF index of ``kind``, trained on a fixed sample of the vectors of ``ids``."""
    import faiss

    n = len(ids)
    # about 4 x sqrt(n) lists, but at least 39 training points per list (FAISS's minimum)
    nlist = int(max(1, min(65536, 4 * math.sqrt(max(n, 1)), n // 39)))
    quantizer = faiss.IndexFlatIP(dimension)
    if kind == "ivf-pq":
        if n < 256:
            raise IndexStoreError(f"ivf-pq needs at least 256 passages to train on, not {n}; use flat")
        m = next(d for d in (PQ_BYTES, 48, 32, 24, 16, 8, 4, 2, 1) if dimension % d == 0)
        out = faiss.IndexIVFPQ(quantizer, dimension, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
        out.pq.cp.min_points_per_centroid = 1  # a small index trains on what it has, without 64 warnings
        size = min(n, max(64 * nlist, 256 * 39))  # the PQ codebooks want about 10,000 points
    else:
        out = faiss.IndexIVFScalarQuantizer(
            quantizer, dimension, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        size = min(n, 64 * nlist)
    sample = np.random.default_rng(0).choice(ids, size=size, replace=False) if n else ids
    out.train(vectors_of(np.sort(sample)))
    out.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct and remove by id
    return out


__all__ = [
    "VectorIndex", "INDEX_TYPES", "IVF_THRESHOLD", "PQ_THRESHOLD", "PQ_BYTES", "DEFAULT_NPROBE",
    "resolve_index_type", "set_threads",
]  # fmt: skip
