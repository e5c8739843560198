"""Compact: how the SQLite side stays under 1 KB a passage -- abstracts compressed, sentence vectors as 3-bit codes.

Sentence vectors are only ever compared with a question, to choose the answer block's sentences among
a few records' (``qa.ask.answer``), so they need not be exact. Each coordinate of a unit vector is kept
as one of 8 levels (3 bits: 144 bytes for 384 dimensions, against 768 as float16), a fixed uniform step
with no training: the step of the optimal uniform 8-level quantizer for a Gaussian (0.586 standard
deviations; J. Max, 1960), a unit vector's coordinates having a standard deviation of 1/sqrt(d). On
the shared corpus's 11,604 sentences the vectors read back have a cosine of 0.981 with the originals
(minimum 0.967); a question's cosine to a sentence moves by 0.010 (standard deviation). With every
sentence read back from its codes, ``bench/quality.py``'s answer and follow-up figures were unchanged
(53/60 marked answers, 26-27/30 follow-ups; see the README's *Capacity*). Codes read back and coded
again give the same codes, so an update that reuses a sentence's vector stores it unchanged.

Abstracts are kept zlib-compressed (about 47% of their UTF-8 size); nothing searches them in SQL.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence

import numpy as np

from ..errors import IndexStoreError

BITS = 3
_LOW, _HIGH = -(2 ** (BITS - 1)), 2 ** (BITS - 1) - 1  # levels -4..3, read back at their midpoints
GAUSSIAN_STEP = 0.586  # in standard deviations: the optimal uniform 8-level quantizer for a Gaussian (Max 1960)
MAX_TEXT_BYTES = 1 << 20  # an abstract read back may not inflate past this (a damaged or hostile blob)
_WEIGHTS = (1 << np.arange(BITS - 1, -1, -1)).astype(np.uint8)  # 4, 2, 1


def code_size(dimension: int) -> int:
    """Bytes of one sentence's codes."""
    return (dimension * BITS + 7) // 8


def _step(dimension: int) -> float:
    return GAUSSIAN_STEP / math.sqrt(dimension)


def encode_vectors(vectors: np.ndarray) -> bytes:
    """The codes of ``vectors`` (unit length, one per row), ``code_size`` bytes each, concatenated."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError("one vector per row")
    n, d = vectors.shape
    if n == 0:
        return b""
    levels = (np.clip(np.floor(vectors / _step(d)), _LOW, _HIGH) - _LOW).astype(np.uint8)
    bits = np.unpackbits(levels[..., None], axis=-1)[..., -BITS:].reshape(n, d * BITS)
    return np.packbits(bits, axis=1).tobytes()


def decode_vectors(codes: bytes, dimension: int) -> np.ndarray:
    """The vectors ``codes`` stand for, one per row (not unit length: coding them again gives ``codes``)."""
    size = code_size(dimension)
    if len(codes) % size:
        raise ValueError(f"{len(codes)} bytes of codes are not whole vectors of {size} bytes")
    n = len(codes) // size
    packed = np.frombuffer(codes, dtype=np.uint8).reshape(n, size)
    bits = np.unpackbits(packed, axis=1)[:, : dimension * BITS].reshape(n, dimension, BITS)
    levels = (bits * _WEIGHTS).sum(axis=-1, dtype=np.int16) + _LOW
    return ((levels + 0.5) * _step(dimension)).astype(np.float32)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` scaled to unit length, row by row (a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def pack_text(text: str) -> bytes:
    return zlib.compress(text.encode("utf-8"), 9)


def unpack_text(blob: bytes, pmid: str) -> str:
    """A stored abstract; a blob that does not inflate to UTF-8 text within ``MAX_TEXT_BYTES`` is refused."""
    try:
        inflater = zlib.decompressobj()
        data = inflater.decompress(bytes(blob), MAX_TEXT_BYTES)
        if inflater.unconsumed_tail or not inflater.eof:
            raise ValueError("truncated or too large")
        return data.decode("utf-8")
    except (zlib.error, ValueError, TypeError) as exc:
        raise IndexStoreError(
            f"passages.sqlite: PMID {pmid}: damaged abstract ({exc}); run `qa verify`, then rebuild: qa build --full"
        ) from None


Passage = tuple["str | None", Iterable[Sequence[int]]]  # (section, sentence spans [start, end]) of a passage


def sentence_spans(passages: Iterable[Passage]) -> list[tuple[int, int, str | None]]:
    """A record's sentences ``(start, end, section)`` once each, in order, from its passages ``(section, sentence
    spans)`` in passage order: passages overlap, and a sentence takes the section of the last one holding it.
    The build codes sentences in this order and the reader decodes them in it, so neither stores the spans."""
    found: dict[tuple[int, int], str | None] = {}
    for section, spans in passages:
        for start, end in spans:
            found[(int(start), int(end))] = section
    return [(start, end, section) for (start, end), section in sorted(found.items())]


__all__ = [
    "BITS", "GAUSSIAN_STEP", "code_size", "encode_vectors", "decode_vectors", "unit_rows", "pack_text", "unpack_text",
    "sentence_spans",
]  # fmt: skip
