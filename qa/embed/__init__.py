"""Embed: chunk records into passages and turn texts into vectors.

- ``embedder``: ``Embedder`` -- one model behind one backend, loaded lazily
- ``base``: the backend interface; ``registry``: backend names -> classes (``DEFAULT_BACKEND``)
- ``onnx``: the onnx-int8 backend, its export and the encoder folder's files; ``torch_backend``: PyTorch
- ``models``: model names, where they load from, and refusing to mix two
- ``chunk``: sentence-aligned passages that fit the model
- ``second_opinion``: ``SecondOpinion`` -- a second encoder (multilingual-e5-small) asked of weak answers only
"""

from .base import BackendOptions, EncoderBackend
from .chunk import Chunk, Chunker, ChunkerSpec, ChunkSettings, split_sentences
from .embedder import Embedder, default_encoder_dir
from .models import (
    DEFAULT_MODEL,
    PRECISIONS,
    canonical_model_name,
    check_same_model,
    quiet_third_party,
    resolve_model_path,
)
from .registry import BACKENDS, DEFAULT_BACKEND, backend_class, is_exported, resolve_precision
from .second_opinion import SecondOpinion

__all__ = [
    "Embedder",
    "EncoderBackend",
    "BackendOptions",
    "default_encoder_dir",
    "DEFAULT_MODEL",
    "DEFAULT_BACKEND",
    "BACKENDS",
    "PRECISIONS",
    "backend_class",
    "is_exported",
    "resolve_precision",
    "canonical_model_name",
    "check_same_model",
    "resolve_model_path",
    "quiet_third_party",
    "Chunk",
    "Chunker",
    "ChunkerSpec",
    "ChunkSettings",
    "split_sentences",
    "SecondOpinion",
]
