"""Encoder precision: torch runs fp16 on CUDA and fp32 elsewhere, and fp16 vectors stay close to fp32's.

This machine has no GPU, so the choice is tested as a function of the device the model sits on, and the
fp16 path itself runs on torch's CPU kernels. The same cosine check on a GPU (with MRR@10 on the shared
questions) is ``bench/gpu_check.py``'s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa.embed import Embedder, resolve_precision
from qa.errors import ModelError
from qa.records import Record


@pytest.mark.parametrize(
    ("backend", "device", "asked", "expected"),
    [
        ("torch", "cuda", None, "fp16"),
        ("torch", "cuda:1", None, "fp16"),
        ("torch", "cpu", None, "fp32"),
        ("torch", "mps", None, "fp32"),
        ("torch", None, None, "fp32"),  # where the model landed is passed once it is loaded
        ("torch", "cuda:0", "fp32", "fp32"),
        ("torch", "cpu", "fp16", "fp16"),
        ("onnx-int8", "cpu", None, "fp32"),
        ("onnx-int8", None, "fp32", "fp32"),
    ],
)
def test_precision_follows_the_device(backend: str, device: str | None, asked: str | None, expected: str) -> None:
    assert resolve_precision(asked, backend, device) == expected


def test_wrong_precisions_are_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown precision 'bf16'"):
        Embedder(backend="torch", precision="bf16")
    with pytest.raises(ModelError, match="fp16 needs --backend torch"):
        Embedder(backend="onnx-int8", encoder_dir=tmp_path / "encoder", precision="fp16")


def test_fp16_runs_half_weights_and_stays_within_cosine_0999_of_fp32(pubmedqa_records: list[Record]) -> None:
    import torch

    embedder = Embedder(backend="torch", device="cpu")
    texts = [r.sections[0].text for r in pubmedqa_records[:16]] + ["IL-6", "Which IL-6 inhibitors are registered?"]
    half = Embedder(backend="torch", device="cpu", precision="fp16")
    assert embedder.precision == "fp32" and embedder.runner.model.device.type == "cpu"
    assert next(embedder.runner.model.parameters()).dtype == torch.float32
    assert half.precision == "fp16" and next(half.runner.model.parameters()).dtype == torch.float16
    full, halved = embedder.encode(texts), half.encode(texts)
    assert halved.dtype == np.float32 and halved.shape == full.shape
    assert np.allclose(np.linalg.norm(halved, axis=1), 1.0, atol=1e-5)  # normalised in fp32, not in fp16
    cosines = (full * halved).sum(axis=1)
    assert cosines.min() >= 0.999, cosines.min()
