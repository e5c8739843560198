"""The torch backend: the model run by sentence-transformers on PyTorch, on any device.

fp16 on CUDA (``model.half()``: about 1.5x the passages per second on an H100, by the issue's figures)
and fp32 elsewhere (CPU fp16 is slow, MPS untested). fp16 vectors reach cosine >= 0.999 to fp32:
``tests/test_embed_precision.py`` checks that on this CPU, ``bench/gpu_check.py`` on a GPU.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from .base import BackendOptions, Encoded, EncoderBackend, silenced
from .models import check_precision, quiet_third_party


class TorchBackend(EncoderBackend):
    name = "torch"

    def __init__(self, model_path: str, model_name: str, options: BackendOptions) -> None:
        check_precision(options.precision)
        super().__init__(model_path, model_name, options)
        self._model: Any = None
        self._precision = "fp32"  # set when the model loads, from the device it lands on

    @classmethod
    def resolve_precision(cls, precision: str | None, device: str | None) -> str:
        """``precision`` if given, else fp16 on a CUDA device and fp32 everywhere else.

        ``device`` is the device the model actually sits on ("cuda:0", "cpu"), not just what was asked:
        sentence-transformers picks CUDA by itself when ``--device`` is left out and a GPU is there.
        """
        check_precision(precision)
        if precision is not None:
            return precision
        return "fp16" if (device or "").startswith("cuda") else "fp32"

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self._load()
        return self._model

    def _load(self) -> Any:
        verbose = self.options.verbose
        quiet_third_party(verbose)
        with silenced(not verbose):
            try:
                from sentence_transformers import SentenceTransformer

                model = SentenceTransformer(self.model_path, device=self.options.device)
            except (OSError, ValueError, RuntimeError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ModelError(
                    f"cannot load embedding model {self.model_name!r} offline ({first[:200]}); "
                    "pass --model with a local sentence-transformers folder"
                ) from None
        self._precision = self.resolve_precision(self.options.precision, str(model.device))
        if self._precision == "fp16":
            model.half()
        return model

    @property
    def precision(self) -> str:
        _ = self.model  # it depends on the device the model lands on
        return self._precision

    @property
    def on_gpu(self) -> bool:
        return bool(self.model.device.type == "cuda")

    @property
    def dimension(self) -> int:
        model = self.model
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    @property
    def max_seq_length(self) -> int:
        if self._model is None:  # read from the folder: no torch import just to count tokens
            file = Path(self.model_path) / "sentence_bert_config.json"
            if file.is_file():
                value = json.loads(file.read_text()).get("max_seq_length")
                if isinstance(value, int) and value > 0:
                    return value
        return int(self.model.max_seq_length)

    def tokenizer_json(self) -> str:
        return str(self.model.tokenizer.backend_tokenizer.to_str())

    def encode(
        self, texts: Sequence[str], *, batch_size: int | None, exact: bool, on_encoded: Encoded | None = None
    ) -> np.ndarray:
        """sentence-transformers encodes the whole call at once: ``on_encoded`` hears of it at the end."""
        half = self.precision == "fp16"
        default_batch = 128 if (self.options.device or "").startswith("cuda") else 32
        # sentence-transformers' encode sorts its input by length (characters, longest first) and batches it
        # in that order, then restores the order (checked in 5.7: SentenceTransformer.encode, length_sorted_idx),
        # so each batch pads to similar lengths; that matters most on a GPU.
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size or self.options.batch_size or default_batch,
            normalize_embeddings=not half,  # fp16: normalised below in fp32, not in half precision
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if half:
            vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
        if on_encoded is not None:
            on_encoded(range(len(texts)))
        return vectors


__all__ = ["TorchBackend"]
