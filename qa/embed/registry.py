"""The backend registry: a backend's name -> its class. Adding a backend is one file and one entry here."""

from __future__ import annotations

from ..errors import ModelError
from .base import EncoderBackend
from .onnx import OnnxInt8Backend
from .torch_backend import TorchBackend

DEFAULT_BACKEND = OnnxInt8Backend.name
_BACKENDS: dict[str, type[EncoderBackend]] = {cls.name: cls for cls in (OnnxInt8Backend, TorchBackend)}
BACKENDS = tuple(_BACKENDS)


def backend_class(name: str) -> type[EncoderBackend]:
    try:
        return _BACKENDS[name]
    except (KeyError, TypeError):
        raise ModelError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}") from None


def is_exported(name: str) -> bool:
    """Whether a backend runs an export that an index keeps in its ``models/`` folder."""
    return backend_class(name).exported


def resolve_precision(precision: str | None, backend: str, device: str | None) -> str:
    """The precision ``backend`` runs in when ``precision`` is asked on ``device``; refuses what it cannot do."""
    return backend_class(backend).resolve_precision(precision, device)


__all__ = ["DEFAULT_BACKEND", "BACKENDS", "backend_class", "is_exported", "resolve_precision"]
