"""The encoder backend interface: one class per way of running a model, chosen by name in ``registry``.

A backend turns texts into float32 unit vectors and says what it is. ``Embedder`` holds one and adds
what every backend shares (the model's name and path, a token-counting tokenizer); the build, the
store and the shard workers ask the backend's class, never its name, what it needs (``exported``).
"""

from __future__ import annotations

import contextlib
import io
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

Encoded = Callable[[Sequence[int]], None]  # positions, in an encode call's texts, of those just encoded


@dataclass(frozen=True)
class BackendOptions:
    """How to run the model; a backend refuses, at construction, what it cannot do."""

    encoder_dir: Path | None = None  # exported backends: the folder holding (or to receive) the export
    device: str | None = None
    batch_size: int | None = None
    threads: int | None = None  # intra-op threads per call; 1 when many requests share the cores (qa serve)
    precision: str | None = None  # "fp16" / "fp32" where the backend has a choice; None: its default
    export: bool = True  # False at query time: a missing export is an error, never a new export
    verbose: bool = False


class EncoderBackend(ABC):
    """One way of running a sentence-transformers model."""

    name: ClassVar[str]
    exported: ClassVar[bool] = False  # runs a one-time export kept in the index's models/ folder

    def __init__(self, model_path: str, model_name: str, options: BackendOptions) -> None:
        self.model_path = model_path
        self.model_name = model_name
        self.options = options

    @classmethod
    def resolve_precision(cls, precision: str | None, device: str | None) -> str:
        """The precision this backend runs in for an asked ``precision`` on ``device``."""
        return precision or "fp32"

    @abstractmethod
    def encode(
        self, texts: Sequence[str], *, batch_size: int | None, exact: bool, on_encoded: Encoded | None = None
    ) -> np.ndarray:
        """(n, dim) float32 unit vectors; ``exact=False`` allows batching where it moves vectors slightly.
        ``on_encoded`` gets the positions of the texts encoded so far, batch by batch (for progress)."""

    @property
    @abstractmethod
    def dimension(self) -> int: ...

    @property
    @abstractmethod
    def max_seq_length(self) -> int: ...

    @property
    def precision(self) -> str:
        return self.resolve_precision(self.options.precision, self.options.device)

    @property
    def on_gpu(self) -> bool:
        return False

    @abstractmethod
    def tokenizer_json(self) -> str:
        """The model's fast tokenizer as JSON, when the model folder has no tokenizer.json."""

    def describe(self) -> dict[str, object]:
        """What a build records about the encoder besides the model's name."""
        return {"backend": self.name, "precision": self.precision}


@contextlib.contextmanager
def silenced(active: bool) -> Iterator[None]:
    """Swallow what libraries print straight to stdout/stderr while a model loads or exports."""
    if not active:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


__all__ = ["EncoderBackend", "BackendOptions", "silenced"]
