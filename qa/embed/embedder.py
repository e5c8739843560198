"""Embed: turn passages and questions into normalized vectors with a sentence-transformers model.

The model is loaded lazily: ``import sentence_transformers`` costs seconds, and commands that don't
embed (``qa info``, ``qa --help``) must not pay for it. How it runs is the backend's business
(``registry``: onnx-int8 by default, torch for GPUs and models the int8 export cannot take).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import BackendOptions, Encoded, EncoderBackend
from .models import canonical_model_name, resolve_model_path
from .onnx import encoder_dir_name
from .registry import DEFAULT_BACKEND, backend_class

if TYPE_CHECKING:
    from tokenizers import Tokenizer


def default_encoder_dir(model: str | None) -> Path:
    """Where an exported encoder goes when no index gives a folder: the user's cache."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "pubmed-qa" / "models" / encoder_dir_name(model)


class Embedder:
    """A sentence-transformers model behind one backend; vectors are float32 and L2-normalized.

    ``encoder_dir`` is where an exported backend (onnx-int8) keeps its export: an index passes its own
    ``models/<name>`` folder; left out, the user's cache is used. ``precision`` (torch only): None runs
    fp16 on CUDA and fp32 elsewhere.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        backend: str = DEFAULT_BACKEND,
        encoder_dir: Path | None = None,
        device: str | None = None,
        batch_size: int | None = None,
        verbose: bool = False,
        export: bool = True,
        threads: int | None = None,
        precision: str | None = None,
    ) -> None:
        cls = backend_class(backend)
        self.name = canonical_model_name(model)
        if cls.exported and encoder_dir is None:
            encoder_dir = default_encoder_dir(self.name)
        self.path = resolve_model_path(model)
        options = BackendOptions(encoder_dir, device, batch_size, threads, precision, export, verbose)
        self.runner: EncoderBackend = cls(self.path, self.name, options)  # refuses what the backend cannot do
        self.backend = cls.name
        self.exported = cls.exported
        self.encoder_dir = encoder_dir if cls.exported else None
        self.device = device
        self._tokenizer: Tokenizer | None = None

    @property
    def precision(self) -> str:
        """What the encoder runs in ("fp16" or "fp32"); for torch this loads the model (it depends on its device)."""
        return self.runner.precision

    @property
    def on_gpu(self) -> bool:
        """Whether the encoder runs on a CUDA GPU (for torch this loads the model)."""
        return self.runner.on_gpu

    @property
    def tokenizer(self) -> Tokenizer:
        """A private copy of the model's fast tokenizer, for counting tokens.

        A copy, because transformers switches padding on in the model's own tokenizer when it
        encodes, which would inflate every count made after. Read from tokenizer.json without
        torch when the model is a folder.
        """
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            file = Path(self.path) / "tokenizer.json"
            if file.is_file():
                tokenizer = Tokenizer.from_file(str(file))
            else:
                tokenizer = Tokenizer.from_str(self.runner.tokenizer_json())
            tokenizer.no_padding()
            tokenizer.no_truncation()
            self._tokenizer = tokenizer
        return self._tokenizer

    @property
    def max_seq_length(self) -> int:
        """Tokens the encoder reads before truncating (256 for all-MiniLM-L6-v2)."""
        return self.runner.max_seq_length

    @property
    def dimension(self) -> int:
        return self.runner.dimension

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, **self.runner.describe()}

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        exact: bool = True,
        on_encoded: Encoded | None = None,
    ) -> np.ndarray:
        """Vectors for ``texts`` as a (n, dim) float32 array, rows of unit length.

        ``exact=False`` lets the int8 backend batch, for throwaway scores (highlighting sentences)
        where a cosine that moves by ~0.01 with the batch does not matter. ``on_encoded`` hears the
        positions of the texts encoded, batch by batch, without changing the batches (progress).
        """
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self.runner.encode(texts, batch_size=batch_size, exact=exact, on_encoded=on_encoded)


__all__ = ["Embedder", "default_encoder_dir"]
