"""Bundled data: a small real sample, so the product runs on a fresh machine with no network.

``sample.xml.gz`` holds 300 abstracts of the PubMedQA expert-labelled set
(MIT, see ``LICENSE-pubmedqa``; titles withheld there on purpose) and PubMed
record 25589616 ("Interleukin-6 As a Therapeutic Target", Clin Cancer Res
2015; abstract (c) its authors), as one PubMed XML file.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

SAMPLE = "sample.xml.gz"


def sample_path() -> Path:
    """Where the bundled sample lies (package data, read-only)."""
    return Path(str(files(__name__) / SAMPLE))


__all__ = ["sample_path", "SAMPLE"]
