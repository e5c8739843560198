"""Verify: check an index end to end -- checksums, vectors against rows, lexical rows, model -- for `qa verify`."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..embed.models import resolve_model_path
from ..embed.registry import is_exported
from ..errors import QAError
from .directory import IndexStore
from .layout import MANIFEST, PASSAGES, VECTORS
from .manifest import Manifest, file_facts
from .snapshot import Snapshot


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


def verify_index(index: str | Path, attempts: int = 3) -> VerifyReport:
    """Every check runs even after a failure, so one report lists everything wrong.

    All checks read one snapshot. If a build replaces it midway (its files vanish under the check),
    the report would describe neither snapshot, so the check starts again on the new one.
    """
    store = IndexStore(index)
    for _ in range(attempts):
        directory = store.current_dir()
        report = _verify_snapshot(store, directory)
        if report.ok or store.current_dir() == directory:
            return report
    return report


def _verify_snapshot(store: IndexStore, directory: Path) -> VerifyReport:
    report = VerifyReport(index=str(store.path), snapshot=directory.name)
    try:
        manifest = Manifest.from_file(directory / MANIFEST)
    except QAError as exc:
        report.problems.append(str(exc))
        return report
    if _check_files(report, directory, manifest):
        _check_contents(report, directory, manifest)
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
        try:
            facts = file_facts(path)
        except OSError as exc:
            files_ok = report.check(False, "", f"{name}: unreadable ({exc.strerror or exc})")
            continue
        files_ok &= report.check(
            facts == expected,
            f"{name}: {facts['bytes']:,} bytes, SHA-256 matches the manifest",
            f"{name}: checksum or size differs from the manifest (truncated, corrupted or edited)",
        )
    return files_ok


def _check_contents(report: VerifyReport, directory: Path, manifest: Manifest) -> None:
    """SQLite integrity, every vector against its passage row and back, lexical rows, counts."""
    try:
        snapshot = Snapshot(directory, verify=False)  # this snapshot, whatever CURRENT says by now
    except (QAError, OSError, sqlite3.Error) as exc:
        report.check(False, "", f"cannot open the snapshot ({str(exc)[:200]})")
        return
    try:
        facts = snapshot.passages.consistency()
        ids = set(snapshot.vectors.ids().tolist())
        dimension = snapshot.vectors.dimension
        vector_problem = snapshot.vectors.stored_problem()
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
        facts.sentence_records == facts.records and facts.misfit_sentence_rows == 0,
        f"sentence vectors for all {facts.records:,} records, one code per sentence",
        f"{facts.records - facts.sentence_records} records without sentence vectors, {facts.misfit_sentence_rows} "
        "whose codes do not fit their sentences",
    )
    report.check(
        (facts.records, len(rows)) == (manifest.records, manifest.chunks),
        "counts match the manifest",
        f"manifest says {manifest.records} records / {manifest.chunks} passages, found {facts.records} / {len(rows)}",
    )
    report.check(
        vector_problem is None,
        "every vector is finite and unit length",
        f"{vector_problem}: the vectors were tampered with or damaged; rebuild with qa build --full",
    )
    report.check(
        dimension == manifest.dimension,
        f"vectors have the manifest's dimension ({dimension})",
        f"vectors have dimension {dimension}, the manifest says {manifest.dimension}",
    )


def _check_model(report: VerifyReport, store: IndexStore, manifest: Manifest) -> None:
    """The exported encoder the index was built with, byte for byte; or that the model can be found."""
    if is_exported(manifest.backend):
        try:
            store.encoder_dir(manifest)
            report.check(True, f"encoder {manifest.encoder}: every file's SHA-256 matches the manifest", "")
        except QAError as exc:
            report.check(False, "", str(exc))
        return
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
