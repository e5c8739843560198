"""Capacity: index size, resident memory, latency and recall of flat, ivf-sq8 and ivf-pq.

    python bench/capacity.py             # prints tables, writes bench/results/capacity.json (about 10 minutes)
    python bench/capacity.py --n 200000  # a smaller synthetic size
    python bench/capacity.py --sqlite    # only the SQLite bytes per passage, by table

Measured here:
- on the shared 1,001 records (5,673 real passages): MRR@10 of each index type on the 1,000 shared
  questions (dense and hybrid), and the SQLite bytes per passage (records, passages, sentence vectors);
- on N synthetic passages (default 1,000,000) clustered around the real vectors, with real questions as
  queries: file size, resident memory after 200 questions (read as a search would: IVF lists
  memory-mapped), p50/p99 search latency on one thread, and recall@10 against exact search.
Computed (marked so): the same sizes at 10M and 100M passages, from the bytes per vector measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import (
    CACHE,
    REPO,
    SHARED_QRELS,
    SHARED_QUERIES,
    clustered_vectors,
    corpus_index,
    measure_index,
    write_results,
)

sys.path.insert(0, str(REPO))

from qa import Retriever  # noqa: E402
from qa.ask.evaluate import evaluate, load_qrels, load_queries  # noqa: E402
from qa.store import DEFAULT_NPROBE, IndexStore, VectorIndex  # noqa: E402
from qa.store.layout import PASSAGES, VECTORS  # noqa: E402
from qa.store.manifest import file_facts  # noqa: E402

KINDS = ("flat", "ivf-sq8", "ivf-pq")


def real_quality(index: Path) -> tuple[list[dict], dict]:
    """MRR@10 per index type on the shared questions, and what SQLite holds per passage."""
    queries, qrels = load_queries(SHARED_QUERIES), load_qrels(SHARED_QRELS)
    rows = []
    for kind in KINDS:
        work = Path(tempfile.mkdtemp(dir=CACHE))
        try:
            copy = work / "index"
            shutil.copytree(index, copy)
            snapshot = IndexStore(copy).current_dir()
            vectors = VectorIndex.read(snapshot / VECTORS)
            converted = vectors.converted(kind)
            converted.write(snapshot / VECTORS)
            manifest = json.loads((snapshot / "manifest.json").read_text())
            manifest["index_type"] = kind
            manifest["files"][VECTORS] = file_facts(snapshot / VECTORS)
            (snapshot / "manifest.json").write_text(json.dumps(manifest))
            row = {"index_type": kind, "vectors_mb": round((snapshot / VECTORS).stat().st_size / 1e6, 2)}
            with Retriever(copy, verify=False) as retriever:
                for mode in ("dense", "hybrid"):
                    row[f"mrr_at_10_{mode}"] = round(evaluate(retriever, queries, qrels, mode=mode).mrr_at_10, 4)
            rows.append(row)
            print(f"  {kind}: {row}", file=sys.stderr)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return rows, sqlite_bytes(index)


# SQLite's own tables and indexes, grouped by what they hold (dbstat names them)
COMPONENTS = {"sentences": "sentence vectors (3-bit codes)", "records": "records (text, MeSH, citation)",
              "lexical_content": "FTS5 copy of the text", "lexical_data": "FTS5 inverted index",
              "chunks": "passages (offsets)", "chunks_pmid": "passages by PMID"}  # fmt: skip


def sqlite_bytes(index: Path) -> dict:
    """What the SQLite file holds per passage: in all, the sentence vectors' blobs, and each table's pages."""
    import sqlite3

    store = IndexStore(index)
    path = store.current_dir() / PASSAGES
    chunks = store.manifest().chunks
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        vectors = int(db.execute("SELECT COALESCE(SUM(LENGTH(codes)), 0) FROM sentences").fetchone()[0])
        pages = dict(db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
    finally:
        db.close()
    by = {name: round(pages.pop(name, 0) / chunks) for name in COMPONENTS}
    by["other"] = round(sum(pages.values()) / chunks)
    return {"passages": chunks, "sqlite_mb": round(path.stat().st_size / 1e6, 2),
            "sqlite_bytes_per_passage": round(path.stat().st_size / chunks),
            "sentence_vector_bytes_per_passage": round(vectors / chunks), "by_component": by}  # fmt: skip


def print_sqlite(sqlite: dict) -> None:
    print(f"SQLite: {sqlite['sqlite_bytes_per_passage']:,} bytes/passage ({sqlite['passages']:,} passages), of which "
          f"sentence vector blobs {sqlite['sentence_vector_bytes_per_passage']:,}; by table:")  # fmt: skip
    for name, size in sqlite["by_component"].items():
        print(f"  {name:<16} {COMPONENTS.get(name, 'the rest'):<32} {size:>6,} B/passage")


def synthetic(index: Path, n: int, n_queries: int = 200) -> list[dict]:
    import faiss

    vectors = clustered_vectors(index, n)
    d = vectors.shape[1]
    with Retriever(index) as retriever:
        questions = retriever.embedder.encode(list(load_queries(SHARED_QUERIES).values())[:n_queries])
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    flat = VectorIndex.empty(d)
    flat.add(np.arange(n, dtype=np.int64), vectors)
    del vectors
    truth = [[i for i, _ in flat.search(q, 10)] for q in questions]
    rows = []
    for kind in KINDS:
        t0 = time.perf_counter()
        index_of_kind = flat.converted(kind)
        build = time.perf_counter() - t0
        path = CACHE / f"capacity-{kind}.faiss"
        index_of_kind.write(path)
        if index_of_kind is not flat:
            del index_of_kind
        measured = measure_index(path, kind, questions, truth, DEFAULT_NPROBE)
        rows.append({"index_type": kind, "passages": n, "build_seconds": round(build, 1),
                     "bytes_per_vector": round(measured["file_bytes"] / n, 1), **measured})  # fmt: skip
        print(f"  {rows[-1]}", file=sys.stderr)
    return rows


def computed(rows: list[dict], sqlite: dict) -> list[dict]:
    """Sizes at 10M and 100M passages from the measured bytes per vector (computed, not measured)."""
    out = []
    for n in (10_000_000, 100_000_000):
        for row in rows:
            vector_gb = row["bytes_per_vector"] * n / 1e9
            out.append({
                "passages": n, "index_type": row["index_type"], "vectors_gb": round(vector_gb, 1),
                "resident_gb": round(vector_gb if row["index_type"] == "flat" else
                                     row["resident_mb"] / 1e3 * n / row["passages"], 1),
                "sqlite_gb": round(sqlite["sqlite_bytes_per_passage"] * n / 1e9, 1),
                "of_which_sentence_vectors_gb": round(sqlite["sentence_vector_bytes_per_passage"] * n / 1e9, 1),
            })  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="synthetic passages (default 1,000,000)")
    parser.add_argument("--sqlite", action="store_true", help="only the SQLite bytes per passage, by table (seconds)")
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    index = corpus_index()
    if args.sqlite:
        print_sqlite(sqlite := sqlite_bytes(index))
        print(f"wrote {write_results('capacity-sqlite', sqlite)}")
        return
    print("real passages, index types:", file=sys.stderr)
    quality, sqlite = real_quality(index)
    print(f"{args.n:,} synthetic passages:", file=sys.stderr)
    sizes = synthetic(index, args.n)
    plan = computed(sizes, sqlite)
    result = {"real_5673_passages": quality, "sqlite": sqlite, "synthetic": sizes, "computed": plan,
              "nprobe": DEFAULT_NPROBE, "machine": "2 shared cores; one search thread"}  # fmt: skip

    print("\nShared 1,001 records (5,673 passages), 1,000 questions, MRR@10:")
    print(f"{'index type':<10} {'vectors MB':>10} {'dense':>7} {'hybrid':>7}")
    for r in quality:
        print(f"{r['index_type']:<10} {r['vectors_mb']:>10} {r['mrr_at_10_dense']:>7} {r['mrr_at_10_hybrid']:>7}")
    print_sqlite(sqlite)
    print(f"\n{args.n:,} synthetic passages (measured):")
    print(f"{'index type':<10} {'file MB':>8} {'B/vector':>8} {'RSS MB':>7} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'recall@10':>9} {'top1 in 10':>10} {'build s':>7}")  # fmt: skip
    for r in sizes:
        print(f"{r['index_type']:<10} {r['file_mb']:>8} {r['bytes_per_vector']:>8} {r['resident_mb']:>7} "
              f"{r['p50_ms']:>7} {r['p99_ms']:>7} {r['recall_at_10']:>9} {r['nearest_in_10']:>10} "
              f"{r['build_seconds']:>7}")  # fmt: skip
    print("\nComputed from the bytes per vector above (not measured):")
    print(f"{'passages':>12} {'index type':<10} {'vectors GB':>10} {'RSS GB':>7} {'SQLite GB':>9} {'sent. vec GB':>12}")
    for r in plan:
        print(f"{r['passages']:>12,} {r['index_type']:<10} {r['vectors_gb']:>10} {r['resident_gb']:>7} "
              f"{r['sqlite_gb']:>9} {r['of_which_sentence_vectors_gb']:>12}")  # fmt: skip
    print(f"wrote {write_results('capacity', result)}")


if __name__ == "__main__":
    main()
