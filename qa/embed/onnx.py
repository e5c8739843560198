"""The onnx-int8 backend (the default): the model's int8 ONNX export, run on the CPU with no torch.

``export_int8`` turns a sentence-transformers folder into a self-contained
encoder folder (dynamically int8-quantized ONNX graph, tokenizer, settings)
once, with sentence-transformers' own exporter. ``OnnxEncoder`` then runs it
with onnxruntime and the ``tokenizers`` library alone -- mean pooling and L2
normalisation, exactly what the model's sentence-transformers pipeline does --
so a one-shot ``qa ask`` starts in a fraction of a second. Builds and queries
of an index use the very same file, so their vectors always agree.

It encodes one text per call on purpose: dynamic quantization scales activations
per batch, so batching would make a text's vector depend on its batch-mates; one
at a time, a question and a passage get exactly the vector they would get anywhere
else. 2.3x the build throughput of torch fp32 at -0.0003 MRR@10 (README "Speed").

This module owns the encoder folder's file names; the store imports them from here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..checksums import file_sha256, not_regular
from ..errors import ModelError
from .base import BackendOptions, Encoded, EncoderBackend, silenced
from .models import DEFAULT_MODEL, canonical_model_name, quiet_third_party

MODEL_FILE = "model.onnx"  # inside an encoder folder: the int8 graph
SETTINGS_FILE = "encoder.json"  # pooling, max length, checksum
TOKENIZER_FILE = "tokenizer.json"
ENCODER_FILES = (MODEL_FILE, SETTINGS_FILE, TOKENIZER_FILE)
EXPORT_PREFIX = ".export-"  # an export or copy in progress; a store removes these after a crash

QUANTIZATION = "avx512_vnni"  # sentence-transformers' dynamic int8 config; runs on any x86-64 CPU


def encoder_dir_name(model: str | None) -> str:
    """Folder name, inside an index's ``models/``, of a model's int8 ONNX export."""
    name = canonical_model_name(model)
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name).name).strip("-") or "model"
    if name != DEFAULT_MODEL:
        base += "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{base}-onnx-int8"


def encoder_model_file(encoder_dir: Path) -> Path:
    return encoder_dir / MODEL_FILE


def encoder_checksums(encoder_dir: Path) -> dict[str, str]:
    """SHA-256 of each file of an encoder folder: what manifests and shard sets record, and loads check."""
    return {name: file_sha256(encoder_dir / name) for name in ENCODER_FILES if (encoder_dir / name).is_file()}


def install_encoder(source: Path, target: Path) -> bool:
    """Copy the encoder folder ``source`` to ``target`` (atomically) unless one is there; True when the
    encoder at ``target`` is then the same as ``source``, file for file."""
    odd = not_regular(source)
    if odd:
        raise ModelError(f"{source}: {', '.join(odd[:5])} is not a regular file (a symbolic link, a folder, a "
                         "device?); an encoder folder holds only its own files: refused")  # fmt: skip
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        work = target.parent / f"{EXPORT_PREFIX}{uuid.uuid4().hex[:8]}"
        try:
            shutil.copytree(source, work)
            with contextlib.suppress(OSError):  # another process put one there first; it is compared below
                os.rename(work, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return encoder_checksums(target) == encoder_checksums(source)


def export_int8(model_path: str, target: Path) -> Path:
    """Create ``target`` (if missing) holding the int8 ONNX export of the model at ``model_path``."""
    if (target / MODEL_FILE).is_file() and (target / SETTINGS_FILE).is_file():
        return target
    source = Path(model_path)
    if not (source / "modules.json").is_file():
        raise ModelError(f"the onnx-int8 backend needs a local sentence-transformers folder, not {model_path!r}")
    pooling = json.loads((source / "1_Pooling" / "config.json").read_text()) if (source / "1_Pooling").is_dir() else {}
    if not pooling.get("pooling_mode_mean_tokens"):
        raise ModelError("the onnx-int8 backend supports mean-pooling models only; use --backend torch")
    try:
        from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model
    except ImportError:  # pragma: no cover - depends on the install
        raise ModelError("exporting to ONNX needs: pip install 'sentence-transformers[onnx]'") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=EXPORT_PREFIX, dir=target.parent))
    try:
        copy = work / "model"
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("onnx", "openvino", "*.onnx"))
        try:
            model = SentenceTransformer(str(copy), backend="onnx", device="cpu")
            export_dynamic_quantized_onnx_model(model, QUANTIZATION, str(copy))
        except Exception as exc:  # optimum raises many kinds; the user needs one line
            raise ModelError(f"ONNX export of {model_path!r} failed: {str(exc).splitlines()[0][:200]}") from None
        quantized = next((copy / "onnx").glob("*qint8*.onnx"))
        out = work / "encoder"
        out.mkdir()
        shutil.copyfile(quantized, out / MODEL_FILE)
        shutil.copyfile(copy / "tokenizer.json", out / TOKENIZER_FILE)
        max_seq = json.loads((copy / "sentence_bert_config.json").read_text()).get("max_seq_length", 256)
        digest = hashlib.sha256((out / MODEL_FILE).read_bytes()).hexdigest()
        settings = {"max_seq_length": max_seq, "pooling": "mean", "normalize": True, "sha256": digest,
                    "quantization": QUANTIZATION, "source": str(model_path)}  # fmt: skip
        (out / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
        try:
            os.rename(out, target)
        except OSError:  # another process finished first; theirs is as good
            if not (target / MODEL_FILE).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


class OnnxEncoder:
    """Encodes texts with an exported int8 ONNX model: tokenize, run, mean-pool, normalise."""

    def __init__(self, directory: Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        settings_file = directory / SETTINGS_FILE
        if not settings_file.is_file() or not (directory / MODEL_FILE).is_file():
            raise ModelError(f"{directory}: no exported encoder here; rebuild the index with --full")
        try:
            self.settings = json.loads(settings_file.read_text())
            self.max_seq_length = int(self.settings["max_seq_length"])
            options = ort.SessionOptions()
            options.log_severity_level = 3
            if threads:
                options.intra_op_num_threads = threads
            # A pool thread that spins after a run steals a core from whatever runs next: concurrent callers, the
            # build's chunker, or e5 reading the conclusion of a yes/no answer, which took a warm ask's median on
            # the shared titles from 63 ms to 122 ms while ONNX's threads spun (2 cores, stop 38).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.session = ort.InferenceSession(
                str(directory / MODEL_FILE), options, providers=["CPUExecutionProvider"]
            )
            self.inputs = {i.name for i in self.session.get_inputs()}
            self.tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        except Exception as exc:  # onnxruntime, tokenizers and json each raise their own kinds
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise ModelError(
                f"{directory}: cannot load the int8 encoder ({first}); rebuild with qa build --full"
            ) from None
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_seq_length)
        self.dimension = int(self.session.get_outputs()[0].shape[-1])

    def encode(self, texts: Sequence[str], batch_size: int = 32, on_encoded: Encoded | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))  # similar lengths share a batch
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(encodings[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            types = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                e = encodings[i]
                n = len(e.ids)
                ids[row, :n], mask[row, :n], types[row, :n] = e.ids, e.attention_mask, e.type_ids
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            hidden = self.session.run(None, {k: v for k, v in feeds.items() if k in self.inputs})[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            out[idx] = pooled
            if on_encoded is not None:
                on_encoded(idx)
        return out


class OnnxInt8Backend(EncoderBackend):
    """The default backend: ``OnnxEncoder`` over the export in ``options.encoder_dir``, made on first use."""

    name = "onnx-int8"
    exported = True

    def __init__(self, model_path: str, model_name: str, options: BackendOptions) -> None:
        if options.precision == "fp16":
            raise ModelError("fp16 needs --backend torch (the onnx-int8 encoder has its own precision)")
        if options.encoder_dir is None:
            raise ModelError("the onnx-int8 backend needs a folder for the exported encoder")
        if options.device and options.device != "cpu":
            raise ModelError(f"--device {options.device} needs --backend torch (the int8 ONNX encoder runs on the CPU)")
        super().__init__(model_path, model_name, options)
        self.encoder_dir: Path = options.encoder_dir
        self._encoder: OnnxEncoder | None = None

    @classmethod
    def resolve_precision(cls, precision: str | None, device: str | None) -> str:
        if precision == "fp16":
            raise ModelError("fp16 needs --backend torch (the onnx-int8 encoder has its own precision)")
        return super().resolve_precision(precision, device)

    @property
    def encoder(self) -> OnnxEncoder:
        """The int8 ONNX encoder (exported into ``encoder_dir`` the first time)."""
        if self._encoder is None:
            if not encoder_model_file(self.encoder_dir).is_file():
                if not self.options.export:
                    raise ModelError(f"{self.encoder_dir}: the encoder is missing; rebuild with qa build --full")
                quiet_third_party(self.options.verbose)
                with silenced(not self.options.verbose):
                    export_int8(self.model_path, self.encoder_dir)
            self._encoder = OnnxEncoder(self.encoder_dir, threads=self.options.threads)
        return self._encoder

    @property
    def dimension(self) -> int:
        return int(self.encoder.dimension)

    @property
    def max_seq_length(self) -> int:
        return int(self.encoder.max_seq_length)

    def tokenizer_json(self) -> str:
        return (self.encoder_dir / TOKENIZER_FILE).read_text(encoding="utf-8")

    def encode(
        self, texts: Sequence[str], *, batch_size: int | None, exact: bool, on_encoded: Encoded | None = None
    ) -> np.ndarray:
        return self.encoder.encode(texts, batch_size=1 if exact else 16, on_encoded=on_encoded)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "encoder_dir": str(self.encoder_dir)}


__all__ = [
    "OnnxInt8Backend",
    "OnnxEncoder",
    "export_int8",
    "install_encoder",
    "encoder_dir_name",
    "encoder_model_file",
    "encoder_checksums",
    "ENCODER_FILES",
    "MODEL_FILE",
    "SETTINGS_FILE",
    "TOKENIZER_FILE",
    "EXPORT_PREFIX",
]
