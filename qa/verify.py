"""Verify: check an index end to end -- checksums, vectors against rows, lexical rows, model -- for `qa verify`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import QAError
from .store import IndexStore, Manifest, file_facts
from .store.layout import MANIFEST, PASSAGES, VECTORS, encoder_model_file


@dataclass
class VerifyReport:
    index: str
    snapshot: str = ""
    passed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def check(self, ok: bool, passed: str, problem: str) -> bool:
        (self.passed if ok else self.problems).append(passed if ok else problem)
        return ok

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "snapshot": self.snapshot, "ok": self.ok, "passed": self.passed,
                "problems": self.problems}  # fmt: skip


def verify_index(index: str | Path) -> VerifyReport:
    """Every check runs even after a failure, so one report lists everything wrong."""
    store = IndexStore(index)
    report = VerifyReport(index=str(store.path))
    directory = store.current_dir()
    report.snapshot = directory.name
    try:
        manifest = Manifest.from_file(directory / MANIFEST)
    except QAError as exc:
        report.problems.append(str(exc))
        return report
    if _check_files(report, directory, manifest):
        _check_contents(report, store, manifest)
    _check_model(report, store, manifest)
    return report


def _check_files(report: VerifyReport, directory: Path, manifest: Manifest) -> bool:
    """Size and SHA-256 of the snapshot's files against the manifest; False stops the deeper checks."""
    files_ok = True
    for name in (PASSAGES, VECTORS):
        path = directory / name
        expected = manifest.files.get(name)
        if not path.is_file():
            files_ok = report.check(False, "", f"{name} is missing")
            continue
        if not expected:
            files_ok = report.check(False, "", f"{name}: the manifest records no checksum (built by an older version)")
            continue
        facts = file_facts(path)
        files_ok &= report.check(
            facts == expected,
            f"{name}: {facts['bytes']:,} bytes, SHA-256 matches the manifest",
            f"{name}: checksum or size differs from the manifest (truncated, corrupted or edited)",
        )
    return files_ok


def _check_contents(report: VerifyReport, store: IndexStore, manifest: Manifest) -> None:
    """SQLite integrity, every vector against its passage row and back, lexical rows, counts."""
    snapshot = store.open()
    try:
        facts = snapshot.passages.consistency()
        ids = set(snapshot.vectors.ids().tolist())
        dimension = snapshot.vectors.dimension
    finally:
        snapshot.close()
    rows = facts.chunk_ids
    report.check(facts.integrity == "ok", "SQLite integrity_check: ok", f"SQLite integrity_check: {facts.integrity}")
    report.check(
        ids == rows,
        f"{len(ids):,} vectors, each with its passage row and vice versa",
        f"{len(ids - rows)} vectors without a passage row, {len(rows - ids)} passage rows without a vector",
    )
    report.check(
        facts.orphan_chunks == 0 and facts.bare_records == 0,
        "every passage has its record and every record has passages",
        f"{facts.orphan_chunks} passages without a record, {facts.bare_records} records without passages",
    )
    report.check(
        facts.lexical_rows == facts.records,
        f"{facts.lexical_rows:,} lexical (FTS5) rows for {facts.records:,} records",
        f"{facts.lexical_rows} lexical rows for {facts.records} records",
    )
    report.check(
        facts.sentence_records == facts.records,
        f"sentence vectors for all {facts.records:,} records",
        f"{facts.records - facts.sentence_records} records without sentence vectors",
    )
    report.check(
        (facts.records, len(rows)) == (manifest.records, manifest.chunks),
        "counts match the manifest",
        f"manifest says {manifest.records} records / {manifest.chunks} passages, found {facts.records} / {len(rows)}",
    )
    report.check(
        dimension == manifest.dimension,
        f"vectors have the manifest's dimension ({dimension})",
        f"vectors have dimension {dimension}, the manifest says {manifest.dimension}",
    )


def _check_model(report: VerifyReport, store: IndexStore, manifest: Manifest) -> None:
    """The int8 encoder the index was built with, byte for byte; or that the torch model can be found."""
    if manifest.backend == "onnx-int8" and manifest.encoder:
        model_file = encoder_model_file(store.layout.encoder_dir(manifest.encoder))
        if not model_file.is_file():
            report.check(False, "", f"the encoder {manifest.encoder}/{model_file.name} is missing")
        else:
            report.check(
                file_facts(model_file)["sha256"] == manifest.encoder_sha256,
                f"encoder {manifest.encoder}: SHA-256 matches the manifest",
                f"encoder {manifest.encoder}/{model_file.name} differs from the one the index was built with",
            )
        return
    from .embed import resolve_model_path

    try:
        path = resolve_model_path(manifest.model)
        report.check(
            Path(path).exists() or "/" not in path,
            f"model {manifest.model!r} is available",
            f"model {manifest.model!r} is not found at {path}",
        )
    except QAError as exc:
        report.check(False, "", str(exc))


__all__ = ["VerifyReport", "verify_index"]
