"""Verify: check an index end to end -- checksums, vectors against rows, lexical rows, model -- for `qa verify`."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import QAError
from .store import MANIFEST, PASSAGES, VECTORS, IndexStore, Manifest, all_ids, file_facts


@dataclass
class VerifyReport:
    index: str
    snapshot: str = ""
    passed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

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

    def check(ok: bool, passed: str, problem: str) -> bool:
        (report.passed if ok else report.problems).append(passed if ok else problem)
        return ok

    files_ok = True
    for name in (PASSAGES, VECTORS):
        path = directory / name
        expected = manifest.files.get(name)
        if not path.is_file():
            files_ok = check(False, "", f"{name} is missing")
            continue
        if not expected:
            report.problems.append(f"{name}: the manifest records no checksum (built by an older version)")
            files_ok = False
            continue
        facts = file_facts(path)
        files_ok &= check(
            facts == expected,
            f"{name}: {facts['bytes']:,} bytes, SHA-256 matches the manifest",
            f"{name}: checksum or size differs from the manifest (truncated, corrupted or edited)",
        )
    if not files_ok:
        return report

    db = sqlite3.connect(f"file:{directory / PASSAGES}?mode=ro", uri=True)
    try:
        (integrity,) = db.execute("PRAGMA integrity_check").fetchone()
        check(integrity == "ok", "SQLite integrity_check: ok", f"SQLite integrity_check: {integrity}")
        rows = {cid for (cid,) in db.execute("SELECT id FROM chunks")}
        (records,) = db.execute("SELECT COUNT(*) FROM records").fetchone()
        (orphans,) = db.execute("SELECT COUNT(*) FROM chunks WHERE pmid NOT IN (SELECT pmid FROM records)").fetchone()
        (bare,) = db.execute("SELECT COUNT(*) FROM records WHERE pmid NOT IN (SELECT pmid FROM chunks)").fetchone()
        (lexical,) = db.execute("SELECT COUNT(*) FROM lexical").fetchone()
    finally:
        db.close()
    snapshot = store.open()
    try:
        ids = set(all_ids(snapshot.index).tolist())
        dimension = snapshot.index.d
    finally:
        snapshot.close()
    missing_rows, missing_vectors = len(ids - rows), len(rows - ids)
    check(ids == rows, f"{len(ids):,} vectors, each with its passage row and vice versa",
          f"{missing_rows} vectors without a passage row, {missing_vectors} passage rows without a vector")  # fmt: skip
    check(orphans == 0 and bare == 0, "every passage has its record and every record has passages",
          f"{orphans} passages without a record, {bare} records without passages")  # fmt: skip
    check(lexical == records, f"{lexical:,} lexical (FTS5) rows for {records:,} records",
          f"{lexical} lexical rows for {records} records")  # fmt: skip
    check((records, len(rows)) == (manifest.records, manifest.chunks), "counts match the manifest",
          f"manifest says {manifest.records} records / {manifest.chunks} passages, "
          f"found {records} / {len(rows)}")  # fmt: skip
    check(dimension == manifest.dimension, f"vectors have the manifest's dimension ({dimension})",
          f"vectors have dimension {dimension}, the manifest says {manifest.dimension}")  # fmt: skip
    if manifest.backend == "onnx-int8" and manifest.encoder:
        model_file = store.path / manifest.encoder / "model.onnx"
        if not model_file.is_file():
            check(False, "", f"the encoder {manifest.encoder}/model.onnx is missing")
        else:
            check(file_facts(model_file)["sha256"] == manifest.encoder_sha256,
                  f"encoder {manifest.encoder}: SHA-256 matches the manifest",
                  f"encoder {manifest.encoder}/model.onnx differs from the one the index was built with")  # fmt: skip
    else:
        from .embed import resolve_model_path

        try:
            path = resolve_model_path(manifest.model)
            check(Path(path).exists() or "/" not in path, f"model {manifest.model!r} is available",
                  f"model {manifest.model!r} is not found at {path}")  # fmt: skip
        except QAError as exc:
            check(False, "", str(exc))
    return report


__all__ = ["VerifyReport", "verify_index"]
